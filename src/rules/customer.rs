//! The customer as the rules see it, and the exact money and date values on it.
//!
//! Money is a whole number of cents (`i64`), never a float: `1.234,50` is 123450. Amounts arrive
//! in both the Argentine form (`1.234,50`) and the programmer's form (`1234.50`); both parse.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::Language;

/// An amount of money in cents. Balances are never negative.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub i64);

/// Most cents an amount may have (a trillion pesos): keeps arithmetic far from overflow.
const MAX_CENTS: i64 = 100_000_000_000_000;

impl Money {
    /// Parses `1234.50`, `1234,5`, `1.234,50`, `1,234.50`, `$ 1.234`, `1234`. Rejects negative
    /// amounts, more than two decimals, letters and empty text, saying why.
    pub fn parse(raw: &str) -> Result<Money, String> {
        let text: String = raw
            .trim()
            .trim_start_matches('$')
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if text.is_empty() {
            return Err("is empty; write an amount like 1234.50 or 1.234,50".into());
        }
        if text.starts_with('-') {
            return Err(format!(
                "`{}` is negative; balances must be 0 or more",
                raw.trim()
            ));
        }
        let text = text.trim_start_matches('+');
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        {
            return Err(format!(
                "`{}` is not an amount (unexpected `{bad}`); write it like 1234.50 or 1.234,50",
                raw.trim()
            ));
        }
        let dots = text.matches('.').count();
        let commas = text.matches(',').count();
        // Which separator, if any, marks the decimals.
        let decimal = match (dots, commas) {
            (0, 0) => None,
            (_, 0) | (0, _) => {
                let sep = if dots > 0 { '.' } else { ',' };
                let count = dots + commas;
                let after = text.rsplit(sep).next().unwrap_or("");
                if count == 1 && after.len() != 3 {
                    Some(sep)
                } else {
                    None // only thousands separators: 1.234 or 1.234.567
                }
            }
            _ => {
                // Both appear: the last one is the decimal separator.
                let last_dot = text.rfind('.').unwrap_or(0);
                let last_comma = text.rfind(',').unwrap_or(0);
                let sep = if last_dot > last_comma { '.' } else { ',' };
                if text.matches(sep).count() > 1 {
                    return Err(format!("`{}` has two decimal separators", raw.trim()));
                }
                Some(sep)
            }
        };
        let (int_part, frac_part) = match decimal {
            Some(sep) => {
                let (a, b) = text.rsplit_once(sep).unwrap_or((text, ""));
                (a.to_string(), b.to_string())
            }
            None => (text.to_string(), String::new()),
        };
        let grouping = if decimal == Some('.') { ',' } else { '.' };
        let grouping = if decimal.is_none() {
            if dots > 0 { '.' } else { ',' }
        } else {
            grouping
        };
        // Thousands groups must be three digits each.
        let groups: Vec<&str> = int_part.split(grouping).collect();
        if groups.len() > 1
            && (groups[0].is_empty()
                || groups[0].len() > 3
                || groups[1..].iter().any(|g| g.len() != 3))
        {
            return Err(format!(
                "`{}` is not an amount (misplaced thousands separator)",
                raw.trim()
            ));
        }
        let digits: String = groups.concat();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{}` is not an amount", raw.trim()));
        }
        if frac_part.len() > 2 || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{}` has more than two decimals; amounts are in cents",
                raw.trim()
            ));
        }
        if digits.len() > 15 {
            return Err(format!("`{}` is too large", raw.trim()));
        }
        let whole: i64 = digits
            .parse()
            .map_err(|_| format!("`{}` is not an amount", raw.trim()))?;
        let frac: i64 = match frac_part.len() {
            0 => 0,
            1 => frac_part.parse::<i64>().unwrap_or(0) * 10,
            _ => frac_part.parse::<i64>().unwrap_or(0),
        };
        let cents = whole * 100 + frac;
        if cents > MAX_CENTS {
            return Err(format!("`{}` is too large", raw.trim()));
        }
        Ok(Money(cents))
    }

    /// Reads a JSON number (`1234.5`, `1234.50`, `1234`, `1.2e3`). Its `.` is always the decimal
    /// point, so `1.234` is one peso and 234 thousandths: that is refused (amounts are in cents)
    /// instead of being read as 1234 the way the text `"1.234"` is.
    pub fn from_json_number(n: &serde_json::Number) -> Result<Money, String> {
        let text = n.to_string();
        let plain = if text.contains(['e', 'E']) {
            // serde_json prints floats with an exponent only when they are huge or tiny.
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => format!("{f}"),
                _ => return Err(format!("{text} is too large")),
            }
        } else {
            text.clone()
        };
        let (whole, frac) = plain.split_once('.').unwrap_or((&plain, ""));
        if frac.len() > 2 {
            return Err(format!(
                "{text} has {} decimals; a number's dot is the decimal point and amounts are in \
                 cents: send at most two decimals, or the text \"{text}\" if the dot separates \
                 thousands",
                frac.len()
            ));
        }
        let normalized = if frac.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{frac:0<2}")
        };
        Money::parse(&normalized)
    }

    /// The amount as customers read it: es `$ 1.234,50`, en `$1,234.50`.
    pub fn format(self, language: Language) -> String {
        let whole = (self.0 / 100).to_string();
        let cents = self.0 % 100;
        let (group, decimal, prefix) = match language {
            Language::Es => ('.', ',', "$ "),
            Language::En => (',', '.', "$"),
        };
        let mut grouped = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(group);
            }
            grouped.push(c);
        }
        format!("{prefix}{grouped}{decimal}{cents:02}")
    }

    /// Plain decimal form for JSON: `1234.50`.
    pub fn plain(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Parses a date as billing systems write it: `2026-12-05`, `05/12/2026`, `5/12/2026`,
/// `05-12-2026` (day first, as in Argentina).
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let t = raw.trim();
    use chrono::Datelike;
    // `%Y` also takes one or two digits: `05/12/26` would be year 26. Four-digit years first,
    // then two-digit ones as 20xx (`%y`).
    for fmt in ["%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, fmt)
            && d.year() >= 1900
        {
            return Ok(d);
        }
    }
    for fmt in ["%d/%m/%y", "%d-%m-%y", "%d.%m.%y"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, fmt) {
            return Ok(d);
        }
    }
    Err(format!(
        "`{t}` is not a date; write it as 2026-12-05 or 05/12/2026 (day first)"
    ))
}

/// The date as customers read it: es `05/12/2026`, en `12/05/2026`.
pub fn format_date(d: NaiveDate, language: Language) -> String {
    match language {
        Language::Es => d.format("%d/%m/%Y").to_string(),
        Language::En => d.format("%m/%d/%Y").to_string(),
    }
}

/// Per-channel opt-out flags (`BAJA` sets the one of the channel it came in on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OptOut {
    pub sms: bool,
    pub whatsapp: bool,
    pub email: bool,
}

/// One of the ISP's customers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Customer {
    /// Row id in the local directory; `None` for a customer found only in the billing system.
    pub id: Option<i64>,
    /// The ISP's own customer code.
    pub code: String,
    pub name: String,
    /// Normalized (E.164) numbers; the first is where notices go.
    pub phones: Vec<String>,
    pub email: Option<String>,
    pub balance: Option<Money>,
    pub due_date: Option<NaiveDate>,
    pub plan: Option<String>,
    pub zone: Option<String>,
    /// Any other field, usable in templates as `%name%`.
    pub extra: BTreeMap<String, String>,
    pub optout: OptOut,
    /// The customer's own channel order per billing event type (`invoice`, `payment`), used
    /// instead of the event's configured `channels`; checked when stored.
    pub channels: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_both_notations() {
        let ok = |s: &str| Money::parse(s).unwrap().0;
        assert_eq!(ok("1234.50"), 123450);
        assert_eq!(ok("1.234,50"), 123450);
        assert_eq!(ok("1,234.50"), 123450);
        assert_eq!(ok("1234,5"), 123450);
        assert_eq!(ok("$ 1.234"), 123400);
        assert_eq!(ok("1.234.567,89"), 123456789);
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("12.5"), 1250);
        assert_eq!(ok(" 999 "), 99900);
        for bad in [
            "",
            "-5",
            "abc",
            "12.345,678",
            "1,2,3.4.5",
            "12a",
            "1..2",
            "1.2.3,4,5",
            ".5.5",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(Money::parse("-1.234,50").unwrap_err().contains("negative"));
        assert!(Money::parse("9999999999999999").is_err());
    }

    #[test]
    fn json_numbers_use_the_dot_as_decimal_point() {
        let num = |s: &str| Money::from_json_number(&serde_json::from_str(s).unwrap());
        assert_eq!(num("1234.5"), Ok(Money(123450)));
        assert_eq!(num("1234.50"), Ok(Money(123450)));
        assert_eq!(num("1234"), Ok(Money(123400)));
        assert_eq!(num("0.05"), Ok(Money(5)));
        assert_eq!(num("1.2e3"), Ok(Money(120000)));
        // Three decimals are not thousands: `1.234` as a number would be 1234.00 as text.
        let e = num("1.234").unwrap_err();
        assert!(e.contains("3 decimals") && e.contains("\"1.234\""), "{e}");
        assert!(num("1234.567").is_err());
        assert!(num("-5").unwrap_err().contains("negative"));
        assert!(num("1e300").is_err());
    }

    #[test]
    fn formats_follow_the_locale() {
        assert_eq!(Money(123450).format(Language::Es), "$ 1.234,50");
        assert_eq!(Money(123450).format(Language::En), "$1,234.50");
        assert_eq!(Money(5).format(Language::Es), "$ 0,05");
        assert_eq!(Money(100000000).format(Language::Es), "$ 1.000.000,00");
        assert_eq!(Money(123450).plain(), "1234.50");
        let d = parse_date("2026-12-05").unwrap();
        assert_eq!(format_date(d, Language::Es), "05/12/2026");
        assert_eq!(format_date(d, Language::En), "12/05/2026");
        assert_eq!(parse_date("5/12/2026").unwrap(), d);
        assert_eq!(parse_date("05/12/26").unwrap(), d);
        assert!(parse_date("2026-13-01").is_err());
        assert!(parse_date("mañana").is_err());
    }
}

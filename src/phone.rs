//! Phone-number normalization. [`Msisdn`] is an E.164 number (`+5491123456789`) that only
//! [`PhoneContext::normalize`] can build, so an un-normalized string never reaches a transport.
//!
//! Argentina first: mobiles are `+54 9 AREA SUBSCRIBER`; people write them `011 15-2345-6789`,
//! `11 15 2345 6789` or `+54 9 11 2345-6789`, and ISPs store them as ten digits without the
//! `0` and the `15` (`1123456789`), which by the numbering plan is a landline. With
//! `assume_mobile` (on by default for AR) those are read as mobiles: an SMS gateway has no use
//! for landlines.

use std::fmt;
use std::str::FromStr;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use phonenumber::country;

/// Set when the phone-number metadata's patterns were used since the last
/// [`release_patterns`].
static PATTERNS_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Every parse goes through here, so [`release_patterns`] knows whether there is anything to
/// release (and never loads the metadata itself).
fn parse(
    country: country::Id,
    number: &str,
) -> Result<phonenumber::PhoneNumber, phonenumber::ParseError> {
    PATTERNS_USED.store(true, std::sync::atomic::Ordering::Relaxed);
    phonenumber::parse(Some(country), number)
}

/// Drops the compiled patterns the phone-number metadata keeps (an LRU of up to 100 regexes,
/// about 3 MB once a few numbers were parsed); the next parse compiles the ones it needs
/// again. Called when the gateway goes quiet after traffic. Returns whether there was
/// anything to drop.
pub fn release_patterns() -> bool {
    if !PATTERNS_USED.swap(false, std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let cache = phonenumber::metadata::DATABASE.cache();
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    *cache = regex_cache::RegexCache::new(100);
    true
}

/// A normalized phone number in E.164 form, `+` and digits only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Msisdn(String);

impl Msisdn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the leading `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// For logs: all but the last 4 digits hidden (`+*********6789`).
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hides all but the last 4 characters of an address (numbers or names alike).
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    if n <= 4 {
        return value.to_string();
    }
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < n - 4 && c != '+' { '*' } else { c })
        .collect()
}

/// Why a text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is empty")]
    Empty,
    #[error("`{0}` has characters that are not part of a phone number")]
    BadCharacters(String),
    #[error("`{0}` is not a valid phone number for {1}")]
    Invalid(String, String),
    #[error("`{0}` is not a known country code")]
    UnknownCountry(String),
    #[error("`{0}` has no national form in {1}: it is a number of another country")]
    NotNational(String, String),
}

/// How national numbers are read: the country, and whether bare numbers are mobiles.
#[derive(Debug, Clone)]
pub struct PhoneContext {
    country: country::Id,
    country_code: String,
    assume_mobile: bool,
    known: Arc<Mutex<HashSet<String>>>,
}

/// Argentine mobile prefixes (`+549` and the next 8 digits) already proven valid. The numbering
/// plan's mobile patterns decide on at most the first 8 national digits, the rest being any
/// digits, so another number of the same length and prefix is valid too; this skips the
/// metadata's regular expressions for the customers of an area an ISP already served.
/// Only positive answers are kept; anything unknown takes the full path.
const KNOWN_PREFIX_LEN: usize = 12;
const KNOWN_MAX: usize = 50_000;

impl PhoneContext {
    /// `assume_mobile = None` takes the country's default (on for AR).
    pub fn new(country_code: &str, assume_mobile: Option<bool>) -> Result<Self, PhoneError> {
        let upper = country_code.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(PhoneError::UnknownCountry(country_code.to_string()));
        }
        let id = country::Id::from_str(&upper)
            .map_err(|_| PhoneError::UnknownCountry(country_code.to_string()))?;
        Ok(PhoneContext {
            country: id,
            assume_mobile: assume_mobile.unwrap_or(upper == "AR"),
            country_code: upper,
            known: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// The ISO 3166 code numbers are read for (`AR`).
    pub fn country(&self) -> &str {
        &self.country_code
    }

    pub fn argentina() -> Self {
        PhoneContext::new("AR", None).expect("AR is a known region")
    }

    /// Normalizes a number as an operator or a billing system wrote it.
    pub fn normalize(&self, input: &str) -> Result<Msisdn, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.chars().count() > 40
            || !trimmed
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().\u{a0}/".contains(c))
        {
            return Err(PhoneError::BadCharacters(trimmed.to_string()));
        }
        let plus = trimmed.starts_with('+') || trimmed.starts_with("00");
        let digits: String = trimmed.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() < 3 {
            return Err(self.invalid(trimmed));
        }
        let candidates = self.candidates(&digits, plus);
        if let Some(hit) = candidates.first().filter(|c| self.is_known(c)) {
            return Ok(Msisdn(hit.clone()));
        }
        let result = self.normalize_slow(&candidates, trimmed);
        if let Ok(m) = &result {
            self.remember(m.as_str());
        }
        result
    }

    /// The national significant number of `number` (E.164) in this context's country, as
    /// providers that take numbers "without the country code" want it: `+5491147896321` →
    /// `1147896321` (Argentina: without the 0, and without the 9 or 15 of mobiles). A number
    /// of another country has none.
    pub fn national(&self, number: &str) -> Result<String, PhoneError> {
        let parsed =
            // Masked: this error reaches the log when a message fails (unlike `normalize`'s,
            // which answers whoever typed the number).
            parse(self.country, number).map_err(|_| {
                PhoneError::Invalid(mask(number), self.country_code.clone())
            })?;
        if parsed.country().id() != Some(self.country) {
            return Err(PhoneError::NotNational(
                mask(number),
                self.country_code.clone(),
            ));
        }
        let national = parsed.national().to_string();
        if self.country == country::Id::AR && national.len() == 11 && national.starts_with('9') {
            return Ok(national[1..].to_string());
        }
        Ok(national)
    }

    fn is_known(&self, e164: &str) -> bool {
        e164.len() == 14
            && e164.starts_with("+549")
            && e164[1..].bytes().all(|b| b.is_ascii_digit())
            && self
                .known
                .lock()
                .is_ok_and(|k| k.contains(&e164[..KNOWN_PREFIX_LEN]))
    }

    fn remember(&self, e164: &str) {
        if e164.len() == 14
            && e164.starts_with("+549")
            && let Ok(mut k) = self.known.lock()
        {
            if k.len() >= KNOWN_MAX {
                k.clear();
            }
            k.insert(e164[..KNOWN_PREFIX_LEN].to_string());
        }
    }

    fn normalize_slow(&self, candidates: &[String], trimmed: &str) -> Result<Msisdn, PhoneError> {
        let mut fixed = None;
        for candidate in candidates {
            let Ok(number) = parse(self.country, candidate) else {
                continue;
            };
            // The number's type is Unknown exactly when it is not valid: one regex pass.
            let kind = number.number_type(&phonenumber::metadata::DATABASE);
            if kind == phonenumber::Type::Unknown {
                continue;
            }
            let e164 = format!("+{}{}", number.code().value(), number.national());
            if kind == phonenumber::Type::FixedLine
                && self.assume_mobile
                && self.is_ar(&e164)
                && let Some(m) = self.as_ar_mobile(&e164)
            {
                return Ok(m);
            }
            if kind == phonenumber::Type::FixedLine {
                fixed.get_or_insert(e164);
                continue;
            }
            return Ok(Msisdn(e164));
        }
        fixed.map(Msisdn).ok_or_else(|| self.invalid(trimmed))
    }

    fn invalid(&self, input: &str) -> PhoneError {
        PhoneError::Invalid(input.to_string(), self.country_code.clone())
    }

    fn is_ar(&self, e164: &str) -> bool {
        e164.starts_with("+54") && !e164.starts_with("+549")
    }

    /// `+54 AREA SUB` → `+54 9 AREA SUB`, if that is a valid mobile.
    fn as_ar_mobile(&self, e164: &str) -> Option<Msisdn> {
        let candidate = format!("+549{}", &e164[3..]);
        let number = parse(self.country, &candidate).ok()?;
        (number.number_type(&phonenumber::metadata::DATABASE) == phonenumber::Type::Mobile)
            .then(|| Msisdn(format!("+{}{}", number.code().value(), number.national())))
    }

    /// Spellings to try, most literal first.
    fn candidates(&self, digits: &str, plus: bool) -> Vec<String> {
        let digits = digits.strip_prefix("00").filter(|_| plus).unwrap_or(digits);
        let mut out = Vec::new();
        if plus {
            out.push(format!("+{digits}"));
            return out;
        }
        if self.country == country::Id::AR {
            // 54 9 11 2345 6789 / 54 11 2345 6789 written without the plus.
            if digits.starts_with("54") && (digits.len() == 12 || digits.len() == 13) {
                out.push(format!("+{digits}"));
            }
            // `11 15 2345 6789`: the trunk 0 was left out but the mobile 15 kept.
            if !digits.starts_with('0') && digits.len() == 12 {
                out.push(format!("0{digits}"));
            }
        }
        out.push(digits.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar(s: &str) -> Result<String, PhoneError> {
        PhoneContext::argentina().normalize(s).map(|m| m.0)
    }

    #[test]
    fn numbers_still_parse_after_the_compiled_patterns_are_released() {
        let ctx = PhoneContext::argentina();
        assert_eq!(ctx.national("+5491147896321").unwrap(), "1147896321");
        assert!(release_patterns(), "a parse since the last release");
        assert_eq!(ctx.national("+5491147896321").unwrap(), "1147896321");
        assert_eq!(ar("0351 15-412-3456").unwrap(), "+5493514123456");
        assert!(release_patterns());
    }

    #[test]
    fn argentine_forms() {
        for input in [
            "+54 9 11 2345-6789",
            "011 15-2345-6789",
            "11 15 2345 6789",
            "5491123456789",
            "1123456789",
            "+5491123456789",
            "(011) 15 2345-6789",
            "0054 9 11 2345 6789",
            "+54 11 2345-6789",
        ] {
            assert_eq!(ar(input).as_deref(), Ok("+5491123456789"), "{input}");
        }
        // A Córdoba mobile: area 351.
        assert_eq!(ar("0351 15-412-3456").as_deref(), Ok("+5493514123456"));
        assert_eq!(ar("3514123456").as_deref(), Ok("+5493514123456"));
    }

    #[test]
    fn assume_mobile_off_keeps_landline() {
        let ctx = PhoneContext::new("AR", Some(false)).unwrap();
        assert_eq!(ctx.normalize("1123456789").unwrap().0, "+541123456789");
    }

    #[test]
    fn other_countries() {
        let uy = PhoneContext::new("UY", None).unwrap();
        assert_eq!(uy.normalize("094 123 456").unwrap().0, "+59894123456");
        // An international number is read as such whatever the context.
        assert_eq!(ar("+598 94 123 456").unwrap(), "+59894123456");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(ar(""), Err(PhoneError::Empty));
        assert!(matches!(ar("hola"), Err(PhoneError::BadCharacters(_))));
        assert!(matches!(ar("12"), Err(PhoneError::Invalid(..))));
        assert!(matches!(
            ar("+54 15 2345 6789"),
            Err(PhoneError::Invalid(..))
        ));
        assert!(matches!(
            ar("99999999999999999999"),
            Err(PhoneError::Invalid(..))
        ));
        assert!(matches!(
            PhoneContext::new("XX", None),
            Err(PhoneError::UnknownCountry(_))
        ));
    }

    #[test]
    fn known_prefixes_give_the_same_answers() {
        let ctx = PhoneContext::argentina();
        for input in [
            "+5491123456789",
            "+5491123456780",
            "1123456781",
            "+5491100000000",
            "+549112345678",
        ] {
            let fresh = PhoneContext::argentina().normalize(input);
            assert_eq!(ctx.normalize(input), fresh, "{input}");
            assert_eq!(ctx.normalize(input), fresh, "{input} again");
        }
    }

    #[test]
    fn national_forms() {
        let ctx = PhoneContext::argentina();
        assert_eq!(ctx.national("+5491147896321").unwrap(), "1147896321");
        assert_eq!(ctx.national("+5493514123456").unwrap(), "3514123456");
        assert_eq!(ctx.national("+541147896321").unwrap(), "1147896321");
        assert!(matches!(
            ctx.national("+59894123456"),
            Err(PhoneError::NotNational(..))
        ));
        let uy = PhoneContext::new("UY", None).unwrap();
        assert_eq!(uy.national("+59894123456").unwrap(), "94123456");
        // An outbox peer the library cannot read: the error (logged) shows the last digits only.
        let e = ctx
            .national("+54911478963219999999999")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("47896321"), "{e}");
        assert!(
            e.contains("9999") && e.contains("not a valid phone number"),
            "{e}"
        );
    }

    #[test]
    fn masking() {
        assert_eq!(mask("+5491123456789"), "+*********6789");
        assert_eq!(mask("1234"), "1234");
        assert_eq!(mask("Personal"), "****onal");
    }
}

//! Delivery windows: when notifications and bulk may reach a customer's phone.
//!
//! Built in (names ISPs already use): `laboral` Mon–Fri 09–18, `extendido` Mon–Fri 08–21, both
//! closed on holidays, and `fulltime` every day 07–23 including holidays. `[windows.custom.NAME]`
//! adds more. Times are in the company time zone; holidays are the national calendar computed
//! for each year ([`crate::holidays`], the country of `windows.calendar`, else
//! `company.country`), plus `windows.holidays`, minus `windows.not_holidays`.

use std::collections::{BTreeMap, BTreeSet};

use crate::holidays::{self, Calendar};

pub use crate::config::rules::{ALWAYS, DaysSpec, WindowSpec, WindowsConfig};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// A schedule, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `n` set = open on weekday `n` (Monday = 0).
    days: u8,
    from: u32,
    /// Minutes after midnight; up to 1440.
    to: u32,
    holidays: bool,
}

fn weekday_index(name: &str) -> Option<u32> {
    let n = crate::rules::text::words(name).concat();
    Some(match n.as_str() {
        "lun" | "lunes" | "mon" | "monday" => 0,
        "mar" | "martes" | "tue" | "tuesday" => 1,
        "mie" | "miercoles" | "wed" | "wednesday" => 2,
        "jue" | "jueves" | "thu" | "thursday" => 3,
        "vie" | "viernes" | "fri" | "friday" => 4,
        "sab" | "sabado" | "sat" | "saturday" => 5,
        "dom" | "domingo" | "sun" | "sunday" => 6,
        _ => return None,
    })
}

fn parse_days_item(item: &str) -> Result<u8, String> {
    let t = item.trim();
    let folded = crate::rules::text::words(t).concat();
    if matches!(folded.as_str(), "todos" | "all" | "everyday") {
        return Ok(0x7f);
    }
    if let Some((a, b)) = t.split_once('-') {
        let (Some(a), Some(b)) = (weekday_index(a), weekday_index(b)) else {
            return Err(format!("`{t}` is not a day range like lun-vie"));
        };
        let mut bits = 0u8;
        let mut d = a;
        loop {
            bits |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
        return Ok(bits);
    }
    weekday_index(t)
        .map(|d| 1 << d)
        .ok_or_else(|| format!("`{t}` is not a day (lun, mar, mie, jue, vie, sab, dom)"))
}

fn parse_time(t: &str) -> Result<u32, String> {
    let bad = || format!("`{t}` is not a time like 09:00");
    let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Window {
    pub fn parse(spec: &WindowSpec) -> Result<Window, String> {
        let days = match &spec.days {
            DaysSpec::One(s) => s
                .split(',')
                .map(parse_days_item)
                .collect::<Result<Vec<_>, _>>()?,
            DaysSpec::List(l) => l
                .iter()
                .map(|s| parse_days_item(s))
                .collect::<Result<Vec<_>, _>>()?,
        }
        .into_iter()
        .fold(0, |a, b| a | b);
        if days == 0 {
            return Err("days: names no day".into());
        }
        let from = parse_time(&spec.from).map_err(|e| format!("from: {e}"))?;
        let to = parse_time(&spec.to).map_err(|e| format!("to: {e}"))?;
        if from >= to {
            return Err(format!(
                "from {} is not before to {}; a window is within one day",
                spec.from, spec.to
            ));
        }
        Ok(Window {
            days,
            from,
            to,
            holidays: spec.holidays,
        })
    }

    const fn fixed(days: u8, from_h: u32, to_h: u32, holidays: bool) -> Window {
        Window {
            days,
            from: from_h * 60,
            to: to_h * 60,
            holidays,
        }
    }
}

/// Every window by name, the holidays and the time zone: answers "open now?" and "when next?".
#[derive(Debug, Clone)]
pub struct Windows {
    windows: BTreeMap<String, Window>,
    holidays: Calendar,
    tz: Tz,
}

/// `YYYY-MM-DD` dates of the list at `key`; a bad one is an error naming it.
fn dates(key: &str, list: &[String], errors: &mut Vec<(String, String)>) -> BTreeSet<NaiveDate> {
    let mut out = BTreeSet::new();
    for h in list {
        match NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d") {
            Ok(d) => {
                out.insert(d);
            }
            Err(_) => errors.push((
                key.to_string(),
                format!("`{h}` is not a date like 2026-12-25"),
            )),
        }
    }
    out
}

/// The national table `windows.calendar` names, else `country`'s (`company.country`) when there
/// is one; `none` turns it off. Naming a country without a table is an error.
fn national_table(
    config: &WindowsConfig,
    country: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<&'static holidays::Table> {
    match config.calendar.as_deref().map(str::trim) {
        None => holidays::table(country),
        Some(c) if c.eq_ignore_ascii_case("none") => None,
        Some(c) => {
            let table = holidays::table(c);
            if table.is_none() {
                errors.push((
                    "windows.calendar".to_string(),
                    format!(
                        "`{c}` has no holiday table; known: {}, or \"none\" (list the days in windows.holidays)",
                        holidays::known_codes()
                    ),
                ));
            }
            table
        }
    }
}

impl Windows {
    /// Builds from config; `country` is `company.country`, whose national holidays apply
    /// unless `windows.calendar` says otherwise. Errors name the key.
    pub fn new(
        config: &WindowsConfig,
        tz: Tz,
        country: &str,
    ) -> Result<Windows, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut windows = BTreeMap::new();
        windows.insert("laboral".to_string(), Window::fixed(0x1f, 9, 18, false));
        windows.insert("extendido".to_string(), Window::fixed(0x1f, 8, 21, false));
        windows.insert("fulltime".to_string(), Window::fixed(0x7f, 7, 23, true));
        for (name, spec) in &config.custom {
            if name == ALWAYS {
                errors.push((
                    format!("windows.custom.{name}"),
                    "`always` is reserved (it means no window)".to_string(),
                ));
                continue;
            }
            match Window::parse(spec) {
                Ok(w) => {
                    windows.insert(name.clone(), w);
                }
                Err(e) => errors.push((format!("windows.custom.{name}"), e)),
            }
        }
        let holidays = Calendar {
            table: national_table(config, country, &mut errors),
            added: dates("windows.holidays", &config.holidays, &mut errors),
            removed: dates("windows.not_holidays", &config.not_holidays, &mut errors),
        };
        let me = Windows {
            windows,
            holidays,
            tz,
        };
        for (key, name) in [
            ("windows.notifications", &config.notifications),
            ("windows.bulk", &config.bulk),
            ("windows.urgent", &config.urgent),
        ] {
            if let Err(e) = me.check_name(name) {
                errors.push((key.to_string(), e));
            }
        }
        if errors.is_empty() {
            Ok(me)
        } else {
            Err(errors)
        }
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// `Ok` when `name` is a window (or `always`).
    pub fn check_name(&self, name: &str) -> Result<(), String> {
        if name == ALWAYS || self.windows.contains_key(name) {
            Ok(())
        } else {
            Err(format!(
                "`{name}` is not a delivery window; known: always, {}",
                self.windows.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.windows.keys().cloned().collect()
    }

    /// The holidays the windows honour.
    pub fn calendar(&self) -> &Calendar {
        &self.holidays
    }

    fn open_on(&self, w: &Window, date: NaiveDate) -> bool {
        w.days & (1 << date.weekday().num_days_from_monday()) != 0
            && (w.holidays || !self.holidays.is_holiday(date))
    }

    fn local_ms(&self, date: NaiveDate, minutes: u32) -> i64 {
        let naive = if minutes >= 1440 {
            (date + Duration::days(1)).and_time(NaiveTime::MIN)
        } else {
            date.and_time(
                NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN),
            )
        };
        // A time skipped by a clock change opens at the next valid instant.
        match self.tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => t.timestamp_millis(),
            chrono::LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
            chrono::LocalResult::None => self
                .tz
                .from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
                .map(|t| t.timestamp_millis())
                .unwrap_or_else(|| naive.and_utc().timestamp_millis()),
        }
    }

    /// When a message for window `name` may go out, at or after `now_ms`: `now_ms` itself when
    /// the window is open. Unknown names count as `always` (they were checked on save).
    pub fn next_open(&self, name: &str, now_ms: i64) -> i64 {
        let Some(w) = self.windows.get(name) else {
            return now_ms;
        };
        let Some(now) = DateTime::from_timestamp_millis(now_ms) else {
            return now_ms;
        };
        let today = now.with_timezone(&self.tz).date_naive();
        // Two years of days: a window that never opens (every day a holiday) gives up.
        for offset in 0..730 {
            let date = today + Duration::days(offset);
            if !self.open_on(w, date) {
                continue;
            }
            let start = self.local_ms(date, w.from);
            let end = self.local_ms(date, w.to);
            if now_ms < end {
                return start.max(now_ms);
            }
        }
        now_ms
    }

    pub fn is_open(&self, name: &str, now_ms: i64) -> bool {
        self.next_open(name, now_ms) <= now_ms
    }

    /// The next instant after `now_ms` at which any window opens or closes (the scheduler
    /// wakes then), within the next two days.
    pub fn next_change(&self, now_ms: i64) -> Option<i64> {
        let now = DateTime::from_timestamp_millis(now_ms)?;
        let today = now.with_timezone(&self.tz).date_naive();
        let mut best: Option<i64> = None;
        for w in self.windows.values() {
            for offset in 0..3 {
                let date = today + Duration::days(offset);
                for minutes in [w.from, w.to] {
                    let t = self.local_ms(date, minutes);
                    if t > now_ms && best.is_none_or(|b| t < b) {
                        best = Some(t);
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp_millis()
    }

    fn windows(holidays: &[&str]) -> Windows {
        let mut c = WindowsConfig {
            holidays: holidays.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        c.custom.insert(
            "finde".into(),
            WindowSpec {
                days: DaysSpec::One("sab-dom".into()),
                from: "10:00".into(),
                to: "13:30".into(),
                holidays: true,
            },
        );
        Windows::new(&c, chrono_tz::America::Argentina::Buenos_Aires, "none").unwrap()
    }

    #[test]
    fn builtin_windows_open_and_close() {
        let tz = chrono_tz::America::Argentina::Buenos_Aires;
        let w = windows(&[]);
        // Friday 2026-11-20.
        assert!(w.is_open("laboral", ms(tz, 2026, 11, 20, 9, 0)));
        assert!(w.is_open("laboral", ms(tz, 2026, 11, 20, 17, 59)));
        assert!(!w.is_open("laboral", ms(tz, 2026, 11, 20, 18, 0)));
        assert!(w.is_open("extendido", ms(tz, 2026, 11, 20, 20, 0)));
        // Friday evening → Monday 09:00.
        assert_eq!(
            w.next_open("laboral", ms(tz, 2026, 11, 20, 19, 0)),
            ms(tz, 2026, 11, 23, 9, 0)
        );
        // Saturday: fulltime opens at 07:00, laboral waits for Monday.
        assert_eq!(
            w.next_open("fulltime", ms(tz, 2026, 11, 21, 3, 0)),
            ms(tz, 2026, 11, 21, 7, 0)
        );
        assert!(!w.is_open("fulltime", ms(tz, 2026, 11, 21, 23, 0)));
        assert!(w.is_open("always", ms(tz, 2026, 11, 21, 3, 0)));
        assert!(w.is_open("finde", ms(tz, 2026, 11, 22, 13, 0)));
        assert!(!w.is_open("finde", ms(tz, 2026, 11, 22, 13, 30)));
    }

    #[test]
    fn holidays_close_work_windows_but_not_fulltime() {
        let tz = chrono_tz::America::Argentina::Buenos_Aires;
        // Tuesday 2026-12-08 is a holiday.
        let w = windows(&["2026-12-08"]);
        let at = ms(tz, 2026, 12, 8, 10, 0);
        assert!(!w.is_open("laboral", at));
        assert_eq!(w.next_open("laboral", at), ms(tz, 2026, 12, 9, 9, 0));
        assert!(w.is_open("fulltime", at));
    }

    #[test]
    fn the_national_calendar_keeps_itself_and_the_config_adds_and_removes() {
        let tz = chrono_tz::America::Argentina::Buenos_Aires;
        let mut c = WindowsConfig {
            holidays: vec!["2027-04-01".into()],
            not_holidays: vec!["2027-10-11".into()],
            ..Default::default()
        };
        // Thursday 2027-04-01 is added (Holy Thursday, a "día no laborable"), Friday 2 April
        // is national (Malvinas), then the weekend.
        let w = Windows::new(&c, tz, "AR").unwrap();
        assert_eq!(
            w.next_open("laboral", ms(tz, 2027, 4, 1, 10, 0)),
            ms(tz, 2027, 4, 5, 9, 0),
            "1 April added, 2 April national"
        );
        // Good Friday is computed from Easter.
        assert!(!w.is_open("laboral", ms(tz, 2027, 3, 26, 10, 0)));
        // Monday 11 October is removed: the ISP works it.
        assert!(w.is_open("laboral", ms(tz, 2027, 10, 11, 10, 0)));
        // `calendar = "none"` keeps only the added days.
        c.calendar = Some("none".into());
        let w = Windows::new(&c, tz, "AR").unwrap();
        assert!(w.is_open("laboral", ms(tz, 2027, 3, 26, 10, 0)));
        assert!(!w.is_open("laboral", ms(tz, 2027, 4, 1, 10, 0)));
        // A country without a table has only the added days.
        c.calendar = None;
        let w = Windows::new(&c, tz, "UY").unwrap();
        assert!(w.is_open("laboral", ms(tz, 2027, 3, 26, 10, 0)));
    }

    #[test]
    fn bad_windows_are_reported_by_key() {
        let mut c = WindowsConfig::default();
        c.custom.insert(
            "x".into(),
            WindowSpec {
                days: DaysSpec::List(vec!["lunes".into(), "feriado".into()]),
                from: "09:00".into(),
                to: "18:00".into(),
                holidays: false,
            },
        );
        c.custom.insert(
            "y".into(),
            WindowSpec {
                days: DaysSpec::One("todos".into()),
                from: "18:00".into(),
                to: "09:00".into(),
                holidays: false,
            },
        );
        c.holidays.push("25/12".into());
        c.bulk = "nunca".into();
        c.not_holidays.push("2027-02-30".into());
        c.calendar = Some("UY".into());
        let errors = Windows::new(&c, chrono_tz::UTC, "AR").unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "windows.custom.x",
                "windows.custom.y",
                "windows.calendar",
                "windows.holidays",
                "windows.not_holidays",
                "windows.bulk"
            ]
        );
    }

    #[test]
    fn next_change_is_the_next_boundary() {
        let tz = chrono_tz::America::Argentina::Buenos_Aires;
        let w = windows(&[]);
        assert_eq!(
            w.next_change(ms(tz, 2026, 11, 20, 17, 0)),
            Some(ms(tz, 2026, 11, 20, 18, 0))
        );
    }
}

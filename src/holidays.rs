//! National holiday calendars, computed per year, so delivery windows keep honouring holidays
//! without anyone typing next year's dates.
//!
//! A country is a [`Table`]: its fixed dates, the days counted from Easter (Carnival, Good
//! Friday), and its movable holidays with the rule that moves them. Argentina's follows law
//! 27.399: the "inamovibles" fall on their date; the "trasladables" (17 June, 17 August,
//! 12 October, 20 November) move by its article 6 — a Tuesday or Wednesday to the Monday
//! before, a Thursday or Friday to the Monday after. What the law leaves to each year's decree
//! (the up to three "días no laborables con fines turísticos", moving a trasladable that falls
//! on a weekend as decree 614/2025 allows) is not computed: the config adds or removes those days
//! (`windows.holidays`, `windows.not_holidays`). Another country is one more [`Table`] in
//! [`TABLES`].

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// How a movable holiday is moved from its nominal date to the day it is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveRule {
    /// Argentina, law 27.399 art. 6: Tuesday and Wednesday to the Monday before, Thursday and
    /// Friday to the Monday after; Saturday, Sunday and Monday stay.
    ArgentinaLaw27399,
}

impl MoveRule {
    /// The law that sets the rule, for listings.
    pub fn law(self) -> &'static str {
        match self {
            MoveRule::ArgentinaLaw27399 => "law 27.399 art. 6",
        }
    }

    /// The observed date of a movable holiday whose nominal date is `date`.
    pub fn apply(self, date: NaiveDate) -> NaiveDate {
        match self {
            MoveRule::ArgentinaLaw27399 => match date.weekday() {
                Weekday::Tue => date - Duration::days(1),
                Weekday::Wed => date - Duration::days(2),
                Weekday::Thu => date + Duration::days(4),
                Weekday::Fri => date + Duration::days(3),
                Weekday::Sat | Weekday::Sun | Weekday::Mon => date,
            },
        }
    }
}

/// One country's national holidays.
#[derive(Debug)]
pub struct Table {
    /// ISO 3166 code, as in `company.country`.
    pub code: &'static str,
    pub country: &'static str,
    /// (month, day, name) on that date every year.
    pub fixed: &'static [(u32, u32, &'static str)],
    /// (days after Easter Sunday, negative before, name).
    pub from_easter: &'static [(i64, &'static str)],
    /// (month, day, name) moved by `rule`.
    pub movable: &'static [(u32, u32, &'static str)],
    pub rule: MoveRule,
}

/// Argentina: law 27.399 (arts. 1 and 6).
pub const AR: Table = Table {
    code: "AR",
    country: "Argentina",
    fixed: &[
        (1, 1, "Año Nuevo"),
        (
            3,
            24,
            "Día Nacional de la Memoria por la Verdad y la Justicia",
        ),
        (
            4,
            2,
            "Día del Veterano y de los Caídos en la Guerra de Malvinas",
        ),
        (5, 1, "Día del Trabajador"),
        (5, 25, "Día de la Revolución de Mayo"),
        (6, 20, "Paso a la Inmortalidad del General Manuel Belgrano"),
        (7, 9, "Día de la Independencia"),
        (12, 8, "Día de la Inmaculada Concepción de María"),
        (12, 25, "Navidad"),
    ],
    from_easter: &[
        (-48, "Carnaval (lunes)"),
        (-47, "Carnaval (martes)"),
        (-2, "Viernes Santo"),
    ],
    movable: &[
        (
            6,
            17,
            "Paso a la Inmortalidad del General Martín Miguel de Güemes",
        ),
        (
            8,
            17,
            "Paso a la Inmortalidad del General José de San Martín",
        ),
        (10, 12, "Día del Respeto a la Diversidad Cultural"),
        (11, 20, "Día de la Soberanía Nacional"),
    ],
    rule: MoveRule::ArgentinaLaw27399,
};

/// Every country with a table. Add a country here (and a test of one year against its official
/// list).
pub const TABLES: &[&Table] = &[&AR];

/// The table of `code` (any case), if there is one.
pub fn table(code: &str) -> Option<&'static Table> {
    let code = code.trim();
    TABLES
        .iter()
        .copied()
        .find(|t| t.code.eq_ignore_ascii_case(code))
}

/// The codes with a table, for error messages.
pub fn known_codes() -> String {
    TABLES.iter().map(|t| t.code).collect::<Vec<_>>().join(", ")
}

/// Easter Sunday of `year` in the Gregorian calendar (the anonymous Gregorian algorithm, also
/// known as Meeus/Jones/Butcher).
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

/// Where a day of the calendar comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// On its date every year.
    Fixed,
    /// Counted from Easter.
    Easter,
    /// A movable holiday; the nominal date it was moved from (equal when it stays).
    Moved(NaiveDate),
    /// Added by the config (`windows.holidays`).
    Added,
}

/// One holiday of a year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: String,
    pub source: Source,
}

impl Table {
    /// The national holidays of `year`, in date order.
    pub fn year(&self, year: i32) -> Vec<Holiday> {
        let mut out = Vec::new();
        for &(m, d, name) in self.fixed {
            if let Some(date) = NaiveDate::from_ymd_opt(year, m, d) {
                out.push(Holiday {
                    date,
                    name: name.to_string(),
                    source: Source::Fixed,
                });
            }
        }
        let easter = easter(year);
        for &(offset, name) in self.from_easter {
            out.push(Holiday {
                date: easter + Duration::days(offset),
                name: name.to_string(),
                source: Source::Easter,
            });
        }
        for &(m, d, name) in self.movable {
            if let Some(nominal) = NaiveDate::from_ymd_opt(year, m, d) {
                out.push(Holiday {
                    date: self.rule.apply(nominal),
                    name: name.to_string(),
                    source: Source::Moved(nominal),
                });
            }
        }
        out.sort_by_key(|h| h.date);
        out
    }

    /// Whether `date` is a national holiday, without building the year's list (windows ask
    /// this for every day they look at).
    pub fn contains(&self, date: NaiveDate) -> bool {
        let (y, m, d) = (date.year(), date.month(), date.day());
        if self.fixed.iter().any(|&(fm, fd, _)| fm == m && fd == d) {
            return true;
        }
        if !self.from_easter.is_empty() {
            let easter = easter(y);
            if self
                .from_easter
                .iter()
                .any(|&(offset, _)| easter + Duration::days(offset) == date)
            {
                return true;
            }
        }
        // A moved holiday stays within a week of its date: only a January or December day may
        // be one of the year before or after.
        let years = match m {
            1 => y - 1..=y,
            12 => y..=y + 1,
            _ => y..=y,
        };
        self.movable.iter().any(|&(fm, fd, _)| {
            years.clone().any(|year| {
                NaiveDate::from_ymd_opt(year, fm, fd).is_some_and(|n| self.rule.apply(n) == date)
            })
        })
    }
}

/// The holidays the windows honour: a country's table (or none), plus the days the config adds,
/// minus the days it removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    pub table: Option<&'static Table>,
    pub added: BTreeSet<NaiveDate>,
    pub removed: BTreeSet<NaiveDate>,
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

impl Eq for Table {}

impl Calendar {
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        if self.removed.contains(&date) {
            return false;
        }
        self.added.contains(&date) || self.table.is_some_and(|t| t.contains(date))
    }

    /// Every holiday of `year` the windows honour, in date order.
    pub fn year(&self, year: i32) -> Vec<Holiday> {
        let mut out: Vec<Holiday> = self
            .table
            .map(|t| t.year(year))
            .unwrap_or_default()
            .into_iter()
            .filter(|h| !self.removed.contains(&h.date))
            .collect();
        for &date in self.added.iter().filter(|d| d.year() == year) {
            if !out.iter().any(|h| h.date == date) && !self.removed.contains(&date) {
                out.push(Holiday {
                    date,
                    name: "added by windows.holidays".to_string(),
                    source: Source::Added,
                });
            }
        }
        out.sort_by_key(|h| h.date);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn easter_dates_match_the_published_ones() {
        for (y, m, day) in [
            (2000, 4, 23),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter(y), d(y, m, day), "{y}");
        }
    }

    #[test]
    fn argentina_2027_is_the_official_list() {
        let dates: Vec<NaiveDate> = AR.year(2027).iter().map(|h| h.date).collect();
        assert_eq!(
            dates,
            [
                d(2027, 1, 1),
                d(2027, 2, 8),
                d(2027, 2, 9),
                d(2027, 3, 24),
                d(2027, 3, 26),
                d(2027, 4, 2),
                d(2027, 5, 1),
                d(2027, 5, 25),
                d(2027, 6, 20),
                // 17 June 2027 is a Thursday: the Monday after.
                d(2027, 6, 21),
                d(2027, 7, 9),
                // 17 August is a Tuesday: the Monday before.
                d(2027, 8, 16),
                // 12 October is a Tuesday: the Monday before.
                d(2027, 10, 11),
                // 20 November is a Saturday: it stays.
                d(2027, 11, 20),
                d(2027, 12, 8),
                d(2027, 12, 25),
            ]
        );
        for h in AR.year(2027) {
            assert!(AR.contains(h.date), "{h:?}");
        }
        assert!(!AR.contains(d(2027, 6, 17)));
        assert!(!AR.contains(d(2027, 3, 25)), "Holy Thursday is no holiday");
    }

    #[test]
    fn argentina_2025_movable_days_match_the_ones_observed() {
        // 17 June 2025 (Tuesday) was observed on Monday 16 June; 17 August (Sunday) stayed;
        // 20 November (Thursday) went to Monday 24 November. 12 October (Sunday) stays by the
        // law; that year's decree moved it to Friday 10, which a config adds and removes.
        let year = AR.year(2025);
        let moved: Vec<NaiveDate> = year
            .iter()
            .filter(|h| matches!(h.source, Source::Moved(_)))
            .map(|h| h.date)
            .collect();
        assert_eq!(
            moved,
            [
                d(2025, 6, 16),
                d(2025, 8, 17),
                d(2025, 10, 12),
                d(2025, 11, 24)
            ]
        );
        assert!(year.iter().any(|h| h.date == d(2025, 3, 3)), "Carnival");
        assert!(year.iter().any(|h| h.date == d(2025, 4, 18)), "Good Friday");
    }

    #[test]
    fn the_move_rule_covers_every_weekday() {
        // 2029-08-13 is a Monday; the week from it.
        let monday = d(2029, 8, 13);
        let rule = MoveRule::ArgentinaLaw27399;
        assert_eq!(rule.apply(monday), monday);
        assert_eq!(rule.apply(d(2029, 8, 14)), monday);
        assert_eq!(rule.apply(d(2029, 8, 15)), monday);
        assert_eq!(rule.apply(d(2029, 8, 16)), d(2029, 8, 20));
        assert_eq!(rule.apply(d(2029, 8, 17)), d(2029, 8, 20));
        assert_eq!(rule.apply(d(2029, 8, 18)), d(2029, 8, 18));
        assert_eq!(rule.apply(d(2029, 8, 19)), d(2029, 8, 19));
    }

    #[test]
    fn contains_agrees_with_the_year_list_over_decades() {
        for year in 2020..2060 {
            let list: BTreeSet<NaiveDate> = AR.year(year).iter().map(|h| h.date).collect();
            let mut day = d(year, 1, 1);
            while day.year() == year {
                assert_eq!(AR.contains(day), list.contains(&day), "{day}");
                day += Duration::days(1);
            }
        }
    }

    #[test]
    fn the_config_adds_and_removes_days() {
        let cal = Calendar {
            table: Some(&AR),
            added: [d(2027, 4, 1), d(2027, 7, 9), d(2028, 1, 2)].into(),
            removed: [d(2027, 10, 11)].into(),
        };
        assert!(cal.is_holiday(d(2027, 4, 1)));
        assert!(!cal.is_holiday(d(2027, 10, 11)));
        assert!(cal.is_holiday(d(2027, 12, 25)));
        let year = cal.year(2027);
        assert_eq!(year.len(), 16);
        assert_eq!(
            year.iter().filter(|h| h.source == Source::Added).count(),
            1,
            "9 July is already national; 2028 is another year"
        );
        assert!(!Calendar::default().is_holiday(d(2027, 12, 25)));
        assert!(table("ar").is_some() && table("XX").is_none());
    }
}

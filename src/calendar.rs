//! Calendar terms of the program (`docs/rules.md §1`): months, windows and anniversaries.
//!
//! A [`Month`] is a calendar month `YYYY-MM`. It owns the month arithmetic that every stage
//! shares: the refresh window R-12 … R-1, anniversaries (29 February falling back to
//! 28 February in common years) and "a calendar day past a month's end means that month's
//! last day".

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

/// A calendar month, `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1..=12).contains(&month) && (1..=9999).contains(&year)).then_some(Month { year, month })
    }

    pub fn of(date: NaiveDate) -> Month {
        Month {
            year: date.year(),
            month: date.month(),
        }
    }

    /// Months since year 0: consecutive months have consecutive indices.
    pub fn index(self) -> i32 {
        self.year * 12 + self.month as i32 - 1
    }

    pub fn from_index(index: i32) -> Month {
        Month {
            year: index.div_euclid(12),
            month: index.rem_euclid(12) as u32 + 1,
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    pub fn plus(self, months: i32) -> Month {
        Month::from_index(self.index() + months)
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    pub fn last_day(self) -> NaiveDate {
        self.plus(1).first_day().pred_opt().expect("valid month")
    }

    /// Day `day` of this month, or the month's last day when the month is shorter.
    pub fn day(self, day: u32) -> NaiveDate {
        let last = self.last_day();
        if day >= last.day() {
            last
        } else {
            NaiveDate::from_ymd_opt(self.year, self.month, day.max(1)).expect("valid day")
        }
    }

    /// The 12 completed months shown by the refresh of this month: `(R-12, R-1)`.
    pub fn window(self) -> (Month, Month) {
        (self.plus(-12), self.plus(-1))
    }

    /// `YYYY-MM` written into `buf`, as [`fmt::Display`] writes it, without the formatting
    /// machinery (for columns of many rows); `None` for a year outside 0 … 9999.
    pub fn write_text(self, buf: &mut [u8; 7]) -> Option<&str> {
        let year = u32::try_from(self.year).ok().filter(|y| *y <= 9999)?;
        let digit = |n: u32| b'0' + (n % 10) as u8;
        *buf = [
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(self.month / 10),
            digit(self.month),
        ];
        std::str::from_utf8(buf).ok()
    }

    /// Whole months from `self` to `later` (negative when `later` is earlier).
    pub fn months_until(self, later: Month) -> i32 {
        later.index() - self.index()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = String;

    /// Parses exactly `YYYY-MM`.
    fn from_str(s: &str) -> Result<Month, String> {
        let bad = || format!("{s:?} is not a month (expected YYYY-MM)");
        let b = s.as_bytes();
        if b.len() != 7
            || b[4] != b'-'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let year = s[..4].parse().map_err(|_| bad())?;
        let month = s[5..].parse().map_err(|_| bad())?;
        Month::new(year, month).ok_or_else(bad)
    }
}

/// The years a date of the inputs may lie in (Excel's dates start in 1900).
pub const DATE_YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

/// The refresh months a run accepts: their windows, anniversaries and directory dates all
/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01, polars' day 0.
pub const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The date `days` days after 1970-01-01 (polars' dates), if there is one.
pub fn date_of_unix_days(days: i32) -> Option<NaiveDate> {
    days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

/// stay within [`DATE_YEARS`].
pub fn check_refresh(month: Month) -> Result<Month, String> {
    let (first, last) = (
        Month {
            year: 1901,
            month: 1,
        },
        Month {
            year: 9998,
            month: 12,
        },
    );
    if month < first || month > last {
        return Err(format!("refresh month {month} is outside {first} … {last}"));
    }
    Ok(month)
}

/// Parses exactly `YYYY-MM-DD` (four-digit year, two-digit month and day) with a year in
/// [`DATE_YEARS`].
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let year = s[..4].parse().ok()?;
    if !DATE_YEARS.contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(year, s[5..7].parse().ok()?, s[8..].parse().ok()?)
}

/// The anniversary of `enrolled_on` in `year`; 29 February becomes 28 February in common years.
pub fn anniversary_in(enrolled_on: NaiveDate, year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, enrolled_on.month(), enrolled_on.day()).unwrap_or_else(|| {
        Month::new(year, enrolled_on.month())
            .expect("valid")
            .last_day()
    })
}

/// The first anniversary on or after the first day of `refresh`. The first anniversary is one
/// year after enrollment, so an enrollment inside or just before `refresh` looks a year ahead.
pub fn next_anniversary(enrolled_on: NaiveDate, refresh: Month) -> NaiveDate {
    let from = refresh.first_day();
    let mut year = (enrolled_on.year() + 1).max(refresh.year());
    loop {
        let candidate = anniversary_in(enrolled_on, year);
        if candidate >= from {
            return candidate;
        }
        year += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_text_is_the_displayed_text() {
        let mut buf = [0u8; 7];
        for (y, m) in [(1, 1), (999, 12), (1900, 1), (2026, 11), (9999, 12)] {
            let month = Month::new(y, m).unwrap();
            assert_eq!(month.write_text(&mut buf), Some(month.to_string().as_str()));
        }
        assert_eq!(Month::from_index(-1).write_text(&mut buf), None);
        assert_eq!(Month::from_index(10_000 * 12).write_text(&mut buf), None);
    }

    #[test]
    fn unix_days_are_polars_dates() {
        assert_eq!(date_of_unix_days(0), Some(d("1970-01-01")));
        assert_eq!(date_of_unix_days(-1), Some(d("1969-12-31")));
        let far = d("9999-12-31");
        assert_eq!(
            date_of_unix_days(far.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE),
            Some(far)
        );
        assert_eq!(date_of_unix_days(i32::MAX), None);
    }

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn m(s: &str) -> Month {
        s.parse().unwrap()
    }

    #[test]
    fn months_parse_strictly_and_display_padded() {
        assert_eq!(m("2026-01").to_string(), "2026-01");
        for bad in [
            "2026-1",
            "2026-13",
            "2026-00",
            "26-01",
            "2026/01",
            "2026-01-01",
            " 2026-01",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }

    #[test]
    fn window_is_the_twelve_months_before() {
        assert_eq!(m("2020-01").window(), (m("2019-01"), m("2019-12")));
        assert_eq!(m("2026-11").window(), (m("2025-11"), m("2026-10")));
    }

    #[test]
    fn day_past_month_end_is_last_day() {
        assert_eq!(m("2026-02").day(31), d("2026-02-28"));
        assert_eq!(m("2024-02").day(30), d("2024-02-29"));
        assert_eq!(m("2026-03").day(15), d("2026-03-15"));
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("2026-02-28"), Some(d("2026-02-28")));
        for bad in [
            "2026-02-30",
            "2026-2-28",
            "26-02-28",
            "2026-02-28T00:00",
            "2026/02/28",
            "",
            "0001-01-01",
            "1899-12-31",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_date("1900-01-01"), Some(d("1900-01-01")));
        assert_eq!(parse_date("9999-12-31"), Some(d("9999-12-31")));
    }

    #[test]
    fn refresh_months_stay_within_the_dates() {
        assert!(check_refresh(m("1901-01")).is_ok());
        assert!(check_refresh(m("9998-12")).is_ok());
        assert!(check_refresh(m("1900-12")).is_err());
        assert!(check_refresh(m("9999-01")).is_err());
    }

    #[test]
    fn first_anniversary_is_a_year_after_enrollment() {
        assert_eq!(
            next_anniversary(d("2026-11-20"), m("2026-11")),
            d("2027-11-20")
        );
        assert_eq!(
            next_anniversary(d("2025-11-20"), m("2026-11")),
            d("2026-11-20")
        );
        assert_eq!(
            next_anniversary(d("2025-11-01"), m("2026-11")),
            d("2026-11-01")
        );
        assert_eq!(
            next_anniversary(d("2025-10-31"), m("2026-11")),
            d("2027-10-31")
        );
        assert_eq!(
            next_anniversary(d("2026-05-10"), m("2026-11")),
            d("2027-05-10")
        );
        assert_eq!(
            next_anniversary(d("2019-12-31"), m("2026-11")),
            d("2026-12-31")
        );
    }

    #[test]
    fn leap_day_enrollment_falls_back_in_common_years() {
        let e = d("2024-02-29");
        assert_eq!(next_anniversary(e, m("2025-02")), d("2025-02-28"));
        assert_eq!(next_anniversary(e, m("2025-03")), d("2026-02-28"));
        assert_eq!(next_anniversary(e, m("2028-02")), d("2028-02-29"));
        assert_eq!(next_anniversary(e, m("2024-03")), d("2025-02-28"));
    }
}

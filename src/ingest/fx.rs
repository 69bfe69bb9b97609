//! Monthly exchange rates to USD (`fx_rates.csv`, `docs/rules.md §2.6`). USD is always 1.

use std::collections::HashMap;
use std::path::Path;

use super::table::{self, Columns};
use crate::calendar::Month;
use crate::error::{Error, Result, RowProblem};
use crate::exact;

const COLUMNS: [&str; 3] = ["month", "currency", "usd_per_unit"];

#[derive(Clone, Debug, Default)]
pub struct FxRates {
    /// In units of 10⁻¹² (see [`crate::exact`]).
    rates: HashMap<(Month, String), i128>,
    /// Data rows read from the file.
    pub rows_read: u64,
    /// Header names the reader does not know, for the log.
    pub unknown_columns: Vec<String>,
}

impl FxRates {
    /// Loads the rates; an absent file means "USD only".
    pub fn load(path: &Path) -> Result<FxRates> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(FxRates::default());
        }
        FxRates::from_source(&crate::source::read(path)?)
    }

    /// The rates in the bytes of `source`, read once (their digest is `source.sha256`).
    pub fn from_source(source: &crate::source::Source) -> Result<FxRates> {
        let path = source.path.as_path();
        let t = table::parse(path, source.bytes.clone())?;
        let columns = Columns::resolve(path, &t.header, &COLUMNS, &COLUMNS)?;
        let mut rates = HashMap::new();
        let mut problems = Vec::new();
        let mut rows_read = 0;
        for row in t.rows {
            let row = row?;
            rows_read += 1;
            if let Some(problem) = row.extra_fields_problem() {
                problems.push(problem);
                continue;
            }
            let mut report = |column: &str, reason: String| {
                problems.push(RowProblem {
                    row: row.row as usize,
                    column: column.into(),
                    reason,
                })
            };
            let month_raw = columns.get(&row, 0);
            let month = month_raw.parse::<Month>();
            if month.is_err() {
                report("month", format!("{month_raw:?} is not a month YYYY-MM"));
            }
            let currency = columns.get(&row, 1).to_uppercase();
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                report(
                    "currency",
                    format!("{currency:?} is not a three-letter currency code"),
                );
            }
            let rate_raw = columns.get(&row, 2);
            let rate = parse_rate(rate_raw);
            match rate {
                None => report(
                    "usd_per_unit",
                    format!(
                        "{rate_raw:?} is not a plain decimal above 0 and below 1,000,000 \
                         (at most {RATE_FRACTION_DIGITS} digits after the point)"
                    ),
                ),
                Some(r) if currency == "USD" && r != ONE => {
                    report("usd_per_unit", "USD is always 1".into())
                }
                _ => {}
            }
            if let (Ok(month), Some(rate)) = (month, rate) {
                if rates
                    .insert((month, currency.clone()), rate)
                    .is_some_and(|old| old != rate)
                {
                    report(
                        "usd_per_unit",
                        format!("a different rate for {month} {currency} is on an earlier row"),
                    );
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::InvalidRows {
                file: path.to_path_buf(),
                problems,
            });
        }
        Ok(FxRates {
            rates,
            rows_read,
            unknown_columns: columns.unknown,
        })
    }

    /// The USD value of one unit of `currency` in `month`, in units of 10⁻¹².
    pub fn rate(&self, month: Month, currency: &str) -> Option<i128> {
        if currency == "USD" {
            return Some(ONE);
        }
        self.rates.get(&(month, currency.to_string())).copied()
    }

    /// All rates as (month index, currency, rate in units of 10⁻¹²), sorted, for joining.
    pub fn rows(&self) -> Vec<(i32, String, i128)> {
        let mut rows: Vec<_> = self
            .rates
            .iter()
            .map(|((m, c), r)| (m.index(), c.clone(), *r))
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        rows
    }
}

/// The most digits a rate may have after its point.
const RATE_FRACTION_DIGITS: usize = exact::RATE_SCALE;
/// A rate of 1 (USD's), in units of 10⁻¹².
pub const ONE: i128 = 1_000_000_000_000;
/// Every rate lies below 1,000,000 (no currency is worth a million dollars a unit): at most
/// this many significant digits before the point.
const RATE_WHOLE_DIGITS: usize = 6;

/// A plain decimal rate: digits, optionally a point and 1 to 12 more digits; above 0 and
/// below 1,000,000 (so a USD revenue can never overflow into a report).
fn parse_rate(s: &str) -> Option<i128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let plain = all_digits(int) && all_digits(frac) && frac.len() <= RATE_FRACTION_DIGITS;
    // The bounds are read from the digits, not from the nearest float: 999999.999999999999
    // is below 1,000,000 even though no float lies between them.
    let below_bound = int.trim_start_matches('0').len() <= RATE_WHOLE_DIGITS;
    let above_zero = int.bytes().chain(frac.bytes()).any(|b| b != b'0');
    (plain && below_bound && above_zero)
        .then(|| exact::parse_units(s, exact::RATE_SCALE))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_load_and_usd_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fx_rates.csv");
        std::fs::write(&path, "Month,Currency,USD_per_unit\n2026-10,eur,1.0856\n").unwrap();
        let fx = FxRates::load(&path).unwrap();
        let oct: Month = "2026-10".parse().unwrap();
        assert_eq!(fx.rate(oct, "EUR"), Some(1_085_600_000_000));
        assert_eq!(fx.rate(oct, "USD"), Some(ONE));
        assert_eq!(fx.rate(oct.plus(-1), "EUR"), None);
        assert!(FxRates::load(&dir.path().join("absent.csv"))
            .unwrap()
            .rate(oct, "EUR")
            .is_none());
    }

    #[test]
    fn rates_are_plain_decimals_within_bounds() {
        for ok in [
            "1",
            "0.5",
            "1.085600000000",
            "999999.999999",
            "0001.5",
            "999999.999999999999",
            "0000000000999999.5",
            "0.000000000001",
        ] {
            assert!(parse_rate(ok).is_some(), "{ok}");
        }
        for bad in [
            "0",
            "0.000",
            "0.0000000000001",
            "1e300",
            "1000000",
            "1000000.0",
            "10000000000000000000000",
            "1.0856000000001",
            "1.",
            ".5",
            "-1",
            "+1",
            "inf",
            "NaN",
            "1,5",
        ] {
            assert!(parse_rate(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn invalid_rows_fail_with_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fx_rates.csv");
        std::fs::write(
            &path,
            "month,currency,usd_per_unit\n2026-10,EUR,0\n2026-13,EURO,1e3\n",
        )
        .unwrap();
        let Err(Error::InvalidRows { problems, .. }) = FxRates::load(&path) else {
            panic!()
        };
        let at: Vec<_> = problems
            .iter()
            .map(|p| (p.row, p.column.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (2, "usd_per_unit"),
                (3, "month"),
                (3, "currency"),
                (3, "usd_per_unit")
            ]
        );
    }
}

//! The CSV reports: plain decimals, `YYYY-MM-DD` dates, written through [`crate::csv_file`]
//! (LF line endings, quoting only where needed, formula-like text escaped).

use std::path::Path;

pub use crate::csv_file::{escape, is_number};
use crate::error::Result;
use crate::report::Sheet;

/// A number as a plain decimal to at most 4 decimals: no exponent, no trailing zeros. What the
/// program computes is rounded by [`crate::kpi::round4`] before it gets here, so this only
/// writes it out (a value given with more decimals, such as a threshold, is cut to the
/// nearest 4-decimal number of its binary value).
pub fn number(x: f64) -> String {
    // Nearly every figure is the double nearest to a 4-decimal number: written from its whole
    // ten-thousandths, which is what `{:.4}` gives for it below 10^11 (its binary value lies
    // far closer to that number than half a ten-thousandth), without float formatting.
    if x.abs() < 1e11 {
        let units = (x * 10_000.0).round();
        if units / 10_000.0 == x {
            return units_text(units as i64);
        }
    }
    by_formatting(x)
}

/// `x` to 4 decimals by float formatting (`{:.4}`), trailing zeros cut ("0" for zero).
fn by_formatting(x: f64) -> String {
    let s = format!("{:.4}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// `units` ten-thousandths as a plain decimal without trailing zeros ("0" for zero).
fn units_text(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let (whole, frac) = (units.unsigned_abs() / 10_000, units.unsigned_abs() % 10_000);
    if frac == 0 {
        return if whole == 0 {
            "0".to_string()
        } else {
            format!("{sign}{whole}")
        };
    }
    let frac = format!("{frac:04}");
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

/// Writes a report CSV file with `header` and `rows`, escaping every value.
pub fn write(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<()> {
    crate::csv_file::write(path, header, rows, escape)
}

/// Writes a sheet's CSV file: the columns that have a name.
pub fn write_sheet(path: &Path, sheet: &Sheet) -> Result<()> {
    write(path, &sheet.csv_header(), sheet.csv_rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain_decimals() {
        assert_eq!(number(100.0), "100");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(-3.25), "-3.25");
        assert_eq!(number(0.00001), "0");
        assert_eq!(number(-0.00001), "0");
        assert_eq!(number(1e21), "1000000000000000000000");
        assert_eq!(number(0.1 + 0.2), "0.3");
        assert_eq!(number(1234.56789), "1234.5679");
        assert_eq!(number(-0.0001), "-0.0001");
        assert_eq!(number(99_999_999_999.999_9), "99999999999.9999");
    }

    proptest::proptest! {
        /// The whole-units path writes what `{:.4}` writes, trailing zeros cut.
        #[test]
        fn figures_are_written_as_float_formatting_writes_them(
            units in -1_000_000_000_000_000i64..1_000_000_000_000_000,
            scale in 0u32..7,
        ) {
            let x = units as f64 / 10f64.powi(scale as i32);
            proptest::prop_assert_eq!(number(x), by_formatting(x));
        }
    }
}

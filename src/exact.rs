//! Exact decimal amounts (docs/rules.md §5): KPI values and revenues held as whole numbers of
//! ten-thousandths, rates as whole numbers of 10⁻¹² and USD revenues as whole numbers of
//! 10⁻¹⁶, in polars `Decimal` columns (128-bit integers with a scale), so that every sum is
//! exact and the same in any order. Owns the scales, the parsing of a decimal's text into
//! such a whole number, the rounding to 4 decimals (half away from zero) and the conversion of
//! a rounded figure to the `f64` the reports carry.

use polars::prelude::*;

/// Decimal places of `kpi_value` and `revenue` (and of every KPI sum).
pub const AMOUNT_SCALE: usize = 4;
/// Decimal places of `usd_per_unit`.
pub const RATE_SCALE: usize = 12;
/// Decimal places of `revenue_usd`: an amount's 4 times a rate's 12, so a line's USD revenue
/// is exact.
pub const USD_SCALE: usize = AMOUNT_SCALE + RATE_SCALE;
/// The precision of every decimal column: the most a 128-bit integer holds.
pub const PRECISION: usize = 38;
/// The largest total of USD revenues, in absolute value, that a delivery may hold: 10²⁰ USD.
/// A window's lines come from its 12 months' deliveries at most (a line is never dated after
/// its delivery), so every sum stays below 1.2 × 10²¹ USD, within the 38 digits of a
/// `Decimal` at 16 places (10²² USD): no sum can overflow.
pub const MAX_DELIVERY_USD: f64 = 1e20;

/// The decimal data type of `scale` places.
pub fn dtype(scale: usize) -> DataType {
    DataType::Decimal(PRECISION, scale)
}

/// The value of `text` in whole units of 10^-`scale`: an optional sign, digits, optionally a
/// point with 1 to `scale` digits. The grammar's other limits (how many digits, a sign at
/// all) are the caller's to check; `None` when the text is not such a number or does not fit.
pub fn parse_units(text: &str, scale: usize) -> Option<i128> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f) || f.len() > scale) {
        return None;
    }
    let frac = frac.unwrap_or("");
    let digits = || {
        int.bytes()
            .chain((0..scale).map(|place| frac.as_bytes().get(place).copied().unwrap_or(b'0')))
            .map(|b| b - b'0')
    };
    // In 64 bits when the value fits (every amount of the grammar does: 19 digits at most),
    // else in 128.
    let units = match digits().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(d.into())) {
        Some(n) => i128::from(n),
        None => digits().try_fold(0i128, |n, d| n.checked_mul(10)?.checked_add(d.into()))?,
    };
    Some(if negative { -units } else { units })
}

/// `units` at `scale` places rounded to 4 places, half away from zero (docs/rules.md §5), in
/// whole ten-thousandths.
pub fn round4_units(units: i128, scale: usize) -> i128 {
    if scale <= AMOUNT_SCALE {
        return units * 10i128.pow((AMOUNT_SCALE - scale) as u32);
    }
    let step = 10i128.pow((scale - AMOUNT_SCALE) as u32);
    let half = step / 2;
    let rounded = (units.abs() + half) / step;
    if units < 0 {
        -rounded
    } else {
        rounded
    }
}

/// The `f64` nearest to `units` ten-thousandths (0 for −0).
pub fn f64_of_units4(units: i128) -> f64 {
    f64_of_units(units, AMOUNT_SCALE)
}

/// The `f64` nearest to `units` at `scale` places (0 for −0): a line's amount as a sheet shows
/// it. (polars' cast of a decimal to a float rounds twice, and can land one step off.)
pub fn f64_of_units(units: i128, scale: usize) -> f64 {
    let x = match shortest(units.unsigned_abs(), scale) {
        // Below 2⁵³ both numbers are exact doubles (10^places is, up to 10²²), and IEEE
        // division rounds once: the nearest.
        Some((digits, places)) => digits as f64 / 10f64.powi(places as i32),
        // Beyond, Rust's parser of the exact text is (a value of 16 significant digits or more).
        None => format!("{}e-{scale}", units.unsigned_abs())
            .parse()
            .unwrap_or(f64::NAN),
    };
    match (x == 0.0, units < 0) {
        (true, _) => 0.0,
        (false, true) => -x,
        (false, false) => x,
    }
}

/// `units` at `scale` places written with no trailing zero after the point: (digits, places),
/// when the digits stay below 2⁵³ and the places at most 19.
fn shortest(units: u128, scale: usize) -> Option<(u64, u32)> {
    const EXACT: u128 = 1 << 53;
    if units < EXACT && scale <= 19 {
        return Some((units as u64, scale as u32));
    }
    let scale = u32::try_from(scale).ok().filter(|s| *s <= 19)?;
    // In 64 bits when the units fit: a 128-bit division is a call of its own, and slower.
    let (whole, mut fraction, mut places) = match u64::try_from(units) {
        Ok(small) => {
            let unit = 10u64.pow(scale);
            (u128::from(small / unit), small % unit, scale)
        }
        Err(_) => {
            let unit = 10u128.pow(scale);
            (units / unit, (units % unit) as u64, scale)
        }
    };
    if fraction == 0 {
        places = 0;
    }
    while places > 0 && fraction % 10 == 0 {
        fraction /= 10;
        places -= 1;
    }
    let digits = whole.checked_mul(10u128.pow(places))? + u128::from(fraction);
    (digits < EXACT).then_some((digits as u64, places))
}

/// A decimal column as the `f64` nearest each value (see [`f64_of_units`]), under the same
/// name: the amounts a sheet shows line by line.
pub fn f64_column(column: &Column) -> PolarsResult<Column> {
    map_units(column, f64_of_units)
}

/// The decimal columns `names` of `df` as `f64` (see [`f64_column`]).
pub fn f64_columns(df: DataFrame, names: &[&str]) -> PolarsResult<DataFrame> {
    map_columns(df, names, f64_column)
}

/// A decimal column's values mapped by `f` (given each value's units and the scale) to `f64`,
/// under the same name; nulls stay null.
fn map_units(column: &Column, f: impl Fn(i128, usize) -> f64) -> PolarsResult<Column> {
    let (units, scale) = units(column)?;
    let values: Float64Chunked = if units.null_count() == 0 {
        let values: Vec<f64> = units.into_no_null_iter().map(|u| f(u, scale)).collect();
        Float64Chunked::from_vec(column.name().clone(), values)
    } else {
        units
            .iter()
            .map(|u| u.map(|u| f(u, scale)))
            .collect_ca(column.name().clone())
    };
    Ok(values.into_column())
}

/// The columns `names` of `df`, each replaced by `convert` of it.
fn map_columns(
    mut df: DataFrame,
    names: &[&str],
    convert: fn(&Column) -> PolarsResult<Column>,
) -> PolarsResult<DataFrame> {
    for name in names {
        let converted = convert(df.column(name)?)?;
        df.with_column(converted)?;
    }
    Ok(df)
}

/// A decimal value rounded to 4 places as an `f64` (see [`round4_units`], [`f64_of_units4`]).
pub fn round4_f64(units: i128, scale: usize) -> f64 {
    f64_of_units4(round4_units(units, scale))
}

/// The whole units and scale of a decimal column.
pub fn units(column: &Column) -> PolarsResult<(Int128Chunked, usize)> {
    let series = column.as_materialized_series();
    let decimal = series.decimal()?;
    Ok((decimal.physical().clone(), decimal.scale()))
}

/// A decimal column rounded to 4 places (half away from zero) as `f64` values, under the same
/// name: the figures the reports carry.
pub fn round4_column(column: &Column) -> PolarsResult<Column> {
    map_units(column, round4_f64)
}

/// The columns `names` of `df` rounded to 4 places as `f64` (see [`round4_column`]).
pub fn round4_columns(df: DataFrame, names: &[&str]) -> PolarsResult<DataFrame> {
    map_columns(df, names, round4_column)
}

/// An empty decimal column of `scale` places.
pub fn empty_column(name: &str, scale: usize) -> PolarsResult<Column> {
    column(
        name,
        Int128Chunked::from_vec(name.into(), Vec::new()),
        scale,
    )
}

/// A decimal column of `scale` places from whole `units`.
pub fn column(name: &str, units: Int128Chunked, scale: usize) -> PolarsResult<Column> {
    Ok(units
        .with_name(name.into())
        .into_decimal(PRECISION, scale)?
        .into_column())
}

/// `a × b` exactly, `a` and `b` decimal columns: a column of their scales' sum (null where
/// either is null). The product of an amount and a rate fits: below 10¹⁹ × 10¹⁸.
pub fn product(name: &str, a: &Column, b: &Column) -> PolarsResult<Column> {
    let (a, a_scale) = units(a)?;
    let (b, b_scale) = units(b)?;
    let units: Int128Chunked = a
        .iter()
        .zip(b.iter())
        .map(|(a, b)| a.zip(b).map(|(a, b)| a * b))
        .collect_ca(name.into());
    column(name, units, a_scale + b_scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_whole_units() {
        assert_eq!(parse_units("1", 4), Some(10_000));
        assert_eq!(parse_units("-0.5", 4), Some(-5_000));
        assert_eq!(parse_units("+12.3456", 4), Some(123_456));
        assert_eq!(parse_units("000000000000000000000.0001", 4), Some(1));
        assert_eq!(
            parse_units("999999999999999.9999", 4),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(
            parse_units("999999.999999999999", 12),
            Some(999_999_999_999_999_999)
        );
        for bad in ["", "-", ".5", "5.", "1.23456", "1e3", "1,5", "--1", " 1"] {
            assert_eq!(parse_units(bad, 4), None, "{bad:?}");
        }
        assert_eq!(parse_units(&"9".repeat(60), 4), None);
    }

    #[test]
    fn rounding_to_4_places_is_half_away_from_zero_and_exact() {
        // 2.50005, 0.03125, -0.03125 at 16 places (docs/rules.md §5).
        let at16 = |x: i128| x * 10i128.pow(11);
        assert_eq!(round4_units(at16(250_005), 16), 25_001);
        assert_eq!(round4_units(at16(3_125), 16), 313);
        assert_eq!(round4_units(at16(-3_125), 16), -313);
        assert_eq!(round4_units(at16(-4), 16), 0);
        // Just under a tie rounds down, however many places below it.
        assert_eq!(round4_units(at16(250_005) - 1, 16), 25_000);
        assert_eq!(round4_units(12, 2), 1_200);
        assert_eq!(round4_f64(-1, 16).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn figures_become_the_nearest_double() {
        assert_eq!(f64_of_units4(12_345), 1.2345);
        assert_eq!(f64_of_units4(-3), -0.0003);
        assert_eq!(
            f64_of_units4(9_999_999_999_999_999_999),
            999999999999999.9999
        );
        // Past 2⁵³ units: the double nearest the decimal, as reading its text gives.
        let nearest: f64 = "-115292150460684.6976".parse().unwrap();
        assert_eq!(f64_of_units4(-(1 << 60)), nearest);
    }

    #[test]
    fn an_amount_of_16_places_becomes_the_nearest_double() {
        // 2961.5690124 USD at 16 places: past 2⁵³ units, where dividing the rounded integer
        // would round twice.
        let units = 29_615_690_124_000_000_000i128;
        assert_eq!(f64_of_units(units, 16), 2961.5690124);
        assert_eq!(f64_of_units(-units, 16), -2961.5690124);
        assert_eq!(f64_of_units(1, 16), 1e-16);
        // 17 significant digits: through the text.
        assert_eq!(
            f64_of_units(12_345_678_901_234_567, 16),
            "1.2345678901234567".parse::<f64>().unwrap()
        );
        assert_eq!(f64_of_units(0, 16).to_bits(), 0.0f64.to_bits());
        // Past 2⁵³ units but within 64 bits: the short way, and the text for 17 digits.
        assert_eq!(
            f64_of_units(12_345_678_912_345_000_000, 16),
            1234.5678912345
        );
        assert_eq!(
            f64_of_units(-12_345_678_912_345_678, 16),
            "-1.2345678912345678".parse::<f64>().unwrap()
        );
        for (text, units, scale) in [("667.0018305", 6_670_018_305i128, 7), ("0.3", 3, 1)] {
            assert_eq!(
                f64_of_units(units * 10i128.pow(16 - scale), 16),
                text.parse::<f64>().unwrap()
            );
        }
    }

    proptest::proptest! {
        /// Every way to the nearest double gives what Rust's parser gives for the exact text.
        #[test]
        fn the_nearest_double_is_the_parsed_exact_text(
            revenue in -10_000_000_000_000_000_000i128..10_000_000_000_000_000_000,
            rate in 1i128..1_000_000_000_000_000_000,
            trailing in 0u32..13,
        ) {
            let rate = rate / 10i128.pow(trailing) * 10i128.pow(trailing);
            let units = revenue * rate.max(1);
            let text: f64 = format!("{units}e-16").parse().unwrap();
            proptest::prop_assert_eq!(f64_of_units(units, 16), if text == 0.0 { 0.0 } else { text });
            let small: f64 = format!("{revenue}e-4").parse().unwrap();
            proptest::prop_assert_eq!(f64_of_units(revenue, 4), if small == 0.0 { 0.0 } else { small });
        }
    }

    #[test]
    fn sums_of_decimal_columns_do_not_depend_on_order() {
        // Tenths that floating point adds up differently in the two orders.
        let values = [1_000i128, 2_000, 7_000, -3_000, 1];
        let sum_of = |order: &[i128]| -> f64 {
            let units: Int128Chunked = order.iter().map(|v| Some(*v)).collect_ca("x".into());
            let df = DataFrame::new(order.len(), vec![column("x", units, 4).unwrap()]).unwrap();
            let sum = df.lazy().select([col("x").sum()]).collect().unwrap();
            round4_column(sum.column("x").unwrap())
                .unwrap()
                .f64()
                .unwrap()
                .get(0)
                .unwrap()
        };
        let mut reversed = values;
        reversed.reverse();
        assert_eq!(sum_of(&values), 0.7001);
        assert_eq!(sum_of(&reversed), 0.7001);
    }

    #[test]
    fn a_product_keeps_every_place() {
        let a: Int128Chunked = [Some(1i128), Some(-20_000), None]
            .into_iter()
            .collect_ca("a".into());
        let b: Int128Chunked = [Some(1i128), Some(1_123_456_789_012), Some(1)]
            .into_iter()
            .collect_ca("b".into());
        let (a, b) = (column("a", a, 4).unwrap(), column("b", b, 12).unwrap());
        let p = product("p", &a, &b).unwrap();
        let (units, scale) = units(&p).unwrap();
        assert_eq!(scale, 16);
        assert_eq!(units.get(0), Some(1));
        assert_eq!(units.get(1), Some(-20_000 * 1_123_456_789_012));
        assert_eq!(units.get(2), None);
    }
}

//! Judging a delivery's parsed rows (docs/rules.md §3): every row ends accepted, or rejected
//! with the first reason that applies, in this order:
//!
//! 1. `extra_fields`, 2. `missing_value:<column>`, 3. `invalid_value:<column>`,
//!    4. `not_an_invoice`, 5. `unknown_document_type`, 6. `future_date`: settled by the parse
//!    ([`crate::ingest::extract`]), from the row alone (its `pre_reason`);
//! 7. `unknown_partner`: the partner is not in this run's roster;
//! 8. `unknown_omlp_type`: the OMLP type is in no KPI category of program.toml;
//! 9. `sign_mismatch`: an invoice with a negative value, or a credit note with a positive one;
//! 10. `no_fx_rate`: no rate for the invoice month and currency (USD always has one);
//! 11. `duplicate_line`: the key (`invoice_number`, `invoice_line`) was accepted before: the
//!     earliest accepted copy wins (earlier deliveries, then file name and row order inside this
//!     one); a row rejected for another reason claims no key.
//!
//! Reasons 7–10 need only the row and the lookups ([`prepare`], in `verdicts`, worked out
//! ahead of the deliveries before it), each row looked up in turn; `duplicate_line` needs the
//! keys accepted before ([`settle`]), a pass over the rows in order with sets of keys.
//!
//! The rest serves them: `lookups` holds this run's roster, rates and program.toml as maps
//! (the roster as a table too), and what a delivery's rows look up in them
//! ([`LookupKeys`]); `prior_keys` the keys accepted
//! before ([`PriorKeys`]), looked up by hash; `by_difference` judges a delivery again from its
//! earlier judgement when only the roster or the earlier keys changed ([`rejudge`]).

mod by_difference;
mod lookups;
mod prior_keys;
mod verdicts;

use polars::prelude::*;

use super::extract::COLUMNS;
use crate::calendar::Month;
use crate::exact;

pub use by_difference::{
    prepare_again, rejudge, settle_again, Again, ByDifference, EarlierJudgement,
};
pub use lookups::{LookupKeys, Lookups};
use prior_keys::key_set;
pub use prior_keys::PriorKeys;
pub use verdicts::{prepare, Verdicts};

/// Judges `parsed` (delivery `delivery`, rows in `seq` order) given the keys accepted by
/// earlier deliveries: [`prepare`] then [`settle`].
pub fn judge(
    parsed: &DataFrame,
    delivery: Month,
    lookups: &Lookups,
    prior: &PriorKeys,
) -> PolarsResult<Judged> {
    settle(
        parsed,
        prepare(parsed, lookups)?,
        delivery,
        Earlier::Kept(prior),
    )
}

/// The keys accepted by earlier deliveries, as [`settle`] is given them.
pub enum Earlier<'a> {
    /// Wanted after this delivery too: later deliveries look their keys up in them.
    Kept(&'a PriorKeys),
    /// Wanted by no later delivery: let go as soon as the few sharing a hash with this
    /// delivery's keys are found, before its rows are gone through and split into accepted
    /// and rejected (when the rows, their verdicts, the sets of keys and the accepted lines
    /// being built are held). A delivery judged again by difference ([`settle_again`]) holds
    /// them until it is judged: it looks keys up more than once.
    Last(PriorKeys),
}

impl Earlier<'_> {
    pub fn keys(&self) -> &PriorKeys {
        match self {
            Earlier::Kept(keys) => keys,
            Earlier::Last(keys) => keys,
        }
    }
}

/// Completes the verdicts `prepared` of `parsed` with `duplicate_line`, given the keys
/// accepted by earlier deliveries, and splits the rows into accepted and rejected.
pub fn settle(
    parsed: &DataFrame,
    prepared: Verdicts,
    delivery: Month,
    earlier: Earlier,
) -> PolarsResult<Judged> {
    let verdict = with_duplicates(parsed, prepared, earlier)?;
    split(parsed, verdict, delivery)
}

/// The verdicts `prepared` of `parsed` completed with `duplicate_line`, given the keys
/// accepted by earlier deliveries: `reason`, `usd_rate`, `omlp_canonical`, `category`,
/// `invoice_number`, `line_no`, `key_hash` and `seq`, one for every row, in its order.
///
/// A row still standing is a duplicate when its key was accepted before, or when a row before
/// it in this delivery (in `seq` order) stands with the same key: the first copy wins. Keys
/// are compared as text (the hashes only find the earlier keys worth comparing), in sets
/// hashed afresh with a seed of their own, so that keys sharing a hash cost nothing more.
/// The earlier keys are let go ([`Earlier::Last`]) once those sharing a hash are found.
fn with_duplicates(
    parsed: &DataFrame,
    prepared: Verdicts,
    earlier: Earlier,
) -> PolarsResult<DataFrame> {
    let mut verdict = prepared.verdicts;
    let reason = verdict.column("reason")?.str()?;
    let numbers = verdict.column("invoice_number")?.str()?;
    let lines = verdict.column("line_no")?.i64()?;
    // Of the (many) keys accepted earlier, only those this delivery carries matter: the
    // earlier keys sharing a hash with a standing row's key.
    let seen = if earlier.keys().is_empty() {
        None
    } else {
        let standing = verdict.column("key_hash")?.filter(&reason.is_null())?;
        Some(earlier.keys().sharing_a_hash(&standing)?)
    };
    drop(earlier);
    let earlier = match &seen {
        Some(seen) => key_set(seen)?,
        None => PlHashSet::default(),
    };
    let mut standing = PlHashSet::with_capacity(verdict.height());
    let mut completed = StringChunkedBuilder::new("reason".into(), verdict.height());
    for ((reason, number), line) in reason.iter().zip(numbers.iter()).zip(lines.iter()) {
        match (reason, number.zip(line)) {
            (Some(reason), _) => completed.append_value(reason),
            (None, Some(key)) if earlier.contains(&key) || !standing.insert(key) => {
                completed.append_value("duplicate_line")
            }
            (None, Some(_)) => completed.append_null(),
            // (Rows without an invoice number or line are rejected before this.)
            (None, None) => polars_bail!(ComputeError: "a standing row without a line key"),
        }
    }
    drop(standing);
    verdict.with_column(completed.finish().into_column())?;
    // The verdicts are set beside the rows they judge: one for every row, in the same order.
    if !verdict.column("seq")?.equals(parsed.column("seq")?) {
        return Err(polars_err!(
            ComputeError: "the verdicts ({}) do not line up with the parsed rows ({})",
            verdict.height(),
            parsed.height()
        ));
    }
    Ok(verdict)
}

/// Splits `parsed` (delivery `delivery`) by its completed verdicts into accepted lines,
/// rejected rows and the accepted lines' keys.
fn split(parsed: &DataFrame, verdict: DataFrame, delivery: Month) -> PolarsResult<Judged> {
    let keys = verdict
        .clone()
        .lazy()
        .filter(col("reason").is_null())
        .select([
            col("invoice_number"),
            col("line_no").alias("invoice_line"),
            col("key_hash").alias("hash"),
        ])
        .collect()?;
    // The verdicts are cut as the rows are (a chunk per file), so that the rows are
    // filtered chunk by chunk rather than first copied into one chunk.
    let verdicts = verdict
        .select(["reason", "usd_rate", "omlp_canonical", "category"])?
        .columns()
        .iter()
        .map(|c| cut_like(c, parsed.column("seq")?))
        .collect::<PolarsResult<Vec<_>>>()?;
    let judged = parsed.hstack(&verdicts)?;

    let delivery = lit(delivery.to_string()).alias("delivery");
    let mut accepted = judged
        .clone()
        .lazy()
        .filter(col("reason").is_null())
        .select([
            delivery.clone(),
            col("source_file"),
            col("source_row"),
            col("invoice_number"),
            col("line_no").alias("invoice_line"),
            col("date").alias("invoice_date"),
            col("month").alias("invoice_month"),
            col("month_index"),
            when(col("credit"))
                .then(lit("Credit Note"))
                .otherwise(lit("Invoice"))
                .alias("document_type"),
            col("partner_id"),
            col("omlp_canonical").alias("omlp_type"),
            col("category"),
            col("purchase_unit"),
            col("kpi").alias("kpi_value"),
            col("rev").alias("revenue"),
            col("ccy").alias("currency"),
            col("usd_rate").alias("usd_per_unit"),
        ])
        .collect()?;
    // Multiplied here rather than in polars, which would cut the product to the larger scale.
    let revenue_usd = exact::product(
        "revenue_usd",
        accepted.column("revenue")?,
        accepted.column("usd_per_unit")?,
    )?;
    accepted.with_column(cut_like(&revenue_usd, accepted.column("revenue")?)?)?;
    let mut rejected_columns = vec![
        delivery,
        col("source_file"),
        col("source_row"),
        col("reason"),
    ];
    rejected_columns.extend(COLUMNS.iter().map(|c| col(*c)));
    let rejected = judged
        .lazy()
        .filter(col("reason").is_not_null())
        .select(rejected_columns)
        .collect()?;
    Ok(Judged {
        accepted,
        rejected,
        keys,
    })
}

/// `column` cut into chunks as long as `like`'s (as slices of it: no value is copied when it
/// is one chunk).
fn cut_like(column: &Column, like: &Column) -> PolarsResult<Column> {
    let whole = column.as_materialized_series().rechunk();
    let mut offset = 0;
    let mut cut: Option<Series> = None;
    for n in like.as_materialized_series().chunk_lengths() {
        let part = whole.slice(offset as i64, n);
        offset += n;
        match cut.as_mut() {
            Some(cut) => {
                cut.append_owned(part)?;
            }
            None => cut = Some(part),
        }
    }
    polars_ensure!(offset == whole.len(), ShapeMismatch: "{} values cut as {offset}", whole.len());
    Ok(cut.unwrap_or(whole).into_column())
}

/// Fails when the USD revenues of a delivery's accepted lines (`revenue_usd`) add up to 10^20
/// USD or more in absolute value: past it a window's sums could leave the decimals' 38 digits
/// (docs/rules.md §5). Checked on every judgement a partition is written with, however it was
/// judged (in full or by difference).
pub fn within_exact_range(revenue_usd: &Column, month: Month) -> PolarsResult<()> {
    let magnitude: f64 = revenue_usd
        .cast(&DataType::Float64)?
        .f64()?
        .into_no_null_iter()
        .map(f64::abs)
        .sum();
    polars_ensure!(
        magnitude < exact::MAX_DELIVERY_USD,
        ComputeError: "delivery {month}: its accepted lines' USD revenues add up to {magnitude:e} \
        in absolute value, beyond the 10^20 USD a delivery may hold to be summed exactly \
        (docs/rules.md §5)"
    );
    Ok(())
}

/// A delivery's judgement: accepted lines (normalised) and rejected rows (raw, with reason),
/// and the accepted lines' keys (see [`PriorKeys`]).
pub struct Judged {
    pub accepted: DataFrame,
    pub rejected: DataFrame,
    pub keys: DataFrame,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::program::Program;
    use crate::ingest::extract::Parsed;
    use crate::ingest::fx::FxRates;
    use crate::ingest::roster::Roster;

    fn parsed(delivery: Month, rows: &[(&str, &str)]) -> DataFrame {
        let mut parsed = Parsed::new("f.csv", rows.len());
        let date = format!("{delivery}-03");
        for (i, (number, line)) in rows.iter().enumerate() {
            let cells = [
                *number, *line, &date, "Invoice", "P1", "MOC", "Kit", "1", "1", "USD",
            ];
            parsed.push(i as u32 + 2, cells, [false; 10], delivery);
        }
        parsed.into_frame().unwrap()
    }

    fn lookups() -> Lookups {
        let dir = tempfile::tempdir().unwrap();
        let roster = dir.path().join("partners.csv");
        std::fs::write(
            &roster,
            "partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active\n\
             P1,One,SE,none,,,0,no,no,no\n",
        )
        .unwrap();
        let fx = dir.path().join("fx.csv");
        std::fs::write(&fx, "month,currency,usd_per_unit\n").unwrap();
        let program = Program::parse("[kpi_categories]\ncourseware = [\"MOC\"]").unwrap();
        Lookups::new(
            &program,
            &Roster::load(&roster).unwrap(),
            &FxRates::load(&fx).unwrap(),
        )
        .unwrap()
    }

    /// Judges as [`judge`] does; with `collide`, every key gets the same hash (the delivery's
    /// here, and through the keys it accepts, the earlier ones), to show that equal hashes
    /// alone never make a duplicate.
    fn judge_hashed(
        parsed: &DataFrame,
        delivery: Month,
        lookups: &Lookups,
        earlier: Earlier,
        collide: bool,
    ) -> Judged {
        let mut prepared = prepare(parsed, lookups).unwrap();
        if collide {
            let same = vec![0u64; prepared.verdicts.height()];
            let same = Column::new("key_hash".into(), same);
            prepared.verdicts.with_column(same).unwrap();
        }
        settle(parsed, prepared, delivery, earlier).unwrap()
    }

    /// The reasons of a second delivery's rows, given the keys the first accepted.
    fn second_reasons(collide: bool) -> Vec<Option<String>> {
        let lookups = lookups();
        let (sep, oct) = ("2026-09".parse().unwrap(), "2026-10".parse().unwrap());
        let judge = |parsed: &DataFrame, delivery: Month, earlier: Earlier| {
            judge_hashed(parsed, delivery, &lookups, earlier, collide)
        };
        let first = parsed(sep, &[("A", "1"), ("B", "1"), ("B", "2")]);
        let first = judge(&first, sep, Earlier::Kept(&PriorKeys::default()));
        let mut prior = PriorKeys::default();
        prior.add_judged(first.keys).unwrap();
        // "1|B" was accepted before; "2|A", "1|C" were not ("2|A" shares a number, "1|C" a line).
        let rows = [("B", "1"), ("A", "2"), ("C", "1"), ("C", "1"), ("A", "1")];
        let second = judge(&parsed(oct, &rows), oct, Earlier::Kept(&prior));
        // The first lookup scans the earlier keys, the second goes through their index, and
        // the last lets them go once it has looked its keys up: all find the same.
        let again = judge(&parsed(oct, &rows), oct, Earlier::Kept(&prior));
        let last = judge(&parsed(oct, &rows), oct, Earlier::Last(prior));
        for judged in [&again, &last] {
            assert!(judged.rejected.equals_missing(&second.rejected));
            assert!(judged.accepted.equals_missing(&second.accepted));
        }
        let mut reasons: Vec<(i64, Option<String>)> = Vec::new();
        let rows_of = |df: &DataFrame| {
            df.column("source_row")
                .unwrap()
                .cast(&DataType::Int64)
                .unwrap()
        };
        for row in rows_of(&second.accepted).i64().unwrap().iter() {
            reasons.push((row.unwrap(), None));
        }
        let rejected = &second.rejected;
        let why = rejected.column("reason").unwrap().str().unwrap().clone();
        for (row, reason) in rows_of(rejected).i64().unwrap().iter().zip(why.iter()) {
            reasons.push((row.unwrap(), reason.map(String::from)));
        }
        reasons.sort();
        reasons.into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn earlier_keys_are_matched_by_text_even_when_every_hash_is_the_same() {
        let dup = Some("duplicate_line".to_string());
        let expected = vec![dup.clone(), None, None, dup.clone(), dup];
        assert_eq!(second_reasons(false), expected);
        assert_eq!(second_reasons(true), expected);
    }

    #[test]
    fn the_lines_of_each_file_stay_a_chunk_of_their_own() {
        let oct: Month = "2026-10".parse().unwrap();
        // Three files, the last with a duplicate of the first's line and three of its own.
        let files = [
            parsed(oct, &[("A", "1")]),
            parsed(oct, &[("B", "1")]),
            parsed(oct, &[("A", "1"), ("C", "1"), ("D", "1"), ("E", "1")]),
        ];
        let parsed = crate::ingest::extract::concat_files(files.to_vec()).unwrap();
        assert_eq!(parsed.first_col_n_chunks(), 3);
        let judged = judge_hashed(
            &parsed,
            oct,
            &lookups(),
            Earlier::Kept(&PriorKeys::default()),
            false,
        );
        let accepted = &judged.accepted;
        // Every column is cut by file (the delivery's name aside: one value for all rows).
        for column in accepted.columns() {
            let series = column.as_materialized_series();
            let lengths: Vec<usize> = series.chunk_lengths().collect();
            match column {
                Column::Scalar(_) => assert_eq!(column.name().as_str(), "delivery"),
                _ => assert_eq!(lengths, [1, 1, 3], "{}", column.name()),
            }
        }
        let numbers = accepted.column("invoice_number").unwrap().str().unwrap();
        let numbers: Vec<_> = numbers.iter().flatten().collect();
        assert_eq!(numbers, ["A", "B", "C", "D", "E"]);
    }

    #[test]
    fn a_column_is_cut_as_another_is_or_refused_when_their_lengths_differ() {
        let mut like = Series::new("like".into(), [0u32, 1]);
        like.append(&Series::new("like".into(), [2u32])).unwrap();
        let column = Column::new("c".into(), ["x", "y", "z"]);
        let cut = cut_like(&column, &like.into_column()).unwrap();
        let cut = cut.as_materialized_series();
        assert_eq!(cut.chunk_lengths().collect::<Vec<_>>(), [2, 1]);
        assert!(cut.equals(column.as_materialized_series()));
        let short = Column::new("c".into(), ["x"]);
        assert!(cut_like(&short, &Column::new("l".into(), [1u32, 2])).is_err());
    }
}

//! Judging a delivery again by difference from its earlier judgement (see [`rejudge`]): only
//! the rows whose verdict can have changed are judged again, and set among the others in their
//! places.

use polars::prelude::*;

use super::lookups::Lookups;
use super::prior_keys::{key_set, keys_in, semi, with_hashes, PriorKeys, KEY};
use super::{judge, Judged};
use crate::calendar::Month;

/// The most pieces a frame judged again by difference is left in (see `Order::splice`).
const MOST_PIECES: usize = 4096;

/// Reasons given after `unknown_partner`: a row rejected for one of them (or accepted) had its
/// partner in the roster.
const AFTER_THE_ROSTER: [&str; 4] = [
    "unknown_omlp_type",
    "sign_mismatch",
    "no_fx_rate",
    "duplicate_line",
];

/// A delivery's earlier judgement (its partition's accepted and rejected rows), to judge it
/// again by difference: see [`rejudge`].
pub struct EarlierJudgement {
    pub accepted: DataFrame,
    pub rejected: DataFrame,
}

/// Judges a delivery again from its `earlier` judgement, when since then only the roster's
/// answers and the keys accepted before it may have changed: the OMLP types and rates its rows
/// ask about answer as they did (equal [`Lookups::rules_digest`]). `parsed` are its kept rows.
/// [`prepare_again`] then [`settle_again`].
///
/// A row's verdict follows from its own values, its partner's place in the roster, and its key:
/// whether the key was accepted before, and which row of the delivery carries it first. So a
/// verdict can change only for the rows of a key that is
/// - carried by a row whose partner joined or left the roster since, or
/// - now accepted before the delivery and was not, or the other way round (a key this
///   delivery accepted that is now earlier, or a duplicate whose earlier copy is gone);
///
/// every other row keeps its verdict, and its accepted line its values. Those rows are judged
/// again (all rows of each such key, so the first copy is found as before) and set among the
/// others in their places. The result is the judgement [`judge`] gives; a property test holds
/// them equal.
pub fn rejudge(
    parsed: LazyFrame,
    earlier: EarlierJudgement,
    delivery: Month,
    lookups: &Lookups,
    prior: &PriorKeys,
) -> PolarsResult<Judged> {
    match prepare_again(parsed.clone(), earlier, lookups)? {
        Some(again) => Ok(settle_again(again, delivery, lookups, prior)?.0),
        None => judge(&parsed.collect()?, delivery, lookups, prior),
    }
}

/// What judging a delivery again by difference learns before the earlier keys are known.
pub struct ByDifference {
    /// The delivery's kept rows.
    parsed: LazyFrame,
    earlier: EarlierJudgement,
    /// Keys of the earlier accepted lines, in their order, with their hashes.
    accepted_keys: DataFrame,
    /// Rows that can stand (every value valid): `seq`, `source_file`, `source_row`, the key
    /// and its hash.
    rows: DataFrame,
    /// Keys of duplicates whose first copy here was not accepted: accepted before, then.
    duplicates: DataFrame,
    /// Keys carried by rows whose partner joined or left the roster since.
    moved: DataFrame,
    /// The delivery's files, in order.
    files: Vec<String>,
}

fn anti() -> JoinArgs {
    JoinArgs::new(JoinType::Anti)
}

/// The part of judging again by difference that needs no earlier key: see [`rejudge`]. None
/// when the rows cannot be told apart by file and row number (say, rows numbered by an
/// earlier version that counted a carriage return alone as no line end): the delivery is then
/// judged in full.
pub fn prepare_again(
    parsed: LazyFrame,
    earlier: EarlierJudgement,
    lookups: &Lookups,
) -> PolarsResult<Option<ByDifference>> {
    let EarlierJudgement { accepted, rejected } = &earlier;
    let all = parsed
        .clone()
        .select([
            col("seq"),
            col("source_file"),
            col("source_row"),
            col("pre_reason"),
            col("partner_id"),
            col("invoice_number"),
            col("line_no").alias("invoice_line"),
        ])
        .collect()?;
    // Each file's rows together, their row numbers rising: a row's place is its file and row.
    let Some(files) = files_in_order(&all)? else {
        return Ok(None);
    };
    let standing = all
        .lazy()
        .filter(col("pre_reason").is_null())
        .drop(cols(["pre_reason"]))
        .collect()?;
    // (Few rows are looked for among many: each through a set of the few, in one pass.)
    let moved_partners = moved_partners(&earlier, lookups)?.collect()?;
    let moved_ids: PlHashSet<&str> = moved_partners
        .column("partner_id")?
        .str()?
        .iter()
        .flatten()
        .collect();
    let ids = standing.column("partner_id")?.str()?;
    let of_moved: BooleanChunked = ids
        .iter()
        .map(|id| id.is_some_and(|id| moved_ids.contains(id)))
        .collect();
    let moved = distinct_keys(standing.filter(&of_moved)?)?;
    let rows = with_hashes(standing.drop("partner_id")?)?;
    let duplicate_rows = rejected
        .clone()
        .lazy()
        .filter(col("reason").eq(lit("duplicate_line")))
        .collect()?;
    let places: PlHashSet<(&str, u32)> = places_of(&duplicate_rows)?.flatten().collect();
    let at_duplicate: BooleanChunked = places_of(&rows)?
        .map(|p| p.is_some_and(|p| places.contains(&p)))
        .collect();
    let duplicate_keys = distinct_keys(rows.filter(&at_duplicate)?)?;
    let accepted_keys = with_hashes(accepted.select(KEY)?)?;
    // A duplicate whose key was accepted here came after the first copy, here.
    let first_here = keys_in(&accepted_keys, &key_set(&duplicate_keys)?)?.select(KEY)?;
    let duplicates = duplicate_keys
        .lazy()
        .join(first_here.lazy(), KEY.map(col), KEY.map(col), anti())
        .collect()?;
    Ok(Some(ByDifference {
        parsed,
        earlier,
        accepted_keys,
        rows,
        duplicates,
        moved,
        files,
    }))
}

/// The distinct keys (`invoice_number`, `invoice_line`) of `rows` (a few).
fn distinct_keys(rows: DataFrame) -> PolarsResult<DataFrame> {
    rows.lazy()
        .select(KEY.map(col))
        .unique(None, UniqueKeepStrategy::Any)
        .collect()
}

/// Each row's place in its delivery: (`source_file`, `source_row`).
fn places_of(df: &DataFrame) -> PolarsResult<impl Iterator<Item = Option<(&str, u32)>>> {
    let files = df.column("source_file")?.str()?;
    let rows = df.column("source_row")?.u32()?;
    Ok(files.iter().zip(rows.iter()).map(|(f, r)| f.zip(r)))
}

/// Partners that joined or left the roster since the `earlier` judgement.
fn moved_partners(earlier: &EarlierJudgement, lookups: &Lookups) -> PolarsResult<LazyFrame> {
    let EarlierJudgement { accepted, rejected } = earlier;
    let partners_of = |df: &DataFrame, rows: Expr| {
        df.clone()
            .lazy()
            .filter(rows)
            .select([col("partner_id")])
            .unique(None, UniqueKeepStrategy::Any)
    };
    // Partners that joined or left the roster since: those of rows rejected as unknown that
    // are known now, and those of rows that passed the roster that are unknown now.
    let after = lit(Series::new("reasons".into(), AFTER_THE_ROSTER)).implode(false);
    let passed = concat(
        [
            partners_of(accepted, lit(true)),
            partners_of(rejected, col("reason").is_in(after, false)),
        ],
        UnionArgs::default(),
    )?;
    let roster = lookups.partners.clone();
    concat(
        [
            passed.join(
                roster.clone(),
                [col("partner_id")],
                [col("partner_id")],
                anti(),
            ),
            partners_of(rejected, col("reason").eq(lit("unknown_partner"))).join(
                roster,
                [col("partner_id")],
                [col("partner_id")],
                semi(),
            ),
        ],
        UnionArgs::default(),
    )
}

/// The delivery's files in the order of `all`'s rows, when each file's rows come together
/// with their row numbers rising; None otherwise.
fn files_in_order(all: &DataFrame) -> PolarsResult<Option<Vec<String>>> {
    let mut files: Vec<String> = Vec::new();
    let names = all.column("source_file")?.str()?;
    let numbers = all.column("source_row")?.u32()?;
    let mut seen: PlHashSet<&str> = PlHashSet::new();
    let mut last: Option<(&str, u32)> = None;
    for (name, number) in names.iter().zip(numbers.iter()) {
        let (Some(name), Some(number)) = (name, number) else {
            return Ok(None);
        };
        match last {
            Some((file, row)) if file == name => {
                if number <= row {
                    return Ok(None);
                }
            }
            _ => {
                if !seen.insert(name) {
                    return Ok(None);
                }
                files.push(name.to_string());
            }
        }
        last = Some((name, number));
    }
    Ok(Some(files))
}

/// How a delivery judged again came out (see [`settle_again`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Again {
    /// No row's verdict can have changed: the earlier judgement stands as it is.
    Unchanged,
    /// The rows of the changed keys judged again and set among the others.
    ByDifference,
    /// Judged in full, as many rows changed.
    InFull,
}

/// Completes judging again by difference, given the keys accepted before: see [`rejudge`].
pub fn settle_again(
    again: ByDifference,
    delivery: Month,
    lookups: &Lookups,
    prior: &PriorKeys,
) -> PolarsResult<(Judged, Again)> {
    let ByDifference {
        parsed,
        earlier: EarlierJudgement { accepted, rejected },
        accepted_keys,
        rows,
        duplicates,
        moved,
        files,
    } = again;
    let changed = changed_keys(prior, &accepted_keys, duplicates, moved)?;
    if changed.height() == 0 {
        let judged = Judged {
            accepted,
            rejected,
            keys: accepted_keys,
        };
        return Ok((judged, Again::Unchanged));
    }
    // The rows of those keys: found by hash, then by text.
    let rows_count = rows.height();
    let changed = with_hashes(changed)?;
    let hashes = changed.column("hash")?.as_materialized_series().clone();
    let again = rows
        .lazy()
        .filter(col("hash").is_in(lit(hashes).implode(false), false))
        .join(changed.lazy(), KEY.map(col), KEY.map(col), semi())
        .select([col("seq"), col("source_file"), col("source_row")])
        .collect()?;
    // When many rows changed (a large partner joined), judging all rows costs less than
    // setting that many in their places.
    if again.height() * 4 > rows_count {
        let judged = judge(&parsed.collect()?, delivery, lookups, prior)?;
        return Ok((judged, Again::InFull));
    }
    let seqs = again.column("seq")?.as_materialized_series().clone();
    let subset = parsed
        .filter(col("seq").is_in(lit(seqs).implode(false), false))
        .collect()?;
    let judged = judge(&subset, delivery, lookups, prior)?;
    // Every other row keeps its verdict and its place.
    let order = Order::new(&files, &again)?;
    let (kept_keys, accepted) = {
        let removed = order.positions(&accepted)?;
        (
            order.splice(&accepted_keys, &removed, None)?,
            order.splice(&accepted, &removed, Some(&judged.accepted))?,
        )
    };
    let removed = order.positions(&rejected)?;
    let rejected = order.splice(&rejected, &removed, Some(&judged.rejected))?;
    let mut keys = kept_keys;
    keys.vstack_mut_owned(judged.keys)?;
    let judged = Judged {
        accepted,
        rejected,
        keys,
    };
    Ok((judged, Again::ByDifference))
}

/// The keys whose rows' verdicts can have changed: those carried by a row whose partner moved
/// (`moved`), and those whose standing before the delivery changed: one it accepted that was
/// accepted before it now, and a duplicate of a key accepted before that no longer is.
fn changed_keys(
    prior: &PriorKeys,
    accepted_keys: &DataFrame,
    duplicates: DataFrame,
    moved: DataFrame,
) -> PolarsResult<DataFrame> {
    let now_before = prior.among(accepted_keys)?;
    let still_before = prior.among(&with_hashes(duplicates.clone())?)?;
    let no_longer_before =
        duplicates
            .lazy()
            .join(still_before.lazy(), KEY.map(col), KEY.map(col), anti());
    concat(
        [
            now_before.lazy().select(KEY.map(col)),
            no_longer_before,
            moved.lazy(),
        ],
        UnionArgs::default(),
    )?
    .unique(None, UniqueKeepStrategy::Any)
    .collect()
}

/// The places of rows judged again among a judgement's rows, which are in the delivery's
/// order: by file, then row.
struct Order {
    /// File name -> its place among the delivery's files.
    files: PlHashMap<String, usize>,
    /// The rows judged again: (file place, source row), in order.
    again: Vec<(usize, u32)>,
}

impl Order {
    fn new(files: &[String], again: &DataFrame) -> PolarsResult<Order> {
        let mut order = Order {
            files: files
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), i))
                .collect(),
            again: Vec::new(),
        };
        order.again = (0..again.height())
            .map(|i| order.at(again, i))
            .collect::<PolarsResult<_>>()?;
        order.again.sort_unstable();
        Ok(order)
    }

    /// (file place, source row) of row `i` of `df`.
    fn at(&self, df: &DataFrame, i: usize) -> PolarsResult<(usize, u32)> {
        let file = df.column("source_file")?.str()?.get(i);
        let row = df.column("source_row")?.u32()?.get(i);
        match (file.and_then(|f| self.files.get(f)), row) {
            (Some(f), Some(r)) => Ok((*f, r)),
            _ => Err(polars_err!(ComputeError: "a row of an unknown file or without a row number")),
        }
    }

    /// The first row of `df` (in order) at or after `place`.
    fn lower_bound(&self, df: &DataFrame, place: (usize, u32)) -> PolarsResult<usize> {
        let (mut lo, mut hi) = (0, df.height());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.at(df, mid)? < place {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Row numbers in `df` (in order) of the rows judged again that it holds, ascending.
    fn positions(&self, df: &DataFrame) -> PolarsResult<Vec<usize>> {
        let mut found = Vec::new();
        for place in &self.again {
            let i = self.lower_bound(df, *place)?;
            if i < df.height() && self.at(df, i)? == *place {
                found.push(i);
            }
        }
        Ok(found)
    }

    /// `df` without the rows at `removed`, with `added` (rows judged again, in order) each set
    /// in its place. Slices of `df` and `added` are reused as they are, not copied; they are
    /// gathered into one chunk only when there are more than [`MOST_PIECES`] (the ledger's
    /// writer takes a frame in pieces as it is, but polars handles many small pieces slowly).
    fn splice(
        &self,
        df: &DataFrame,
        removed: &[usize],
        added: Option<&DataFrame>,
    ) -> PolarsResult<DataFrame> {
        // Where the added rows go, as runs of rows with the same place in `df`: (before the
        // row of `df`, first added row, how many).
        let mut inserts: Vec<(usize, usize, usize)> = Vec::new();
        if let Some(added) = added {
            for j in 0..added.height() {
                let at = self.lower_bound(df, self.at(added, j)?)?;
                match inserts.last_mut() {
                    Some((before, _, n)) if *before == at => *n += 1,
                    _ => inserts.push((at, j, 1)),
                }
            }
        }
        let mut parts: Vec<DataFrame> = Vec::new();
        let mut from = 0;
        let mut removed = removed.iter().peekable();
        let mut inserts = inserts.into_iter().peekable();
        loop {
            let next_removed = removed.peek().copied().copied();
            let next_insert = inserts.peek().map(|(i, _, _)| *i);
            let to = match (next_removed, next_insert) {
                (None, None) => break,
                (Some(r), Some(i)) => r.min(i),
                (Some(r), None) => r,
                (None, Some(i)) => i,
            };
            if to > from {
                parts.push(df.slice(from as i64, to - from));
            }
            from = to;
            if next_insert == Some(to) {
                let (_, first, n) = inserts.next().expect("peeked");
                let added = added.expect("inserts come from added rows");
                parts.push(added.slice(first as i64, n));
            } else {
                removed.next();
                from = to + 1;
            }
        }
        if from < df.height() {
            parts.push(df.slice(from as i64, df.height() - from));
        }
        let mut out = df.clear();
        for part in parts {
            out.vstack_mut_owned(part)?;
        }
        if out.first_col_n_chunks() > MOST_PIECES {
            out.rechunk_mut_par();
        }
        Ok(out)
    }
}

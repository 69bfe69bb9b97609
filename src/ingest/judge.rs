//! Judging a delivery's parsed rows against this run's roster, rates, rules and the keys
//! accepted by earlier deliveries (SPEC 4), as joins over the kept parsed rows.
//!
//! A row keeps the first reason that applies. The parse already settled `missing_value`,
//! `invalid_value`, `not_an_invoice`, `unknown_document_type` and `future_date`; here follow
//! `unknown_partner`, `unknown_omlp_type`, `sign_mismatch`, `no_fx_rate` and `duplicate_line`
//! (the earliest accepted copy of `(invoice_number, invoice_line)` wins: earlier deliveries,
//! then file name and row order inside this one; a row rejected for another reason claims no
//! key).

use std::collections::{HashMap, HashSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::extract::COLUMNS;
use crate::calendar::Month;
use crate::config::program::Program;
use crate::ingest::fx::FxRates;
use crate::ingest::roster::Roster;

/// The lookup tables a judgement joins against, built once per run, with the same facts kept
/// as maps to answer [`Asks`].
pub struct Lookups {
    partners: LazyFrame,
    omlp: LazyFrame,
    rates: LazyFrame,
    partner_ids: HashSet<String>,
    /// Lower-cased OMLP type -> (canonical spelling, category).
    omlp_types: HashMap<String, (String, String)>,
    rate_of: HashMap<(i32, String), f64>,
}

impl Lookups {
    pub fn new(program: &Program, roster: &Roster, fx: &FxRates) -> PolarsResult<Lookups> {
        let ids: Vec<&str> = roster
            .partners
            .iter()
            .map(|p| p.partner_id.as_str())
            .collect();
        let partner_ids = ids.iter().map(|id| id.to_string()).collect();
        let partners = df!("partner_id" => ids)?
            .lazy()
            .with_column(lit(true).alias("in_roster"));
        let omlp = program.omlp_table();
        let omlp_types = omlp
            .iter()
            .map(|(key, name, category)| (key.clone(), (name.clone(), category.clone())))
            .collect();
        let omlp = df!(
            "omlp_key" => omlp.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            "omlp_canonical" => omlp.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            "category" => omlp.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        )?
        .lazy();
        let rates = fx.rows();
        let rate_of = rates
            .iter()
            .map(|(month, ccy, rate)| ((*month, ccy.clone()), *rate))
            .collect();
        let rates = df!(
            "month_index" => rates.iter().map(|r| r.0).collect::<Vec<_>>(),
            "ccy" => rates.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            "rate" => rates.iter().map(|r| r.2).collect::<Vec<_>>(),
        )?
        .lazy();
        Ok(Lookups {
            partners,
            omlp,
            rates,
            partner_ids,
            omlp_types,
            rate_of,
        })
    }

    /// What each OMLP type of `asks` means, and each rate it asks for.
    fn rules<'a>(&'a self, asks: &'a Asks) -> Rules<'a> {
        Rules {
            omlp_types: asks
                .omlp_keys
                .iter()
                .map(|k| (k.as_str(), self.omlp_types.get(k)))
                .collect(),
            rates: asks
                .rates
                .iter()
                .map(|(m, c)| (*m, c.as_str(), self.rate_of.get(&(*m, c.clone())).copied()))
                .collect(),
        }
    }

    /// SHA-256 of the answers of program.toml and the rates alone (what each OMLP type means,
    /// and each rate): two judgements whose rules answers agree differ only through the roster
    /// and the keys accepted before, which [`rejudge`] can follow row by row.
    pub fn rules_digest(&self, asks: &Asks) -> String {
        digest_of(&self.rules(asks))
    }

    /// SHA-256 of the answers these lookups give to `asks`: which of the partners are in the
    /// roster, what each OMLP type means, and each rate. Two runs whose answers agree judge
    /// the same parsed rows (with the same earlier keys) the same way.
    pub fn answers_digest(&self, asks: &Asks) -> String {
        #[derive(Serialize)]
        struct Answers<'a> {
            in_roster: Vec<&'a str>,
            #[serde(flatten)]
            rules: Rules<'a>,
        }
        digest_of(&Answers {
            in_roster: asks
                .partner_ids
                .iter()
                .filter(|id| self.partner_ids.contains(id.as_str()))
                .map(String::as_str)
                .collect(),
            rules: self.rules(asks),
        })
    }
}

/// The answers of program.toml and the rates to what rows ask.
#[derive(Serialize)]
struct Rules<'a> {
    omlp_types: Vec<(&'a str, Option<&'a (String, String)>)>,
    rates: Vec<(i32, &'a str, Option<f64>)>,
}

/// SHA-256 of `value` as JSON.
fn digest_of(value: &impl Serialize) -> String {
    crate::digest::sha256_bytes(
        serde_json::to_string(value)
            .expect("serialisable")
            .as_bytes(),
    )
}

/// What a delivery's parsed rows ask of the roster, the rates and program.toml: the partner
/// ids, the lower-cased OMLP types and the (invoice month, currency) pairs they carry, each
/// sorted. A judgement depends on those three inputs only through the answers to these
/// questions (see [`Lookups::answers_digest`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asks {
    pub partner_ids: Vec<String>,
    pub omlp_keys: Vec<String>,
    pub rates: Vec<(i32, String)>,
}

impl Asks {
    ///
    /// The distinct values are gathered in hash sets, one pass over three columns: polars'
    /// `unique` on the 500,000 partner ids of a benchmark delivery took 0.1–0.5 s, the sets take
    /// a few hundredths. The OMLP types are lower-cased by polars, as the judging does, over
    /// the few distinct spellings only.
    pub fn of(parsed: &DataFrame) -> PolarsResult<Asks> {
        let sorted = |set: PlHashSet<&str>| {
            let mut v: Vec<String> = set.into_iter().map(str::to_string).collect();
            v.sort_unstable();
            v
        };
        let texts = |name: &str| -> PolarsResult<PlHashSet<&str>> {
            Ok(parsed.column(name)?.str()?.iter().flatten().collect())
        };
        let partner_ids = sorted(texts("partner_id")?);
        let spellings = sorted(texts("omlp_type")?);
        let lowered = df!("k" => spellings)?
            .lazy()
            .select([col("k").str().to_lowercase()])
            .unique(None, UniqueKeepStrategy::Any)
            .sort(["k"], SortMultipleOptions::default())
            .collect()?;
        let omlp_keys = lowered
            .column("k")?
            .str()?
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let months = parsed.column("month_index")?.i32()?;
        let currencies = parsed.column("ccy")?.str()?;
        let pairs: PlHashSet<(i32, &str)> = months
            .iter()
            .zip(currencies.iter())
            .filter_map(|(m, c)| Some((m?, c?)))
            .collect();
        let mut rates: Vec<(i32, String)> =
            pairs.into_iter().map(|(m, c)| (m, c.to_string())).collect();
        rates.sort_unstable();
        Ok(Asks {
            partner_ids,
            omlp_keys,
            rates,
        })
    }
}

/// A delivery's judgement: accepted lines (normalised) and rejected rows (raw, with reason),
/// and the accepted lines' keys (see [`PriorKeys`]).
pub struct Judged {
    pub accepted: DataFrame,
    pub rejected: DataFrame,
    pub keys: DataFrame,
}

fn left() -> JoinArgs {
    JoinArgs::new(JoinType::Left)
}

/// A line's key as one text value, `"<invoice_line>|<invoice_number>"`: the line number has no
/// `|`, so the pair is recovered unambiguously. Null when either part is.
fn line_key(line: Expr, number: Expr) -> Expr {
    concat_str([line.cast(DataType::String), number], "|", false)
}

/// The seed of [`key_hashes`]: any fixed number, so that every call agrees.
const KEY_SEED: u64 = 0x6b70_692d_7265_6672;

#[cfg(test)]
thread_local! {
    /// Tests set this to give every key the same hash, to show that equal hashes alone never
    /// make a duplicate.
    static COLLIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A 64-bit hash of each line's key, (`invoice_number`, `invoice_line`): the same in every call
/// of a run. Lines without a key get a hash too; they are never standing, so never probed.
fn key_hashes(number: &Column, line: &Column) -> PolarsResult<Column> {
    let state = PlSeedableRandomStateQuality::seed_from_u64(KEY_SEED);
    let mut hashes = Vec::with_capacity(number.len());
    number.str()?.vec_hash(state.clone(), &mut hashes)?;
    line.i64()?.vec_hash_combine(state, &mut hashes)?;
    #[cfg(test)]
    if COLLIDE.get() {
        hashes.iter_mut().for_each(|h| *h = 0);
    }
    Ok(UInt64Chunked::from_vec("key_hash".into(), hashes).into_column())
}

/// The keys accepted by earlier deliveries, (`invoice_number`, `invoice_line`), with their
/// 64-bit hashes (`hash`).
///
/// A delivery looks its own keys' hashes up among the earlier ones; the few earlier keys found
/// are then compared as text with the delivery's, so a hash shared by two keys never makes a
/// duplicate. The first lookup scans the earlier hashes (polars' `is_in`, building a set of the
/// delivery's hashes); from the second on, an index from hash to row, built then and kept up
/// to date as keys are added, answers instead. A monthly run looks up once, against millions
/// of earlier keys: building an index for it would cost more than the scan. A full rebuild
/// looks up once per delivery: a scan each time would cost the earlier keys again and again.
pub struct PriorKeys {
    keys: DataFrame,
    index: std::cell::RefCell<Option<Index>>,
    lookups: std::cell::Cell<usize>,
}

/// Hash -> row of the earlier keys.
#[derive(Default)]
struct Index {
    /// Hash -> the row of the first earlier key with that hash.
    rows: PlHashMap<u64, IdxSize>,
    /// Rows of later earlier keys with a hash already in `rows` (distinct keys whose hashes
    /// collide: almost never any).
    shared: PlHashMap<u64, Vec<IdxSize>>,
}

impl Index {
    fn add(&mut self, first: IdxSize, hashes: &Column) -> PolarsResult<()> {
        let hashes = hashes.u64()?;
        self.rows.reserve(hashes.len());
        for (i, hash) in hashes.into_no_null_iter().enumerate() {
            let row = first + i as IdxSize;
            if let Some(earlier) = self.rows.insert(hash, row) {
                self.rows.insert(hash, earlier);
                self.shared.entry(hash).or_default().push(row);
            }
        }
        Ok(())
    }
}

impl Default for PriorKeys {
    fn default() -> Self {
        PriorKeys {
            keys: DataFrame::empty_with_schema(&Schema::from_iter([
                Field::new("invoice_number".into(), DataType::String),
                Field::new("invoice_line".into(), DataType::Int64),
                Field::new("hash".into(), DataType::UInt64),
            ])),
            index: Default::default(),
            lookups: Default::default(),
        }
    }
}

impl PriorKeys {
    /// Adds the keys of `accepted` (ledger lines with `invoice_number` and `invoice_line`).
    pub fn add(&mut self, accepted: LazyFrame) -> PolarsResult<()> {
        self.add_judged(with_hashes(accepted.select(KEY.map(col)).collect()?)?)
    }

    /// Adds the keys of a judgement (its [`Judged::keys`]).
    pub fn add_judged(&mut self, keys: DataFrame) -> PolarsResult<()> {
        if let Some(index) = self.index.get_mut().as_mut() {
            index.add(self.keys.height() as IdxSize, keys.column("hash")?)?;
        }
        self.keys.vstack_mut_owned(keys)?;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.height() == 0
    }

    /// Those of `keys` (`invoice_number`, `invoice_line`, and their `hash`) that were
    /// accepted earlier.
    fn among(&self, keys: &DataFrame) -> PolarsResult<DataFrame> {
        if self.is_empty() || keys.height() == 0 {
            return Ok(keys.clear());
        }
        let earlier = self.sharing_a_hash(keys.column("hash")?)?;
        if earlier.height() == 0 {
            return Ok(keys.clear());
        }
        keys.clone()
            .lazy()
            .join(earlier.lazy(), KEY.map(col), KEY.map(col), semi())
            .collect()
    }

    /// The earlier keys whose hash is among `hashes`: a few keys, to be compared as text.
    fn sharing_a_hash(&self, hashes: &Column) -> PolarsResult<DataFrame> {
        let lookups = self.lookups.get() + 1;
        self.lookups.set(lookups);
        let mut index = self.index.borrow_mut();
        if index.is_none() && lookups == 1 {
            let hashes = hashes.as_materialized_series().clone();
            return self
                .keys
                .clone()
                .lazy()
                .filter(col("hash").is_in(lit(hashes).implode(false), false))
                .collect();
        }
        let index = index.get_or_insert_with(Index::default);
        if index.rows.is_empty() {
            index.add(0, self.keys.column("hash")?)?;
        }
        let mut rows: Vec<IdxSize> = Vec::new();
        let mut seen = PlHashSet::new();
        for hash in hashes.u64()?.iter().flatten() {
            if let Some(row) = index.rows.get(&hash) {
                // Each hash once: a delivery's rows may share keys, or (made up) hashes.
                if seen.insert(hash) {
                    rows.push(*row);
                    rows.extend(index.shared.get(&hash).into_iter().flatten());
                }
            }
        }
        self.keys.take(&IdxCa::from_vec("rows".into(), rows))
    }
}

/// A line's key, as the ledger's accepted lines name its parts.
const KEY: [&str; 2] = ["invoice_number", "invoice_line"];

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
pub struct Earlier {
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
    earlier: Earlier,
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
pub struct Again {
    /// The delivery's kept rows.
    parsed: LazyFrame,
    earlier: Earlier,
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

fn semi() -> JoinArgs {
    JoinArgs::new(JoinType::Semi)
}

fn anti() -> JoinArgs {
    JoinArgs::new(JoinType::Anti)
}

/// `keys` (with `invoice_number` and `invoice_line`) and their hashes as `hash`.
fn with_hashes(mut keys: DataFrame) -> PolarsResult<DataFrame> {
    let hashes = key_hashes(keys.column("invoice_number")?, keys.column("invoice_line")?)?;
    keys.with_column(hashes.with_name("hash".into()))?;
    Ok(keys)
}

/// The part of judging again by difference that needs no earlier key: see [`rejudge`]. None
/// when the rows cannot be told apart by file and row number (say, rows numbered by an
/// earlier version that counted a carriage return alone as no line end): the delivery is then
/// judged in full.
pub fn prepare_again(
    parsed: LazyFrame,
    earlier: Earlier,
    lookups: &Lookups,
) -> PolarsResult<Option<Again>> {
    let Earlier { accepted, rejected } = &earlier;
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
    let moved_partners = concat(
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
    )?;
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
    let mut files: Vec<String> = Vec::new();
    {
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
    }
    let standing = all
        .lazy()
        .filter(col("pre_reason").is_null())
        .drop(cols(["pre_reason"]));
    let moved = standing
        .clone()
        .join(
            moved_partners,
            [col("partner_id")],
            [col("partner_id")],
            semi(),
        )
        .select(KEY.map(col))
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
    let rows = with_hashes(standing.drop(cols(["partner_id"])).collect()?)?;
    let at = ["source_file", "source_row"].map(col);
    let duplicate_rows = rejected
        .clone()
        .lazy()
        .filter(col("reason").eq(lit("duplicate_line")));
    let duplicate_keys = rows
        .clone()
        .lazy()
        .join(duplicate_rows, at.clone(), at, semi())
        .select(KEY.map(col))
        .unique(None, UniqueKeepStrategy::Any);
    let accepted_keys = with_hashes(accepted.select(KEY)?)?;
    // A duplicate whose key was accepted here came after the first copy, here.
    let first_here = accepted_keys.clone().lazy().join(
        duplicate_keys.clone(),
        KEY.map(col),
        KEY.map(col),
        semi(),
    );
    let duplicates = duplicate_keys
        .join(first_here, KEY.map(col), KEY.map(col), anti())
        .collect()?;
    Ok(Some(Again {
        parsed,
        earlier,
        accepted_keys,
        rows,
        duplicates,
        moved,
        files,
    }))
}

/// Completes judging again by difference, given the keys accepted before: see [`rejudge`].
/// The flag says whether it was by difference (true) or, as many rows changed, in full.
pub fn settle_again(
    again: Again,
    delivery: Month,
    lookups: &Lookups,
    prior: &PriorKeys,
) -> PolarsResult<(Judged, bool)> {
    let Again {
        parsed,
        earlier: Earlier { accepted, rejected },
        accepted_keys,
        rows,
        duplicates,
        moved,
        files,
    } = again;
    // Keys whose standing before the delivery changed: one it accepted that was accepted
    // before it now, and a duplicate of a key accepted before that no longer is.
    let now_before = prior.among(&accepted_keys)?;
    let still_before = prior.among(&with_hashes(duplicates.clone())?)?;
    let no_longer_before =
        duplicates
            .lazy()
            .join(still_before.lazy(), KEY.map(col), KEY.map(col), anti());
    let changed = concat(
        [
            now_before.lazy().select(KEY.map(col)),
            no_longer_before,
            moved.lazy(),
        ],
        UnionArgs::default(),
    )?
    .unique(None, UniqueKeepStrategy::Any)
    .collect()?;
    if changed.height() == 0 {
        let judged = Judged {
            accepted,
            rejected,
            keys: accepted_keys,
        };
        return Ok((judged, true));
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
        return Ok((judge(&parsed.collect()?, delivery, lookups, prior)?, false));
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
    Ok((judged, true))
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
    /// in its place. Slices of `df` and `added` are reused as they are, not copied row by row,
    /// then gathered into one chunk.
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
        out.rechunk_mut_par();
        Ok(out)
    }
}

/// The parsed columns a verdict reads.
const VERDICT_INPUTS: [&str; 11] = [
    "seq",
    "partner_id",
    "omlp_type",
    "month_index",
    "ccy",
    "line_no",
    "invoice_number",
    "pre_reason",
    "credit",
    "kpi",
    "rev",
];

/// The verdicts of a delivery's rows before the keys accepted earlier are looked at: for each
/// row in `seq` order, the first reason that applies short of `duplicate_line` (null for a
/// row still standing), its line key, USD rate, canonical OMLP type and category. It depends on
/// the rows and the lookups alone, so it can be worked out ahead of the deliveries before it.
pub struct Prepared {
    verdicts: DataFrame,
}

/// Works out the verdicts of `parsed` (rows in `seq` order) up to `duplicate_line`.
///
/// The verdict is worked out on the few columns it reads and then set beside the parsed rows
/// (by [`settle`]), so the joins and the sort move those columns only, not the raw values every
/// row keeps for the rejected file.
pub fn prepare(parsed: &DataFrame, lookups: &Lookups) -> PolarsResult<Prepared> {
    let keys = |names: &[&str]| names.iter().map(|n| col(*n)).collect::<Vec<_>>();
    let lf = parsed
        .clone()
        .lazy()
        .select(keys(&VERDICT_INPUTS))
        .with_columns([
            col("omlp_type").str().to_lowercase().alias("omlp_key"),
            line_key(col("line_no"), col("invoice_number")).alias("line_key"),
        ])
        .join(
            lookups.partners.clone(),
            keys(&["partner_id"]),
            keys(&["partner_id"]),
            left(),
        )
        .join(
            lookups.omlp.clone(),
            keys(&["omlp_key"]),
            keys(&["omlp_key"]),
            left(),
        )
        .join(
            lookups.rates.clone(),
            keys(&["month_index", "ccy"]),
            keys(&["month_index", "ccy"]),
            left(),
        );
    let rate = when(col("ccy").eq(lit("USD")))
        .then(lit(1.0))
        .otherwise(col("rate"));
    let sign_mismatch = (col("credit")
        .not()
        .and(col("kpi").lt(lit(0.0)).or(col("rev").lt(lit(0.0)))))
    .or(col("credit").and(col("kpi").gt(lit(0.0)).or(col("rev").gt(lit(0.0)))));
    let reason = when(col("pre_reason").is_not_null())
        .then(col("pre_reason"))
        .when(col("in_roster").is_null())
        .then(lit("unknown_partner"))
        .when(col("category").is_null())
        .then(lit("unknown_omlp_type"))
        .when(sign_mismatch)
        .then(lit("sign_mismatch"))
        .when(col("usd_rate").is_null())
        .then(lit("no_fx_rate"))
        .otherwise(lit(NULL).cast(DataType::String));
    let verdicts = lf
        .with_column(rate.alias("usd_rate"))
        .with_column(reason.alias("reason"))
        .sort(["seq"], SortMultipleOptions::default())
        .select([
            col("reason"),
            col("usd_rate"),
            col("omlp_canonical"),
            col("category"),
            col("line_key"),
            col("invoice_number"),
            col("line_no"),
            col("seq"),
        ])
        .collect()?;
    let hashes = key_hashes(
        verdicts.column("invoice_number")?,
        verdicts.column("line_no")?,
    )?;
    let mut verdicts = verdicts;
    verdicts.with_column(hashes)?;
    Ok(Prepared { verdicts })
}

/// Judges `parsed` (delivery `delivery`, rows in `seq` order) given the keys accepted by
/// earlier deliveries: [`prepare`] then [`settle`].
pub fn judge(
    parsed: &DataFrame,
    delivery: Month,
    lookups: &Lookups,
    prior: &PriorKeys,
) -> PolarsResult<Judged> {
    settle(parsed, prepare(parsed, lookups)?, delivery, prior)
}

/// Completes the verdicts `prepared` of `parsed` with `duplicate_line`, given the keys
/// accepted by earlier deliveries, and splits the rows into accepted and rejected.
pub fn settle(
    parsed: &DataFrame,
    prepared: Prepared,
    delivery: Month,
    prior: &PriorKeys,
) -> PolarsResult<Judged> {
    let lf = prepared.verdicts.clone().lazy();
    let (lf, seen_before) = if prior.is_empty() {
        (lf, lit(false))
    } else {
        // Of the (many) keys accepted earlier, only those this delivery carries matter: the
        // earlier keys sharing a hash with a standing row's key, which the rows are then
        // matched with by text.
        let standing = prepared
            .verdicts
            .clone()
            .lazy()
            .filter(col("reason").is_null())
            .select([col("key_hash")])
            .collect()?;
        let seen = prior
            .sharing_a_hash(standing.column("key_hash")?)?
            .lazy()
            .select([line_key(col("invoice_line"), col("invoice_number")).alias("key")])
            .unique(None, UniqueKeepStrategy::Any)
            .with_column(lit(true).alias("prior"));
        // The rows keep their order: the first copy of a key is the first in `seq` order.
        let mut keep_order = JoinArgs::new(JoinType::Left);
        keep_order.maintain_order = MaintainOrderJoin::Left;
        let lf = lf.join(seen, [col("line_key")], [col("key")], keep_order);
        (lf, col("prior").fill_null(lit(false)))
    };
    // A row still standing whose key was accepted before is a duplicate; within the delivery
    // the first copy of a key among the rows still standing wins.
    let reason = when(col("reason").is_null().and(seen_before))
        .then(lit("duplicate_line"))
        .otherwise(col("reason"));
    let standing_key = when(col("reason").is_null())
        .then(col("line_key"))
        .otherwise(lit(NULL).cast(DataType::String));
    let verdict = lf
        .with_column(reason.alias("reason"))
        .with_column(standing_key.alias("standing_key"))
        .select([
            when(
                col("reason")
                    .is_null()
                    .and(col("standing_key").is_first_distinct().not()),
            )
            .then(lit("duplicate_line"))
            .otherwise(col("reason"))
            .alias("reason"),
            col("usd_rate"),
            col("omlp_canonical"),
            col("category"),
            col("invoice_number"),
            col("line_no"),
            col("key_hash"),
            col("seq"),
        ])
        .collect()?;
    // The verdicts are set beside the rows they judge: one for every row, in the same order.
    if !verdict.column("seq")?.equals(parsed.column("seq")?) {
        return Err(polars_err!(
            ComputeError: "the verdicts ({}) do not line up with the parsed rows ({})",
            verdict.height(),
            parsed.height()
        ));
    }
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
    let judged = parsed.hstack(
        verdict
            .select(["reason", "usd_rate", "omlp_canonical", "category"])?
            .columns(),
    )?;

    let delivery = lit(delivery.to_string()).alias("delivery");
    let accepted = judged
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
            (col("rev") * col("usd_rate")).alias("revenue_usd"),
        ])
        .collect()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::extract::Parsed;
    use crate::ingest::fx::FxRates;
    use crate::ingest::roster::Roster;

    #[test]
    fn asks_are_the_distinct_values_sorted_with_omlp_types_lowered_as_judging_does() {
        let delivery: Month = "2026-10".parse().unwrap();
        let rows = [
            [
                "I1",
                "1",
                "2026-09-03",
                "Invoice",
                "P2",
                "MOC",
                "Kit",
                "1",
                "1",
                "EUR",
            ],
            [
                "I2",
                "1",
                "2026-10-03",
                "Invoice",
                "P1",
                "moc",
                "Kit",
                "1",
                "1",
                "USD",
            ],
            [
                "I3",
                "1",
                "2026-09-30",
                "Invoice",
                "P2",
                "Moc",
                "Kit",
                "1",
                "1",
                "EUR",
            ],
            [
                "I4",
                "1",
                "2026-10-01",
                "Invoice",
                "",
                "AΣ",
                "Kit",
                "1",
                "1",
                "",
            ],
            [
                "I5",
                "1",
                "not a date",
                "Invoice",
                "P3",
                "Exam Voucher",
                "Kit",
                "1",
                "1",
                "GBP",
            ],
        ];
        let mut parsed = Parsed::new("f.csv", rows.len());
        for (i, r) in rows.iter().enumerate() {
            parsed.push(i as u32 + 2, *r, [false; 10], delivery);
        }
        let frame = parsed.into_frame().unwrap();
        let asks = Asks::of(&frame).unwrap();
        // A missing partner id is kept as an empty text, and asked about like any other.
        assert_eq!(asks.partner_ids, ["", "P1", "P2", "P3"]);
        // The same lower-casing as the judging's join key, and sorted by bytes.
        let judged_key = frame
            .clone()
            .lazy()
            .select([col("omlp_type").str().to_lowercase()])
            .collect()
            .unwrap();
        let sigma = judged_key
            .column("omlp_type")
            .unwrap()
            .str()
            .unwrap()
            .get(3);
        assert_eq!(
            asks.omlp_keys,
            [sigma.unwrap(), "exam voucher", "moc"].map(String::from)
        );
        assert_eq!(asks, asks_by_queries(&frame));
        // A row without a month or a currency asks for no rate.
        let (sep, oct) = (delivery.plus(-1).index(), delivery.index());
        assert_eq!(
            asks.rates,
            [(sep, "EUR".to_string()), (oct, "USD".to_string())]
        );
    }

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

    /// The reasons of a second delivery's rows, given the keys the first accepted.
    fn second_reasons() -> Vec<Option<String>> {
        let lookups = lookups();
        let (sep, oct) = ("2026-09".parse().unwrap(), "2026-10".parse().unwrap());
        let first = parsed(sep, &[("A", "1"), ("B", "1"), ("B", "2")]);
        let first = judge(&first, sep, &lookups, &PriorKeys::default()).unwrap();
        let mut prior = PriorKeys::default();
        prior.add_judged(first.keys).unwrap();
        // "1|B" was accepted before; "2|A", "1|C" were not ("2|A" shares a number, "1|C" a line).
        let rows = [("B", "1"), ("A", "2"), ("C", "1"), ("C", "1"), ("A", "1")];
        let second = judge(&parsed(oct, &rows), oct, &lookups, &prior).unwrap();
        // The first lookup scans the earlier keys, the second goes through their index: both
        // find the same.
        let again = judge(&parsed(oct, &rows), oct, &lookups, &prior).unwrap();
        assert!(again.rejected.equals_missing(&second.rejected));
        assert!(again.accepted.equals_missing(&second.accepted));
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
        assert_eq!(second_reasons(), expected);
        COLLIDE.set(true);
        let colliding = second_reasons();
        COLLIDE.set(false);
        assert_eq!(colliding, expected);
    }

    /// The asks as polars queries (distinct, sorted): the reference the hash sets must match.
    fn asks_by_queries(parsed: &DataFrame) -> Asks {
        let distinct = |e: Expr| -> Vec<String> {
            let df = parsed
                .clone()
                .lazy()
                .select([e.alias("k")])
                .drop_nulls(None)
                .unique(None, UniqueKeepStrategy::Any)
                .sort(["k"], SortMultipleOptions::default())
                .collect()
                .unwrap();
            let k = df.column("k").unwrap().str().unwrap().clone();
            k.iter().flatten().map(str::to_string).collect()
        };
        let rates = parsed
            .clone()
            .lazy()
            .select([col("month_index"), col("ccy")])
            .drop_nulls(None)
            .unique(None, UniqueKeepStrategy::Any)
            .sort(["month_index", "ccy"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let months = rates.column("month_index").unwrap().i32().unwrap().clone();
        let ccys = rates.column("ccy").unwrap().str().unwrap().clone();
        Asks {
            partner_ids: distinct(col("partner_id")),
            omlp_keys: distinct(col("omlp_type").str().to_lowercase()),
            rates: months
                .iter()
                .zip(ccys.iter())
                .map(|(m, c)| (m.unwrap(), c.unwrap().to_string()))
                .collect(),
        }
    }
}

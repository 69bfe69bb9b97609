//! The keys accepted by earlier deliveries ([`PriorKeys`]) and the 64-bit hashes a delivery's
//! keys are looked up by.

use polars::prelude::*;

/// A line's key, as the ledger's accepted lines name its parts.
pub(super) const KEY: [&str; 2] = ["invoice_number", "invoice_line"];

/// The seed of [`key_hashes`]: any fixed number, so that every call agrees.
const KEY_SEED: u64 = 0x6b70_692d_7265_6672;

/// A 64-bit hash of each line's key, (`invoice_number`, `invoice_line`): the same in every call
/// of a run. Lines without a key get a hash too; they are never standing, so never probed.
pub(super) fn key_hashes(number: &Column, line: &Column) -> PolarsResult<Column> {
    let state = PlSeedableRandomStateQuality::seed_from_u64(KEY_SEED);
    let mut hashes = Vec::with_capacity(number.len());
    number.str()?.vec_hash(state.clone(), &mut hashes)?;
    line.i64()?.vec_hash_combine(state, &mut hashes)?;
    Ok(UInt64Chunked::from_vec("key_hash".into(), hashes).into_column())
}

/// `keys` (with `invoice_number` and `invoice_line`) and their hashes as `hash`.
pub(super) fn with_hashes(mut keys: DataFrame) -> PolarsResult<DataFrame> {
    let hashes = key_hashes(keys.column("invoice_number")?, keys.column("invoice_line")?)?;
    keys.with_column(hashes.with_name("hash".into()))?;
    Ok(keys)
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

    /// Adds the keys of a judgement (its [`super::Judged::keys`]).
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
    pub(super) fn among(&self, keys: &DataFrame) -> PolarsResult<DataFrame> {
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
    pub(super) fn sharing_a_hash(&self, hashes: &Column) -> PolarsResult<DataFrame> {
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

pub(super) fn semi() -> JoinArgs {
    JoinArgs::new(JoinType::Semi)
}

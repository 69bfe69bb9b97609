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
/// delivery's hashes); from the second on, an index of the earlier hashes, built then and kept
/// up to date as keys are added, answers instead. A monthly run
/// looks up once, against millions of earlier keys: building an index for it would cost more
/// than the scan. A full rebuild looks up once per delivery: a scan each time would cost the
/// earlier keys again and again.
///
/// The index is two sorted arrays (12 bytes a key, where a hash map took about twice that and
/// twice again while it grew): what a full rebuild holds grows with every delivery's keys.
pub struct PriorKeys {
    keys: DataFrame,
    index: std::cell::RefCell<Option<Index>>,
    lookups: std::cell::Cell<usize>,
}

/// The earlier keys' hashes in ascending order, each beside its key's row (rows of one hash in
/// ascending order): a lookup is a binary search.
#[derive(Default)]
struct Index {
    hashes: Vec<u64>,
    rows: Vec<IdxSize>,
}

impl Index {
    /// Adds the keys of rows `first`, `first + 1`, … with these hashes (rows after every row
    /// already in the index).
    fn add(&mut self, first: IdxSize, hashes: &Column) -> PolarsResult<()> {
        let mut added: Vec<(u64, IdxSize)> = hashes
            .u64()?
            .into_no_null_iter()
            .enumerate()
            .map(|(i, hash)| (hash, first + i as IdxSize))
            .collect();
        added.sort_unstable();
        let total = self.hashes.len() + added.len();
        let (mut hashes, mut rows) = (Vec::with_capacity(total), Vec::with_capacity(total));
        let mut earlier = self
            .hashes
            .iter()
            .copied()
            .zip(self.rows.iter().copied())
            .peekable();
        for (hash, row) in added {
            // An earlier row of the same hash comes first: its row is the smaller.
            while let Some(e) = earlier.next_if(|e| e.0 <= hash) {
                hashes.push(e.0);
                rows.push(e.1);
            }
            hashes.push(hash);
            rows.push(row);
        }
        for (hash, row) in earlier {
            hashes.push(hash);
            rows.push(row);
        }
        (self.hashes, self.rows) = (hashes, rows);
        Ok(())
    }

    /// The rows of the earlier keys whose hash is among `wanted` (sorted, each once): one
    /// walk along both sorted lists, which reads the index in order (a binary search per hash
    /// jumps about it, a cache miss at nearly every step: several times slower on millions of
    /// keys).
    fn rows_of(&self, wanted: &[u64]) -> Vec<IdxSize> {
        let mut rows = Vec::new();
        let mut at = 0;
        for &hash in wanted {
            while self.hashes.get(at).is_some_and(|h| *h < hash) {
                at += 1;
            }
            while self.hashes.get(at) == Some(&hash) {
                rows.push(self.rows[at]);
                at += 1;
            }
        }
        rows
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

    /// Adds the keys of a judgement (its [`super::Judged::keys`]: the keys and their `hash`).
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
        if index.hashes.is_empty() {
            index.add(0, self.keys.column("hash")?)?;
        }
        let mut wanted: Vec<u64> = hashes.u64()?.iter().flatten().collect();
        wanted.sort_unstable();
        wanted.dedup();
        let rows = index.rows_of(&wanted);
        self.keys.take(&IdxCa::from_vec("rows".into(), rows))
    }
}

pub(super) fn semi() -> JoinArgs {
    JoinArgs::new(JoinType::Semi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_every_row_of_a_hash_in_row_order_across_additions() {
        let hashes = |v: Vec<u64>| Column::new("hash".into(), v);
        let mut index = Index::default();
        index.add(0, &hashes(vec![5, 3, 5, 9])).unwrap();
        index.add(4, &hashes(vec![3, 7, 5])).unwrap();
        assert_eq!(index.hashes, vec![3, 3, 5, 5, 5, 7, 9]);
        assert_eq!(index.rows, vec![1, 4, 0, 2, 6, 5, 3]);
        assert_eq!(index.rows_of(&[3, 4, 5, 10]), vec![1, 4, 0, 2, 6]);
        assert_eq!(index.rows_of(&[9]), vec![3]);
        assert!(index.rows_of(&[]).is_empty());
        assert!(index.rows_of(&[1, 2, 8]).is_empty());
    }
}

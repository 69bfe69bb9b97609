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
/// 64-bit hashes.
///
/// A delivery looks its own keys' hashes up among the earlier ones; the few earlier keys found
/// are then compared as text with the delivery's, so a hash shared by two keys never makes a
/// duplicate. The first lookup scans the earlier hashes (against a set of the delivery's
/// hashes); from the second on, an index of the earlier hashes, built then and kept up to date
/// as keys are added, answers instead. A monthly run looks up once, against millions of
/// earlier keys: building an index for it would cost more than the scan. A full rebuild looks
/// up once per delivery: a scan each time would cost the earlier keys again and again.
///
/// This is the one thing a run holds that grows with the whole history, so it is kept
/// compact: the keys back to back (each its length and its line, as variable-length integers,
/// then its invoice number's bytes: 15 bytes for `INV-001999242` line 1) with where every
/// [`STRIDE`]-th one starts (4 bytes), and the hashes (8 bytes a key in key order for the
/// scan; in the index, once it is built, 12). About 23–27 bytes a key, where polars' columns
/// of the same keys took about 45 and the index 12 more.
#[derive(Default)]
pub struct PriorKeys {
    /// The keys, in the order they were added, in segments of at most 4 GiB.
    segments: Vec<Segment>,
    /// How many keys the segments hold.
    len: usize,
    /// Each key's hash, in key order, one piece per addition (so that adding never moves the
    /// hashes held), until the index is built (the index holds them then).
    hashes: std::cell::RefCell<Vec<Vec<u64>>>,
    index: std::cell::RefCell<Option<Index>>,
    lookups: std::cell::Cell<usize>,
}

/// The most bytes a [`Segment`] holds, so that where a key starts fits in 4 bytes (a few bytes
/// in the unit tests, to split their keys across segments).
#[cfg(not(test))]
const SEGMENT_BYTES: usize = u32::MAX as usize;
#[cfg(test)]
const SEGMENT_BYTES: usize = 16;

/// Where one key in this many starts is kept: a key is found from there by stepping over
/// the lengths of the keys before it (only the few keys sharing a hash are ever looked at).
const STRIDE: usize = 32;

/// Keys added together, back to back: each the length of the rest (LEB128), its line (zigzag,
/// LEB128) and its invoice number.
struct Segment {
    /// The row of its first key among all the keys.
    first: usize,
    bytes: Vec<u8>,
    /// Where every [`STRIDE`]-th key starts in `bytes`: keys 0, `STRIDE`, 2 × `STRIDE`, ….
    starts: Vec<u32>,
    /// How many keys it holds.
    keys: usize,
}

impl Segment {
    fn new(first: usize, bytes: usize, keys: usize) -> Segment {
        Segment {
            first,
            bytes: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(keys.div_ceil(STRIDE)),
            keys: 0,
        }
    }

    /// The bytes a key takes in a segment.
    fn size(number: &str, line: i64) -> usize {
        let rest = varint_len(line) + number.len();
        uvarint_len(rest as u64) + rest
    }

    fn push(&mut self, number: &str, line: i64) {
        if self.keys.is_multiple_of(STRIDE) {
            self.starts.push(self.bytes.len() as u32);
        }
        push_uvarint(&mut self.bytes, (varint_len(line) + number.len()) as u64);
        push_varint(&mut self.bytes, line);
        self.bytes.extend_from_slice(number.as_bytes());
        self.keys += 1;
    }

    /// The line and invoice number of its `i`-th key.
    fn key(&self, i: usize) -> (i64, &[u8]) {
        let mut at = self.starts[i / STRIDE] as usize;
        let rest = |at: usize| {
            let (len, after) = read_uvarint(&self.bytes[at..]);
            let start = self.bytes.len() - after.len();
            (start, start + len as usize)
        };
        for _ in 0..i % STRIDE {
            at = rest(at).1;
        }
        let (start, end) = rest(at);
        read_varint(&self.bytes[start..end])
    }
}

/// The earlier keys' hashes in ascending order, each beside its key's row (rows of one hash in
/// ascending order): a lookup is one walk along it.
#[derive(Default)]
struct Index {
    hashes: Vec<u64>,
    rows: Vec<IdxSize>,
}

impl Index {
    /// Adds the keys of rows `first`, `first + 1`, … with these hashes (rows after every row
    /// already in the index). They are merged in from the back, in place: the index grows as
    /// a vector does, rather than being written anew for every delivery.
    fn add(&mut self, first: IdxSize, hashes: impl Iterator<Item = u64>) {
        let mut added: Vec<(u64, IdxSize)> = hashes
            .enumerate()
            .map(|(i, hash)| (hash, first + i as IdxSize))
            .collect();
        added.sort_unstable();
        let (mut earlier, mut new) = (self.hashes.len(), added.len());
        let mut at = earlier + new;
        self.hashes.resize(at, 0);
        self.rows.resize(at, 0);
        while new > 0 {
            at -= 1;
            // Of equal hashes the added row goes last: it is the larger row.
            if earlier > 0 && self.hashes[earlier - 1] > added[new - 1].0 {
                earlier -= 1;
                self.hashes[at] = self.hashes[earlier];
                self.rows[at] = self.rows[earlier];
            } else {
                new -= 1;
                (self.hashes[at], self.rows[at]) = added[new];
            }
        }
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

/// Appends `value` as LEB128: seven bits a byte, values under 128 in one.
fn push_uvarint(bytes: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        bytes.push((v as u8) | 0x80);
        v >>= 7;
    }
    bytes.push(v as u8);
}

/// The bytes [`push_uvarint`] writes for `v`.
fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The value [`push_uvarint`] wrote at the start of `bytes`, and the bytes after it.
fn read_uvarint(bytes: &[u8]) -> (u64, &[u8]) {
    let (mut v, mut shift, mut at) = (0u64, 0, 0);
    while let Some(b) = bytes.get(at) {
        v |= u64::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (v, &bytes[at..])
}

/// `value` zigzag-encoded: small values of either sign are small.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Appends `value` zigzag-encoded as LEB128: small lines take one byte.
fn push_varint(bytes: &mut Vec<u8>, value: i64) {
    push_uvarint(bytes, zigzag(value));
}

/// The bytes [`push_varint`] writes for `value`.
fn varint_len(value: i64) -> usize {
    uvarint_len(zigzag(value))
}

/// The value [`push_varint`] wrote at the start of `bytes`, and the bytes after it.
fn read_varint(bytes: &[u8]) -> (i64, &[u8]) {
    let (v, rest) = read_uvarint(bytes);
    (((v >> 1) as i64) ^ -((v & 1) as i64), rest)
}

impl PriorKeys {
    /// Adds the keys of `accepted` (ledger lines with `invoice_number` and `invoice_line`).
    pub fn add(&mut self, accepted: LazyFrame) -> PolarsResult<()> {
        self.add_judged(with_hashes(accepted.select(KEY.map(col)).collect()?)?)
    }

    /// Adds the keys of a judgement (its [`super::Judged::keys`]: the keys and their `hash`).
    pub fn add_judged(&mut self, keys: DataFrame) -> PolarsResult<()> {
        let first = self.len;
        let numbers = keys.column("invoice_number")?.str()?;
        let lines = keys.column("invoice_line")?.i64()?.rechunk();
        if numbers.null_count() > 0 || lines.null_count() > 0 {
            polars_bail!(ComputeError: "an accepted line without an invoice number or line");
        }
        let lines = lines.cont_slice()?;
        // (Each piece of the numbers' column read straight, with no null to skip.)
        let numbers = || {
            numbers
                .downcast_iter()
                .flat_map(|piece| piece.values_iter())
        };
        let all_bytes = (numbers().zip(lines))
            .map(|(number, &line)| Segment::size(number, line))
            .sum::<usize>();
        let (mut left_bytes, mut left_keys) = (all_bytes, keys.height());
        // (A key takes a byte at least: a segment holds at most as many keys as bytes.)
        let new_segment = |first, bytes: usize, keys: usize| {
            let bytes = bytes.min(SEGMENT_BYTES);
            Segment::new(first, bytes, keys.min(bytes))
        };
        let mut segment = new_segment(first, left_bytes, left_keys);
        for (number, &line) in numbers().zip(lines) {
            let need = Segment::size(number, line);
            if segment.bytes.len() + need > SEGMENT_BYTES {
                let next = new_segment(self.len, left_bytes, left_keys);
                self.segments.push(std::mem::replace(&mut segment, next));
            }
            segment.push(number, line);
            (left_bytes, left_keys, self.len) = (left_bytes - need, left_keys - 1, self.len + 1);
        }
        self.segments.push(segment);
        let hashes = keys.column("hash")?.u64()?;
        match self.index.get_mut().as_mut() {
            Some(index) => index.add(first as IdxSize, hashes.into_no_null_iter()),
            None => self
                .hashes
                .get_mut()
                .push(hashes.into_no_null_iter().collect()),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys held, and the bytes they take.
    pub fn size(&self) -> (usize, usize) {
        let index = self.index.borrow();
        let index = index
            .as_ref()
            .map_or(0, |i| i.hashes.capacity() * 8 + i.rows.capacity() * 4);
        let segments: usize = (self.segments.iter())
            .map(|s| s.bytes.capacity() + s.starts.capacity() * 4)
            .sum();
        (
            self.len,
            segments
                + self
                    .hashes
                    .borrow()
                    .iter()
                    .map(Vec::capacity)
                    .sum::<usize>()
                    * 8
                + index,
        )
    }

    /// Those of `keys` (`invoice_number`, `invoice_line`, and their `hash`) that were
    /// accepted earlier.
    pub(super) fn among(&self, keys: &DataFrame) -> PolarsResult<DataFrame> {
        if self.is_empty() || keys.height() == 0 {
            return Ok(keys.clear());
        }
        let earlier = self.sharing_a_hash(keys.column("hash")?)?;
        // (Bound before it is returned: the set borrows `earlier`.)
        let among = keys_in(keys, &key_set(&earlier)?);
        among
    }

    /// The earlier keys (`invoice_number`, `invoice_line`) whose hash is among `hashes`: a few
    /// keys, to be compared as text.
    pub(super) fn sharing_a_hash(&self, hashes: &Column) -> PolarsResult<DataFrame> {
        let lookups = self.lookups.get() + 1;
        self.lookups.set(lookups);
        let mut index = self.index.borrow_mut();
        let hashes = hashes.u64()?;
        let rows = if index.is_none() && lookups == 1 {
            let wanted: PlHashSet<u64> = hashes.iter().flatten().collect();
            self.hashes
                .borrow()
                .iter()
                .flatten()
                .enumerate()
                .filter(|(_, h)| wanted.contains(*h))
                .map(|(row, _)| row as IdxSize)
                .collect()
        } else {
            let index = index.get_or_insert_with(|| {
                // (The index holds the hashes kept in key order for the first lookup.)
                let in_order = std::mem::take(&mut *self.hashes.borrow_mut());
                let mut index = Index::default();
                index.add(0, in_order.into_iter().flatten());
                index
            });
            let mut wanted: Vec<u64> = hashes.iter().flatten().collect();
            wanted.sort_unstable();
            wanted.dedup();
            index.rows_of(&wanted)
        };
        Ok(self.keys_at(&rows))
    }

    /// The keys of `rows`, as a frame.
    fn keys_at(&self, rows: &[IdxSize]) -> DataFrame {
        let mut numbers = Vec::with_capacity(rows.len());
        let mut lines = Vec::with_capacity(rows.len());
        for &row in rows {
            let row = row as usize;
            let segment = &self.segments[self.segments.partition_point(|s| s.first <= row) - 1];
            let (line, number) = segment.key(row - segment.first);
            lines.push(line);
            // (Written from a string above.)
            numbers.push(String::from_utf8_lossy(number));
        }
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("invoice_number".into(), numbers),
                Column::new("invoice_line".into(), lines),
            ],
        )
        .expect("two columns of one length")
    }
}

/// The keys of `keys` (`invoice_number`, `invoice_line`) as a set, to compare keys as text
/// (a key without either part is in no set).
pub(super) fn key_set(keys: &DataFrame) -> PolarsResult<PlHashSet<(&str, i64)>> {
    let numbers = keys.column("invoice_number")?.str()?;
    let lines = keys.column("invoice_line")?.i64()?;
    Ok((numbers.iter().zip(lines.iter()))
        .filter_map(|(n, l)| Some((n?, l?)))
        .collect())
}

/// The rows of `keys` whose key (`invoice_number`, `invoice_line`) is in `set`, compared as
/// text (see [`key_set`]).
pub(super) fn keys_in(keys: &DataFrame, set: &PlHashSet<(&str, i64)>) -> PolarsResult<DataFrame> {
    let numbers = keys.column("invoice_number")?.str()?;
    let lines = keys.column("invoice_line")?.i64()?;
    let found: BooleanChunked = (numbers.iter().zip(lines.iter()))
        .map(|(n, l)| n.zip(l).is_some_and(|key| set.contains(&key)))
        .collect();
    keys.filter(&found)
}

pub(super) fn semi() -> JoinArgs {
    JoinArgs::new(JoinType::Semi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_every_row_of_a_hash_in_row_order_across_additions() {
        let mut index = Index::default();
        index.add(0, [5, 3, 5, 9].into_iter());
        index.add(4, [3, 7, 5].into_iter());
        assert_eq!(index.hashes, vec![3, 3, 5, 5, 5, 7, 9]);
        assert_eq!(index.rows, vec![1, 4, 0, 2, 6, 5, 3]);
        assert_eq!(index.rows_of(&[3, 4, 5, 10]), vec![1, 4, 0, 2, 6]);
        assert_eq!(index.rows_of(&[9]), vec![3]);
        assert!(index.rows_of(&[]).is_empty());
        assert!(index.rows_of(&[1, 2, 8]).is_empty());
    }

    #[test]
    fn lines_come_back_as_written_in_as_few_bytes_as_they_need() {
        for (line, size) in [
            (0, 1),
            (1, 1),
            (-1, 1),
            (63, 1),
            (64, 2),
            (-65, 2),
            (1_000_000, 3),
            (i64::MAX, 10),
            (i64::MIN, 10),
        ] {
            let mut bytes = Vec::new();
            push_varint(&mut bytes, line);
            assert_eq!(bytes.len(), size, "{line}");
            assert_eq!(varint_len(line), size, "{line}");
            bytes.extend_from_slice("INV-ß".as_bytes());
            let (back, rest) = read_varint(&bytes);
            assert_eq!((back, rest), (line, "INV-ß".as_bytes()), "{line}");
        }
    }

    #[test]
    fn every_key_of_a_segment_is_found_from_where_its_stride_starts() {
        // Numbers of 0 to 299 bytes (a length of two bytes from 128 on), lines of either sign.
        let keys: Vec<(String, i64)> = (0..300)
            .map(|i: i64| ("n".repeat(i as usize), (i - 150) * 1_000_003))
            .collect();
        let mut segment = Segment::new(0, 0, 0);
        for (number, line) in &keys {
            segment.push(number, *line);
        }
        assert_eq!(segment.keys, 300);
        assert_eq!(segment.starts.len(), 300usize.div_ceil(STRIDE));
        let sizes: usize = keys.iter().map(|(n, l)| Segment::size(n, *l)).sum();
        assert_eq!(segment.bytes.len(), sizes);
        for (i, (number, line)) in keys.iter().enumerate() {
            assert_eq!(segment.key(i), (*line, number.as_bytes()), "key {i}");
        }
    }

    fn keys(numbers: &[&str], lines: &[i64], hashes: &[u64]) -> DataFrame {
        df!("invoice_number" => numbers, "invoice_line" => lines, "hash" => hashes).unwrap()
    }

    fn found(prior: &PriorKeys, hashes: &[u64]) -> Vec<(String, i64)> {
        let df = prior
            .sharing_a_hash(&Column::new("hash".into(), hashes))
            .unwrap();
        let numbers = df.column("invoice_number").unwrap().str().unwrap().clone();
        let lines = df.column("invoice_line").unwrap().i64().unwrap().clone();
        let mut found: Vec<(String, i64)> = (numbers.iter().flatten())
            .zip(lines.iter().flatten())
            .map(|(n, l)| (n.to_string(), l))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_keys_sharing_a_hash_come_back_whole_by_scan_and_by_index_across_additions() {
        let mut prior = PriorKeys::default();
        prior
            .add_judged(keys(
                &["INV-1", "", "Ärger-7"],
                &[1, -3, 70_000],
                &[9, 4, 9],
            ))
            .unwrap();
        let nine = vec![("INV-1".to_string(), 1), ("Ärger-7".to_string(), 70_000)];
        // The first lookup scans, the second builds the index, which takes the hashes over.
        assert_eq!(found(&prior, &[9, 5]), nine);
        assert_eq!(*prior.hashes.borrow(), [vec![9, 4, 9]]);
        assert_eq!(found(&prior, &[9, 5]), nine);
        assert!(prior.hashes.borrow().is_empty());
        assert_eq!(found(&prior, &[4]), vec![(String::new(), -3)]);
        // Keys added after the index is built are found through it too.
        prior
            .add_judged(keys(&["INV-1", "X"], &[2, i64::MAX], &[4, 8]))
            .unwrap();
        assert_eq!(
            found(&prior, &[4, 8]),
            vec![
                (String::new(), -3),
                ("INV-1".to_string(), 2),
                ("X".to_string(), i64::MAX)
            ]
        );
        assert!(found(&prior, &[1, 2, 3]).is_empty());
        // (At most 16 bytes a segment in these tests: the keys took four.)
        assert_eq!(prior.segments.len(), 4);
        assert_eq!(prior.size().0, 5);
    }

    #[test]
    fn keys_added_apart_before_any_lookup_are_found_by_scan_and_by_index() {
        let mut prior = PriorKeys::default();
        prior
            .add_judged(keys(&["A", "B"], &[1, 2], &[7, 8]))
            .unwrap();
        prior
            .add_judged(keys(&["C", "D"], &[3, 4], &[8, 9]))
            .unwrap();
        // Each addition keeps its hashes where they are.
        assert_eq!(*prior.hashes.borrow(), [vec![7, 8], vec![8, 9]]);
        let eight = vec![("B".to_string(), 2), ("C".to_string(), 3)];
        assert_eq!(found(&prior, &[8]), eight);
        assert_eq!(found(&prior, &[8]), eight);
        assert_eq!(
            found(&prior, &[9, 7]),
            [("A".to_string(), 1), ("D".to_string(), 4)]
        );
    }

    #[test]
    fn keys_in_several_chunks_are_held_as_in_one() {
        // Numbers in three chunks, lines in two, cut in other places (as frames read from a
        // file a row group at a time are).
        let mut numbers = Series::new("invoice_number".into(), ["INV-000000001", "B"]);
        numbers
            .append(&Series::new(
                "invoice_number".into(),
                ["a much longer number", ""],
            ))
            .unwrap();
        numbers
            .append(&Series::new("invoice_number".into(), ["Ärger-7"]))
            .unwrap();
        let mut lines = Series::new("invoice_line".into(), [1i64, -2, 300]);
        lines
            .append(&Series::new("invoice_line".into(), [i64::MIN, 5]))
            .unwrap();
        let hashes = Series::new("hash".into(), [1u64, 2, 3, 4, 5]);
        let cut = DataFrame::new(5, vec![numbers.into(), lines.into(), hashes.into()]).unwrap();
        let whole = keys(
            &["INV-000000001", "B", "a much longer number", "", "Ärger-7"],
            &[1, -2, 300, i64::MIN, 5],
            &[1, 2, 3, 4, 5],
        );
        let (mut a, mut b) = (PriorKeys::default(), PriorKeys::default());
        a.add_judged(cut).unwrap();
        b.add_judged(whole).unwrap();
        let held = |p: &PriorKeys| -> Vec<(i64, Vec<u8>)> {
            (p.segments.iter())
                .flat_map(|s| (0..s.keys).map(move |i| s.key(i)))
                .map(|(line, number)| (line, number.to_vec()))
                .collect()
        };
        assert_eq!(held(&a), held(&b));
        assert_eq!(held(&a).len(), 5);
        assert_eq!(held(&a)[4], (5, "Ärger-7".as_bytes().to_vec()));
        assert_eq!(found(&a, &[3, 4]), found(&b, &[3, 4]));
    }

    #[test]
    fn a_key_without_a_number_or_line_is_refused() {
        let mut prior = PriorKeys::default();
        let keys = df!(
            "invoice_number" => [Some("INV-1"), None],
            "invoice_line" => [1i64, 2],
            "hash" => [1u64, 2],
        )
        .unwrap();
        assert!(prior.add_judged(keys).is_err());
    }
}

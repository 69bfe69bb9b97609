//! The Parquet pages of the ledger's large files (`parsed.parquet`, `accepted.parquet`), row
//! group by row group. Columns are encoded as polars' writer encodes them, but a text column's
//! dictionary is built here: polars builds it by hashing and comparing every value's bytes,
//! which was the largest single cost of writing a partition (docs/design.md §5, item 28).
//! Most of the ledger's text columns hold few values, often the same one row after row (the
//! delivery, the source file), and their values are short: a value of at most 12 bytes is whole
//! in its 16-byte view, so it is found by the view alone, and a value like the row before's
//! costs one comparison.
//!
//! The dictionary holds the values in the order they first occur and is used under the same
//! condition as polars' (at most 128 rows, or at most 3 in 4 distinct), decided by polars' own
//! estimate wherever the values counted pass the line. So the file is the one polars writes,
//! byte for byte, but where polars' estimate puts a column counted under the line over it
//! (within the estimate's error, about 1%; the tests compare them). A row group in several
//! pieces is written as in one.

use std::io::Write;

use polars::polars_compute::cardinality::estimate_cardinality;
use polars::prelude::{
    polars_ensure, CompatLevel, DataFrame, DataType, PlHashMap, PolarsError, PolarsResult, Series,
};
use polars_arrow::array::{
    Array, DictionaryArray, MutableBinaryViewArray, PrimitiveArray, Utf8ViewArray,
};
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use polars_arrow::compute::concatenate::concatenate;
use polars_arrow::datatypes::ArrowDataType;
use polars_core::runtime::RAYON;
use polars_io::parquet::write::BatchedWriter;
use polars_parquet::read::ParquetError;
use polars_parquet::write::{
    array_to_columns, get_dtype_encoding, CompressedPage, Compressor, DynIter,
    DynStreamingIterator, Encoding, FallibleStreamingIterator, ParquetType, WriteOptions,
};
use rayon::prelude::*;

/// A column of more than this many rows is written plain when more than
/// [`MOST_DISTINCT`] of its values are distinct (polars' rule).
const FEW_ROWS: usize = 128;

/// The share of distinct values past which a dictionary is not worth it (polars' rule).
const MOST_DISTINCT: f64 = 0.75;

/// The rows after which a column more than [`MOST_DISTINCT`] of whose values so far are
/// distinct is decided by polars' estimate (see [`dictionary`]). Fewer rows would ask it of
/// columns of many values that end well under the line (the benchmark's partner ids and
/// amounts as read are 90% distinct in their first 4,096 rows), at the estimate's cost.
const SAMPLE_ROWS: usize = 1 << 16;

/// The longest value a view holds whole (its bytes inside the view itself).
const INLINE: u32 = 12;

/// A text column, in one or more pieces, as a dictionary of its values in the order they first
/// occur, with a key per row (null rows keep their nulls); None when more than
/// [`MOST_DISTINCT`] of the values of a column of more than [`FEW_ROWS`] rows are distinct.
/// Whether it is None is polars' own estimate of the whole column ([`plain_by_estimate`]),
/// asked when more than 3 in 4 of the rows are found distinct, or as soon as the first
/// [`SAMPLE_ROWS`] rows are (hashing most of a column of distinct values only to give up would
/// cost three times the estimate). A column found under 3 in 4 is not asked: polars' estimate
/// may put one within about 1% of the line on the other side.
pub(super) fn dictionary(pieces: &[&Utf8ViewArray]) -> PolarsResult<Option<DictionaryArray<u32>>> {
    let mut limit = Limit::new(pieces);
    let mut keys: Vec<u32> = Vec::with_capacity(limit.rows);
    let mut values = MutableBinaryViewArray::<str>::new();
    // Values whole in their view, by the view; longer ones by their text.
    let mut short: PlHashMap<u128, u32> = PlHashMap::default();
    let mut long: PlHashMap<&str, u32> = PlHashMap::default();
    for text in pieces {
        // The row before's view and key. (A long value's view names its place in its own
        // piece's buffers: views alike in two pieces say nothing of their values.)
        let mut last: Option<(u128, u32)> = None;
        let validity = text.validity().filter(|v| v.unset_bits() > 0);
        for (row, view) in text.views().iter().enumerate() {
            if validity.is_some_and(|v| !v.get_bit(row)) {
                keys.push(0);
                continue;
            }
            let bits = view.as_u128();
            if let Some((_, key)) = last.filter(|(b, _)| *b == bits) {
                keys.push(key);
                continue;
            }
            let next = values.len() as u32;
            // SAFETY: `row` is below the piece's length.
            let value = unsafe { text.value_unchecked(row) };
            let key = if view.length <= INLINE {
                *short.entry(bits).or_insert(next)
            } else {
                *long.entry(value).or_insert(next)
            };
            if key == next {
                if !limit.go_on(values.len(), keys.len(), value)? {
                    return Ok(None);
                }
                values.push_value(value);
            }
            last = Some((bits, key));
            keys.push(key);
        }
    }
    let keys = PrimitiveArray::new(ArrowDataType::UInt32, keys.into(), keys_validity(pieces));
    let values: Utf8ViewArray = values.into();
    DictionaryArray::try_from_keys(keys, values.boxed(), false).map(Some)
}

/// When a text column's dictionary is given up (see [`dictionary`]).
struct Limit<'a> {
    pieces: &'a [&'a Utf8ViewArray],
    rows: usize,
    /// The most distinct values (a null counted as the empty value, as polars' estimate
    /// counts it) before polars' estimate is asked; past it when the estimate said no.
    most: usize,
    estimated: bool,
    nulls: bool,
    empty: bool,
}

impl<'a> Limit<'a> {
    fn new(pieces: &'a [&'a Utf8ViewArray]) -> Self {
        let rows: usize = pieces.iter().map(|p| p.len()).sum();
        Limit {
            pieces,
            rows,
            most: if rows > FEW_ROWS {
                (rows as f64 * MOST_DISTINCT) as usize
            } else {
                usize::MAX
            },
            estimated: false,
            nulls: pieces.iter().any(|p| p.null_count() > 0),
            empty: false,
        }
    }

    /// Whether to go on once `value` is found new, after `found` values in `seen` rows: not
    /// when polars would write the column plain. Polars' estimate decides, asked once: when
    /// the values counted pass 3 in 4 of the rows, or when the first [`SAMPLE_ROWS`] rows are
    /// already more than 3 in 4 distinct.
    fn go_on(&mut self, found: usize, seen: usize, value: &str) -> PolarsResult<bool> {
        self.empty |= value.is_empty();
        let counted = found + 1 + usize::from(self.nulls && !self.empty);
        let past = counted > self.most;
        let starts_distinct = seen >= SAMPLE_ROWS && counted as f64 > seen as f64 * MOST_DISTINCT;
        if self.estimated || !(past || starts_distinct) {
            return Ok(true);
        }
        self.estimated = true;
        if plain_by_estimate(self.pieces, self.rows)? {
            return Ok(false);
        }
        self.most = usize::MAX;
        Ok(true)
    }
}

/// Whether polars writes a text column of `rows` rows (more than [`FEW_ROWS`]) in `pieces`
/// plain: when its estimate of the distinct values (HyperLogLog, the same for the same values)
/// is more than [`MOST_DISTINCT`] of the rows. Pieces are first made one, as polars' column is.
fn plain_by_estimate(pieces: &[&Utf8ViewArray], rows: usize) -> PolarsResult<bool> {
    let estimate = match pieces {
        [one] => estimate_cardinality(*one),
        _ => {
            let arrays: Vec<&dyn Array> = pieces.iter().map(|p| *p as &dyn Array).collect();
            estimate_cardinality(concatenate(&arrays)?.as_ref())
        }
    };
    Ok(rows > FEW_ROWS && estimate as f64 / rows as f64 > MOST_DISTINCT)
}

/// The keys' validity: none unless some row is null, as polars' cast gives it.
fn keys_validity(pieces: &[&Utf8ViewArray]) -> Option<Bitmap> {
    if pieces.iter().all(|p| p.null_count() == 0) {
        return None;
    }
    let mut validity = MutableBitmap::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        match piece.validity() {
            Some(v) => validity.extend_from_bitmap(v),
            None => validity.extend_constant(piece.len(), true),
        }
    }
    Some(validity.into())
}

/// Writes `group` as one row group through `batched`, with the options its `ParquetWriter`
/// gave it: each text column dictionary-encoded by [`dictionary`] (or plain), every other
/// column as polars encodes it; the columns encoded on polars' threads, as its writer does.
/// A group in several pieces is written as it would be in one: a text column's dictionary is
/// built across its pieces, and only a column written otherwise is first made one piece.
pub(super) fn write_group<W: Write>(
    batched: &mut BatchedWriter<W>,
    group: &DataFrame,
) -> PolarsResult<()> {
    let rows = group.height();
    if rows == 0 {
        return Ok(());
    }
    let fields = batched.parquet_schema().fields().to_vec();
    polars_ensure!(
        group.width() == fields.len(),
        ComputeError: "a row group of {} columns for a schema of {}",
        group.width(),
        fields.len()
    );
    // (The lock is this thread's alone: the writer is not shared.)
    let writer = batched.get_writer();
    let options = writer.lock().expect("the writer is not shared").options();
    let columns: Vec<_> = RAYON.install(|| {
        group
            .columns()
            .par_iter()
            .zip(&fields)
            .map(|(column, field)| column_pages(column.as_materialized_series(), field, options))
            .collect::<PolarsResult<Vec<_>>>()
    })?;
    let columns = columns.into_iter().flatten().map(Ok);
    let mut writer = writer.lock().expect("the writer is not shared");
    writer.write(rows as u64, DynIter::new(columns))?;
    Ok(())
}

/// A column's compressed pages, one stream per Parquet leaf column.
type Pages = DynStreamingIterator<'static, CompressedPage, PolarsError>;

/// Encodes one column of a row group: text with the dictionary built here (or plain), the
/// rest as polars' writer does (the column made one piece first).
fn column_pages(
    column: &Series,
    field: &ParquetType,
    options: WriteOptions,
) -> PolarsResult<Vec<Pages>> {
    let dict = match column.str() {
        Ok(text) => dictionary(&text.downcast_iter().collect::<Vec<_>>())?,
        Err(_) => None,
    };
    let encoded = match dict {
        Some(dict) => array_to_columns(
            dict.boxed(),
            field.clone(),
            options,
            &[Encoding::RleDictionary],
        )?,
        None => {
            let whole = column.rechunk().to_arrow(0, CompatLevel::newest());
            let encodings = match column.dtype() {
                DataType::String => vec![Encoding::Plain],
                _ => get_dtype_encoding(whole.dtype()),
            };
            array_to_columns(whole, field.clone(), options, &encodings)?
        }
    };
    Ok(encoded
        .into_iter()
        .map(|pages| {
            let pages = pages.map(|page| {
                page.map_err(|e| {
                    ParquetError::FeatureNotSupported(format!("reraised in polars: {e}"))
                })
            });
            DynStreamingIterator::new(
                Compressor::new_from_vec(pages, options.compression, vec![])
                    .map_err(PolarsError::from),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// polars' own dictionary of a text column: the second implementation.
    fn polars_dictionary(text: &Utf8ViewArray) -> DictionaryArray<u32> {
        let dtype = ArrowDataType::Dictionary(
            polars_arrow::datatypes::IntegerType::UInt32,
            Box::new(ArrowDataType::Utf8View),
            false,
        );
        let cast = polars::polars_compute::cast::cast(text, &dtype, Default::default()).unwrap();
        cast.as_any()
            .downcast_ref::<DictionaryArray<u32>>()
            .unwrap()
            .clone()
    }

    fn dict(text: &Utf8ViewArray) -> Option<DictionaryArray<u32>> {
        dictionary(&[text]).unwrap()
    }

    fn text(values: &[Option<&str>]) -> Utf8ViewArray {
        Utf8ViewArray::from_slice(values)
    }

    /// The keys of the non-null rows and the values, as plain vectors.
    fn parts(dict: &DictionaryArray<u32>) -> (Vec<Option<u32>>, Vec<String>) {
        let keys = dict.keys().iter().map(|k| k.copied()).collect();
        let values = dict
            .values()
            .as_any()
            .downcast_ref::<Utf8ViewArray>()
            .unwrap();
        (keys, values.values_iter().map(str::to_string).collect())
    }

    #[test]
    fn a_dictionary_holds_the_values_as_they_first_occur_as_polars_builds_it() {
        let long = "a value longer than twelve bytes";
        let longer = "a value longer than twelve bytes, and more";
        let rows = [
            Some("2026-10"),
            Some("2026-10"),
            None,
            Some(long),
            Some("EUR"),
            Some(long),
            Some(""),
            Some("2026-10"),
            Some(longer),
            None,
            Some("EUR"),
            Some(""),
        ];
        let ours = dict(&text(&rows)).unwrap();
        assert_eq!(parts(&ours), parts(&polars_dictionary(&text(&rows))));
        let (keys, values) = parts(&ours);
        assert_eq!(values, ["2026-10", long, "EUR", "", longer]);
        assert_eq!(keys[..4], [Some(0), Some(0), None, Some(1)]);
        assert_eq!(ours.keys().null_count(), 2);
        // Long values equal in text but apart in memory are one value.
        let apart = Utf8ViewArray::from_slice_values([long, long]);
        assert_eq!(parts(&dict(&apart).unwrap()).1, [long]);
        // A column without nulls has keys without a validity, as polars' has.
        let whole = dict(&text(&[Some("a"), Some("b")])).unwrap();
        assert!(whole.keys().validity().is_none());
        assert!(dict(&text(&[])).unwrap().is_empty());
    }

    #[test]
    fn many_values_short_and_long_are_found_as_few_are() {
        // 40 values, half past 12 bytes (found by view and by text), in a cycle with runs and
        // nulls.
        let rows: Vec<Option<String>> = (0..1_000)
            .map(|i| {
                let v = (i / 2 * 7) % 40;
                (i % 11 != 0).then(|| match v % 2 {
                    0 => format!("P{v:04}"),
                    _ => format!("a longer value, number {v}"),
                })
            })
            .collect();
        let rows: Vec<Option<&str>> = rows.iter().map(|r| r.as_deref()).collect();
        let column = text(&rows);
        let ours = dict(&column).unwrap();
        assert_eq!(ours.values().len(), 40);
        assert_eq!(parts(&ours), parts(&polars_dictionary(&column)));
    }

    #[test]
    fn a_column_of_mostly_distinct_values_has_no_dictionary_past_128_rows() {
        let distinct: Vec<String> = (0..200).map(|i| format!("INV-{i:09}")).collect();
        let all = Utf8ViewArray::from_slice_values(&distinct);
        assert!(dict(&all).is_none());
        // At most 128 rows: a dictionary whatever the values.
        let few = Utf8ViewArray::from_slice_values(&distinct[..128]);
        assert_eq!(dict(&few).unwrap().values().len(), 128);
        let mut rows: Vec<String> = distinct.clone();
        rows.extend(vec!["same".to_string(); 100]);
        assert!(dict(&Utf8ViewArray::from_slice_values(&rows)).is_some());
    }

    /// Whether polars' writer gives `column` a dictionary: its own rule, by its estimate.
    fn polars_gives_a_dictionary(column: &Utf8ViewArray) -> bool {
        let estimate = estimate_cardinality(column) as f64;
        column.len() <= FEW_ROWS || estimate / column.len() as f64 <= MOST_DISTINCT
    }

    #[test]
    fn near_three_in_four_distinct_the_column_is_decided_as_polars_decides() {
        // 400 rows, of which 280 to 320 distinct, with and without nulls (which polars'
        // estimate counts as one more value, the empty one) and with the empty value.
        let mut decisions = [0, 0];
        for distinct in 280..=320 {
            for nulls in [0, 20] {
                let mut rows: Vec<Option<String>> =
                    (0..distinct).map(|i| Some(format!("v{i}"))).collect();
                rows.resize(400 - nulls, Some("v0".to_string()));
                rows.resize(400, None);
                let rows: Vec<Option<&str>> = rows.iter().map(|r| r.as_deref()).collect();
                let column = text(&rows);
                let ours = dict(&column).is_some();
                assert_eq!(
                    ours,
                    polars_gives_a_dictionary(&column),
                    "{distinct} {nulls}"
                );
                decisions[usize::from(ours)] += 1;
            }
        }
        // (Both answers occur in the range.)
        assert!(decisions[0] > 0 && decisions[1] > 0, "{decisions:?}");
    }

    #[test]
    fn a_column_that_starts_distinct_is_decided_by_polars_estimate() {
        // Distinct throughout: plain, without hashing most of it.
        let distinct: Vec<String> = (0..280_000).map(|i| format!("INV-{i:09}")).collect();
        assert!(dict(&Utf8ViewArray::from_slice_values(&distinct)).is_none());
        // Distinct for its first 70,000 rows, then one value: the estimate of the whole column
        // decides, and it is a dictionary, as polars builds it.
        let mut rows = distinct[..70_000].to_vec();
        rows.resize(280_000, "INV-000000007".to_string());
        let column = Utf8ViewArray::from_slice_values(&rows);
        let ours = dict(&column).unwrap();
        assert_eq!(ours.values().len(), 70_000);
        assert_eq!(parts(&ours), parts(&polars_dictionary(&column)));
    }

    #[test]
    fn pieces_with_and_without_nulls_keep_their_nulls() {
        let whole = text(&[Some("a"), Some("b")]);
        let holed = text(&[None, Some("b"), None, Some("c")]);
        assert!(whole.validity().is_none());
        let ours = dictionary(&[&whole, &holed]).unwrap().unwrap();
        let one = text(&[Some("a"), Some("b"), None, Some("b"), None, Some("c")]);
        assert_eq!(parts(&ours), parts(&polars_dictionary(&one)));
        assert_eq!(ours.keys().null_count(), 2);
    }

    #[test]
    fn a_column_in_pieces_of_its_own_is_decided_by_the_estimate_of_them_all() {
        // Two frames built apart, each of 40,000 distinct invoice numbers (past the sample
        // rows together): plain, as polars writes the same rows in one piece.
        let frame = |from: usize| {
            let numbers: Vec<String> = (from..from + 40_000)
                .map(|i| format!("INV-{i:09}"))
                .collect();
            let kinds: Vec<&str> = (0..40_000)
                .map(|i| ["Invoice", "Credit Note"][i % 2])
                .collect();
            df!("invoice_number" => numbers, "document_type" => kinds).unwrap()
        };
        let mut pieces = frame(0);
        pieces.vstack_mut_owned(frame(40_000)).unwrap();
        assert_eq!(pieces.first_col_n_chunks(), 2);
        let numbers = pieces.column("invoice_number").unwrap().str().unwrap();
        let arrays: Vec<&Utf8ViewArray> = numbers.downcast_iter().collect();
        assert!(dictionary(&arrays).unwrap().is_none());
        assert_written_as_polars_writes(&pieces);
    }

    /// A frame written with `write` through a batched `ParquetWriter`, as bytes.
    fn file_of(df: &DataFrame, ours: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        let parquet = ParquetWriter::new(&mut bytes).with_compression(ParquetCompression::Lz4Raw);
        let mut batched = parquet.batched(df.schema()).unwrap();
        if ours {
            write_group(&mut batched, df).unwrap();
        } else {
            batched.write_batch(df).unwrap();
        }
        batched.finish().unwrap();
        bytes
    }

    /// Writes `df` as one row group both ways (polars' from `df` made one piece): the same
    /// bytes, and the same rows read back.
    fn assert_written_as_polars_writes(df: &DataFrame) {
        let ours = file_of(df, true);
        let mut whole = df.clone();
        whole.rechunk_mut_par();
        assert_eq!(ours, file_of(&whole, false));
        let back = ParquetReader::new(std::io::Cursor::new(ours))
            .finish()
            .unwrap();
        assert!(back.equals_missing(df));
    }

    /// `n` rows of the kinds of columns the ledger holds.
    fn ledger_like(n: usize) -> DataFrame {
        let file: Vec<&str> = vec!["extracts/2026-10/emea.csv"; n];
        let partner: Vec<String> = (0..n).map(|i| format!("P{:05}", i % 37)).collect();
        let omlp: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 5 {
                0 => None,
                1 => Some("Official Microsoft Learning Product courseware"),
                2 => Some("Microsoft Official Practice Test"),
                3 => Some(""),
                _ => Some("Exam voucher"),
            })
            .collect();
        let invoice: Vec<String> = (0..n).map(|i| format!("INV-{i:09}")).collect();
        let amount: Vec<i64> = (0..n as i64).map(|i| i * 7 - 300).collect();
        let df = df!(
            "source_file" => file,
            "source_row" => (2..n as u32 + 2).collect::<Vec<_>>(),
            "partner_id" => partner,
            "omlp_type" => omlp,
            "invoice_number" => invoice,
            "amount" => amount,
            "reason" => vec![None::<&str>; n],
        )
        .unwrap();
        let mut df = df
            .lazy()
            .with_column(col("amount").cast(DataType::Decimal(38, 4)))
            .collect()
            .unwrap();
        df.rechunk_mut_par();
        df
    }

    #[test]
    fn a_row_group_is_written_byte_for_byte_as_polars_writes_it() {
        // Text of few values, short and long, empty and null; mostly distinct text (plain);
        // numbers, decimals; a column of nulls alone.
        let df = ledger_like(5_000);
        assert_written_as_polars_writes(&df);
        // A slice that starts inside its chunk.
        assert_written_as_polars_writes(&df.slice(1_234, 2_000));
        // The rows with a type, filtered: a text column whose validity has no null.
        let typed = df
            .filter(&df.column("omlp_type").unwrap().is_not_null())
            .unwrap();
        let omlp = typed.column("omlp_type").unwrap().str().unwrap();
        let validity = omlp.downcast_iter().next().unwrap().validity();
        assert!(validity.is_some_and(|v| v.unset_bits() == 0));
        assert_written_as_polars_writes(&typed);
        // Keys on several pages.
        assert_written_as_polars_writes(&ledger_like(300_000));
    }

    #[test]
    fn a_row_group_in_pieces_is_written_as_in_one() {
        let df = ledger_like(5_000);
        let mut pieces = df.slice(0, 1);
        for (start, len) in [(1, 999), (1_000, 1), (1_001, 2_500), (3_501, 1_499)] {
            pieces.vstack_mut_owned(df.slice(start, len)).unwrap();
        }
        assert_eq!(pieces.first_col_n_chunks(), 5);
        assert_written_as_polars_writes(&pieces);
        // Pieces of arrays of their own: their views of long values can be alike (the same
        // length, first bytes and place in each one's buffer) with values that differ.
        let first = Utf8ViewArray::from_slice_values(["INV-000000001"]);
        let second = Utf8ViewArray::from_slice_values(["INV-000000002", "INV-000000001"]);
        assert_eq!(first.views()[0].as_u128(), second.views()[0].as_u128());
        let (keys, values) = parts(&dictionary(&[&first, &second]).unwrap().unwrap());
        assert_eq!(values, ["INV-000000001", "INV-000000002"]);
        assert_eq!(keys, [Some(0), Some(1), Some(0)]);
        // A text column in pieces has one dictionary across them.
        let column = pieces.column("omlp_type").unwrap().str().unwrap();
        let dictionary = dictionary(&column.downcast_iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(dictionary.unwrap().values().len(), 4);
    }
}

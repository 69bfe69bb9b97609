//! The files of one ledger partition on disk: reading and writing its metadata, its asks and
//! its Parquet files, linking them into a staged partition, hashing and parsing a delivery's
//! files, and finding what a delivery's published partition holds.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;
use tracing::warn;

use super::plan::{Found, KeptAsks};
use super::{
    partition_rel, Context, DeliveryInput, PartitionMeta, SourceFile, ACCEPTED, ASKS, FORMAT, META,
    PARSED, REJECTED,
};
use crate::calendar::Month;
use crate::digest::HashingWriter;
use crate::error::{Error, Result};
use crate::ingest::extract::{self, Parsed};
use crate::ingest::judge::LookupKeys;

/// Links an immutable partition file into a new partition (a copy where links cannot be made).
pub(super) fn link(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(|_| ()))
        .map_err(|e| Error::write(to, e))
}

/// Writes `value` as JSON to `dir/name`; returns the SHA-256 of the bytes written.
pub(super) fn write_json(value: &impl Serialize, dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::internal(name, e))?;
    std::fs::write(&path, &text).map_err(|e| Error::write(&path, e))?;
    Ok(crate::digest::sha256_bytes(&text))
}

fn read_asks(dir: &Path) -> Option<LookupKeys> {
    // (Regular files only: a FIFO planted in the ledger must not block the run.)
    serde_json::from_slice(&crate::source::read(&dir.join(ASKS)).ok()?.bytes).ok()
}

/// The keys digest after a partition that accepted `accepted`: SHA-256 of the previous digest
/// and each accepted (`invoice_number`, `invoice_line`) in order, the number preceded by its
/// length.
pub(super) fn keys_digest(earlier: Option<&str>, accepted: &DataFrame) -> PolarsResult<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(earlier.unwrap_or("").as_bytes());
    let numbers = accepted.column("invoice_number")?.str()?;
    let lines = accepted.column("invoice_line")?.i64()?;
    for (number, line) in numbers.iter().zip(lines.iter()) {
        let number = number.unwrap_or("").as_bytes();
        hasher.update((number.len() as u64).to_le_bytes());
        hasher.update(number);
        hasher.update(line.unwrap_or(0).to_le_bytes());
    }
    Ok(crate::digest::hex(&hasher.finalize()))
}

fn read_meta(dir: &Path) -> Option<PartitionMeta> {
    let text = crate::source::read(&dir.join(META)).ok()?.bytes;
    let meta: PartitionMeta = serde_json::from_slice(&text).ok()?;
    // (Files this format added are checked with the others once the format is known to be
    // this one: an older partition is rebuilt quietly, for its format.)
    let complete = [PARSED, ACCEPTED, REJECTED]
        .iter()
        .all(|f| dir.join(f).is_file());
    complete.then_some(meta)
}

/// Writes `df` as Parquet to `path`; returns the SHA-256 of the bytes written.
pub(super) fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<String> {
    write_parquet_as(df, path, RowGroups::Even)
}

/// How a frame's rows are cut into Parquet row groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowGroups {
    /// polars' even cut (its chunks are first made one, which copies every column).
    Even,
    /// One row group per chunk, as they are, when every chunk but the last holds at least
    /// [`CHUNK_ROW_GROUP_MIN`] rows and the columns are cut alike; polars' even cut otherwise.
    /// For parsed rows, whose chunks are the delivery's files: no column is copied to be
    /// written.
    Chunks,
}

/// The fewest rows a chunk written as a row group of its own may hold (a delivery of many
/// small files is written in polars' even cut instead).
const CHUNK_ROW_GROUP_MIN: usize = 1 << 16;

/// Whether `df`'s chunks can be written as row groups as they are (see [`RowGroups::Chunks`]).
fn chunks_as_row_groups(df: &DataFrame) -> bool {
    let Some(first) = df.columns().first() else {
        return false;
    };
    let lengths: Vec<usize> = first.as_materialized_series().chunk_lengths().collect();
    lengths.len() > 1
        && lengths[..lengths.len() - 1]
            .iter()
            .all(|&n| n >= CHUNK_ROW_GROUP_MIN)
        && df.columns().iter().all(|c| {
            c.as_materialized_series()
                .chunk_lengths()
                .eq(lengths.iter().copied())
        })
}

/// Writes `df` as Parquet to `path`, cut into row groups as `groups` says; returns the
/// SHA-256 of the bytes written.
pub(super) fn write_parquet_as(
    df: &mut DataFrame,
    path: &Path,
    groups: RowGroups,
) -> Result<String> {
    let file = File::create(path).map_err(|e| Error::write(path, e))?;
    let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let parquet = ParquetWriter::new(&mut writer).with_compression(ParquetCompression::Lz4Raw);
    if groups == RowGroups::Chunks && chunks_as_row_groups(df) {
        parquet.batched(df.schema()).and_then(|mut batched| {
            batched.write_batch(df)?;
            batched.finish()
        })
    } else {
        parquet.finish(df)
    }
    .map_err(|e| Error::write(path, std::io::Error::other(e.to_string())))?;
    let (file, digest) = writer.finish();
    file.into_inner()
        .map_err(|e| Error::write(path, e.into_error()))?;
    Ok(digest)
}

pub(super) fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(PlRefPath::try_from_path(path)?, ScanArgsParquet::default())
}

/// `work` applied to each file by a bounded pool of threads, results in the files' order.
fn per_file<T: Send>(
    paths: &[PathBuf],
    work: impl Fn(&PathBuf) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    crate::pool::map(paths, work)
}

/// SHA-256 of each file of a delivery.
fn hash_files(paths: &[PathBuf]) -> Result<Vec<SourceFile>> {
    per_file(paths, |path| {
        let sha256 = crate::source::digest_file(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SourceFile {
            name,
            sha256,
            rows: 0,
        })
    })
}

/// Parses a delivery's files into one frame in file-name order.
pub(super) fn parse_files(input: &DeliveryInput) -> Result<(DataFrame, Vec<extract::FileRead>)> {
    let (frames, reads) = per_file(&input.files, |path| Parsed::read_file(path, input.month))?
        .into_iter()
        .unzip();
    Ok((extract::concat_files(frames)?, reads))
}

/// A delivery's files as found (their SHA-256) and its published partition's metadata, when
/// that partition is complete, of this [`FORMAT`] and checked.
pub(super) fn find(output: &Path, input: &DeliveryInput) -> Result<Found> {
    let files = hash_files(&input.files)?;
    let published = output.join(partition_rel(input.month));
    let meta = read_meta(&published);
    if meta.is_none() && std::fs::symlink_metadata(&published).is_ok() {
        warn!(delivery = %input.month, "ledger: the published partition is not trusted (its metadata or a file is missing, unreadable or not a regular file); it is judged again from its delivery");
    }
    let existing = meta
        .filter(|m| m.format == FORMAT)
        .filter(|m| match crate::partition_check::verify(&published, m) {
            None => true,
            Some(why) => {
                warn!(delivery = %input.month, "ledger: the published partition is not trusted ({why}); it is judged again from its delivery");
                false
            }
        });
    Ok(Found::new(files, existing))
}

/// What the published partition's rows ask of the lookups, with this run's answers, for a
/// partition parsed from the very files found.
pub(super) fn kept_asks(ctx: &Context, month: Month, found: &Found) -> Option<KeptAsks> {
    if !found.same_files {
        return None;
    }
    let asks = read_asks(&ctx.output.join(partition_rel(month)))?;
    Some(KeptAsks {
        answers: ctx.lookups.answers_digest(&asks),
        rules: ctx.lookups.rules_digest(&asks),
        asks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `chunks` chunks of the given lengths, every column cut alike.
    fn chunked(lengths: &[usize]) -> DataFrame {
        let mut all: Option<DataFrame> = None;
        let mut start = 0u32;
        for &n in lengths {
            let seq: Vec<u32> = (start..start + n as u32).collect();
            let text: Vec<String> = seq.iter().map(|i| format!("invoice-{i}")).collect();
            let part = df!("seq" => seq, "text" => text).unwrap();
            start += n as u32;
            match all.as_mut() {
                Some(all) => {
                    all.vstack_mut_owned(part).unwrap();
                }
                None => all = Some(part),
            }
        }
        all.unwrap()
    }

    /// Writes `df` as `groups` says and reads back its row groups' lengths and its rows.
    fn written(mut df: DataFrame, groups: RowGroups) -> (Vec<usize>, DataFrame) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        let digest = write_parquet_as(&mut df, &path, groups).unwrap();
        assert_eq!(digest, crate::digest::sha256_file(&path).unwrap());
        let mut reader = ParquetReader::new(File::open(&path).unwrap());
        let lengths = reader
            .get_metadata()
            .unwrap()
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect();
        (lengths, reader.finish().unwrap())
    }

    #[test]
    fn chunks_of_parsed_files_are_written_as_row_groups_as_they_are() {
        let lengths = [CHUNK_ROW_GROUP_MIN, CHUNK_ROW_GROUP_MIN + 5, 7];
        let df = chunked(&lengths);
        let (groups, back) = written(df.clone(), RowGroups::Chunks);
        assert_eq!(groups, lengths);
        assert!(back.equals(&df));
        // The even cut puts the same rows in one row group.
        let (groups, back) = written(df.clone(), RowGroups::Even);
        assert_eq!(groups, [lengths.iter().sum::<usize>()]);
        assert!(back.equals(&df));
    }

    #[test]
    fn small_or_unaligned_chunks_are_cut_evenly() {
        // A small chunk before the last: the even cut.
        let df = chunked(&[7, CHUNK_ROW_GROUP_MIN]);
        assert!(!chunks_as_row_groups(&df));
        let (groups, back) = written(df.clone(), RowGroups::Chunks);
        assert_eq!(groups, [CHUNK_ROW_GROUP_MIN + 7]);
        assert!(back.equals(&df));
        // Columns cut differently: the even cut.
        let mut df = chunked(&[CHUNK_ROW_GROUP_MIN, CHUNK_ROW_GROUP_MIN]);
        let seq: Vec<u32> = (0..2 * CHUNK_ROW_GROUP_MIN as u32).collect();
        df.with_column(Column::new("seq".into(), seq)).unwrap();
        assert!(!chunks_as_row_groups(&df));
        // One chunk: nothing to keep.
        assert!(!chunks_as_row_groups(&chunked(&[CHUNK_ROW_GROUP_MIN])));
    }
}

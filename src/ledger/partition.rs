//! The files of one ledger partition on disk: reading and writing its metadata, its asks and
//! its Parquet files, linking them into a staged partition (sealed there when its rows stand
//! as published), hashing and parsing a delivery's files, and finding what a delivery's
//! published partition holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;
use tracing::warn;

use super::plan::{Found, KeptAsks};
use super::{
    partition_rel, Context, DeliveryInput, PartitionMeta, SourceFile, ACCEPTED, ASKS, FORMAT, META,
    PARSED, REJECTED, SUMS,
};
use crate::calendar::Month;
use crate::digest::{Digests, HashingWriter};
use crate::error::{Error, Result};
use crate::ingest::extract::{self, Parsed};
use crate::ingest::judge::LookupKeys;
use crate::partition_check::recorded;

/// Links an immutable partition file into a new partition (a copy where links cannot be made).
pub(super) fn link(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(|_| ()))
        .map_err(|e| Error::write(to, e))
}

/// The files of a partition written from its judgement (the others, its kept rows and asks,
/// are written or linked before).
pub(super) const JUDGED_FILES: [&str; 3] = [ACCEPTED, REJECTED, SUMS];

/// Links the published partition's `files` into `dir`, with the digests recorded for them
/// (`own`, checked when the partition was found), then seals `meta` with those and the
/// digests `known` of the files written here, and writes it: a partition whose rows stand as
/// published (carried over, or judged again by difference with no row changed).
pub(super) fn link_sealed(
    published: &Path,
    dir: &Path,
    files: &[&str],
    own: &BTreeMap<String, Digests>,
    mut known: BTreeMap<String, Digests>,
    mut meta: PartitionMeta,
) -> Result<PartitionMeta> {
    for name in files {
        link(&published.join(name), &dir.join(name))?;
        if let Some(digest) = own.get(*name) {
            known.insert(name.to_string(), digest.clone());
        }
    }
    crate::partition_check::seal(dir, &mut meta, known)?;
    write_json(&meta, dir, META)?;
    Ok(meta)
}

/// Links the published partition's kept rows into `dir`, with the rows of each file; returns
/// their file's digests as recorded (and checked when the partition was found).
pub(super) fn kept_rows(
    published: &Path,
    dir: &Path,
    files: &mut [SourceFile],
    existing: Option<&PartitionMeta>,
) -> Result<Option<Digests>> {
    link(&published.join(PARSED), &dir.join(PARSED))?;
    let existing = existing.expect("same files");
    for (f, old) in files.iter_mut().zip(&existing.files) {
        f.rows = old.rows;
    }
    Ok(recorded(existing).remove(PARSED))
}

/// Writes `value` as JSON to `dir/name`; returns the digests of the bytes written.
pub(super) fn write_json(value: &impl Serialize, dir: &Path, name: &str) -> Result<Digests> {
    let path = dir.join(name);
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::internal(name, e))?;
    std::fs::write(&path, &text).map_err(|e| Error::write(&path, e))?;
    Ok(Digests::of_bytes(&text))
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

/// Writes `df` as Parquet to `path` in polars' even cut; returns the digests of the bytes written.
pub(super) fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<Digests> {
    write_parquet_as(df, path, RowGroups::Even)
}

/// How a frame's rows are cut into Parquet row groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowGroups {
    /// polars' even cut (of the frame made one chunk first, which copies every column: for
    /// the small files, sums and rejected rows).
    Even,
    /// By source file (see [`file_groups`]): a cut that follows from the rows alone, however
    /// the frame is chunked. A group is written as it is, in however many pieces: its text
    /// columns' dictionaries are built across the pieces, and only its other columns are
    /// copied into one piece when they are in several (see `pages.rs`).
    Files,
}

/// The fewest rows a row group cut by file holds, when more rows follow: the rows of small
/// files are gathered into one group until it holds this many.
const FILE_GROUP_MIN: usize = 1 << 16;

/// The most rows a row group cut by file holds: a group that reaches it is closed, within a
/// file if need be.
const FILE_GROUP_MAX: usize = 1 << 20;

/// The row groups of `df` cut by file, as (first row, rows): runs of rows with the same
/// `source_file`, gathered until a group holds [`FILE_GROUP_MIN`] rows, no group holding more
/// than [`FILE_GROUP_MAX`]. None without a `source_file` column of text.
fn file_groups(df: &DataFrame) -> Option<Vec<(usize, usize)>> {
    let files = df.column("source_file").ok()?.str().ok()?;
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let (mut start, mut len) = (0, 0);
    let mut last: Option<Option<&str>> = None;
    for (row, file) in files.iter().enumerate() {
        let new_file = last.is_some_and(|f| f != file);
        if (new_file && len >= FILE_GROUP_MIN) || len == FILE_GROUP_MAX {
            groups.push((start, len));
            (start, len) = (row, 0);
        }
        last = Some(file);
        len += 1;
    }
    if len > 0 {
        groups.push((start, len));
    }
    Some(groups)
}

/// Writes `df` as Parquet to `path`, cut into row groups as `groups` says; returns the
/// digests of the bytes written.
pub(super) fn write_parquet_as(
    df: &mut DataFrame,
    path: &Path,
    groups: RowGroups,
) -> Result<Digests> {
    let file = File::create(path).map_err(|e| Error::write(path, e))?;
    let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let parquet = ParquetWriter::new(&mut writer).with_compression(ParquetCompression::Lz4Raw);
    match (groups == RowGroups::Files)
        .then(|| file_groups(df))
        .flatten()
    {
        Some(cut) => parquet.batched(df.schema()).and_then(|mut batched| {
            for (start, len) in cut {
                // (A group in several pieces is written as in one, without first being copied
                // into one: see pages.rs.)
                super::pages::write_group(&mut batched, &df.slice(start as i64, len))?;
            }
            batched.finish()
        }),
        // (Made one piece first: polars' cut follows the pieces it is given, and the rows
        // alone should decide the file, as for a cut by file.)
        None => {
            df.rechunk_mut_par();
            parquet.finish(df)
        }
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

/// SHA-256 of each file of a delivery. A file the checked partition `published` was parsed
/// from under the same name, with its BLAKE3 recorded, is checked by BLAKE3 alone: when it
/// matches, the recorded SHA-256 is the file's (the same bytes); otherwise its SHA-256 is
/// computed too. Any other file is checked by its SHA-256 (a partition written before BLAKE3
/// was recorded gains it when its delivery is next parsed).
fn hash_files(paths: &[PathBuf], published: Option<&PartitionMeta>) -> Result<Vec<SourceFile>> {
    // (By name, looked up once per file: a delivery may hold tens of thousands of files.)
    let record: std::collections::HashMap<&str, (&str, &str)> = (published.iter())
        .flat_map(|meta| &meta.files)
        .filter_map(|f| Some((f.name.as_str(), (f.blake3.as_deref()?, f.sha256.as_str()))))
        .collect();
    let on_record = |name: &str| record.get(name).copied();
    per_file(paths, |path| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (sha256, blake3) = match on_record(&name) {
            Some((blake3, sha256)) => {
                let found = crate::source::blake3_file(path)?;
                if found == blake3 {
                    (sha256.to_string(), Some(found))
                } else {
                    (crate::source::digest_file(path)?, None)
                }
            }
            None => (crate::source::digest_file(path)?, None),
        };
        Ok(SourceFile {
            name,
            sha256,
            rows: 0,
            blake3,
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
    let files = hash_files(&input.files, existing.as_ref())?;
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

    #[test]
    fn a_file_recorded_with_its_blake3_is_checked_by_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&a, "the bytes a partition was parsed from").unwrap();
        std::fs::write(&b, "other bytes").unwrap();
        let digests = |path: &Path| crate::source::digests_file(path).unwrap();
        let mut meta = PartitionMeta::example();
        // (A SHA-256 no file has: it can only come from the record.)
        // (b.csv's record first, of other bytes: a file is found in the record by its name.)
        meta.files = vec![
            SourceFile {
                name: "b.csv".into(),
                sha256: "b's record".into(),
                rows: 1,
                blake3: Some("not b's bytes".into()),
            },
            SourceFile {
                name: "a.csv".into(),
                sha256: "recorded".into(),
                rows: 1,
                blake3: Some(digests(&a).blake3),
            },
        ];
        let found = |meta: Option<&PartitionMeta>| -> Vec<(String, Option<String>)> {
            hash_files(&[a.clone(), b.clone()], meta)
                .unwrap()
                .into_iter()
                .map(|f| (f.sha256, f.blake3))
                .collect()
        };
        // a.csv matches its record; b.csv does not match its own: its SHA-256.
        assert_eq!(
            found(Some(&meta)),
            [
                ("recorded".to_string(), Some(digests(&a).blake3)),
                (digests(&b).sha256, None),
            ]
        );
        // With no partition, the SHA-256 alone (the delivery is parsed, and hashed as read).
        assert_eq!(found(None)[0], (digests(&a).sha256, None));
        // A changed file: its own SHA-256, whatever was recorded.
        std::fs::write(&a, "changed bytes").unwrap();
        assert_eq!(found(Some(&meta))[0], (digests(&a).sha256, None));
        // A partition that recorded no BLAKE3: checked by SHA-256.
        meta.files[1].blake3 = None;
        assert_eq!(found(Some(&meta))[0], (digests(&a).sha256, None));
    }

    /// A frame of one chunk per file, of the given lengths, every column cut alike: `seq`,
    /// `source_file` (file-0, file-1, ...) and some text.
    fn chunked(lengths: &[usize]) -> DataFrame {
        let mut all: Option<DataFrame> = None;
        let mut start = 0u32;
        for (file, &n) in lengths.iter().enumerate() {
            let seq: Vec<u32> = (start..start + n as u32).collect();
            let text: Vec<String> = seq.iter().map(|i| format!("invoice-{i}")).collect();
            let files = vec![format!("file-{file}"); n];
            let part = df!("seq" => seq, "source_file" => files, "text" => text).unwrap();
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

    /// Writes `df` as `groups` says; returns the file's bytes, its row groups' lengths and its
    /// rows read back.
    fn written(mut df: DataFrame, groups: RowGroups) -> (Vec<u8>, Vec<usize>, DataFrame) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        let digest = write_parquet_as(&mut df, &path, groups).unwrap();
        assert_eq!(digest.sha256, crate::digest::sha256_file(&path).unwrap());
        assert_eq!(digest, crate::source::digests_file(&path).unwrap());
        let mut reader = ParquetReader::new(File::open(&path).unwrap());
        let lengths = reader
            .get_metadata()
            .unwrap()
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect();
        let back = reader.finish().unwrap();
        (std::fs::read(&path).unwrap(), lengths, back)
    }

    #[test]
    fn rows_are_grouped_by_file_with_small_files_gathered_and_large_ones_cut() {
        let groups = |lengths: &[usize]| file_groups(&chunked(lengths)).unwrap();
        let (min, max) = (FILE_GROUP_MIN, FILE_GROUP_MAX);
        assert_eq!(
            groups(&[min, min + 5, 7]),
            [(0, min), (min, min + 5), (2 * min + 5, 7)]
        );
        // Small files are gathered until a group holds the fewest rows.
        assert_eq!(groups(&[7, 3, min, 2]), [(0, min + 10), (min + 10, 2)]);
        assert_eq!(groups(&[5]), [(0, 5)]);
        // A large file is cut every FILE_GROUP_MAX rows.
        assert_eq!(groups(&[2 * max + 3]), [(0, max), (max, max), (2 * max, 3)]);
        assert!(file_groups(&chunked(&[5]).clear()).unwrap().is_empty());
        assert!(file_groups(&df!("seq" => [1u32]).unwrap()).is_none());
    }

    #[test]
    fn an_even_cut_follows_from_the_rows_not_from_their_chunks() {
        // Past polars' 262,144 rows a group, in pieces of every size.
        let pieces = chunked(&[7, 262_140, 1, 37_852]);
        assert_eq!(pieces.first_col_n_chunks(), 4);
        let mut whole = pieces.clone();
        whole.rechunk_mut_par();
        let (bytes, groups, back) = written(pieces, RowGroups::Even);
        let (whole_bytes, whole_groups, _) = written(whole.clone(), RowGroups::Even);
        assert_eq!(groups, whole_groups);
        assert_eq!(bytes, whole_bytes);
        assert!(back.equals(&whole));
    }

    #[test]
    fn a_file_cut_follows_from_the_rows_not_from_their_chunks() {
        let lengths = [FILE_GROUP_MIN, FILE_GROUP_MIN + 5, 3, 4];
        let mut by_file = chunked(&lengths);
        // A column of one value for all rows (as the delivery's name is) is cut as well.
        let delivery = Scalar::new(DataType::String, "2026-10".into());
        let delivery = Column::new_scalar("delivery".into(), delivery, by_file.height());
        by_file.with_column(delivery).unwrap();
        let mut one_chunk = by_file.clone();
        one_chunk.rechunk_mut_par();
        assert_eq!(one_chunk.first_col_n_chunks(), 1);
        let (bytes, groups, back) = written(by_file.clone(), RowGroups::Files);
        assert_eq!(groups, [FILE_GROUP_MIN, FILE_GROUP_MIN + 5, 7]);
        assert!(back.equals(&by_file));
        // The same rows in one chunk: the same bytes.
        let (same, _, _) = written(one_chunk, RowGroups::Files);
        assert!(bytes == same);
        // The even cut puts them in one row group.
        let (_, groups, back) = written(by_file.clone(), RowGroups::Even);
        assert_eq!(groups, [lengths.iter().sum::<usize>()]);
        assert!(back.equals(&by_file));
        // Without a source file: the even cut.
        let mut no_file = by_file.clone();
        let _ = no_file.drop_in_place("source_file").unwrap();
        let (_, groups, _) = written(no_file, RowGroups::Files);
        assert_eq!(groups, [lengths.iter().sum::<usize>()]);
    }
}

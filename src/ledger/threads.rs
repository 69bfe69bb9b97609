//! The ledger's two helper threads, scoped to one [`super::update`]: the read-ahead, which
//! reads the deliveries to judge and prepares their verdicts one delivery ahead of the
//! judging; and the writer, which writes a judged partition's files while the next delivery is
//! judged (that needs only the keys, kept in memory).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::{Scope, ScopedJoinHandle};

use polars::prelude::{DataFrame, IntoLazy};

use super::partition::{write_json, write_parquet, write_parquet_as, RowGroups};
use super::{PartitionMeta, ACCEPTED, META, PARSED, REJECTED, SUMS};
use crate::error::{Error, Result};
use crate::ingest::judge::Judged;

/// Runs `judge` while `read` reads each of `jobs`, in order, on a thread of its own. The
/// channel is a rendezvous: at most one read delivery waits for the judging. A failed read is
/// the last one sent; when the judging stops (an error of its own), nothing more is read.
pub(super) fn with_read_ahead<J: Send, R: Send, T>(
    jobs: Vec<J>,
    read: impl Fn(J) -> Result<R> + Send,
    judge: impl FnOnce(&Receiver<Result<R>>) -> T,
) -> T {
    std::thread::scope(|s| {
        let (ahead_tx, ahead_rx) = sync_channel(0);
        s.spawn(move || {
            for job in jobs {
                let read = read(job);
                let failed = read.is_err();
                if ahead_tx.send(read).is_err() || failed {
                    break;
                }
            }
        });
        judge(&ahead_rx)
    })
}

/// The next delivery read ahead.
pub(super) fn next_read<R>(ahead: &Receiver<Result<R>>) -> Result<R> {
    ahead
        .recv()
        .map_err(|e| Error::internal("reading deliveries", e))?
}

/// Newly parsed rows being kept on a thread of their own: the digest of their file, once
/// written.
pub(super) type Keeping<'scope> = ScopedJoinHandle<'scope, Result<String>>;

/// A partition's files being written on a thread of their own: its sealed metadata, once
/// written.
type Writing<'scope> = ScopedJoinHandle<'scope, Result<PartitionMeta>>;

/// Waits for a write; a panic in it is an internal error, not a panic of the run.
fn finish<T>(writing: ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    writing
        .join()
        .map_err(|_| Error::internal("writing a ledger partition", "the writer panicked"))?
}

/// Writes judged partitions on threads of `scope`, at most one partition at a time.
pub(super) struct Writer<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    writing: Option<Writing<'scope>>,
}

impl<'scope, 'env> Writer<'scope, 'env> {
    pub fn new(scope: &'scope Scope<'scope, 'env>) -> Self {
        Writer {
            scope,
            writing: None,
        }
    }

    /// Keeps newly parsed rows (`parsed.parquet`) while they are judged.
    pub fn keep_parsed(&self, mut parsed: DataFrame, path: PathBuf) -> Keeping<'scope> {
        self.scope
            .spawn(move || write_parquet_as(&mut parsed, &path, RowGroups::Files))
    }

    /// Writes a judged partition's files into `dir` (its accepted lines' month sums among
    /// them) once its parsed rows are kept and the previous partition is written, then seals
    /// its metadata with the digests of the bytes written and those `known` (files written or
    /// checked before). Returns the previous partition's sealed metadata.
    pub fn write(
        &mut self,
        keeping: Option<Keeping<'scope>>,
        mut judged: Judged,
        mut meta: PartitionMeta,
        dir: PathBuf,
        mut known: BTreeMap<String, String>,
    ) -> Result<Option<PartitionMeta>> {
        let previous = self.writing.take().map(finish).transpose()?;
        self.writing = Some(self.scope.spawn(move || {
            if let Some(keeping) = keeping {
                known.insert(PARSED.into(), finish(keeping)?);
            }
            let accepted =
                write_parquet_as(&mut judged.accepted, &dir.join(ACCEPTED), RowGroups::Files)?;
            known.insert(ACCEPTED.into(), accepted);
            let mut sums = crate::kpi::month_sums(judged.accepted.lazy())?;
            known.insert(SUMS.into(), write_parquet(&mut sums, &dir.join(SUMS))?);
            let rejected = write_parquet(&mut judged.rejected, &dir.join(REJECTED))?;
            known.insert(REJECTED.into(), rejected);
            crate::partition_check::seal(&dir, &mut meta, known)?;
            write_json(&meta, &dir, META)?;
            Ok(meta)
        }));
        Ok(previous)
    }

    /// Waits for the last partition's files; returns its sealed metadata.
    pub fn finish(mut self) -> Result<Option<PartitionMeta>> {
        self.writing.take().map(finish).transpose()
    }
}

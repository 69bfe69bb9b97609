//! The ledger's two helper threads, scoped to one [`super::update`]: the read-ahead, which
//! reads the deliveries to judge and prepares their verdicts one delivery ahead of the
//! judging; and the writer, which writes a judged partition's files while the next delivery is
//! judged (that needs only the keys, kept in memory).

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::{Scope, ScopedJoinHandle};

use polars::prelude::{DataFrame, IntoLazy};

use super::partition::{write_json, write_parquet};
use super::{PartitionMeta, ACCEPTED, META, REJECTED, SUMS};
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

/// A partition's file being written on a thread of its own.
pub(super) type Writing<'scope> = ScopedJoinHandle<'scope, Result<()>>;

/// Waits for a write; a panic in it is an internal error, not a panic of the run.
fn finish(writing: Writing<'_>) -> Result<()> {
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
    pub fn keep_parsed(&self, mut parsed: DataFrame, path: PathBuf) -> Writing<'scope> {
        self.scope.spawn(move || write_parquet(&mut parsed, &path))
    }

    /// Writes a judged partition's files into `dir` (its accepted lines' month sums among
    /// them) once its parsed rows are kept and the previous partition is written, then seals
    /// its metadata.
    pub fn write(
        &mut self,
        keeping: Option<Writing<'scope>>,
        mut judged: Judged,
        mut meta: PartitionMeta,
        dir: PathBuf,
    ) -> Result<()> {
        if let Some(previous) = self.writing.take() {
            finish(previous)?;
        }
        self.writing = Some(self.scope.spawn(move || {
            if let Some(keeping) = keeping {
                finish(keeping)?;
            }
            write_parquet(&mut judged.accepted, &dir.join(ACCEPTED))?;
            let mut sums = crate::kpi::month_sums(judged.accepted.lazy())?;
            write_parquet(&mut sums, &dir.join(SUMS))?;
            write_parquet(&mut judged.rejected, &dir.join(REJECTED))?;
            crate::partition_check::seal(&dir, &mut meta, None)?;
            write_json(&meta, &dir, META)
        }));
        Ok(())
    }

    /// Waits for the last partition's files.
    pub fn finish(mut self) -> Result<()> {
        self.writing.take().map_or(Ok(()), finish)
    }
}

//! The ledger's two helper threads, scoped to one [`super::update`]: the read-ahead, which
//! reads the deliveries to judge and prepares their verdicts one delivery ahead of the
//! judging; and the writer, which writes a judged partition's files while the next delivery is
//! judged (that needs only the keys, kept in memory). A [`Gate`] bounds the deliveries they
//! hold at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use polars::prelude::{DataFrame, IntoLazy};

use super::partition::{write_json, write_parquet, write_parquet_as, RowGroups};
use super::{PartitionMeta, ACCEPTED, META, PARSED, REJECTED, SUMS};
use crate::digest::Digests;
use crate::error::{Error, Result};
use crate::ingest::judge::Judged;

/// The most deliveries held at once from the start of their reading to the end of their
/// partition's writing: one judged while the one before it is written. The next delivery is
/// read once the one before is written. On two cores a third delivery read meanwhile was
/// hardly faster, and its rows raised the peak by a delivery's worth (docs/design.md §5). A
/// delivery the judging reads itself, not read ahead, takes room too.
const IN_FLIGHT: usize = 2;

/// Room for the deliveries read, judged and written at once (see [`IN_FLIGHT`]).
#[derive(Default)]
pub(super) struct Gate {
    /// The deliveries held, and whether reading has stopped.
    state: Mutex<(usize, bool)>,
    freed: Condvar,
}

impl Gate {
    /// Waits for room for one more delivery; None once reading has stopped.
    pub(super) fn enter(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.0 >= IN_FLIGHT && !state.1 {
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.1 {
            return None;
        }
        state.0 += 1;
        Some(Permit(Arc::clone(self)))
    }

    /// Stops reading: a reader waiting for room gives up.
    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.freed.notify_all();
    }
}

/// A delivery's room in the [`Gate`], freed when dropped: once its partition is written, its
/// judgement done without a write, or the delivery given up. When a delivery fails, the gate
/// is closed before its room is freed, so that nothing more is read.
pub(super) struct Permit(Arc<Gate>);

impl Permit {
    /// Closes the gate this room is in (see [`Gate::close`]).
    pub(super) fn close_gate(&self) {
        self.0.close();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let gate = &self.0;
        let mut state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        gate.freed.notify_all();
    }
}

/// Runs `judge` while `read` reads each of `jobs`, in order, on a thread of its own, each once
/// the [`Gate`] has room for it. The channel is a rendezvous: at most one read delivery waits
/// for the judging. A failed read is the last one sent; when the judging stops (an error of
/// its own), nothing more is read.
pub(super) fn with_read_ahead<J: Send, R: Send, T>(
    jobs: Vec<J>,
    read: impl Fn(J) -> Result<R> + Send,
    judge: impl FnOnce(&Ahead<R>, &Arc<Gate>) -> T,
) -> T {
    let gate = Arc::new(Gate::default());
    std::thread::scope(|s| {
        let (ahead_tx, ahead_rx) = sync_channel(0);
        let room = Arc::clone(&gate);
        s.spawn(move || {
            for job in jobs {
                let Some(permit) = room.enter() else {
                    break;
                };
                let read = read(job).map(|read| (read, permit));
                let failed = read.is_err();
                if ahead_tx.send(read).is_err() || failed {
                    break;
                }
            }
        });
        let judged = judge(&ahead_rx, &gate);
        gate.close();
        judged
    })
}

/// The deliveries read ahead, each with its room in the [`Gate`].
pub(super) type Ahead<R> = Receiver<Result<(R, Permit)>>;

/// The next delivery read ahead.
pub(super) fn next_read<R>(ahead: &Receiver<Result<R>>) -> Result<R> {
    ahead
        .recv()
        .map_err(|e| Error::internal("reading deliveries", e))?
}

/// Newly parsed rows being kept on a thread of their own: the digest of their file, once
/// written.
pub(super) type Keeping<'scope> = ScopedJoinHandle<'scope, Result<Digests>>;

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
    /// checked before), and frees the delivery's room (`permit`, taken once the previous
    /// partition is written: a failure of that leaves it to the caller). Returns the previous
    /// partition's sealed metadata.
    pub fn write(
        &mut self,
        keeping: Option<Keeping<'scope>>,
        mut judged: Judged,
        mut meta: PartitionMeta,
        dir: PathBuf,
        mut known: BTreeMap<String, Digests>,
        permit: &mut Option<Permit>,
    ) -> Result<Option<PartitionMeta>> {
        let previous = self.writing.take().map(finish).transpose()?;
        let permit = permit.take();
        self.writing = Some(self.scope.spawn(move || {
            let written = (|| -> Result<PartitionMeta> {
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
            })();
            // (The delivery's room is freed once its partition is written; after a failure,
            // once nothing more is read.)
            if let (Err(_), Some(permit)) = (&written, &permit) {
                permit.close_gate();
            }
            drop(permit);
            written
        }));
        Ok(previous)
    }

    /// Waits for the last partition's files; returns its sealed metadata.
    pub fn finish(mut self) -> Result<Option<PartitionMeta>> {
        self.writing.take().map(finish).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `enter` on another thread is still waiting after a while.
    fn waits(gate: &Arc<Gate>) -> std::thread::JoinHandle<bool> {
        let gate = Arc::clone(gate);
        std::thread::spawn(move || gate.enter().is_some())
    }

    #[test]
    fn the_gate_holds_two_deliveries_and_lets_the_next_in_as_one_is_done() {
        let gate = Arc::new(Gate::default());
        let (first, second) = (gate.enter().unwrap(), gate.enter().unwrap());
        let third = waits(&gate);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!third.is_finished());
        drop(first);
        assert!(third.join().unwrap());
        // (The third's room was freed as its thread ended.) Once reading stops, a reader
        // waiting for room gives up.
        let fourth = gate.enter().unwrap();
        let fifth = waits(&gate);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!fifth.is_finished());
        gate.close();
        assert!(!fifth.join().unwrap());
        drop((second, fourth));
        assert!(gate.enter().is_none());
    }

    #[test]
    fn a_partition_that_fails_to_be_written_closes_the_gate_before_freeing_its_room() {
        let gate = Arc::new(Gate::default());
        let frame = DataFrame::empty();
        let judged = Judged {
            accepted: frame.clone(),
            rejected: frame.clone(),
            keys: frame,
        };
        let meta = PartitionMeta::example();
        let missing = tempfile::tempdir().unwrap().path().join("gone");
        let mut permit = gate.enter();
        std::thread::scope(|s| {
            let mut writer = Writer::new(s);
            let written = writer.write(None, judged, meta, missing, BTreeMap::new(), &mut permit);
            assert!(written.unwrap().is_none());
            assert!(permit.is_none(), "the room goes with the partition");
            assert!(writer.finish().is_err());
        });
        // The room is freed, and the gate closed: nothing more is read.
        assert_eq!(gate.state.lock().unwrap().0, 0);
        assert!(gate.enter().is_none());
    }

    #[test]
    fn judging_that_stops_early_stops_the_reading() {
        let reads = std::sync::atomic::AtomicUsize::new(0);
        // The judging takes two deliveries and keeps them (their room is not freed) when it
        // stops: the reader, waiting for room, reads no more.
        let taken = with_read_ahead(
            (0..10).collect(),
            |i: usize| {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(i)
            },
            |ahead, _| {
                let first = next_read(ahead).unwrap();
                let second = next_read(ahead).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                let taken = vec![first.0, second.0];
                std::mem::forget((first.1, second.1));
                taken
            },
        );
        assert_eq!(taken, [0, 1]);
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}

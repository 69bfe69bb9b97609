//! A bounded pool of worker threads for per-file work: however many files a delivery holds,
//! at most [`MAX_THREADS`] threads (and no more than the machine's cores) work through them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The most worker threads a pool starts.
pub const MAX_THREADS: usize = 4;

/// How many workers a pool of `items` items starts.
pub fn workers(items: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, MAX_THREADS).min(items.max(1))
}

/// `work` applied to each item, results in the items' order. The first error stops the
/// workers from taking more items and is returned (the earliest item's, when several fail).
pub fn map<I: Sync, T: Send>(items: &[I], work: impl Fn(&I) -> Result<T> + Sync) -> Result<Vec<T>> {
    let workers = workers(items.len());
    if workers <= 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<T>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    // Items are taken in order and a worker finishes the item it took, so the untaken items
    // come after every taken one: a failure, if any, is met before the first untaken item.
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(Error::Internal("a worker pool item was not taken".into())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_in_order_with_a_bounded_number_of_threads() {
        let items: Vec<usize> = (0..2000).collect();
        let threads = Mutex::new(std::collections::HashSet::new());
        let out = map(&items, |i| {
            threads.lock().unwrap().insert(std::thread::current().id());
            Ok(i * 2)
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let used = threads.lock().unwrap().len();
        assert!((1..=MAX_THREADS).contains(&used), "{used} threads");
    }

    #[test]
    fn the_earliest_failure_is_returned() {
        let items: Vec<usize> = (0..100).collect();
        let e = map(&items, |&i| {
            if i == 7 || i == 50 {
                Err(Error::Usage(format!("item {i}")))
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "item 7");
    }
}

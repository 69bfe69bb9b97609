//! Writing the output folder safely: the run's lock, the staging area and the atomic commit.
//!
//! A run writes everything (ledger partitions, state files, the reports folder) into a staging
//! folder under `output/.kpi-refresh/`. Only when all of it succeeded does [`commit`] move it
//! into place: it first writes a journal naming every move, then performs the moves (renames
//! on the same file system), then deletes the journal. A run killed before the journal exists
//! leaves the published files untouched; one killed during the moves is completed by the next
//! run, before it reads anything ([`recover`]). One run at a time holds `output/.kpi-refresh/lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::publish_guard;

/// The program's own folder inside the output folder.
pub const WORK_DIR: &str = ".kpi-refresh";
const JOURNAL: &str = "journal.json";

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::write(path, e)
}

/// The output folder's lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the output folder's lock, or fails at once (exit 75) naming the holder. A lock left
/// by a killed process is released by the operating system, so it never blocks a later run.
/// `record` writes the holder's pid and start time into the lock file (a dry run, which writes
/// nothing, does not).
pub fn lock(output: &Path, record: bool) -> Result<Lock> {
    fs::create_dir_all(output).map_err(write_err(output))?;
    let dir = publish_guard::work_dir(output, WORK_DIR)?;
    let path = dir.join("lock");
    // Never through a symbolic link: one planted here would have the run truncate its target.
    let mut file = publish_guard::open_nofollow(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        &path,
    )?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "holder unknown".to_string()
            } else {
                holder.to_string()
            };
            return Err(Error::Locked { path, holder });
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::write(&path, e)),
    }
    if !record {
        return Ok(Lock { _file: file, path });
    }
    let note = format!(
        "pid {}, started {}",
        std::process::id(),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z")
    );
    let _ = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(note.as_bytes()));
    Ok(Lock { _file: file, path })
}

/// Rehearses failures: with `KPI_REFRESH_FAILPOINT=<name>` set, the run fails (or, for names
/// starting with `abort-`, dies at once; for names starting with `stop-`, stops itself with
/// SIGSTOP until it is sent SIGCONT) at that point. Operators can use it to check that a
/// failed run leaves the output as it was; the tests use it to inject faults, and the stops to
/// change an input at a known moment of a run.
pub const FAILPOINT_ENV: &str = "KPI_REFRESH_FAILPOINT";

pub fn failpoint(name: &str) -> Result<()> {
    match std::env::var(FAILPOINT_ENV) {
        Ok(v) if v == name && name.starts_with("abort-") => std::process::abort(),
        Ok(v) if v == name && name.starts_with("stop-") => {
            // SAFETY: raise only sends a signal to this process.
            unsafe { libc::raise(libc::SIGSTOP) };
            Ok(())
        }
        Ok(v) if v == name => Err(Error::Internal(format!(
            "failpoint {name} ({FAILPOINT_ENV})"
        ))),
        _ => Ok(()),
    }
}

/// Whether the failpoint `name` is set (for faults that are not an error of the program's
/// own, such as a rename that fails with "cross-device link").
pub fn failpoint_is(name: &str) -> bool {
    std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == name)
}

/// One move of a commit, by path relative to the output folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Move {
    /// Put the staged file or folder in place, replacing what is there.
    Put(String),
    /// Take away what is there.
    Remove(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// The staging folder, relative to the output folder.
    staging: String,
    moves: Vec<Move>,
}

/// The run's staging folder, mirroring the layout of the output folder.
#[derive(Debug)]
pub struct Staging {
    pub output: PathBuf,
    pub root: PathBuf,
}

impl Staging {
    /// A fresh staging folder for this run (under the lock).
    pub fn create(output: &Path) -> Result<Staging> {
        let name = format!("staging-{}", std::process::id());
        let root = output.join(WORK_DIR).join(name);
        if root.exists() {
            fs::remove_dir_all(&root).map_err(write_err(&root))?;
        }
        fs::create_dir_all(&root).map_err(write_err(&root))?;
        Ok(Staging {
            output: output.to_path_buf(),
            root,
        })
    }

    /// A staging folder outside the output folder, for runs that must write nothing there.
    pub fn detached(output: &Path) -> Result<(Staging, tempfile::TempDir)> {
        let tmp = tempfile::tempdir().map_err(|e| Error::write(std::env::temp_dir(), e))?;
        Ok((
            Staging {
                output: output.to_path_buf(),
                root: tmp.path().to_path_buf(),
            },
            tmp,
        ))
    }

    /// Where `rel` is staged; its parent folders are created.
    pub fn path(&self, rel: &str) -> Result<PathBuf> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        Ok(path)
    }
}

/// Moves the staged files into place, atomically as seen by later runs.
pub fn commit(staging: &Staging, moves: &[Move]) -> Result<()> {
    // Refuse, before anything moves, what a rename could not do.
    for m in moves {
        if let Move::Put(rel) = m {
            let (from, to) = (staging.root.join(rel), staging.output.join(rel));
            if to.exists() && from.is_dir() != to.is_dir() {
                let what = if to.is_dir() {
                    "is a folder"
                } else {
                    "is a file"
                };
                return Err(Error::write(
                    &to,
                    std::io::Error::other(format!("{what}; cannot replace it")),
                ));
            }
        }
    }
    let work = publish_guard::work_dir(&staging.output, WORK_DIR)?;
    // Every destination is made ready and checked before the journal exists: on another file
    // system, the commit is refused with nothing moved.
    let rels = moves.iter().map(|m| match m {
        Move::Put(rel) | Move::Remove(rel) => rel.as_str(),
    });
    publish_guard::prepare_destinations(&staging.output, &staging.root, rels)?;
    // The staging folder is named relative to the output folder, so that a later run reaching
    // the same folder by another path (relative, absolute) still finds it.
    let relative = staging
        .root
        .strip_prefix(&staging.output)
        .unwrap_or(&staging.root);
    let journal = Journal {
        staging: relative.to_string_lossy().into_owned(),
        moves: moves.to_vec(),
    };
    let path = work.join(JOURNAL);
    let tmp = work.join("journal.json.tmp");
    let text = serde_json::to_vec_pretty(&journal).map_err(|e| Error::internal("journal", e))?;
    {
        let mut f = publish_guard::open_nofollow(
            OpenOptions::new().write(true).create(true).truncate(true),
            &tmp,
        )?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(write_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(write_err(&path))?;
    // A move that fails is undone with every move before it, and the journal goes: the output
    // is as it was. Only if undoing fails too does the journal stay, for the next run.
    match apply(&staging.output, &journal) {
        Ok(()) => fs::remove_file(&path).map_err(write_err(&path)),
        Err(Failed { error, undone }) => {
            if undone {
                let _ = fs::remove_file(&path);
            }
            Err(error)
        }
    }
}

/// Whether a killed run left a commit half done (its journal is still there).
pub fn has_pending_commit(output: &Path) -> bool {
    fs::symlink_metadata(output.join(WORK_DIR).join(JOURNAL)).is_ok()
}

/// Reads the journal at `path` (never through a symbolic link) and checks every path it
/// names; one that cannot be read or names a path outside the output folder is refused.
fn read_journal(output: &Path, path: &Path) -> Result<Journal> {
    // A FIFO or device would block the read: only a regular file is opened.
    let regular = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if !regular {
        return Err(Error::write(
            path,
            std::io::Error::other(
                "is not a regular file; refused, nothing was moved or deleted (remove the \
                 journal once the output is checked)",
            ),
        ));
    }
    let mut text = Vec::new();
    publish_guard::open_nofollow(OpenOptions::new().read(true), path)?
        .read_to_end(&mut text)
        .map_err(write_err(path))?;
    let journal: Journal = serde_json::from_slice(&text).map_err(|e| {
        Error::write(
            path,
            std::io::Error::other(format!(
                "cannot be read ({e}); refused, nothing was moved or deleted"
            )),
        )
    })?;
    let rels = journal.moves.iter().map(|m| match m {
        Move::Put(rel) | Move::Remove(rel) => rel.as_str(),
    });
    publish_guard::check_journal(output, path, WORK_DIR, &journal.staging, rels)?;
    Ok(journal)
}

/// Completes a commit that a killed run left half done, and clears what it left aside.
pub fn recover(output: &Path) -> Result<bool> {
    let work = output.join(WORK_DIR);
    let path = work.join(JOURNAL);
    let mut recovered = false;
    if has_pending_commit(output) {
        publish_guard::work_dir(output, WORK_DIR)?;
        let journal = read_journal(output, &path)?;
        apply(output, &journal).map_err(|f| f.error)?;
        fs::remove_file(&path).map_err(write_err(&path))?;
        recovered = true;
    }
    if let Ok(entries) = fs::read_dir(&work) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("staging-") || name == "trash" || name.ends_with(".tmp") {
                let p = entry.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
    Ok(recovered)
}

/// A commit that failed half-way: the error, and whether the moves done were all undone.
struct Failed {
    error: Error,
    undone: bool,
}

/// One move done by [`apply`]: what went in place, and what was set aside for it.
#[derive(Default)]
struct Done {
    put: Option<(PathBuf, PathBuf)>,
    aside: Option<(PathBuf, PathBuf)>,
}

/// Performs the journal's moves; what a move replaces or removes is set aside, not lost, until
/// all are done. When a move fails, the moves done by this call are undone, last first.
fn apply(output: &Path, journal: &Journal) -> Result<(), Failed> {
    let staging = output.join(&journal.staging);
    let trash = output.join(WORK_DIR).join("trash");
    let failed = |error| Failed {
        error,
        undone: true,
    };
    fs::create_dir_all(&trash).map_err(|e| failed(Error::write(&trash, e)))?;
    let mut done: Vec<Done> = Vec::new();
    for (i, m) in journal.moves.iter().enumerate() {
        if let Err(error) = apply_one(output, &staging, &trash.join(i.to_string()), m, &mut done) {
            let undone = undo(&done).is_ok();
            if undone {
                let _ = fs::remove_dir_all(&trash);
            }
            return Err(Failed { error, undone });
        }
    }
    fs::remove_dir_all(&trash).map_err(|e| failed(Error::write(&trash, e)))?;
    Ok(())
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn apply_one(
    output: &Path,
    staging: &Path,
    aside: &Path,
    m: &Move,
    done: &mut Vec<Done>,
) -> Result<()> {
    match m {
        Move::Put(rel) => {
            let from = staging.join(rel);
            let to = output.join(rel);
            if !exists(&from) {
                return Ok(()); // already moved
            }
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(write_err(parent))?;
            }
            let mut step = Done::default();
            if exists(&to) {
                fs::rename(&to, aside).map_err(write_err(&to))?;
                step.aside = Some((aside.to_path_buf(), to.clone()));
            }
            let renamed = if failpoint_is("cross-device-rename") && !done.is_empty() {
                Err(std::io::Error::from_raw_os_error(libc::EXDEV))
            } else {
                fs::rename(&from, &to)
            };
            if renamed.is_ok() {
                step.put = Some((from, to.clone()));
            }
            done.push(step);
            renamed.map_err(write_err(&to))?;
            failpoint("abort-during-commit")?;
        }
        Move::Remove(rel) => {
            let target = output.join(rel);
            if exists(&target) {
                fs::rename(&target, aside).map_err(write_err(&target))?;
                done.push(Done {
                    put: None,
                    aside: Some((aside.to_path_buf(), target)),
                });
            }
        }
    }
    Ok(())
}

/// Undoes the moves in `done`, last first.
fn undo(done: &[Done]) -> std::io::Result<()> {
    for step in done.iter().rev() {
        if let Some((from, to)) = &step.put {
            fs::rename(to, from)?;
        }
        if let Some((aside, original)) = &step.aside {
            fs::rename(aside, original)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_with_exit_75_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path(), true).unwrap();
        let e = lock(dir.path(), true).unwrap_err();
        assert_eq!(e.exit_code(), 75);
        assert!(
            e.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(first);
        assert!(lock(dir.path(), true).is_ok());
    }

    #[test]
    fn commit_replaces_folders_and_files_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::create_dir_all(out.join("reports/2026-11")).unwrap();
        fs::write(out.join("reports/2026-11/old.csv"), "old").unwrap();
        fs::create_dir_all(out.join("ledger/delivery=2020-01")).unwrap();
        let staging = Staging::create(out).unwrap();
        fs::write(staging.path("reports/2026-11/new.csv").unwrap(), "new").unwrap();
        fs::write(staging.path("state/levels/2026-11.csv").unwrap(), "s").unwrap();
        let moves = [
            Move::Put("reports/2026-11".into()),
            Move::Put("state/levels/2026-11.csv".into()),
            Move::Remove("ledger/delivery=2020-01".into()),
        ];
        commit(&staging, &moves).unwrap();
        assert!(!out.join("reports/2026-11/old.csv").exists());
        assert_eq!(
            fs::read_to_string(out.join("reports/2026-11/new.csv")).unwrap(),
            "new"
        );
        assert_eq!(
            fs::read_to_string(out.join("state/levels/2026-11.csv")).unwrap(),
            "s"
        );
        assert!(!out.join("ledger/delivery=2020-01").exists());
        assert!(!out.join(WORK_DIR).join(JOURNAL).exists());
    }

    #[test]
    fn recover_completes_a_half_done_commit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let staging = Staging::create(out).unwrap();
        fs::write(staging.path("a.csv").unwrap(), "a").unwrap();
        fs::write(staging.path("b.csv").unwrap(), "b").unwrap();
        // As if killed after the journal was written and the first move was done.
        let journal = Journal {
            staging: staging
                .root
                .strip_prefix(out)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            moves: vec![Move::Put("a.csv".into()), Move::Put("b.csv".into())],
        };
        fs::write(
            out.join(WORK_DIR).join(JOURNAL),
            serde_json::to_vec(&journal).unwrap(),
        )
        .unwrap();
        fs::rename(staging.root.join("a.csv"), out.join("a.csv")).unwrap();
        assert!(recover(out).unwrap());
        assert_eq!(fs::read_to_string(out.join("b.csv")).unwrap(), "b");
        assert!(!staging.root.exists());
    }
}

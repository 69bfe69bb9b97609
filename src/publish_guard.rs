//! What publishing trusts on disk, checked before it is used.
//!
//! The lock file and the journal are opened without following a symbolic link (and the
//! program's own folder must not be one), so a link planted there can never make a run write
//! or truncate a file elsewhere. A journal is read back only if every path it names stays
//! inside the output folder, through no symbolic link: otherwise it is refused (exit 73) and
//! nothing is moved or deleted. Before a commit writes its journal, every destination is
//! prepared (its folders made) and checked to be on the staging folder's file system, so no
//! rename can fail half-way with "cross-device link".

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

fn refused(path: &Path, why: impl Into<String>) -> Error {
    Error::write(path, std::io::Error::other(why.into()))
}

/// Opens `path` with `options`, refusing a symbolic link at its last component.
pub fn open_nofollow(options: &mut OpenOptions, path: &Path) -> Result<File> {
    options
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused(path, "is a symbolic link; refused"),
            _ => Error::write(path, e),
        })
}

/// The program's own folder `<output>/<name>`, made if absent; refused when it is a symbolic
/// link or not a folder.
pub fn work_dir(output: &Path, name: &str) -> Result<PathBuf> {
    let dir = output.join(name);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(&dir, "is a symbolic link; refused")),
        Ok(m) if !m.is_dir() => Err(refused(&dir, "is not a folder")),
        Ok(_) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
            Ok(dir)
        }
        Err(e) => Err(Error::write(&dir, e)),
    }
}

/// Whether `rel` is a plain relative path: at least one component, each a normal name.
fn plain(rel: &str) -> bool {
    !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The first symbolic link among the folders leading from `output` to `output/rel` (the last
/// component aside), if any.
fn link_on_the_way(output: &Path, rel: &str) -> Option<PathBuf> {
    let mut at = output.to_path_buf();
    let components: Vec<_> = Path::new(rel).components().collect();
    for c in &components[..components.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Checks a journal read back from `journal`: its staging folder is `<work>/staging-<n>` and
/// every path it moves is a plain relative path under the output folder, outside the
/// program's own folder, reached through no symbolic link.
pub fn check_journal<'a>(
    output: &Path,
    journal: &Path,
    work: &str,
    staging: &str,
    moves: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let outside = |what: &str, rel: &str| {
        refused(
            journal,
            format!(
                "names {what} {rel:?}, outside the output folder's own files; refused, \
                 nothing was moved or deleted (remove the journal once the output is checked)"
            ),
        )
    };
    let mut parts = Path::new(staging).components();
    let staging_ok = parts.next() == Some(Component::Normal(work.as_ref()))
        && matches!(parts.next(), Some(Component::Normal(n))
            if n.to_str().is_some_and(|n| n.strip_prefix("staging-")
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))))
        && parts.next().is_none();
    // The staging folder is the program's own: a symbolic link there would bring files from
    // elsewhere into the output folder.
    let staging_link =
        fs::symlink_metadata(output.join(staging)).is_ok_and(|m| !m.file_type().is_dir());
    if !staging_ok || staging_link {
        return Err(outside("the staging folder", staging));
    }
    for rel in moves {
        let first = Path::new(rel).components().next();
        if !plain(rel) || first == Some(Component::Normal(work.as_ref())) {
            return Err(outside("the path", rel));
        }
        if let Some(link) = link_on_the_way(output, rel) {
            return Err(outside(
                "a path through the symbolic link",
                &link.to_string_lossy(),
            ));
        }
    }
    Ok(())
}

/// Prepares each destination `output/rel` of a commit: its parent folders are made, and it
/// must lie on the file system of `staging` (a rename cannot cross file systems) and be
/// reached through no symbolic link. Nothing has moved when this fails.
pub fn prepare_destinations<'a>(
    output: &Path,
    staging: &Path,
    rels: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let device = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| Error::write(p, e))
    };
    let staging_dev = device(staging)?;
    for rel in rels {
        if !plain(rel) {
            return Err(refused(&output.join(rel), "is not a plain relative path"));
        }
        if let Some(link) = link_on_the_way(output, rel) {
            return Err(refused(
                &link,
                "is a symbolic link on the way to an output; refused",
            ));
        }
        let to = output.join(rel);
        let parent = to.parent().unwrap_or(output);
        fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
        let crossing = crate::publish::failpoint_is("cross-device-destination");
        if crossing || device(parent)? != staging_dev {
            return Err(refused(
                parent,
                format!(
                    "is on another file system than the staging folder {}; a rename cannot \
                     cross file systems, so nothing was published (keep the output folder on \
                     one file system)",
                    staging.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_naming_paths_outside_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let j = out.join(".w/journal.json");
        let ok = |staging: &str, rel: &str| check_journal(out, &j, ".w", staging, [rel]);
        assert!(ok(".w/staging-12", "reports/2026-11").is_ok());
        for (staging, rel) in [
            (".w/staging-12", "../etc"),
            (".w/staging-12", "/etc/passwd"),
            (".w/staging-12", "reports/../../x"),
            (".w/staging-12", ""),
            (".w/staging-12", ".w/lock"),
            ("..", "reports"),
            ("/tmp", "reports"),
            (".w/staging-x", "reports"),
            (".w/staging-1/../..", "reports"),
        ] {
            let e = ok(staging, rel).unwrap_err();
            assert_eq!(e.exit_code(), 73, "{staging} {rel}");
        }
        // A staging folder that is a symbolic link would bring files from elsewhere.
        std::fs::create_dir_all(out.join(".w")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.join(".w/staging-7")).unwrap();
        assert_eq!(ok(".w/staging-7", "keep.txt").unwrap_err().exit_code(), 73);
        // A symbolic link on the way leads elsewhere.
        std::os::unix::fs::symlink(std::env::temp_dir(), out.join("reports")).unwrap();
        assert_eq!(
            ok(".w/staging-12", "reports/2026-11")
                .unwrap_err()
                .exit_code(),
            73
        );
    }

    #[test]
    fn the_lock_and_the_work_folder_are_not_followed_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(out.join(".w")).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(".w/lock")).unwrap();
        let e = open_nofollow(
            OpenOptions::new().write(true).create(true).truncate(true),
            &out.join(".w/lock"),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 73);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        std::os::unix::fs::symlink(dir.path(), out.join(".v")).unwrap();
        assert_eq!(work_dir(&out, ".v").unwrap_err().exit_code(), 73);
        assert!(work_dir(&out, ".w").is_ok());
    }
}

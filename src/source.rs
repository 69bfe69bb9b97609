//! Input files read once: the bytes a reader parses are the bytes whose SHA-256 the ledger and
//! the manifest record, and only regular files are read.
//!
//! An input that is not a regular file (a FIFO, a device, a socket) is refused from its
//! metadata, before any open: opening a FIFO for reading blocks until a writer comes, with the
//! run holding the lock. The file is then opened non-blocking and checked again through the
//! open handle, so one swapped for a FIFO between the check and the open is refused too.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::digest::sha256_bytes;
use crate::error::{Error, Result};

/// One input file's bytes, as read once, and their SHA-256.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// What a file is, in words, when it is not a regular file.
fn kind_of(file_type: std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some("a folder")
    } else if file_type.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else if file_type.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

fn not_a_file(path: &Path, kind: &str) -> Error {
    Error::NotAFile {
        path: path.to_path_buf(),
        kind: kind.to_string(),
    }
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Unreadable {
        file: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Refuses `path` (exit 66) unless it is a regular file, a symbolic link followed; from its
/// metadata alone, without opening it.
pub fn check_regular(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingInput {
            what: "input file".into(),
            path: path.to_path_buf(),
        },
        _ => unreadable(path, e),
    })?;
    match kind_of(meta.file_type()) {
        None => Ok(()),
        Some(kind) => Err(not_a_file(path, kind)),
    }
}

/// Opens `path` for reading when it is a regular file: checked from its metadata before the
/// open, then opened non-blocking (should the file have become a FIFO since the check, the open
/// returns at once; reading a regular file ignores the flag) and checked again through the
/// handle. Returns the file and its length.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    check_regular(path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| unreadable(path, e))?;
    let meta = file.metadata().map_err(|e| unreadable(path, e))?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(not_a_file(path, kind));
    }
    Ok((file, meta.len()))
}

/// Reads a regular file once and digests the very bytes read.
pub fn read(path: &Path) -> Result<Source> {
    let (mut file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| unreadable(path, e))?;
    let sha256 = sha256_bytes(&bytes);
    Ok(Source {
        path: path.to_path_buf(),
        bytes,
        sha256,
    })
}

/// SHA-256 of a regular file, streamed (for files the program wrote and checks again, which
/// may be large); refused like [`read`] when it is not a regular file.
pub fn digest_file(path: &Path) -> Result<String> {
    let (file, _) = open_regular(path)?;
    crate::digest::sha256_reader(file).map_err(|e| unreadable(path, e))
}

/// The SHA-256 and BLAKE3 of a regular file, read once.
pub fn digests_file(path: &Path) -> Result<crate::digest::Digests> {
    let (file, _) = open_regular(path)?;
    crate::digest::Digests::of_reader(file).map_err(|e| unreadable(path, e))
}

/// The BLAKE3 of a regular file.
pub fn blake3_file(path: &Path) -> Result<String> {
    let (file, _) = open_regular(path)?;
    crate::digest::blake3_reader(file).map_err(|e| unreadable(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_of_the_bytes_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, b"abc").unwrap();
        let s = read(&path).unwrap();
        assert_eq!(s.bytes, b"abc");
        assert_eq!(s.sha256, sha256_bytes(b"abc"));
    }

    #[test]
    fn a_fifo_a_device_and_a_folder_are_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fx_rates.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // No writer ever comes: reading would block for good.
        let e = read(&fifo).unwrap_err();
        assert_eq!(e.exit_code(), 66, "{e}");
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert_eq!(read(Path::new("/dev/null")).unwrap_err().exit_code(), 66);
        assert_eq!(read(dir.path()).unwrap_err().exit_code(), 66);
        assert_eq!(
            read(&dir.path().join("absent")).unwrap_err().exit_code(),
            66
        );
    }
}

//! SHA-256 of files and bytes, as lower-case hex; and BLAKE3 beside it ([`Digests`]), which
//! later runs check the ledger's own files and a reused delivery's input files by.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn blake3_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_reader(std::fs::File::open(path)?)
}

/// Hands everything `reader` gives to `take`, a megabyte at a time.
fn each_megabyte(mut reader: impl Read, mut take: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(()),
            n => take(&buf[..n]),
        }
    }
}

/// SHA-256 of everything `reader` gives, read a megabyte at a time.
pub fn sha256_reader(reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    each_megabyte(reader, |bytes| hasher.update(bytes))?;
    Ok(hex(&hasher.finalize()))
}

/// BLAKE3 of everything `reader` gives, read a megabyte at a time.
pub fn blake3_reader(reader: impl Read) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    each_megabyte(reader, |bytes| {
        hasher.update(bytes);
    })?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The digests a file of the ledger is recorded with: its SHA-256, which the manifest lists,
/// and its BLAKE3, which a later run checks it by (as strong, and about four times faster to
/// compute: most of the bytes a monthly run hashes are the ledger's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub blake3: String,
}

impl Digests {
    pub fn of_bytes(bytes: &[u8]) -> Digests {
        let mut hashers = Hashers::default();
        hashers.update(bytes);
        hashers.finish()
    }

    /// Both digests of everything `reader` gives, read a megabyte at a time.
    pub fn of_reader(reader: impl Read) -> std::io::Result<Digests> {
        let mut hashers = Hashers::default();
        each_megabyte(reader, |bytes| hashers.update(bytes))?;
        Ok(hashers.finish())
    }
}

/// The two hashes of [`Digests`], fed the same bytes.
#[derive(Default)]
struct Hashers {
    sha256: Sha256,
    blake3: blake3::Hasher,
}

impl Hashers {
    fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.blake3.update(bytes);
    }

    fn finish(self) -> Digests {
        Digests {
            sha256: hex(&self.sha256.finalize()),
            blake3: self.blake3.finalize().to_hex().to_string(),
        }
    }
}

/// A writer that hashes every byte it passes on, so that a file's digests are of the bytes
/// written, without reading the file again.
pub struct HashingWriter<W> {
    inner: W,
    hashers: Hashers,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hashers: Hashers::default(),
        }
    }

    /// The writer, and the digests of everything written through it.
    pub fn finish(self) -> (W, Digests) {
        (self.inner, self.hashers.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hashers.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn a_hashing_writer_gives_the_digest_of_what_it_wrote() {
        let mut w = super::HashingWriter::new(Vec::new());
        w.write_all(b"a").unwrap();
        w.write_all(b"bc").unwrap();
        let (written, digests) = w.finish();
        assert_eq!(written, b"abc");
        assert_eq!(digests.sha256, super::sha256_bytes(b"abc"));
        assert_eq!(digests, super::Digests::of_bytes(b"abc"));
        assert_eq!(
            digests,
            super::Digests::of_reader(std::io::Cursor::new(b"abc")).unwrap()
        );
        assert_eq!(
            super::blake3_reader(std::io::Cursor::new(b"abc")).unwrap(),
            digests.blake3
        );
    }

    #[test]
    fn known_blake3_digest() {
        assert_eq!(
            super::Digests::of_bytes(b"abc").blake3,
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(
            super::blake3_bytes(b"abc"),
            super::Digests::of_bytes(b"abc").blake3
        );
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! A worksheet part deflated on several threads. What the part's writer writes is cut into
//! pieces of [`PIECE`] bytes; each piece is deflated on its own (the last one finishing the
//! stream, every other one ending on a byte boundary with a sync flush, as pigz does), so that
//! the pieces, in order, are one deflate stream. The stream is packed as the one entry of a
//! small ZIP archive, from which the workbook copies it as it is. The pieces are cut by count
//! of bytes, whatever thread deflates them, so the same part deflates to the same bytes.

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use flate2::{Compress, Compression, FlushCompress, Status};

/// The bytes of a piece: large enough that the 32 KiB of history a piece starts without cost
/// next to nothing, small enough to keep both cores busy on a part of tens of megabytes.
const PIECE: usize = 4 << 20;

/// A piece to deflate: its place, its bytes, and whether it ends the part.
type Piece = (usize, Vec<u8>, bool);

/// A piece deflated: its place, its deflated bytes, the CRC-32 of its bytes and their count.
type Deflated = (usize, Vec<u8>, crc32fast::Hasher, u64);

/// The one-entry ZIP archive of the part `name` that `write` writes, deflated at `level`
/// on `threads` threads (besides the one writing); None when the part turns out too large for
/// a plain ZIP entry (4 GiB, deflated or not), which needs ZIP64.
pub(super) fn deflate_part(
    name: &str,
    level: u32,
    threads: usize,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<Option<Vec<u8>>> {
    let (pieces, taken) = sync_channel::<Piece>(threads);
    let taken = Mutex::new(taken);
    let (done, deflated) = std::sync::mpsc::channel::<io::Result<Deflated>>();
    let written = std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let done = done.clone();
            let taken = &taken;
            s.spawn(move || deflate_pieces(taken, level, &done));
        }
        drop(done);
        let mut out = PieceWriter {
            pieces,
            buf: Vec::with_capacity(PIECE),
            next: 0,
        };
        write(&mut out)?;
        out.finish()
    });
    let count = written?;
    let mut all: Vec<Deflated> = deflated.into_iter().collect::<io::Result<_>>()?;
    if all.len() != count {
        return Err(io::Error::other("a piece of the part was not deflated"));
    }
    all.sort_by_key(|d| d.0);
    Ok(one_entry_zip(name, all))
}

/// Takes pieces until there are none left, deflating each. (A panic while deflating is sent
/// as an error: the pieces must keep being taken, or the writing thread would wait for ever.)
fn deflate_pieces(
    taken: &Mutex<Receiver<Piece>>,
    level: u32,
    done: &std::sync::mpsc::Sender<io::Result<Deflated>>,
) {
    loop {
        let next = taken.lock().map(|r| r.recv());
        let Ok(Ok((at, bytes, last))) = next else {
            return;
        };
        let deflated = std::panic::catch_unwind(|| {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&bytes);
            let size = bytes.len() as u64;
            deflate_piece(&bytes, level, last).map(|d| (at, d, crc, size))
        })
        .unwrap_or_else(|_| Err(io::Error::other("deflating a piece panicked")));
        if done.send(deflated).is_err() {
            return;
        }
    }
}

/// `bytes` deflated raw: ending with a sync flush (byte-aligned, the stream open), or, when
/// `last`, finishing the stream.
fn deflate_piece(bytes: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(bytes.len() / 4 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let from = c.total_in() as usize;
        let status = c
            .compress_vec(&bytes[from..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == bytes.len();
        // Done once everything is in and the flush fitted (room was left in the output).
        let finished = match last {
            true => status == Status::StreamEnd,
            false => all_in && out.len() < out.capacity(),
        };
        if finished {
            return Ok(out);
        }
        out.reserve(out.capacity().max(1 << 16));
    }
}

/// Cuts what is written into pieces and hands them to the deflating threads.
struct PieceWriter {
    pieces: SyncSender<Piece>,
    buf: Vec<u8>,
    next: usize,
}

impl PieceWriter {
    fn send(&mut self, last: bool) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.pieces
            .send((self.next, piece, last))
            .map_err(|_| io::Error::other("the deflating threads stopped"))?;
        self.next += 1;
        Ok(())
    }

    /// Sends the last piece; returns how many pieces there were.
    fn finish(mut self) -> io::Result<usize> {
        self.send(true)?;
        Ok(self.next)
    }
}

impl Write for PieceWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == PIECE {
            self.send(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A ZIP archive of one deflated entry `name`, the `pieces` in order, dated 1980-01-01 and
/// readable by its owner only, as the workbook's parts are; None when a size or an offset
/// would need ZIP64 (0xFFFFFFFF itself means "see ZIP64").
fn one_entry_zip(name: &str, pieces: Vec<Deflated>) -> Option<Vec<u8>> {
    let (mut crc, mut size, mut compressed) = (crc32fast::Hasher::new(), 0u64, 0u64);
    for (_, bytes, piece_crc, piece_size) in &pieces {
        crc.combine(piece_crc);
        size += piece_size;
        compressed += bytes.len() as u64;
    }
    let plain = |n: u64| u32::try_from(n).ok().filter(|n| *n < u32::MAX);
    let (size, compressed) = (plain(size)?, plain(compressed)?);
    let directory = plain(30 + name.len() as u64 + u64::from(compressed))?;
    let name_len = u16::try_from(name.len()).ok()?;
    let crc = crc.finalize();
    // Version 2.0, UTF-8 names, deflated, 00:00 on 1980-01-01.
    let common = |out: &mut Vec<u8>| {
        for half in [20u16, 1 << 11, 8, 0, (1 << 5) | 1] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        for word in [crc, compressed, size] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
    };
    let mut out = Vec::with_capacity(directory as usize + name.len() + 68);
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    common(&mut out);
    out.extend_from_slice(name.as_bytes());
    // (Each piece is let go once copied.)
    for (_, bytes, _, _) in pieces {
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    // Made by Unix, version 2.0.
    out.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
    common(&mut out);
    // No comment, disk 0, no internal attributes; a regular file, mode 0600; at offset 0.
    for half in [0u16, 0, 0] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    out.extend_from_slice(&(0o100_600u32 << 16).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    let directory_len = out.len() as u32 - directory;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for half in [0u16, 0, 1, 1] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    out.extend_from_slice(&directory_len.to_le_bytes());
    out.extend_from_slice(&directory.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use super::*;

    /// Some XML-like text of `len` bytes, not all alike.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!("<c r=\"A{}\"><v>{}</v></c>", i % 997, i >> 40).as_bytes(),
            );
        }
        out.truncate(len);
        out
    }

    fn read_back(archive: &[u8], name: &str) -> Vec<u8> {
        let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
        let mut file = zip.by_name(name).unwrap();
        assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
        assert_eq!(file.unix_mode(), Some(0o100_600));
        let mut out = Vec::new();
        file.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn the_pieces_read_back_as_one_part_whatever_its_length() {
        for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 12_345] {
            let bytes = text(len);
            let archive = deflate_part("xl/worksheets/sheet2.xml", 2, 2, |out| {
                // Written in uneven slices, as the sheet's rows are.
                for slice in bytes.chunks(100_003) {
                    out.write_all(slice)?;
                }
                Ok(())
            })
            .unwrap()
            .expect("a plain entry");
            assert_eq!(
                read_back(&archive, "xl/worksheets/sheet2.xml"),
                bytes,
                "{len}"
            );
        }
    }

    #[test]
    fn the_same_part_deflates_to_the_same_bytes_on_any_number_of_threads() {
        let bytes = text(5 * PIECE / 2);
        let deflate = |threads| {
            deflate_part("p.xml", 2, threads, |out| out.write_all(&bytes))
                .unwrap()
                .expect("a plain entry")
        };
        let one = deflate(1);
        assert_eq!(deflate(2), one);
        assert_eq!(deflate(3), one);
        // And it is deflated: this text takes well under half its size.
        assert!(one.len() < bytes.len() / 2, "{}", one.len());
    }

    #[test]
    fn an_entry_too_large_for_a_plain_zip_is_left_to_zip64() {
        let piece = |size: u64| (0, vec![0u8; 10], crc32fast::Hasher::new(), size);
        assert!(one_entry_zip("p.xml", vec![piece(u64::from(u32::MAX) - 1)]).is_some());
        assert!(one_entry_zip("p.xml", vec![piece(u64::from(u32::MAX))]).is_none());
        assert!(one_entry_zip("p.xml", vec![piece(1 << 31), piece(1 << 31)]).is_none());
    }

    #[test]
    fn a_failed_write_is_an_error() {
        let failed = deflate_part("p.xml", 2, 2, |out| {
            out.write_all(&text(PIECE + 10))?;
            Err(io::Error::other("no more rows"))
        });
        assert!(failed.is_err());
    }
}

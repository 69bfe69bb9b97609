//! Reading a CSV file as a table (see the parent module): RFC 4180 records read with the
//! `csv` crate, each numbered as a spreadsheet numbers its row, its fields checked as UTF-8
//! and trimmed.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{unreadable, Cells, RawRow, Table};
use crate::error::{Error, Result};

/// Opens the bytes `data` of the CSV file at `path` as a table.
pub(super) fn open_csv(path: &Path, mut data: Vec<u8>) -> Result<Table> {
    if data.starts_with(b"\xEF\xBB\xBF") {
        data.drain(..3);
    }
    // The whole file is kept so that rows are numbered from the bytes themselves: the CSV
    // reader skips blank lines and reports a CRLF record's start on the previous line.
    let data: Rc<[u8]> = data.into();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::Cursor::new(Rc::clone(&data)));
    let mut record = csv::ByteRecord::new();
    let mut lines = LineCounter::default();
    let header = match csv.read_byte_record(&mut record) {
        Ok(true) => {
            lines.row_of(&data, &record);
            decode(&record).0.iter().map(str::to_string).collect()
        }
        Ok(false) => Vec::new(),
        Err(e) => return Err(csv_error(path, e)),
    };
    let path: PathBuf = path.to_path_buf();
    let width = header.len();
    let rows = std::iter::from_fn(move || loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => return None,
            Err(e) => return Some(Err(csv_error(&path, e))),
            Ok(true) => {
                let row = lines.row_of(&data, &record);
                let (cells, bad_encoding) = decode(&record);
                if cells.all_empty() {
                    continue;
                }
                let row = u32::try_from(row).unwrap_or(u32::MAX);
                let extra_fields = cells.len().saturating_sub(width);
                return Some(Ok(RawRow {
                    row,
                    cells,
                    bad_encoding,
                    extra_fields,
                }));
            }
        }
    });
    Ok(Table {
        header,
        rows: Box::new(rows),
    })
}

/// Spreadsheet row numbers of CSV records: one row per line, except that a quoted field
/// spanning several lines keeps its record on one row.
#[derive(Default)]
struct LineCounter {
    scanned: usize,
    newlines: u64,
    inside_fields: u64,
}

impl LineCounter {
    fn row_of(&mut self, data: &[u8], record: &csv::ByteRecord) -> u64 {
        let mut start = record
            .position()
            .map_or(self.scanned, |p| p.byte() as usize)
            .clamp(self.scanned, data.len());
        while start < data.len() && matches!(data[start], b'\r' | b'\n') {
            start += 1;
        }
        self.newlines += line_ends(&data[self.scanned..start]);
        self.scanned = start;
        let row = self.newlines + 1 - self.inside_fields;
        self.inside_fields += embedded_newlines(record);
        row
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let at = e
        .position()
        .map(|p| format!(" (line {})", p.line()))
        .unwrap_or_default();
    unreadable(path, format!("{e}{at}"))
}

fn embedded_newlines(record: &csv::ByteRecord) -> u64 {
    // (Almost every record has none: one scan of its bytes finds out.)
    if memchr::memchr2(b'\n', b'\r', record.as_slice()).is_none() {
        return 0;
    }
    record.iter().map(line_ends).sum()
}

/// Line ends in `bytes`: LF, CRLF, or a CR alone (the CSV reader ends a record at each).
fn line_ends(bytes: &[u8]) -> u64 {
    // (Between two records' starts lie the first record and its line end: one scan finds
    // where line ends begin, nearly always the record's last byte or two, and only the bytes
    // from there are counted.)
    let Some(first) = memchr::memchr2(b'\r', b'\n', bytes) else {
        return 0;
    };
    let bytes = &bytes[first..];
    let count = |b: u8| match bytes.len() {
        0..=32 => bytes.iter().filter(|&&c| c == b).count(),
        _ => memchr::memchr_iter(b, bytes).count(),
    };
    let (crs, lf) = (count(b'\r'), count(b'\n'));
    if crs == 0 {
        return lf as u64;
    }
    let lone_cr = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .count();
    (lf + lone_cr) as u64
}

fn decode(record: &csv::ByteRecord) -> (Cells, Vec<usize>) {
    let mut bad = Vec::new();
    let mut cells = Cells::with_capacity(record.as_slice().len(), record.len());
    // (Nearly every record is valid UTF-8 throughout: checked at once, its fields are cut from
    // it, each where a character begins; otherwise each field is checked on its own.)
    if let Ok(text) = std::str::from_utf8(record.as_slice()) {
        let whole = (0..record.len()).all(|i| match record.range(i).and_then(|r| text.get(r)) {
            Some(field) => {
                cells.push(field.trim());
                true
            }
            None => false,
        });
        if whole {
            return (cells, bad);
        }
        cells = Cells::with_capacity(record.as_slice().len(), record.len());
    }
    for (i, field) in record.iter().enumerate() {
        match std::str::from_utf8(field) {
            Ok(s) => cells.push(s.trim()),
            Err(_) => {
                bad.push(i);
                cells.push(String::from_utf8_lossy(field).trim());
            }
        }
    }
    (cells, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_counted_wherever_they_are() {
        let long = "a record longer than thirty-two bytes,x,y";
        assert_eq!(line_ends(long.as_bytes()), 0);
        assert_eq!(line_ends(format!("{long}\r\n").as_bytes()), 1);
        assert_eq!(line_ends(format!("{long}\n\n").as_bytes()), 2);
        assert_eq!(
            line_ends(format!("{long}\r{long}\r\n{long}\n").as_bytes()),
            3
        );
        let many = format!("x\n{}", "\r\n".repeat(40));
        assert_eq!(line_ends(many.as_bytes()), 41);
        assert_eq!(line_ends(b"\r"), 1);
        assert_eq!(line_ends(b""), 0);
    }
}

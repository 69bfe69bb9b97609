//! Reading CSV and XLSX files as tables of text, losing no row.
//!
//! Every cell is read as text first: no type inference that could drop or coerce a value.
//! CSV: UTF-8 with or without a byte-order mark, LF or CRLF, RFC 4180 quoting. XLSX: the first
//! worksheet, date cells as `YYYY-MM-DD`, whole numbers without `.0`. Each row keeps its
//! spreadsheet row number (the header is row 1); rows whose cells are all empty are skipped
//! but still counted, as a spreadsheet would number them. Header names are matched
//! case-insensitively after trimming.

use std::io::{Cursor, Read};
use std::path::Path;

use calamine::{Data, Reader, SheetType, Xlsx};

mod delimited;

pub use super::cells::Cells;
use crate::error::{Error, Result};

/// One data row: its spreadsheet row number and its cells, trimmed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawRow {
    pub row: u32,
    pub cells: Cells,
    /// Indices of cells that were not valid UTF-8 (decoded lossily).
    pub bad_encoding: Vec<usize>,
    /// Fields beyond the header's last column (CSV), or non-empty cells right of it (XLSX):
    /// a malformed row, whose values after an unquoted comma have shifted.
    pub extra_fields: usize,
}

impl RawRow {
    pub fn cell(&self, index: usize) -> &str {
        self.cells.get(index).unwrap_or("")
    }

    /// For a row with more fields than the header: the problem to list (its values have
    /// shifted, so no other check of the row means anything).
    pub fn extra_fields_problem(&self) -> Option<crate::error::RowProblem> {
        (self.extra_fields > 0).then(|| crate::error::RowProblem {
            row: self.row as usize,
            column: String::new(),
            reason: format!(
                "has more fields than the header ({} extra; an unquoted comma shifts every value \
                 after it): quote the value that holds the comma",
                self.extra_fields
            ),
        })
    }
}

/// An open table: the header and an iterator over its data rows.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Box<dyn Iterator<Item = Result<RawRow>>>,
}

/// The kind of a file, by how its name ends (any case); `None` for files that are not read.
/// A file named `.csv` ends in `.csv` too: it is read like any other.
pub fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".csv") {
        Some(Kind::Csv)
    } else if name.ends_with(".xlsx") {
        Some(Kind::Xlsx)
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Csv,
    Xlsx,
}

/// Reads the file at `path` once (a regular file only) and opens it as a table.
pub fn open(path: &Path) -> Result<Table> {
    let source = crate::source::read(path)?;
    parse(path, source.bytes)
}

/// Opens the bytes of the file at `path` as a table: its name says CSV or XLSX.
pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Table> {
    match kind_of(path) {
        Some(Kind::Xlsx) => open_xlsx(path, bytes),
        _ => delimited::open_csv(path, bytes),
    }
}

fn unreadable(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Unreadable {
        file: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The widest row Excel can hold.
const XLSX_MAX_COLUMNS: u32 = 16_384;
/// The most rows Excel can hold.
const XLSX_MAX_ROWS: u32 = 1_048_576;
/// What an XLSX extract may hold before it is refused as no extract (a ZIP bomb, or a file
/// that would take all memory).
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// The most the parts other than worksheets (shared strings, styles, the workbook part…)
    /// may expand to: calamine reads them whole.
    parts: u64,
    /// The most the worksheet parts may expand to (they are streamed, but a single text node is
    /// buffered whole).
    sheets: u64,
    /// The most non-empty cells kept from the first worksheet, within the header's columns.
    cells: usize,
    /// The most cell text kept: a short file can repeat one long shared string in every cell.
    text: usize,
}

const LIMITS: Limits = Limits {
    parts: 1 << 30,
    sheets: 4 << 30,
    // Excel's rows, 64 columns each.
    cells: 64 * 1_048_576,
    text: 2 << 30,
};

/// Whether a ZIP part is a worksheet (`…/worksheets/sheet<n>.xml`).
fn is_worksheet(name: &str) -> bool {
    let (folder, file) = name.rsplit_once('/').unwrap_or(("", name));
    let lower = file.to_ascii_lowercase();
    folder.to_ascii_lowercase().ends_with("worksheets")
        && lower.starts_with("sheet")
        && lower.ends_with(".xml")
}

/// Reads every part of the workbook, counting the bytes they really expand to, whatever sizes
/// the ZIP declares: worksheets against one budget, every other part against another.
fn check_expansion(path: &Path, bytes: &[u8], limits: Limits) -> Result<()> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| unreadable(path, e))?;
    let mut parts_left = limits.parts;
    let mut sheets_left = limits.sheets;
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(|e| unreadable(path, e))?;
        if part.is_dir() {
            continue;
        }
        let name = part.name().map_err(|e| unreadable(path, e))?.to_string();
        let (left, what, limit) = if is_worksheet(&name) {
            (&mut sheets_left, "the worksheets", limits.sheets)
        } else {
            (
                &mut parts_left,
                "the parts other than worksheets",
                limits.parts,
            )
        };
        let n = std::io::copy(&mut (&mut part).take(*left + 1), &mut std::io::sink())
            .map_err(|e| unreadable(path, format!("{name}: {e}")))?;
        if n > *left {
            return Err(unreadable(
                path,
                format!(
                    "{name} expands past {} MiB (with {what}): not an extract (a ZIP bomb?)",
                    limit >> 20
                ),
            ));
        }
        *left -= n;
    }
    Ok(())
}

thread_local! {
    static READING_XLSX: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside calamine, whose panics (on a malformed file) are caught and
/// reported as an unreadable file: a panic hook can stay quiet for them.
pub fn reading_xlsx() -> bool {
    READING_XLSX.with(|r| r.get())
}

/// Runs a calamine call. A panic inside calamine (say, an arithmetic overflow on a cell
/// reference of twenty letters) means a malformed file, not a bug of ours: it is caught and the
/// file reported unreadable. Only calamine's own calls run here, so a panic of ours stays one.
fn in_calamine<T, E: std::fmt::Display>(
    path: &Path,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T> {
    READING_XLSX.with(|r| r.set(true));
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    READING_XLSX.with(|r| r.set(false));
    match read {
        Ok(result) => result.map_err(|e| unreadable(path, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(unreadable(path, format!("malformed workbook ({what})")))
        }
    }
}

fn open_xlsx(path: &Path, bytes: Vec<u8>) -> Result<Table> {
    open_xlsx_within(path, bytes, LIMITS)
}

fn open_xlsx_within(path: &Path, bytes: Vec<u8>, limits: Limits) -> Result<Table> {
    check_expansion(path, &bytes, limits)?;
    let mut book: Xlsx<Cursor<Vec<u8>>> = in_calamine(path, || Xlsx::new(Cursor::new(bytes)))?;
    let first = book
        .sheets_metadata()
        .iter()
        .find(|s| s.typ == SheetType::WorkSheet)
        .map(|s| s.name.clone())
        .ok_or_else(|| unreadable(path, "the workbook has no worksheet"))?;
    let (cells, beyond) = read_cells(path, &mut book, &first, limits)?;
    Ok(table_of(cells, &beyond))
}

/// A worksheet's non-empty cells, `(row, column, text)` counted from 0.
type SparseCells = Vec<(u32, u32, String)>;

/// Rows with values right of the header's last column (row number -> how many).
type Beyond = std::collections::BTreeMap<u32, usize>;

/// The non-empty cells of worksheet `sheet` within the header's columns, and the rows with
/// values right of them.
fn read_cells(
    path: &Path,
    book: &mut Xlsx<Cursor<Vec<u8>>>,
    sheet: &str,
    limits: Limits,
) -> Result<(SparseCells, Beyond)> {
    // The cells are read one by one and kept sparse: a dense range spans from the first used
    // cell to the last, which a single stray cell at XFD1048576 makes billions of cells wide.
    // Cells right of the header's last column belong to no column and are not kept.
    let mut cells: SparseCells = Vec::new();
    // Rows with values right of the header's last column, and how many.
    let mut beyond = Beyond::new();
    let mut text_kept = 0usize;
    let mut width: Option<u32> = None;
    let mut reader = in_calamine(path, || book.worksheet_cells_reader(sheet))?;
    while let Some((row, col, text)) = in_calamine(path, || {
        reader.next_cell().map(|c| {
            c.map(|c| {
                let (row, col) = c.get_position();
                (row, col, cell_text(&Data::from(c.get_value().clone())))
            })
        })
    })? {
        if row >= XLSX_MAX_ROWS {
            return Err(unreadable(
                path,
                format!("a cell in row {}, past Excel's last row", row as u64 + 1),
            ));
        }
        if row > 0 && width.is_none() {
            width = Some(
                cells
                    .iter()
                    .filter(|(r, _, _)| *r == 0)
                    .map(|(_, c, _)| c + 1)
                    .max()
                    .unwrap_or(0),
            );
        }
        if text.is_empty() {
            continue;
        }
        if col >= XLSX_MAX_COLUMNS || width.is_some_and(|w| col >= w) {
            if row > 0 {
                *beyond.entry(row + 1).or_default() += 1;
            }
            continue;
        }
        text_kept += text.len();
        if cells.len() == limits.cells || text_kept > limits.text {
            return Err(unreadable(
                path,
                format!(
                    "more than {} non-empty cells or {} MiB of text: not an extract",
                    limits.cells,
                    limits.text >> 20
                ),
            ));
        }
        cells.push((row, col, text));
    }
    Ok((cells, beyond))
}

/// The table of a worksheet's cells: row 1 its header, the rows below its data rows.
fn table_of(mut cells: SparseCells, beyond: &Beyond) -> Table {
    cells.sort_by_key(|(r, c, _)| (*r, *c));
    // Row 1 is the header; cells right of the header's last column belong to no column.
    let header_cells: Vec<&(u32, u32, String)> =
        cells.iter().take_while(|(r, _, _)| *r == 0).collect();
    let width = header_cells.last().map_or(0, |(_, c, _)| *c as usize + 1);
    let mut header = vec![String::new(); width];
    for (_, c, text) in &header_cells {
        header[*c as usize] = text.clone();
    }
    let mut rows: Vec<RawRow> = Vec::new();
    // (The row being filled: its number and its cells.)
    let mut current: Option<(u32, Vec<String>)> = None;
    let to_row = |(row, cells): (u32, Vec<String>)| RawRow {
        row,
        cells: cells.into_iter().collect(),
        ..RawRow::default()
    };
    for (r, c, text) in cells
        .into_iter()
        .filter(|(r, c, _)| *r > 0 && (*c as usize) < width)
    {
        if current.as_ref().is_none_or(|(row, _)| *row != r + 1) {
            rows.extend(current.take().map(to_row));
            current = Some((r + 1, vec![String::new(); width]));
        }
        if let Some((_, cells)) = current.as_mut() {
            cells[c as usize] = text;
        }
    }
    rows.extend(current.map(to_row));
    // A row whose only values lie right of the header is a data row too (a malformed one).
    let rows: Vec<Result<RawRow>> = with_extra_fields(rows, beyond, width)
        .into_iter()
        .map(Ok)
        .collect();
    Table {
        header,
        rows: Box::new(rows.into_iter()),
    }
}

/// Marks the rows with values right of the header (`beyond`: row number -> how many), adding
/// those that hold no other value, in row order.
fn with_extra_fields(
    rows: Vec<RawRow>,
    beyond: &std::collections::BTreeMap<u32, usize>,
    width: usize,
) -> Vec<RawRow> {
    if beyond.is_empty() {
        return rows;
    }
    let mut out: Vec<RawRow> = Vec::with_capacity(rows.len() + beyond.len());
    let mut extra = beyond.iter().peekable();
    for mut row in rows {
        while let Some((&r, &n)) = extra.next_if(|&(&r, _)| r < row.row) {
            out.push(RawRow {
                row: r,
                cells: Cells::empty(width),
                extra_fields: n,
                ..RawRow::default()
            });
        }
        if let Some((_, &n)) = extra.next_if(|&(&r, _)| r == row.row) {
            row.extra_fields = n;
        }
        out.push(row);
    }
    out.extend(extra.map(|(&r, &n)| RawRow {
        row: r,
        cells: Cells::empty(width),
        extra_fields: n,
        ..RawRow::default()
    }));
    out
}

/// The text of one XLSX cell, as the contract reads it.
pub fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        // A date-time cell is its date: the time of day is dropped.
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if dt.is_datetime() => t.date().format("%Y-%m-%d").to_string(),
            _ => number_text(dt.as_f64()),
        },
        Data::DateTimeIso(s) => iso_date(s.trim()),
        Data::DurationIso(s) => s.trim().to_string(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

/// An ISO date-time's date (`2026-10-03T13:45:00` is `2026-10-03`); other text as it is.
fn iso_date(s: &str) -> String {
    match s.split_once('T') {
        Some((date, _)) if crate::calendar::parse_date(date).is_some() => date.to_string(),
        _ => s.to_string(),
    }
}

/// A number as Excel shows it: rounded to 15 significant digits, then written plainly (whole
/// numbers without `.0`, no exponent). A cell holding 3.3000000000000003 (what `=1.1*3`
/// stores) is `3.3`.
pub fn number_text(f: f64) -> String {
    if !f.is_finite() {
        return format!("{f}");
    }
    // `{:.14e}` rounds to 15 significant digits; reading it back gives the nearest double,
    // whose shortest form has no digits past the 15th.
    let f: f64 = format!("{f:.14e}").parse().unwrap_or(f);
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Where each wanted column sits in a file's header.
#[derive(Clone, Debug)]
pub struct Columns {
    /// Index in the file for each wanted column, in the order asked for.
    pub index: Vec<Option<usize>>,
    /// Header names the reader does not know, for the log.
    pub unknown: Vec<String>,
}

impl Columns {
    /// Matches `wanted` names against `header`; the first of `required` that is missing fails.
    pub fn resolve(
        file: &Path,
        header: &[String],
        wanted: &[&str],
        required: &[&str],
    ) -> Result<Columns> {
        let normal: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let index: Vec<Option<usize>> = wanted
            .iter()
            .map(|w| normal.iter().position(|h| h == &w.to_lowercase()))
            .collect();
        for (w, i) in wanted.iter().zip(&index) {
            if i.is_none() && required.contains(w) {
                return Err(Error::MissingColumn {
                    file: file.to_path_buf(),
                    column: (*w).to_string(),
                });
            }
        }
        let unknown = header
            .iter()
            .zip(&normal)
            .filter(|(_, n)| !n.is_empty() && !wanted.iter().any(|w| w.eq_ignore_ascii_case(n)))
            .map(|(h, _)| h.trim().to_string())
            .collect();
        Ok(Columns { index, unknown })
    }

    /// The value of wanted column `k` in `row` ("" when absent).
    pub fn get<'r>(&self, row: &'r RawRow, k: usize) -> &'r str {
        self.index[k].map_or("", |i| row.cell(i))
    }

    /// Whether wanted column `k` of `row` was not valid UTF-8.
    pub fn bad_encoding(&self, row: &RawRow, k: usize) -> bool {
        self.index[k].is_some_and(|i| row.bad_encoding.contains(&i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-sheet workbook whose second row's cell references are rewritten by `edit`.
    fn xlsx_with(edit: impl Fn(&str) -> String) -> Vec<u8> {
        use std::io::Write;
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write(0, 0, "invoice_number").unwrap();
        sheet.write(1, 0, "N1").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let mut from = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut to = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..from.len() {
            let mut part = from.by_index(i).unwrap();
            let name = part.name().unwrap().to_string();
            let mut text = Vec::new();
            std::io::copy(&mut part, &mut text).unwrap();
            if name == "xl/worksheets/sheet1.xml" {
                text = edit(&String::from_utf8(text).unwrap()).into_bytes();
            }
            to.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            to.write_all(&text).unwrap();
        }
        to.finish().unwrap().into_inner()
    }

    #[test]
    fn files_are_told_by_how_their_names_end() {
        assert_eq!(kind_of(Path::new("d/.csv")), Some(Kind::Csv));
        assert_eq!(kind_of(Path::new("d/.XLSX")), Some(Kind::Xlsx));
        assert_eq!(kind_of(Path::new("d/a.Csv")), Some(Kind::Csv));
        assert_eq!(kind_of(Path::new("d/a.csv.txt")), None);
        assert_eq!(kind_of(Path::new("d/csv")), None);
    }

    #[test]
    fn worksheets_are_told_from_the_parts_read_whole() {
        assert!(is_worksheet("xl/worksheets/sheet1.xml"));
        assert!(is_worksheet("xl/Worksheets/Sheet12.XML"));
        // A shared-strings part moved into the worksheets folder still counts as read whole.
        assert!(!is_worksheet("xl/worksheets/sharedStrings.xml"));
        assert!(!is_worksheet("xl/worksheets/_rels/sheet1.xml.rels"));
        assert!(!is_worksheet("xl/sharedStrings.xml"));
    }

    /// A workbook of `rows` rows: a header of two columns, each row with `text` in both and a
    /// third cell right of the header.
    fn wide_xlsx(rows: u32, text: &str) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write(0, 0, "a").unwrap();
        sheet.write(0, 1, "b").unwrap();
        for r in 1..=rows {
            for c in 0..3 {
                sheet.write(r, c, text).unwrap();
            }
        }
        book.save_to_buffer().unwrap()
    }

    #[test]
    fn cells_right_of_the_header_do_not_count_and_text_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.xlsx");
        let within =
            |limits: Limits| open_xlsx_within(&path, std::fs::read(&path).unwrap(), limits);
        let refused = |limits: Limits| within(limits).map(|_| ()).unwrap_err();
        std::fs::write(&path, wide_xlsx(10, "x")).unwrap();
        // 2 header cells and 10 rows of 2 cells: 22 cells kept, the third column ignored.
        let t = within(Limits {
            cells: 22,
            ..LIMITS
        })
        .unwrap();
        assert_eq!(t.rows.count(), 10);
        let err = refused(Limits {
            cells: 21,
            ..LIMITS
        });
        assert!(err.to_string().contains("non-empty cells"), "{err}");
        // One long shared string in every cell: the text kept is what counts.
        std::fs::write(&path, wide_xlsx(10, &"y".repeat(1000))).unwrap();
        assert_eq!(
            refused(Limits {
                text: 15_000,
                ..LIMITS
            })
            .exit_code(),
            65
        );
        assert!(within(Limits {
            text: 25_000,
            ..LIMITS
        })
        .is_ok());
        // Parts past their budget.
        let err = refused(Limits {
            sheets: 1_000,
            ..LIMITS
        });
        assert!(err.to_string().contains("with the worksheets"), "{err}");
        let err = refused(Limits {
            parts: 1_000,
            ..LIMITS
        });
        assert!(err.to_string().contains("other than worksheets"), "{err}");
    }

    #[test]
    fn a_cell_reference_that_overflows_is_an_unreadable_file() {
        // Found by fuzzing: calamine's column arithmetic overflows on twenty letters.
        let bytes = xlsx_with(|xml| xml.replace("r=\"A2\"", "r=\"AAAAAAAAAAAAAAAAAAAA2\""));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.xlsx");
        std::fs::write(&path, bytes).unwrap();
        let err = open(&path).map(|_| ()).unwrap_err();
        assert_eq!(err.exit_code(), 65, "{err}");
        assert!(err.to_string().contains("t.xlsx"), "{err}");
        // The reader is left as it was found.
        assert!(!reading_xlsx());
        // The same workbook unedited reads.
        std::fs::write(&path, xlsx_with(|xml| xml.to_string())).unwrap();
        let t = open(&path).unwrap();
        assert_eq!(t.header, ["invoice_number"]);
    }

    fn cells(row: &RawRow) -> Vec<&str> {
        row.cells.iter().collect()
    }

    fn read(bytes: &[u8]) -> (Vec<String>, Vec<RawRow>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, bytes).unwrap();
        let t = open(&path).unwrap();
        (t.header, t.rows.collect::<Result<Vec<_>>>().unwrap())
    }

    #[test]
    fn bom_crlf_and_quoting() {
        let (header, rows) = read(b"\xEF\xBB\xBFa, B \r\n\"x, y\",\"say \"\"hi\"\"\"\r\n 1 ,2\r\n");
        assert_eq!(header, ["a", "B"]);
        assert_eq!(cells(&rows[0]), ["x, y", "say \"hi\""]);
        assert_eq!((rows[0].row, rows[1].row), (2, 3));
        assert_eq!(cells(&rows[1]), ["1", "2"]);
    }

    #[test]
    fn row_numbers_are_spreadsheet_rows() {
        // A quoted field spanning two lines is one row; an empty line and a row of empty
        // cells are no data rows but keep their numbers.
        let (_, rows) = read(b"a,b\n\"multi\nline\",1\n,\n\nx,2\n\n\n\"y\r\n\",3\r\nz,4");
        let at: Vec<(u32, &str)> = rows.iter().map(|r| (r.row, r.cell(0))).collect();
        assert_eq!(at, [(2, "multi\nline"), (5, "x"), (8, "y"), (9, "z")]);
    }

    #[test]
    fn a_carriage_return_alone_ends_a_row_too() {
        // The CSV reader ends a record at a CR alone, so each such line is a row of its own
        // (and a quoted field spanning two such lines is one row, as with LF).
        let (_, rows) = read(b"a,b\rx,1\ry,2\r\"multi\rline\",3\rz,4\r");
        let at: Vec<(u32, &str)> = rows.iter().map(|r| (r.row, r.cell(0))).collect();
        assert_eq!(at, [(2, "x"), (3, "y"), (4, "multi\rline"), (5, "z")]);
    }

    #[test]
    fn fields_beyond_the_header_are_counted() {
        let (_, rows) = read(b"a,b\n1,2\n1,2,3\n\"1,5\",2\n1\n1,2,,\n");
        let extra: Vec<usize> = rows.iter().map(|r| r.extra_fields).collect();
        assert_eq!(extra, [0, 1, 0, 0, 2]);
        assert!(rows[0].extra_fields_problem().is_none());
        let problem = rows[1].extra_fields_problem().unwrap();
        assert_eq!(problem.row, 3);
        assert!(
            problem.to_string().starts_with("row 3: has more fields"),
            "{problem}"
        );
    }

    #[test]
    fn xlsx_values_right_of_the_header_make_a_malformed_row() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write(0, 0, "a").unwrap();
        sheet.write(0, 1, "b").unwrap();
        sheet.write(1, 0, "ok").unwrap();
        sheet.write(2, 0, "x").unwrap();
        sheet.write(2, 3, "stray").unwrap();
        // Only a value right of the header: still a (malformed) data row.
        sheet.write(4, 2, "alone").unwrap();
        sheet.write(5, 1, "ok").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.xlsx");
        std::fs::write(&path, book.save_to_buffer().unwrap()).unwrap();
        let t = open(&path).unwrap();
        let rows: Vec<RawRow> = t.rows.collect::<Result<_>>().unwrap();
        let at: Vec<(u32, usize)> = rows.iter().map(|r| (r.row, r.extra_fields)).collect();
        assert_eq!(at, [(2, 0), (3, 1), (5, 1), (6, 0)]);
        assert_eq!(cells(&rows[1]), ["x", ""]);
    }

    #[test]
    fn invalid_utf8_is_flagged_not_lost() {
        let (_, rows) = read(b"a,b\nok,\xFF\xFE\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].bad_encoding, [1]);
    }

    #[test]
    fn a_character_cut_in_two_by_a_comma_is_two_invalid_fields() {
        // Together the two fields' bytes are "é"; neither is valid UTF-8 on its own.
        let (_, rows) = read(b"a,b\n\xC3,\xA9\n\xC3\xA9 , \xC3\xBC\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].bad_encoding, [0, 1]);
        assert_eq!(cells(&rows[0]), ["\u{FFFD}", "\u{FFFD}"]);
        assert!(rows[1].bad_encoding.is_empty());
        assert_eq!(cells(&rows[1]), ["é", "ü"]);
    }

    #[test]
    fn numbers_read_from_xlsx_lose_their_dot_zero() {
        assert_eq!(number_text(4401234.0), "4401234");
        assert_eq!(number_text(12.5), "12.5");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(cell_text(&Data::Float(7.0)), "7");
        assert_eq!(cell_text(&Data::String(" x ".into())), "x");
    }

    #[test]
    fn numbers_read_as_excel_shows_them() {
        assert_eq!(number_text(1.1 * 3.0), "3.3");
        assert_eq!(number_text(0.1 + 0.2), "0.3");
        assert_eq!(number_text(123456789012345.0), "123456789012345");
        assert_eq!(number_text(1e20), "100000000000000000000");
        assert_eq!(number_text(-0.0001), "-0.0001");
        assert_eq!(number_text(2.5e-7), "0.00000025");
    }

    #[test]
    fn a_date_time_cell_is_its_date() {
        use calamine::{ExcelDateTime, ExcelDateTimeType};
        // 2026-10-03 13:45 as Excel stores it.
        let dt = ExcelDateTime::new(46298.0 + 13.75 / 24.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(dt)), "2026-10-03");
        let midnight = ExcelDateTime::new(46298.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(midnight)), "2026-10-03");
        assert_eq!(
            cell_text(&Data::DateTimeIso("2026-10-03T13:45:00".into())),
            "2026-10-03"
        );
    }

    #[test]
    fn columns_match_case_insensitively_and_name_the_missing_one() {
        let header: Vec<String> = [" Partner_ID ", "extra", "NAME"].map(String::from).to_vec();
        let c = Columns::resolve(
            Path::new("f.csv"),
            &header,
            &["partner_id", "name", "x"],
            &["partner_id"],
        )
        .unwrap();
        assert_eq!(c.index, [Some(0), Some(2), None]);
        assert_eq!(c.unknown, ["extra"]);
        let e =
            Columns::resolve(Path::new("f.csv"), &header, &["country"], &["country"]).unwrap_err();
        assert_eq!(e.to_string(), "f.csv: missing required column \"country\"");
    }
}

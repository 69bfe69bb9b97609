//! The cells of the workbook's sheets: where a sheet's rows come from (its [`Sheet`] or a
//! DataFrame's columns), the kind of value a column holds, and how one cell is written.

use polars::prelude::*;
use rust_xlsxwriter::{Worksheet, XlsxError};

use super::Styles;
use crate::calendar::date_of_unix_days;
use crate::report::{Sheet, Value};

/// Where the sheets' rows come from: a typed row at a time.
pub trait Rows: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn row(&self, i: usize, out: &mut Vec<Value>);

    /// Writes row `i` as worksheet row `row`; `scratch` is a buffer to reuse.
    fn write_row(
        &self,
        i: usize,
        ws: &mut Worksheet,
        row: u32,
        kinds: &[Kind],
        styles: &Styles,
        scratch: &mut Vec<Value>,
    ) -> Result<(), XlsxError> {
        self.row(i, scratch);
        for (col, v) in scratch.iter().enumerate() {
            write_cell(ws, row, col, v.borrowed(), kinds, styles)?;
        }
        Ok(())
    }

    /// Whether [`Rows::write_xml_row`] writes every row as rust_xlsxwriter would in columns
    /// of the `kinds` the layout foresaw (see [`writes_as_xml`]); rows that cannot say are
    /// written by rust_xlsxwriter.
    fn writes_as_xml(&self, _kinds: &[Kind]) -> bool {
        false
    }

    /// Appends row `i` to `out` as the worksheet XML of sheet row `row` (see
    /// [`push_xml_row`]); only called when [`Rows::writes_as_xml`].
    fn write_xml_row(&self, _i: usize, _row: u32, _styles: &[u32], _out: &mut Vec<u8>) {}
}

impl Rows for Sheet {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn row(&self, i: usize, out: &mut Vec<Value>) {
        out.clear();
        out.extend(self.rows[i].iter().cloned());
    }
    fn writes_as_xml(&self, kinds: &[Kind]) -> bool {
        self.rows.iter().all(|row| {
            row.iter()
                .enumerate()
                .all(|(col, v)| writes_as_xml(v.borrowed(), kinds, col))
        })
    }
    fn write_xml_row(&self, i: usize, row: u32, styles: &[u32], out: &mut Vec<u8>) {
        push_xml_row(self.rows[i].iter().map(Value::borrowed), row, styles, out);
    }
}

/// Whether a value in column `col` is written as XML exactly as [`write_cell`] has
/// rust_xlsxwriter write it: text, and finite numbers, integers and dates in columns of
/// their kind (a value the first rows did not foresee carries a format of its own, which
/// only rust_xlsxwriter writes).
fn writes_as_xml(value: Value<&str>, kinds: &[Kind], col: usize) -> bool {
    let kind = kinds.get(col).copied().unwrap_or(Kind::Text);
    match value {
        Value::Text(_) | Value::Empty => true,
        Value::Number(x) => kind == Kind::Number && x.is_finite(),
        Value::Int(_) => kind == Kind::Int,
        Value::Date(_) => kind == Kind::Date,
    }
}

/// A DataFrame's columns read as typed values.
pub struct FrameRows {
    columns: Vec<Typed>,
    height: usize,
}

enum Typed {
    Text(StringChunked),
    Number(Float64Chunked),
    Int(Int64Chunked),
    /// Days since 1970-01-01.
    Date(Int32Chunked),
}

impl FrameRows {
    pub fn new(df: &DataFrame, names: &[&str]) -> PolarsResult<FrameRows> {
        let columns = names
            .iter()
            .map(|n| {
                let c = df.column(n)?.rechunk();
                Ok(match c.dtype() {
                    DataType::String => Typed::Text(c.str()?.clone()),
                    DataType::Date => Typed::Date(c.date()?.physical().clone()),
                    DataType::Float32 | DataType::Float64 => {
                        Typed::Number(c.cast(&DataType::Float64)?.f64()?.clone())
                    }
                    _ => Typed::Int(c.cast(&DataType::Int64)?.i64()?.clone()),
                })
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        Ok(FrameRows {
            columns,
            height: df.height(),
        })
    }

    fn cell(&self, col: usize, i: usize) -> Value<&str> {
        let cell = match &self.columns[col] {
            Typed::Text(ca) => ca.get(i).map(Value::Text),
            Typed::Number(ca) => ca.get(i).map(Value::Number),
            Typed::Int(ca) => ca.get(i).map(Value::Int),
            Typed::Date(ca) => ca.get(i).and_then(date_of_unix_days).map(Value::Date),
        };
        cell.unwrap_or(Value::Empty)
    }
}

impl Rows for FrameRows {
    fn len(&self) -> usize {
        self.height
    }
    fn row(&self, i: usize, out: &mut Vec<Value>) {
        out.clear();
        out.extend((0..self.columns.len()).map(|col| self.cell(col, i).owned()));
    }
    fn writes_as_xml(&self, kinds: &[Kind]) -> bool {
        self.columns_write_as_xml(kinds)
    }
    fn write_xml_row(&self, i: usize, row: u32, styles: &[u32], out: &mut Vec<u8>) {
        let cells = (0..self.columns.len()).map(|col| self.cell(col, i));
        push_xml_row(cells, row, styles, out);
    }
    /// Straight from the columns, without building the row's values.
    fn write_row(
        &self,
        i: usize,
        ws: &mut Worksheet,
        row: u32,
        kinds: &[Kind],
        styles: &Styles,
        _scratch: &mut Vec<Value>,
    ) -> Result<(), XlsxError> {
        for col in 0..self.columns.len() {
            write_cell(ws, row, col, self.cell(col, i), kinds, styles)?;
        }
        Ok(())
    }
}

/// Writes one cell (`kinds` empty: every number and date carries its format). A number or date in a column of its own kind takes the column's format;
/// one that the first rows did not foresee (say, the first date after 2,000 empty cells)
/// carries its format itself.
pub(in crate::report) fn write_cell(
    ws: &mut Worksheet,
    row: u32,
    col: usize,
    cell: Value<&str>,
    kinds: &[Kind],
    styles: &Styles,
) -> Result<(), XlsxError> {
    let column_kind = kinds.get(col).copied().unwrap_or(Kind::Text);
    let col = col as u16;
    match cell {
        Value::Text("") | Value::Empty => {}
        Value::Text(s) => {
            ws.write_string(row, col, excel_text(s))?;
        }
        Value::Number(x) if column_kind == Kind::Number => {
            ws.write_number(row, col, x)?;
        }
        Value::Number(x) => {
            ws.write_number_with_format(row, col, x, &styles.number)?;
        }
        Value::Int(n) if column_kind == Kind::Int => {
            ws.write_number(row, col, n as f64)?;
        }
        Value::Int(n) => {
            ws.write_number_with_format(row, col, n as f64, &styles.integer)?;
        }
        Value::Date(d) if column_kind == Kind::Date => {
            ws.write_datetime(row, col, d)?;
        }
        Value::Date(d) => {
            ws.write_date_with_format(row, col, d, &styles.date)?;
        }
    }
    Ok(())
}

/// Excel's limit on the characters of a cell, counted as Excel counts them: UTF-16 units (a
/// character beyond the Basic Multilingual Plane, an emoji say, counts twice).
const EXCEL_MAX_CHARS: usize = 32_767;

/// Text as Excel can hold it: cut at Excel's 32,767 characters, never inside a character
/// (the CSV files keep it whole).
pub(in crate::report) fn excel_text(s: &str) -> &str {
    // (A text of no more bytes than the limit has no more UTF-16 units either.)
    if s.len() <= EXCEL_MAX_CHARS {
        return s;
    }
    let mut units = 0;
    for (at, ch) in s.char_indices() {
        units += ch.len_utf16();
        if units > EXCEL_MAX_CHARS {
            return &s[..at];
        }
    }
    s
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Text,
    Number,
    Int,
    Date,
}

impl FrameRows {
    /// Whether every value is written as XML as rust_xlsxwriter writes it (see
    /// [`writes_as_xml`]), column by column.
    fn columns_write_as_xml(&self, kinds: &[Kind]) -> bool {
        self.columns.iter().enumerate().all(|(col, column)| {
            let kind = kinds.get(col).copied().unwrap_or(Kind::Text);
            match column {
                Typed::Text(_) => true,
                Typed::Number(ca) if ca.null_count() == ca.len() => true,
                Typed::Number(ca) => {
                    kind == Kind::Number && ca.iter().flatten().all(f64::is_finite)
                }
                Typed::Int(ca) => kind == Kind::Int || ca.null_count() == ca.len(),
                Typed::Date(ca) => kind == Kind::Date || ca.null_count() == ca.len(),
            }
        })
    }
}

/// Appends a row of `cells` to `out` as the worksheet XML of sheet row `row` (from 1), each
/// cell in its column's style (`styles`, 0 for none), as a constant-memory rust_xlsxwriter
/// worksheet writes it: inline strings, numbers in shortest form. A row without a value is
/// not written. Dates are Excel serial numbers, as rust_xlsxwriter counts them.
///
/// One difference: a cell names its place (`r="B7"`) only when it does not follow the cell
/// before it in the row (the first cell, when it is not in column A; a cell after a blank).
/// A cell without a reference is the next one along (ECMA-376 Part 1, §18.3.1.4: the
/// reference is optional), as LibreOffice, calamine and openpyxl read it (docs/design.md
/// §4). The counting references are most of what a large sheet does not deflate well: without
/// them the Invoice detail part deflates to half the bytes, in 60% of the time.
pub(super) fn push_xml_row<'a>(
    cells: impl Iterator<Item = Value<&'a str>>,
    row: u32,
    styles: &[u32],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(b"<row r=\"");
    push_u32(out, row);
    out.extend_from_slice(b"\">");
    let opened = out.len();
    let mut digits = zmij::Buffer::new();
    // The column a cell without a reference stands in.
    let mut next = 0;
    for (col, cell) in cells.enumerate() {
        let number = match cell {
            Value::Text("") | Value::Empty => continue,
            Value::Text(s) => {
                let s = excel_text(s);
                open_cell(out, col, col != next, row, styles);
                next = col + 1;
                out.extend_from_slice(b" t=\"inlineStr\"><is><t");
                if s.starts_with(['\t', '\n', ' ']) || s.ends_with(['\t', '\n', ' ']) {
                    out.extend_from_slice(b" xml:space=\"preserve\"");
                }
                out.push(b'>');
                super::xml::push_escaped(out, s);
                out.extend_from_slice(b"</t></is></c>");
                continue;
            }
            Value::Number(x) => x,
            Value::Int(n) => n as f64,
            Value::Date(d) => rust_xlsxwriter::IntoExcelDateTime::to_excel_serial_date(&d),
        };
        open_cell(out, col, col != next, row, styles);
        next = col + 1;
        out.extend_from_slice(b"><v>");
        out.extend_from_slice(digits.format_finite(number).as_bytes());
        out.extend_from_slice(b"</v></c>");
    }
    if out.len() == opened {
        out.truncate(start);
    } else {
        out.extend_from_slice(b"</row>");
    }
}

/// `<c`, with ` r="A1"` when the cell is `placed` and ` s="…"` when the column has a style.
fn open_cell(out: &mut Vec<u8>, col: usize, placed: bool, row: u32, styles: &[u32]) {
    out.extend_from_slice(b"<c");
    if placed {
        out.extend_from_slice(b" r=\"");
        push_column_name(out, col);
        push_u32(out, row);
        out.push(b'"');
    }
    let style = styles.get(col).copied().unwrap_or(0);
    if style > 0 {
        out.extend_from_slice(b" s=\"");
        push_u32(out, style);
        out.push(b'"');
    }
}

/// The column's letters: A … Z, AA …
fn push_column_name(out: &mut Vec<u8>, col: usize) {
    let mut n = col + 1;
    let mut letters = [0u8; 4];
    let mut at = letters.len();
    while n > 0 {
        at -= 1;
        letters[at] = b'A' + ((n - 1) % 26) as u8;
        n = (n - 1) / 26;
    }
    out.extend_from_slice(&letters[at..]);
}

fn push_u32(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// What the workbook's tests compare worksheets by.
#[cfg(test)]
pub(super) mod compare {
    use std::io::Cursor;

    use calamine::{Data, Range, Reader};

    /// `xml` with the reference of every cell that follows the cell before it in its row left
    /// out, as [`super::push_xml_row`] writes it; the other references as they are.
    pub fn implied_references(xml: &str) -> String {
        let mut out = String::with_capacity(xml.len());
        let mut next = 0;
        let mut rest = xml;
        while let Some(at) = rest.find('<') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if rest.starts_with("<row ") || rest.starts_with("<row>") {
                next = 0;
            } else if let Some(cell) = rest.strip_prefix("<c r=\"") {
                let end = cell.find('"').expect("a closed reference");
                let letters = cell[..end].trim_end_matches(|c: char| c.is_ascii_digit());
                let col = letters
                    .bytes()
                    .fold(0, |n, b| n * 26 + usize::from(b - b'A' + 1))
                    - 1;
                if col == next {
                    out.push_str("<c");
                    rest = &cell[end + 1..];
                } else {
                    out.push_str("<c r=\"");
                    rest = cell;
                }
                next = col + 1;
                continue;
            } else if rest.starts_with("<c ") || rest.starts_with("<c>") || rest.starts_with("<c/")
            {
                next += 1;
            }
            out.push('<');
            rest = &rest[1..];
        }
        out.push_str(rest);
        out
    }

    /// Every worksheet of `package` as calamine reads it: its name and cells.
    pub fn read_back(package: &[u8]) -> Vec<(String, Range<Data>)> {
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook_from_rs(Cursor::new(package.to_vec())).unwrap();
        book.sheet_names()
            .into_iter()
            .map(|name| {
                let range = book.worksheet_range(&name).unwrap();
                (name, range)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_names_its_place_only_where_it_does_not_follow_the_one_before() {
        let cells = [
            Value::Text("a"),
            Value::Number(1.5),
            Value::Empty,
            Value::Text(""),
            Value::Int(7),
            Value::Text("b"),
        ];
        let mut out = Vec::new();
        push_xml_row(cells.into_iter(), 12, &[0, 2], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<row r=\"12\"><c t=\"inlineStr\"><is><t>a</t></is></c><c s=\"2\"><v>1.5</v></c>\
             <c r=\"E12\"><v>7.0</v></c><c t=\"inlineStr\"><is><t>b</t></is></c></row>"
        );
        // A row whose first value is not in column A.
        let mut out = Vec::new();
        push_xml_row([Value::Empty, Value::Int(3)].into_iter(), 2, &[], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<row r=\"2\"><c r=\"B2\"><v>3.0</v></c></row>"
        );
    }

    #[test]
    fn implied_references_leave_out_what_follows() {
        let xml = r#"<row r="1"><c r="A1" s="1"><v>1</v></c><c r="B1"><v>2</v></c><c r="D1"><v>3</v></c></row><row r="2"><c r="B2"><v>4</v></c><c r="C2"/></row>"#;
        assert_eq!(
            compare::implied_references(xml),
            r#"<row r="1"><c s="1"><v>1</v></c><c><v>2</v></c><c r="D1"><v>3</v></c></row><row r="2"><c r="B2"><v>4</v></c><c/></row>"#
        );
    }

    #[test]
    fn text_is_cut_at_excel_s_limit_in_utf16_units() {
        let ascii = "a".repeat(40_000);
        assert_eq!(excel_text(&ascii).len(), 32_767);
        let short = "é".repeat(20_000);
        assert_eq!(excel_text(&short), short);
        // An emoji is two units: 16,383 of them fit (32,766 units), the next would not.
        let emoji = "😀".repeat(20_000);
        assert_eq!(excel_text(&emoji).chars().count(), 16_383);
        let mixed = format!("{}😀", "a".repeat(32_766));
        assert_eq!(excel_text(&mixed), "a".repeat(32_766));
    }
}

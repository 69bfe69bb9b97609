//! The analysts' workbook `reports/R/kpi-refresh-R.xlsx` (SPEC 7).
//!
//! The contract's sheets in its order, each with a frozen header row, an autofilter, column
//! widths that fit, dates as Excel dates and numbers as numbers; status columns coloured at a
//! glance; charts of partners by renewal status and outlook on the Summary sheet. Text is
//! always written as a string, never as a formula. A sheet that would pass Excel's row limit
//! continues on `<sheet> (2)`, `<sheet> (3)`… Sheets are written row by row on constant-memory
//! worksheets, so the workbook's size does not bound memory; the creation date comes from the
//! refresh, not the clock, so reruns give the same file apart from the run times.
//!
//! Invoice detail holds most of the cells, and deflating them takes one core for seconds. So
//! it is written and saved as a workbook of its own, on a thread of its own, from [`start`]
//! on, while the KPIs are computed and the other sheets written; [`write`] saves the other
//! sheets with empty stand-ins for Invoice detail's and then assembles the file: every part
//! of the main package is copied as it is (no second deflate), and the stand-ins' worksheet
//! parts are taken from the detail package. Both packages register the workbook's formats
//! first, in the same order, so the style numbers in the detail's cells mean the same in the
//! file; [`assemble`] checks that before it writes.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::Path;

use polars::prelude::*;
use polars_excel_writer::PolarsExcelWriter;
use rust_xlsxwriter::{
    ConditionalFormatText, ConditionalFormatTextRule, DocProperties, Format, FormatBorder,
    Workbook, Worksheet, XlsxError,
};

use super::{layout, Computed, Sheet, Value};
use crate::calendar::Month;
use crate::error::{Error, Result};

/// Excel's row limit, header included.
pub const EXCEL_MAX_ROWS: usize = 1_048_576;

#[derive(Clone)]
pub struct Styles {
    header: Format,
    number: Format,
    integer: Format,
    date: Format,
}

impl Styles {
    fn new() -> Styles {
        Styles {
            header: Format::new()
                .set_bold()
                .set_background_color("#DDEBF7")
                .set_border_bottom(FormatBorder::Thin),
            number: Format::new().set_num_format("#,##0.00"),
            integer: Format::new().set_num_format("0"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
        }
    }

    /// Adds the formats to the workbook's table through `ws`, in a fixed order. Worksheets
    /// share their workbook's table of formats, and a format is added to it the first time a
    /// sheet uses it: registered first, the formats get the same numbers in every workbook
    /// (and whichever thread writes first, no two threads add one at once).
    fn register(&self, ws: &mut Worksheet) -> Result<(), XlsxError> {
        for (col, format) in [&self.header, &self.number, &self.integer, &self.date]
            .into_iter()
            .enumerate()
        {
            ws.set_column_format(col as u16, format)?;
        }
        Ok(())
    }
}

/// An error of rust_xlsxwriter while writing `what`. Constant-memory worksheets keep their rows
/// in temporary files: failing to write or read them is the machine's trouble (exit 73, naming
/// the temporary folder), anything else is the program's.
fn xlsx_err(what: String) -> impl Fn(XlsxError) -> Error {
    move |e| match e {
        XlsxError::IoError(io) => Error::write(std::env::temp_dir(), io),
        other => Error::internal(format!("writing {what}"), other),
    }
}

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
            let cell = match v {
                Value::Text(s) => Cell::Text(s),
                Value::Number(x) => Cell::Number(*x),
                Value::Int(n) => Cell::Int(*n),
                Value::Date(d) => Cell::Date(*d),
                Value::Empty => continue,
            };
            write_cell(ws, row, col, cell, kinds, styles)?;
        }
        Ok(())
    }
}

impl Rows for Sheet {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn row(&self, i: usize, out: &mut Vec<Value>) {
        out.clear();
        out.extend(self.rows[i].iter().cloned());
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

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn date_of(days: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE)
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

    fn cell(&self, col: usize, i: usize) -> Cell<'_> {
        let cell = match &self.columns[col] {
            Typed::Text(ca) => ca.get(i).map(Cell::Text),
            Typed::Number(ca) => ca.get(i).map(Cell::Number),
            Typed::Int(ca) => ca.get(i).map(Cell::Int),
            Typed::Date(ca) => ca.get(i).and_then(date_of).map(Cell::Date),
        };
        cell.unwrap_or(Cell::Empty)
    }
}

impl Rows for FrameRows {
    fn len(&self) -> usize {
        self.height
    }
    fn row(&self, i: usize, out: &mut Vec<Value>) {
        out.clear();
        out.extend((0..self.columns.len()).map(|col| match self.cell(col, i) {
            Cell::Text(s) => Value::text(s),
            Cell::Number(x) => Value::Number(x),
            Cell::Int(n) => Value::Int(n),
            Cell::Date(d) => Value::Date(d),
            Cell::Empty => Value::Empty,
        }));
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

/// Invoice detail's columns in the frame, in the sheet's order.
const DETAIL_COLUMNS: [&str; 14] = [
    "partner_id",
    "month",
    "year",
    "omlp_type",
    "purchase_unit",
    "invoice_number",
    "invoice_line",
    "document_type",
    "kpi_value",
    "revenue",
    "currency",
    "revenue_usd",
    "category",
    "delivery",
];

const DETAIL_HEADER: [&str; 14] = [
    "Partner ID",
    "Month",
    "Year",
    "OMLP type",
    "Purchase unit",
    "Invoice #",
    "Line",
    "Document type",
    "KPI value",
    "Revenue value",
    "Currency",
    "Revenue USD",
    "Category",
    "Delivery",
];

/// A workbook whose Invoice detail (most of its cells) is being written and saved on a thread
/// of its own, while the rest of the refresh is computed; [`write`] adds the other sheets and
/// assembles the file.
pub struct Started {
    book: Workbook,
    styles: Styles,
    max_rows: usize,
    /// Invoice detail's data rows.
    detail_rows: usize,
    detail: DetailThread,
}

/// The thread writing and saving Invoice detail's workbook. A refresh that fails before the
/// workbook is written still waits for it, so that no work of a failed run goes on behind it.
struct DetailThread(Option<std::thread::JoinHandle<Result<Vec<u8>>>>);

impl DetailThread {
    fn join(mut self) -> Result<Vec<u8>> {
        let thread = self.0.take().expect("joined once");
        thread
            .join()
            .map_err(|_| Error::internal("writing Invoice detail", "the writer panicked"))?
    }
}

impl Drop for DetailThread {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// The part of a package's `n`th worksheet (from 1).
fn worksheet_part(n: usize) -> String {
    format!("xl/worksheets/sheet{n}.xml")
}

/// Invoice detail's worksheets in the detail package: its first worksheet is a blank one that
/// registers the formats (and is the package's selected sheet, so that no detail sheet is).
fn detail_part(i: usize) -> String {
    worksheet_part(i + 2)
}

/// Creates the workbook of `refresh` and starts writing `detail` (the invoice detail frame)
/// into a package of its own. `max_rows` is the rows per sheet, header included (Excel's limit
/// unless a test asks for less).
pub fn start(refresh: Month, detail: DataFrame, max_rows: usize) -> Result<Started> {
    let err = |e| Error::internal("starting the workbook", e);
    let styles = Styles::new();
    let mut book = Workbook::new();
    let created = refresh.first_day().and_hms_opt(0, 0, 0).expect("midnight");
    book.set_properties(
        &DocProperties::new()
            .set_title(format!("KPI refresh {refresh}"))
            .set_creation_datetime(&created),
    );
    styles
        .register(&mut book.new_worksheet_with_constant_memory())
        .map_err(err)?;
    let detail_rows = detail.height();
    let names = sheet_names("Invoice detail", detail_rows, max_rows);
    let per_sheet = rows_per_sheet(max_rows);
    let detail_styles = styles.clone();
    let detail = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let err = xlsx_err("Invoice detail".into());
        let mut book = Workbook::new();
        detail_styles
            .register(book.add_worksheet_with_constant_memory())
            .map_err(&err)?;
        for name in &names {
            book.add_worksheet_with_constant_memory()
                .set_name(name)
                .map_err(&err)?;
        }
        let rows = FrameRows::new(&detail, &DETAIL_COLUMNS)?;
        let table = Table {
            header: DETAIL_HEADER.map(String::from).to_vec(),
            rows: &rows,
            sheets: Vec::new(),
        };
        let sheets = book.worksheets_mut().iter_mut().skip(1).collect();
        fill(&table, sheets, &detail_styles, per_sheet).map_err(&err)?;
        tracing::debug!(
            rows = rows.len(),
            ms = t.elapsed().as_millis() as u64,
            "workbook: invoice detail written"
        );
        let t = std::time::Instant::now();
        let saved = save(&mut book, "Invoice detail")?;
        tracing::debug!(
            bytes = saved.len(),
            ms = t.elapsed().as_millis() as u64,
            "workbook: invoice detail saved"
        );
        Ok(saved)
    });
    Ok(Started {
        book,
        styles,
        max_rows,
        detail_rows,
        detail: DetailThread(Some(detail)),
    })
}

/// Adds the other sheets to the started workbook and saves it at `path`.
pub fn write(started: Started, path: &Path, c: &Computed, run_info: &Sheet) -> Result<()> {
    let Started {
        mut book,
        styles,
        max_rows,
        detail_rows,
        detail,
    } = started;
    let err = xlsx_err(path.display().to_string());

    let summary = c.summary();
    let partners = c.partners(false);
    let monthly = monthly_frame(c).map_err(&err)?;
    let renewals = c.renewals();
    let watch = c.watch(false);
    let tail = [
        c.changes.sheet(false),
        c.directory_submission(false),
        c.directory_exceptions(),
        c.rejected_sheet(false)?,
        c.feeds.quality_sheet(false),
        c.feeds.unknown_sheet(c.program),
        run_info.clone(),
    ];

    // Every other worksheet is added first, in the contract's order, and then written while
    // Invoice detail's thread goes on; its worksheets take their place after the Anniversary watch.
    let mut tables: Vec<Table> = Vec::new();
    let add = |book: &mut Workbook, name: &str, header: &[String], rows| {
        table(book, name, header, rows, max_rows)
    };
    let t = add(&mut book, &summary.name, &summary.header, &summary).map_err(&err)?;
    tables.push(t);
    let t = add(&mut book, "Partners", &partners.header, &partners).map_err(&err)?;
    tables.push(t);
    let monthly_sheets = match &monthly {
        Monthly::Frame(df) => {
            let names = sheet_names("Monthly KPIs", df.height(), max_rows);
            let mut sheets = Vec::new();
            for name in names {
                book.add_worksheet().set_name(&name).map_err(&err)?;
                sheets.push(book.worksheets_mut().len() - 1);
            }
            sheets
        }
        Monthly::Empty(sheet) => {
            let t = add(&mut book, &sheet.name, &sheet.header, sheet).map_err(&err)?;
            tables.push(t);
            Vec::new()
        }
    };
    let t = add(&mut book, "Renewals", &renewals.header, &renewals).map_err(&err)?;
    tables.push(t);
    let t = add(&mut book, &watch.name, &watch.header, &watch).map_err(&err)?;
    tables.push(t);
    // Stand-ins for Invoice detail's worksheets, whose parts come from the detail package.
    // Each has the autofilter of the sheet it stands for: the workbook part names its range.
    let per_sheet = rows_per_sheet(max_rows);
    let mut stand_ins = Vec::new();
    let names = sheet_names("Invoice detail", detail_rows, max_rows);
    for (i, name) in names.iter().enumerate() {
        let rows = detail_rows.saturating_sub(i * per_sheet).min(per_sheet);
        let ws = book.add_worksheet_with_constant_memory();
        ws.set_name(name).map_err(&err)?;
        ws.autofilter(0, 0, (rows as u32).max(1), DETAIL_HEADER.len() as u16 - 1)
            .map_err(&err)?;
        // Print titles are names of the workbook part, which is this package's.
        ws.set_repeat_rows(0, 0).map_err(&err)?;
        stand_ins.push(book.worksheets_mut().len());
    }
    for sheet in &tail {
        let t = add(&mut book, &sheet.name, &sheet.header, sheet).map_err(&err)?;
        tables.push(t);
    }

    let t = std::time::Instant::now();
    let mut slots: Vec<Option<&mut Worksheet>> =
        book.worksheets_mut().iter_mut().map(Some).collect();
    let mut take = |indices: &[usize]| -> Vec<&mut Worksheet> {
        indices
            .iter()
            .map(|&i| slots[i].take().expect("each sheet is written once"))
            .collect()
    };
    let monthly_sheets = take(&monthly_sheets);
    let others: Vec<_> = tables.iter().map(|t| (t, take(&t.sheets))).collect();
    if let Monthly::Frame(df) = &monthly {
        write_monthly(df, monthly_sheets, &styles, per_sheet).map_err(&err)?;
    }
    for (table, sheets) in others {
        fill(table, sheets, &styles, per_sheet).map_err(&err)?;
    }
    add_summary_charts(&mut book, &summary).map_err(&err)?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "workbook: sheets written"
    );

    let t = std::time::Instant::now();
    let main = save(&mut book, "the workbook")?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "workbook: saved");
    let detail = detail.join()?;
    let t = std::time::Instant::now();
    let parts: Vec<(String, String)> = stand_ins
        .iter()
        .enumerate()
        .map(|(i, n)| (worksheet_part(*n), detail_part(i)))
        .collect();
    assemble(&main, &detail, &parts, path)?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "workbook: assembled");
    Ok(())
}

/// `book` saved in memory (see [`xlsx_err`] for its errors).
fn save(book: &mut Workbook, what: &str) -> Result<Vec<u8>> {
    book.save_to_buffer().map_err(xlsx_err(what.to_string()))
}

/// Writes the package `main` at `path` with the worksheet parts named in `parts` taken from
/// the package `detail` instead: `(part in main, part in detail)`. Every part is copied as it
/// was deflated. The detail's cells refer to formats by number, so the detail package's format
/// lists must begin as the main package's do.
pub fn assemble(main: &[u8], detail: &[u8], parts: &[(String, String)], path: &Path) -> Result<()> {
    let internal = |e: ::zip::result::ZipError| Error::internal("assembling the workbook", e);
    let written = |e: ::zip::result::ZipError| match e {
        ::zip::result::ZipError::Io(io) => Error::write(path, io),
        other => internal(other),
    };
    let mut main = ::zip::ZipArchive::new(Cursor::new(main)).map_err(internal)?;
    let mut detail = ::zip::ZipArchive::new(Cursor::new(detail)).map_err(internal)?;
    let (main_styles, detail_styles) = (styles_part(&mut main)?, styles_part(&mut detail)?);
    if let Some(list) = formats_differ(&main_styles, &detail_styles) {
        return Err(Error::internal(
            "assembling the workbook",
            format!("Invoice detail's {list} do not begin as the workbook's do"),
        ));
    }
    if let Some((m, d)) = parts
        .iter()
        .find(|(m, d)| main.index_for_name(m).is_none() || detail.index_for_name(d).is_none())
    {
        return Err(Error::internal(
            "assembling the workbook",
            format!("no part {m} in the workbook, or no part {d} in Invoice detail's"),
        ));
    }
    let file = File::create(path).map_err(|e| Error::write(path, e))?;
    let mut out = ::zip::ZipWriter::new(BufWriter::new(file));
    for i in 0..main.len() {
        let entry = main.by_index_raw(i).map_err(internal)?;
        let name = entry.name().map_err(internal)?.into_owned();
        match parts.iter().find(|(m, _)| *m == name) {
            Some((_, from)) => {
                drop(entry);
                let part = detail.by_name_raw(from.as_bytes()).map_err(internal)?;
                out.raw_copy_file_rename(part, &name)
            }
            None => out.raw_copy_file(entry),
        }
        .map_err(written)?;
    }
    let mut file = out.finish().map_err(written)?;
    file.flush().map_err(|e| Error::write(path, e))?;
    Ok(())
}

/// The styles part of a package, as text.
fn styles_part<R: std::io::Read + std::io::Seek>(zip: &mut ::zip::ZipArchive<R>) -> Result<String> {
    let context = "assembling the workbook";
    let mut part = zip
        .by_name("xl/styles.xml")
        .map_err(|e| Error::internal(context, e))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut part, &mut text).map_err(|e| Error::internal(context, e))?;
    Ok(text)
}

/// The first list of formats in `detail` (a styles part) that is not the beginning of the
/// same list in `main`, if any.
fn formats_differ(main: &str, detail: &str) -> Option<&'static str> {
    /// The elements of a styles part's list `tag`, as written (without the list's own tag).
    fn list<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
        let open = xml.find(&format!("<{tag} "))?;
        let start = open + xml[open..].find('>')? + 1;
        let end = start + xml[start..].find(&format!("</{tag}>"))?;
        Some(&xml[start..end])
    }
    [
        "numFmts",
        "fonts",
        "fills",
        "borders",
        "cellStyleXfs",
        "cellXfs",
    ]
    .into_iter()
    .find(|tag| match (list(detail, tag), list(main, tag)) {
        (None, _) => false,
        (Some(d), Some(m)) => !m.starts_with(d),
        (Some(_), None) => true,
    })
}

/// One sheet of the contract: its header, its rows and the worksheets they fill (the sheet
/// and its continuations).
struct Table<'a> {
    header: Vec<String>,
    rows: &'a dyn Rows,
    sheets: Vec<usize>,
}

/// Adds the constant-memory worksheets `name`, `name (2)`… that `rows` need.
fn table<'a>(
    book: &mut Workbook,
    name: &str,
    header: &[String],
    rows: &'a dyn Rows,
    max_rows: usize,
) -> Result<Table<'a>, XlsxError> {
    let mut sheets = Vec::new();
    for sheet_name in sheet_names(name, rows.len(), max_rows) {
        book.add_worksheet_with_constant_memory()
            .set_name(&sheet_name)?;
        sheets.push(book.worksheets_mut().len() - 1);
    }
    Ok(Table {
        header: header.to_vec(),
        rows,
        sheets,
    })
}

/// Names of the sheets holding `n` data rows: `<name>`, `<name> (2)`, …
pub fn sheet_names(name: &str, n: usize, max_rows: usize) -> Vec<String> {
    let sheets = n.div_ceil(rows_per_sheet(max_rows)).max(1);
    (1..=sheets)
        .map(|i| {
            if i == 1 {
                name.to_string()
            } else {
                format!("{name} ({i})")
            }
        })
        .collect()
}

/// The data rows of a sheet of `max_rows` rows, header included (at least one).
fn rows_per_sheet(max_rows: usize) -> usize {
    max_rows.saturating_sub(1).max(1)
}

/// Writes a table's rows into its worksheets, `per_sheet` rows each.
fn fill(
    table: &Table,
    sheets: Vec<&mut Worksheet>,
    styles: &Styles,
    per_sheet: usize,
) -> Result<(), XlsxError> {
    let (header, rows) = (&table.header, table.rows);
    let (widths, kinds) = column_layout(header, rows);
    let mut scratch = Vec::with_capacity(header.len());
    for (part, ws) in sheets.into_iter().enumerate() {
        for (col, w) in widths.iter().enumerate() {
            ws.set_column_width(col as u16, *w)?;
        }
        // Number formats go on the columns, so cells are written without a format of their
        // own (a per-cell format costs a lookup for every cell).
        for (col, kind) in kinds.iter().enumerate() {
            let format = match kind {
                Kind::Number => &styles.number,
                Kind::Int => &styles.integer,
                Kind::Date => &styles.date,
                Kind::Text => continue,
            };
            ws.set_column_format(col as u16, format)?;
        }
        for (col, h) in header.iter().enumerate() {
            ws.write_string_with_format(0, col as u16, h, &styles.header)?;
        }
        let first = part * per_sheet;
        let last = (first + per_sheet).min(rows.len());
        for (r, i) in (first..last).enumerate() {
            rows.write_row(i, ws, r as u32 + 1, &kinds, styles, &mut scratch)?;
        }
        finish_sheet(ws, header, (last - first) as u32)?;
    }
    Ok(())
}

/// One cell's value, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum Cell<'a> {
    Text(&'a str),
    Number(f64),
    Int(i64),
    Date(chrono::NaiveDate),
    Empty,
}

/// Writes one cell. A number or date in a column of its own kind takes the column's format;
/// one that the first rows did not foresee (say, the first date after 2,000 empty cells)
/// carries its format itself.
fn write_cell(
    ws: &mut Worksheet,
    row: u32,
    col: usize,
    cell: Cell,
    kinds: &[Kind],
    styles: &Styles,
) -> Result<(), XlsxError> {
    let column_kind = kinds.get(col).copied().unwrap_or(Kind::Text);
    let col = col as u16;
    match cell {
        Cell::Text("") | Cell::Empty => {}
        Cell::Text(s) => {
            ws.write_string(row, col, excel_text(s))?;
        }
        Cell::Number(x) if column_kind == Kind::Number => {
            ws.write_number(row, col, x)?;
        }
        Cell::Number(x) => {
            ws.write_number_with_format(row, col, x, &styles.number)?;
        }
        Cell::Int(n) if column_kind == Kind::Int => {
            ws.write_number(row, col, n as f64)?;
        }
        Cell::Int(n) => {
            ws.write_number_with_format(row, col, n as f64, &styles.integer)?;
        }
        Cell::Date(d) if column_kind == Kind::Date => {
            ws.write_datetime(row, col, d)?;
        }
        Cell::Date(d) => {
            ws.write_date_with_format(row, col, d, &styles.date)?;
        }
    }
    Ok(())
}

/// Excel's limit on the characters of a cell.
const EXCEL_MAX_CHARS: usize = 32_767;

/// Text as Excel can hold it: cut at Excel's 32,767 characters (the CSV files keep it whole).
fn excel_text(s: &str) -> &str {
    match s.char_indices().nth(EXCEL_MAX_CHARS) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// Frozen header, autofilter, and colours for the status columns.
fn finish_sheet(ws: &mut Worksheet, header: &[String], data_rows: u32) -> Result<(), XlsxError> {
    layout::sheet(ws, header, data_rows)?;
    let last_col = header.len().saturating_sub(1) as u16;
    ws.autofilter(0, 0, data_rows.max(1), last_col)?;
    if data_rows == 0 {
        return Ok(());
    }
    let colour = |(fill, font): (&str, &str)| {
        Format::new()
            .set_background_color(fill)
            .set_font_color(font)
    };
    let (bad, warn, good) = (
        colour(layout::BAD),
        colour(layout::WARN),
        colour(layout::GOOD),
    );
    for (col, h) in header.iter().enumerate() {
        if !matches!(
            h.as_str(),
            "Renewal status" | "Outlook" | "Effective level" | "Forecast status"
        ) {
            continue;
        }
        let rules: [(&str, &Format); 5] = [
            ("lapse", &bad),
            ("downgrade", &warn),
            ("at_risk", &warn),
            ("upgrade_eligible", &good),
            ("none", &bad),
        ];
        for (text, format) in rules {
            if h == "Effective level" && text != "none" {
                continue;
            }
            let cf = ConditionalFormatText::new()
                .set_rule(ConditionalFormatTextRule::BeginsWith(text.to_string()))
                .set_format(format);
            ws.add_conditional_format(1, col as u16, data_rows, col as u16, &cf)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Text,
    Number,
    Int,
    Date,
}

/// Column widths from the header and the first rows' text, and each column's kind of value
/// (the first value that is not text decides).
fn column_layout(header: &[String], rows: &dyn Rows) -> (Vec<f64>, Vec<Kind>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count() + 2).collect();
    let mut kinds = vec![Kind::Text; header.len()];
    let mut values = Vec::new();
    for i in 0..rows.len().min(2000) {
        rows.row(i, &mut values);
        for ((w, kind), v) in widths.iter_mut().zip(kinds.iter_mut()).zip(&values) {
            let (len, k) = match v {
                Value::Text(s) => (s.chars().count(), Kind::Text),
                Value::Number(x) => (format!("{x:.2}").len() + 2, Kind::Number),
                Value::Int(n) => (n.to_string().len(), Kind::Int),
                Value::Date(_) => (10, Kind::Date),
                Value::Empty => (0, Kind::Text),
            };
            *w = (*w).max(len + 1);
            if *kind == Kind::Text {
                *kind = k;
            }
        }
    }
    (
        widths.into_iter().map(|w| w.clamp(8, 60) as f64).collect(),
        kinds,
    )
}

/// The Monthly KPIs sheet's content: a DataFrame straight from the SQL with the month
/// columns named, or the header alone when there is no row (an Excel table needs a data row).
enum Monthly {
    Frame(DataFrame),
    Empty(Sheet),
}

fn monthly_frame(c: &Computed) -> Result<Monthly, XlsxError> {
    let (from, _) = c.refresh.window();
    let mut df = c.monthly.clone();
    let mut names: Vec<String> = vec!["Partner ID".into(), "Category".into()];
    names.extend((0..12).map(|i| from.plus(i).to_string()));
    names.push("Total".into());
    df.set_column_names(&names.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
    if df.height() == 0 {
        return Ok(Monthly::Empty(Sheet {
            name: "Monthly KPIs".into(),
            header: names,
            rows: Vec::new(),
        }));
    }
    Ok(Monthly::Frame(df))
}

/// The Monthly KPIs sheets, written with polars_excel_writer (one table per sheet; the table
/// brings the autofilter).
fn write_monthly(
    df: &DataFrame,
    sheets: Vec<&mut Worksheet>,
    styles: &Styles,
    per_sheet: usize,
) -> Result<(), XlsxError> {
    let mut writer = PolarsExcelWriter::new();
    writer
        .set_header_format(&styles.header)
        .set_dtype_float_format("#,##0.00")
        .set_freeze_panes(1, 1)
        .set_autofit(true);
    for (part, ws) in sheets.into_iter().enumerate() {
        let chunk = df.slice((part * per_sheet) as i64, per_sheet);
        writer
            .write_dataframe_to_worksheet(&chunk, ws, 0, 0)
            .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
        let header: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        layout::sheet(ws, &header, chunk.height() as u32)?;
    }
    Ok(())
}

fn add_summary_charts(book: &mut Workbook, summary: &Sheet) -> Result<(), XlsxError> {
    let rows_of = |group: &str| -> (u32, u32) {
        let idx: Vec<u32> = summary
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.first() == Some(&Value::text(group)))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        (idx[0], *idx.last().expect("group present"))
    };
    let ws = book.worksheet_from_name("Summary")?;
    let items = |first: u32, last: u32| -> Vec<String> {
        (first..=last)
            .map(|r| summary.rows[r as usize - 1][1].csv())
            .collect()
    };
    // The decisions of R: the statuses of the partners due (not_enrolled and not_due are no
    // decision of R, and come first in the table).
    let (first, last) = rows_of("Renewal status");
    let due_from = first + 2;
    let charts = [
        ("Decisions of R (partners due)", due_from, last),
        (
            "Partners by outlook",
            rows_of("Outlook").0,
            rows_of("Outlook").1,
        ),
        (
            "Watched partners by forecast status",
            rows_of("Forecast status").0,
            rows_of("Forecast status").1,
        ),
    ];
    for (n, (title, first, last)) in charts.into_iter().enumerate() {
        let chart = layout::summary_chart(title, first, last, &items(first, last));
        ws.insert_chart(1 + 16 * n as u32, 4, &chart)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package of one sheet whose formats are registered in the given order, with `value`
    /// written in the second format.
    fn package(formats: &[&Format], value: f64) -> Vec<u8> {
        let mut book = Workbook::new();
        let ws = book.add_worksheet();
        for (col, f) in formats.iter().enumerate() {
            ws.set_column_format(col as u16, f).unwrap();
        }
        ws.write_number_with_format(1, 0, value, formats[1])
            .unwrap();
        book.save_to_buffer().unwrap()
    }

    fn styles_of(package: &[u8]) -> String {
        styles_part(&mut ::zip::ZipArchive::new(Cursor::new(package)).unwrap()).unwrap()
    }

    #[test]
    fn formats_registered_in_the_same_order_begin_the_same_lists() {
        let s = Styles::new();
        let extra = Format::new().set_italic().set_num_format("0.000");
        let main = styles_of(&package(
            &[&s.header, &s.number, &s.integer, &s.date, &extra],
            1.0,
        ));
        let detail = styles_of(&package(&[&s.header, &s.number, &s.integer, &s.date], 1.0));
        assert_eq!(formats_differ(&main, &detail), None);
        // The other way round the detail's lists are longer: not a beginning.
        assert_eq!(formats_differ(&detail, &main), Some("numFmts"));
        let swapped = styles_of(&package(&[&s.header, &s.date, &s.integer, &s.number], 1.0));
        assert_eq!(formats_differ(&main, &swapped), Some("numFmts"));
        let bold_first = styles_of(&package(&[&s.number, &s.header, &s.integer, &s.date], 1.0));
        assert_eq!(formats_differ(&main, &bold_first), Some("cellXfs"));
    }

    #[test]
    fn a_detail_package_whose_formats_differ_is_refused_and_nothing_is_written() {
        let s = Styles::new();
        let main = package(&[&s.header, &s.number, &s.integer, &s.date], 1.0);
        let detail = package(&[&s.header, &s.date, &s.integer, &s.number], 2.5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.xlsx");
        let parts = [(
            "xl/worksheets/sheet1.xml".to_string(),
            "xl/worksheets/sheet1.xml".to_string(),
        )];
        let err = assemble(&main, &detail, &parts, &path).unwrap_err();
        assert!(err.to_string().contains("numFmts"), "{err}");
        assert!(!path.exists());
        // With the same formats, the part is taken from the detail package.
        let detail = package(&[&s.header, &s.number, &s.integer, &s.date], 2.5);
        assemble(&main, &detail, &parts, &path).unwrap();
        use calamine::Reader;
        let mut book: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
        let range = book.worksheet_range("Sheet1").unwrap();
        assert_eq!(range.get_value((1, 0)), Some(&calamine::Data::Float(2.5)));
        // A part missing from either package is refused before anything is written.
        std::fs::remove_file(&path).unwrap();
        let missing = [(
            "xl/worksheets/sheet1.xml".to_string(),
            "xl/worksheets/sheet9.xml".to_string(),
        )];
        let err = assemble(&main, &detail, &missing, &path).unwrap_err();
        assert!(err.to_string().contains("sheet9"), "{err}");
        assert!(!path.exists());
    }
}

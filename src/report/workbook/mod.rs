//! The analysts' workbook `reports/R/kpi-refresh-R.xlsx` (docs/rules.md §13.3).
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
//! it is written and saved as a workbook of its own (`detail`: its rows written as sheet XML
//! directly), on a thread of its own, from [`start`] on, while the KPIs are computed and the
//! other sheets written; [`write`] saves the other
//! sheets with empty stand-ins for Invoice detail's and then assembles the file: every part
//! of the main package is copied as it is (no second deflate), and the stand-ins' worksheet
//! parts are taken from the detail package. Both packages register the workbook's formats
//! first, in the same order, so the style numbers in the detail's cells mean the same in the
//! file; [`assemble`] checks that before it writes.

mod assemble;
mod cells;
mod deflated;
mod detail;
mod sheets;
mod splice;
mod xml;

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};

use polars::prelude::*;
use rust_xlsxwriter::{DocProperties, Format, FormatBorder, Workbook, Worksheet, XlsxError};

pub use self::assemble::assemble;
use self::assemble::{detail_part, worksheet_part};
pub(super) use self::cells::{excel_text, write_cell};
pub use self::cells::{FrameRows, Kind, Rows};
pub use self::sheets::sheet_names;
use self::sheets::{fill, rows_per_sheet, table, worksheet_range, Table, Written};
use self::splice::{set_in_rows, SetIn};
use super::layout::new_workbook;
use super::{layout, Computed, Sheet, Value};
use crate::calendar::Month;
use crate::error::{Error, Result};

/// Excel's row limit, header included.
pub const EXCEL_MAX_ROWS: usize = 1_048_576;

/// Rows per sheet, header included: Excel's limit, or a smaller one set in
/// `KPI_REFRESH_SHEET_ROWS` to rehearse the continuation sheets.
pub fn sheet_rows() -> usize {
    std::env::var("KPI_REFRESH_SHEET_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 2)
        .unwrap_or(EXCEL_MAX_ROWS)
}

/// The formats of a workbook's cells: the header row's, and a number format per kind of value.
/// The refresh's workbook and the statements share them but for the decimals numbers show.
#[derive(Clone)]
pub struct Styles {
    pub(in crate::report) header: Format,
    pub(in crate::report) number: Format,
    pub(in crate::report) integer: Format,
    pub(in crate::report) date: Format,
}

impl Styles {
    /// The refresh's workbook: numbers with 2 decimals.
    fn new() -> Styles {
        Styles::with_number_format("#,##0.00")
    }

    /// Numbers in `number_format`.
    pub(in crate::report) fn with_number_format(number_format: &str) -> Styles {
        Styles {
            header: Format::new()
                .set_bold()
                .set_background_color("#DDEBF7")
                .set_border_bottom(FormatBorder::Thin),
            number: Format::new().set_num_format(number_format),
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
    /// Invoice detail's data rows, once its thread has selected them.
    detail_rows: Receiver<usize>,
    detail: DetailThread,
}

/// The thread writing and saving Invoice detail's workbook. A refresh that fails before the
/// workbook is written still waits for it, so that no work of a failed run goes on behind it.
struct DetailThread(Option<std::thread::JoinHandle<Result<Vec<u8>>>>);

impl DetailThread {
    fn join(mut self) -> Result<Vec<u8>> {
        let thread = self.0.take().expect("joined once");
        thread.join().map_err(|_| {
            Error::internal("selecting or writing Invoice detail", "its thread panicked")
        })?
    }
}

impl Drop for DetailThread {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// The selection of Invoice detail's lines, run on its thread.
pub type DetailLines = Box<dyn FnOnce() -> Result<DataFrame> + Send>;

/// Creates the workbook of `refresh` and starts selecting Invoice detail's lines (`detail`)
/// and writing them into a package of its own, on a thread of its own. `max_rows` is the rows
/// per sheet, header included (Excel's limit unless a test asks for less).
pub fn start(refresh: Month, detail: DetailLines, max_rows: usize) -> Result<Started> {
    let err = |e| Error::internal("starting the workbook", e);
    let styles = Styles::new();
    let mut book = new_workbook();
    let created = refresh.first_day().and_hms_opt(0, 0, 0).expect("midnight");
    book.set_properties(
        &DocProperties::new()
            .set_title(format!("KPI refresh {refresh}"))
            .set_creation_datetime(&created),
    );
    styles
        .register(&mut book.new_worksheet_with_constant_memory().map_err(err)?)
        .map_err(err)?;
    let per_sheet = rows_per_sheet(max_rows);
    let detail_styles = styles.clone();
    let (rows_tx, detail_rows) = sync_channel(1);
    let detail = std::thread::spawn(move || {
        let detail = detail()?;
        // (The main package's stand-ins need the count; a failed selection sends none.)
        let _ = rows_tx.send(detail.height());
        let names = sheet_names("Invoice detail", detail.height(), max_rows);
        let written = Written::EndsWherePossible;
        detail::package(&detail, &names, &detail_styles, per_sheet, written)
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
    // (No count means the detail's thread failed: its error is the run's.)
    let Ok(detail_rows) = detail_rows.recv() else {
        detail.join()?;
        return Err(Error::internal(
            "writing Invoice detail",
            "no lines were selected",
        ));
    };

    let summary = c.summary();
    let head = [summary, c.partners()];
    let monthly = monthly_frame(c).map_err(&err)?;
    let middle = [c.renewals(), c.watch()];
    let tail = [
        c.changes.sheet(),
        c.directory_submission(),
        c.directory_exceptions(),
        c.rejected_sheet()?,
        c.feeds.quality_sheet(),
        c.feeds.unknown_sheet(c.program),
        run_info.clone(),
    ];
    let contents = Contents {
        head: &head,
        monthly: &monthly,
        middle: &middle,
        detail_rows,
        tail: &tail,
    };
    let worksheets = add_worksheets(&mut book, &contents, max_rows).map_err(&err)?;

    let t = std::time::Instant::now();
    let per_sheet = rows_per_sheet(max_rows);
    let set_ins = write_worksheets(&mut book, &worksheets, &styles, per_sheet).map_err(&err)?;
    add_summary_charts(&mut book, &head[0]).map_err(&err)?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "workbook: sheets written"
    );

    let t = std::time::Instant::now();
    let main = save(&mut book, "the workbook")?;
    let main = set_in_rows(&main, &set_ins).map_err(&err)?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "workbook: saved");
    let detail = detail.join()?;
    let t = std::time::Instant::now();
    let parts: Vec<(String, String)> = worksheets
        .stand_ins
        .iter()
        .enumerate()
        .map(|(i, n)| (worksheet_part(*n), detail_part(i)))
        .collect();
    assemble(&main, &detail, &parts, path)?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "workbook: assembled");
    Ok(())
}

/// The sheets of the main package, in the contract's order: Invoice detail's worksheets come
/// between `middle` and `tail`.
struct Contents<'a> {
    /// Summary and Partners.
    head: &'a [Sheet],
    monthly: &'a Monthly,
    /// Renewals and Anniversary watch.
    middle: &'a [Sheet],
    /// Invoice detail's data rows.
    detail_rows: usize,
    /// Changes … Run info.
    tail: &'a [Sheet],
}

/// The worksheets added to the main package, by what fills them.
struct Worksheets<'a> {
    /// The sheets written from rows, with their worksheets.
    tables: Vec<Table<'a>>,
    /// The stand-ins for Invoice detail's worksheets, as worksheet numbers (from 1).
    stand_ins: Vec<usize>,
}

/// Adds every worksheet of the main package, in the contract's order, before any is written
/// (Invoice detail's thread goes on meanwhile).
fn add_worksheets<'a>(
    book: &mut Workbook,
    contents: &Contents<'a>,
    max_rows: usize,
) -> Result<Worksheets<'a>, XlsxError> {
    let add = |book: &mut Workbook, sheet: &'a Sheet| {
        table(book, &sheet.name, &sheet.titles(), sheet, max_rows)
    };
    let mut tables: Vec<Table> = Vec::new();
    for sheet in contents.head {
        tables.push(add(book, sheet)?);
    }
    match contents.monthly {
        Monthly::Frame { header, rows } => {
            tables.push(table(book, "Monthly KPIs", header, rows, max_rows)?);
        }
        Monthly::Empty(sheet) => tables.push(add(book, sheet)?),
    }
    for sheet in contents.middle {
        tables.push(add(book, sheet)?);
    }
    let stand_ins = add_detail_stand_ins(book, contents.detail_rows, max_rows)?;
    for sheet in contents.tail {
        tables.push(add(book, sheet)?);
    }
    Ok(Worksheets { tables, stand_ins })
}

/// Stand-ins for Invoice detail's worksheets, whose parts come from the detail package. Each
/// has the autofilter of the sheet it stands for: the workbook part names its range.
fn add_detail_stand_ins(
    book: &mut Workbook,
    detail_rows: usize,
    max_rows: usize,
) -> Result<Vec<usize>, XlsxError> {
    let per_sheet = rows_per_sheet(max_rows);
    let mut stand_ins = Vec::new();
    let names = sheet_names("Invoice detail", detail_rows, max_rows);
    for (i, name) in names.iter().enumerate() {
        let rows = worksheet_range(i, per_sheet, detail_rows).len();
        let ws = book.add_worksheet_with_constant_memory()?;
        ws.set_name(name)?;
        ws.autofilter(0, 0, (rows as u32).max(1), DETAIL_HEADER.len() as u16 - 1)?;
        // Print titles are names of the workbook part, which is this package's.
        ws.set_repeat_rows(0, 0)?;
        stand_ins.push(book.worksheets_mut().len());
    }
    Ok(stand_ins)
}

/// Writes the rows of every worksheet added by [`add_worksheets`]. Returns the rows to set in
/// as XML once the package is saved (see `splice`): those of the constant-memory tables
/// whose values all write as XML.
fn write_worksheets<'a>(
    book: &mut Workbook,
    worksheets: &Worksheets<'a>,
    styles: &Styles,
    per_sheet: usize,
) -> Result<Vec<SetIn<'a>>, XlsxError> {
    let mut slots: Vec<Option<&mut Worksheet>> =
        book.worksheets_mut().iter_mut().map(Some).collect();
    let mut take = |indices: &[usize]| -> Vec<&mut Worksheet> {
        indices
            .iter()
            .map(|&i| slots[i].take().expect("each sheet is written once"))
            .collect()
    };
    let tables: Vec<_> = worksheets
        .tables
        .iter()
        .map(|t| (t, take(&t.sheets)))
        .collect();
    let mut set_ins = Vec::new();
    for (table, sheets) in tables {
        if !fill(table, sheets, styles, per_sheet, Written::EndsWherePossible)? {
            continue;
        }
        let parts = table.sheets.iter().map(|n| worksheet_part(n + 1));
        set_ins.extend(SetIn::for_worksheets(parts, table.rows, per_sheet));
    }
    Ok(set_ins)
}

/// `book` saved in memory (see [`xlsx_err`] for its errors).
fn save(book: &mut Workbook, what: &str) -> Result<Vec<u8>> {
    book.save_to_buffer().map_err(xlsx_err(what.to_string()))
}

/// The Monthly KPIs sheet's content: the SQL's frame, its month columns named, read column by
/// column like Invoice detail's (a table of constant-memory worksheets, its rows set in as XML
/// where they allow, as every other table); or the header alone when there is no row (an
/// Excel table needs a data row).
enum Monthly {
    Frame {
        header: Vec<String>,
        rows: FrameRows,
    },
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
        return Ok(Monthly::Empty(Sheet::titled(
            "Monthly KPIs",
            names,
            Vec::new(),
        )));
    }
    let columns: Vec<&str> = names.iter().map(String::as_str).collect();
    let rows =
        FrameRows::new(&df, &columns).map_err(|e| XlsxError::ParameterError(e.to_string()))?;
    Ok(Monthly::Frame {
        header: names,
        rows,
    })
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

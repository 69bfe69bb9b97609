//! The analysts' workbook `reports/R/kpi-refresh-R.xlsx` (SPEC 7).
//!
//! Nine sheets in the contract's order, each with a frozen header row, an autofilter, column
//! widths that fit, dates as Excel dates and numbers as numbers; status columns coloured at a
//! glance; charts of partners by renewal status and outlook on the Summary sheet. Text is
//! always written as a string, never as a formula. A sheet that would pass Excel's row limit
//! continues on `<sheet> (2)`, `<sheet> (3)`… Sheets are written row by row on constant-memory
//! worksheets, so the workbook's size does not bound memory; the creation date comes from the
//! refresh, not the clock, so reruns give the same file apart from the run times.

use std::path::Path;

use polars::prelude::*;
use polars_excel_writer::PolarsExcelWriter;
use rust_xlsxwriter::{
    Chart, ChartType, ConditionalFormatText, ConditionalFormatTextRule, DocProperties, Format,
    FormatBorder, Workbook, Worksheet, XlsxError,
};

use super::{Computed, Sheet, Value};
use crate::error::{Error, Result};

/// Excel's row limit, header included.
pub const EXCEL_MAX_ROWS: usize = 1_048_576;

struct Styles {
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
            number: Format::new().set_num_format("#,##0.00##"),
            integer: Format::new().set_num_format("0"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
        }
    }
}

fn xlsx_err(path: &Path) -> impl Fn(XlsxError) -> Error + '_ {
    move |e| Error::internal(format!("writing {}", path.display()), e)
}

/// Where the sheets' rows come from: a typed row at a time.
pub trait Rows {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn row(&self, i: usize, out: &mut Vec<Value>);
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
    columns: Vec<Column>,
    height: usize,
}

impl FrameRows {
    pub fn new(df: &DataFrame, names: &[&str]) -> PolarsResult<FrameRows> {
        let columns = names
            .iter()
            .map(|n| {
                let c = df.column(n)?;
                let c = match c.dtype() {
                    DataType::String | DataType::Date => c.clone(),
                    DataType::Float32 | DataType::Float64 => c.cast(&DataType::Float64)?,
                    _ => c.cast(&DataType::Int64)?,
                };
                Ok(c.rechunk())
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        Ok(FrameRows {
            columns,
            height: df.height(),
        })
    }
}

impl Rows for FrameRows {
    fn len(&self) -> usize {
        self.height
    }
    fn row(&self, i: usize, out: &mut Vec<Value>) {
        out.clear();
        for c in &self.columns {
            let v = match c.get(i) {
                Ok(AnyValue::String(s)) => Value::text(s),
                Ok(AnyValue::StringOwned(s)) => Value::text(s.as_str()),
                Ok(AnyValue::Float64(f)) => Value::Number(f),
                Ok(AnyValue::Int64(n)) => Value::Int(n),
                Ok(AnyValue::Date(days)) => {
                    Value::date(chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163))
                }
                _ => Value::Empty,
            };
            out.push(v);
        }
    }
}

/// Writes the workbook. `max_rows` is the rows per sheet, header included (Excel's limit
/// unless a test asks for less).
pub fn write(path: &Path, c: &Computed, run_info: &Sheet, max_rows: usize) -> Result<()> {
    let styles = Styles::new();
    let mut book = Workbook::new();
    let err = xlsx_err(path);
    let created = c
        .refresh
        .first_day()
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    book.set_properties(
        &DocProperties::new()
            .set_title(format!("KPI refresh {}", c.refresh))
            .set_creation_datetime(&created),
    );

    let summary = c.summary();
    write_sheet(
        &mut book,
        &summary.name,
        &summary.header,
        &summary,
        &styles,
        max_rows,
    )
    .map_err(&err)?;
    add_summary_charts(&mut book, &summary).map_err(&err)?;

    let partners = c.partners(false);
    write_sheet(
        &mut book,
        "Partners",
        &partners.header,
        &partners,
        &styles,
        max_rows,
    )
    .map_err(&err)?;

    let t = std::time::Instant::now();
    write_monthly(&mut book, c, &styles, max_rows).map_err(&err)?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "workbook: Monthly KPIs written"
    );

    let renewals = c.renewals();
    write_sheet(
        &mut book,
        "Renewals",
        &renewals.header,
        &renewals,
        &styles,
        max_rows,
    )
    .map_err(&err)?;

    let detail_header = [
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
    ]
    .map(String::from);
    let detail = FrameRows::new(
        c.invoice_detail,
        &[
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
        ],
    )?;
    write_sheet(
        &mut book,
        "Invoice detail",
        &detail_header,
        &detail,
        &styles,
        max_rows,
    )
    .map_err(&err)?;

    for sheet in [
        c.directory_submission(false),
        c.directory_exceptions(),
        c.rejected_sheet(false)?,
        run_info.clone(),
    ] {
        write_sheet(
            &mut book,
            &sheet.name,
            &sheet.header,
            &sheet,
            &styles,
            max_rows,
        )
        .map_err(&err)?;
    }
    let t = std::time::Instant::now();
    let saved = book.save(path);
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "workbook: saved");
    saved.map_err(|e| match e {
        XlsxError::IoError(io) => Error::write(path, io),
        other => err(other),
    })?;
    Ok(())
}

/// Names of the sheets holding `n` data rows: `<name>`, `<name> (2)`, …
pub fn sheet_names(name: &str, n: usize, max_rows: usize) -> Vec<String> {
    let per_sheet = max_rows.saturating_sub(1).max(1);
    let sheets = n.div_ceil(per_sheet).max(1);
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

fn write_sheet(
    book: &mut Workbook,
    name: &str,
    header: &[String],
    rows: &dyn Rows,
    styles: &Styles,
    max_rows: usize,
) -> Result<(), XlsxError> {
    let per_sheet = max_rows.saturating_sub(1).max(1);
    let (widths, kinds) = column_layout(header, rows);
    let mut values = Vec::with_capacity(header.len());
    for (part, sheet_name) in sheet_names(name, rows.len(), max_rows).iter().enumerate() {
        let ws = book.add_worksheet_with_constant_memory();
        ws.set_name(sheet_name)?;
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
            rows.row(i, &mut values);
            write_row(ws, r as u32 + 1, &values, &kinds, styles)?;
        }
        finish_sheet(ws, header, (last - first) as u32)?;
    }
    Ok(())
}

/// Writes one row. A number or date in a column of its own kind takes the column's format; one
/// that the first rows did not foresee (say, the first date after 2,000 empty cells) carries its
/// format itself.
fn write_row(
    ws: &mut Worksheet,
    row: u32,
    values: &[Value],
    kinds: &[Kind],
    styles: &Styles,
) -> Result<(), XlsxError> {
    for (col, v) in values.iter().enumerate() {
        let column_kind = kinds.get(col).copied().unwrap_or(Kind::Text);
        let col = col as u16;
        match v {
            Value::Text(s) if s.is_empty() => {}
            Value::Text(s) => {
                ws.write_string(row, col, excel_text(s))?;
            }
            Value::Number(x) if column_kind == Kind::Number => {
                ws.write_number(row, col, *x)?;
            }
            Value::Number(x) => {
                ws.write_number_with_format(row, col, *x, &styles.number)?;
            }
            Value::Int(n) if column_kind == Kind::Int => {
                ws.write_number(row, col, *n as f64)?;
            }
            Value::Int(n) => {
                ws.write_number_with_format(row, col, *n as f64, &styles.integer)?;
            }
            Value::Date(d) if column_kind == Kind::Date => {
                ws.write_datetime(row, col, d)?;
            }
            Value::Date(d) => {
                ws.write_date_with_format(row, col, d, &styles.date)?;
            }
            Value::Empty => {}
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
    ws.set_freeze_panes(1, 0)?;
    let last_col = header.len().saturating_sub(1) as u16;
    ws.autofilter(0, 0, data_rows.max(1), last_col)?;
    if data_rows == 0 {
        return Ok(());
    }
    let bad = Format::new()
        .set_background_color("#F8CBAD")
        .set_font_color("#9C0006");
    let warn = Format::new()
        .set_background_color("#FFEB9C")
        .set_font_color("#9C5700");
    let good = Format::new()
        .set_background_color("#C6EFCE")
        .set_font_color("#006100");
    for (col, h) in header.iter().enumerate() {
        if !matches!(h.as_str(), "Renewal status" | "Outlook" | "Effective level") {
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
enum Kind {
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

/// The Monthly KPIs sheet: a DataFrame straight from the SQL, written with polars_excel_writer
/// (one table per sheet; the table brings the autofilter).
fn write_monthly(
    book: &mut Workbook,
    c: &Computed,
    styles: &Styles,
    max_rows: usize,
) -> Result<(), XlsxError> {
    let (from, _) = c.refresh.window();
    let mut df = c.monthly.clone();
    let mut names: Vec<String> = vec!["Partner ID".into(), "Category".into()];
    names.extend((0..12).map(|i| from.plus(i).to_string()));
    names.push("Total".into());
    df.set_column_names(&names.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
    if df.height() == 0 {
        // An Excel table needs a data row: an empty sheet gets the header alone.
        let empty = Sheet {
            name: "Monthly KPIs".into(),
            header: names,
            rows: Vec::new(),
        };
        return write_sheet(book, &empty.name, &empty.header, &empty, styles, max_rows);
    }
    let per_sheet = max_rows.saturating_sub(1).max(1);
    let mut writer = PolarsExcelWriter::new();
    writer
        .set_header_format(&styles.header)
        .set_dtype_float_format("#,##0.00##")
        .set_freeze_panes(1, 0)
        .set_autofit(true);
    for (part, name) in sheet_names("Monthly KPIs", df.height(), max_rows)
        .iter()
        .enumerate()
    {
        let chunk = df.slice((part * per_sheet) as i64, per_sheet);
        let ws = book.add_worksheet();
        ws.set_name(name)?;
        writer
            .write_dataframe_to_worksheet(&chunk, ws, 0, 0)
            .map_err(|e| XlsxError::ParameterError(e.to_string()))?;
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
    for (n, (group, title)) in [
        ("Renewal status", "Partners by renewal status"),
        ("Outlook", "Partners by outlook"),
    ]
    .iter()
    .enumerate()
    {
        let (first, last) = rows_of(group);
        let mut chart = Chart::new(ChartType::Bar);
        chart
            .add_series()
            .set_name(*title)
            .set_categories(("Summary", first, 1, last, 1))
            .set_values(("Summary", first, 2, last, 2));
        chart.title().set_name(*title);
        chart.legend().set_hidden();
        ws.insert_chart(1 + 16 * n as u32, 4, &chart)?;
    }
    Ok(())
}

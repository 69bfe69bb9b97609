//! A partner's statement workbook `statements/R/statement-R-<id>.xlsx`: four sheets (Statement,
//! Monthly KPIs, Invoice lines, Rejected rows), each with a frozen header row, an autofilter,
//! numbers as numbers and dates as Excel dates; text is always written as a string, never as a
//! formula. The rows come from the published ledger, one partner's range of rows read once
//! for every partner (see `commands::statement`). A sheet past Excel's row limit continues on
//! `<sheet> (2)`…; a large sheet is written on a constant-memory worksheet.

use std::io::BufWriter;
use std::ops::Range;
use std::path::Path;

use polars::prelude::*;
use rust_xlsxwriter::{Chart, ChartType, DocProperties, Workbook, Worksheet, XlsxError};

use super::layout::new_workbook;
use super::workbook::{excel_text, sheet_names, write_cell, Styles, EXCEL_MAX_ROWS};
use super::Value;
use crate::calendar::Month;
use crate::error::{Error, Result};
use crate::exact;
use crate::ingest::extract::COLUMNS;

/// Accepted window lines, one column each, sorted by partner, date, invoice # and line.
pub struct Accepted {
    pub partner_id: StringChunked,
    /// Days since 1970-01-01.
    pub date: Int32Chunked,
    pub month_index: Int32Chunked,
    pub omlp_type: StringChunked,
    pub purchase_unit: StringChunked,
    pub invoice_number: StringChunked,
    pub invoice_line: Int64Chunked,
    pub document_type: StringChunked,
    pub kpi_value: Float64Chunked,
    pub revenue: Float64Chunked,
    pub currency: StringChunked,
    pub revenue_usd: Float64Chunked,
    /// `kpi_value` exactly, in ten-thousandths (see [`crate::exact`]).
    pub kpi_units: Int128Chunked,
    /// `revenue_usd` exactly, in units of 10⁻¹⁶.
    pub revenue_usd_units: Int128Chunked,
    pub category: StringChunked,
    pub delivery: StringChunked,
    pub source_file: StringChunked,
    pub source_row: Int64Chunked,
}

/// Rejected rows, sorted by trimmed partner_id, delivery, file and row.
pub struct Rejected {
    pub partner_id: StringChunked,
    pub delivery: StringChunked,
    pub source_file: StringChunked,
    pub source_row: Int64Chunked,
    pub reason: StringChunked,
    /// The ten extract columns as read.
    pub raw: Vec<StringChunked>,
    /// For `duplicate_line`: `YYYY-MM/file:row` of the accepted copy that counts.
    pub accepted_copy: Vec<Option<String>>,
}

/// One partner's statement.
pub struct Statement<'a> {
    pub refresh: Month,
    pub partner_id: &'a str,
    pub categories: &'a [String],
    /// The Statement sheet's rows.
    pub summary: &'a [(String, Value)],
    pub accepted: &'a Accepted,
    pub lines: Range<usize>,
    pub rejected: &'a Rejected,
    pub rejects: Range<usize>,
}

pub const LINES_HEADER: [&str; 15] = [
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
    "Source file",
    "Source row",
];

/// Rows per sheet beyond which a sheet is written on a constant-memory worksheet.
const LARGE: usize = 20_000;

fn xlsx_err(e: XlsxError) -> Error {
    match e {
        XlsxError::IoError(io) => Error::write(std::env::temp_dir(), io),
        other => Error::internal("writing a statement", other),
    }
}

fn put_text(ws: &mut Worksheet, row: u32, col: u16, s: &str) -> Result<(), XlsxError> {
    if !s.is_empty() {
        ws.write_string(row, col, excel_text(s))?;
    }
    Ok(())
}

/// Writes the statement to `path` (the caller renames it into place).
pub fn write(s: &Statement, path: &Path, max_rows: usize) -> Result<()> {
    let styles = Styles::with_number_format("#,##0.00##");
    let mut book = new_workbook();
    let created = s
        .refresh
        .first_day()
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    book.set_properties(
        &DocProperties::new()
            .set_title(format!(
                "Statement {} of partner {}",
                s.refresh, s.partner_id
            ))
            .set_creation_datetime(&created),
    );
    let per_sheet = max_rows.clamp(2, EXCEL_MAX_ROWS) - 1;
    summary_sheet(book.add_worksheet(), s.summary, &styles).map_err(xlsx_err)?;
    monthly_sheet(book.add_worksheet(), s, &styles).map_err(xlsx_err)?;
    for (name, rows) in parts("Invoice lines", s.lines.clone(), per_sheet, max_rows) {
        let ws = sheet(&mut book, &name, rows.len())?;
        lines_sheet(ws, s.accepted, rows, &styles).map_err(xlsx_err)?;
    }
    for (name, rows) in parts("Rejected rows", s.rejects.clone(), per_sheet, max_rows) {
        let ws = sheet(&mut book, &name, rows.len())?;
        rejected_sheet(ws, s.rejected, rows, &styles).map_err(xlsx_err)?;
    }
    // Never through a symbolic link planted at the file's name.
    let file = crate::publish_guard::open_nofollow(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        path,
    )?;
    book.save_to_writer(BufWriter::new(file))
        .map_err(|e| match e {
            XlsxError::IoError(io) => Error::write(path, io),
            other => Error::internal("saving a statement", other),
        })
}

/// The sheets a list of rows is split into: each sheet's name and its rows.
fn parts(
    title: &str,
    rows: Range<usize>,
    per_sheet: usize,
    max_rows: usize,
) -> Vec<(String, Range<usize>)> {
    sheet_names(title, rows.len(), max_rows)
        .into_iter()
        .enumerate()
        .map(|(part, name)| {
            let first = rows.start + part * per_sheet;
            (name, first..(first + per_sheet).min(rows.end))
        })
        .collect()
}

fn sheet<'a>(book: &'a mut Workbook, name: &str, rows: usize) -> Result<&'a mut Worksheet> {
    let ws = if rows > LARGE {
        book.add_worksheet_with_constant_memory()
            .map_err(xlsx_err)?
    } else {
        book.add_worksheet()
    };
    ws.set_name(name).map_err(xlsx_err)
}

fn header(
    ws: &mut Worksheet,
    names: &[&str],
    widths: &[f64],
    st: &Styles,
) -> Result<(), XlsxError> {
    for (c, (name, w)) in names.iter().zip(widths).enumerate() {
        ws.set_column_width(c as u16, *w)?;
        ws.write_string_with_format(0, c as u16, *name, &st.header)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

fn finish(ws: &mut Worksheet, rows: usize, cols: usize) -> Result<(), XlsxError> {
    ws.autofilter(0, 0, (rows as u32).max(1), cols as u16 - 1)?;
    Ok(())
}

fn summary_sheet(
    ws: &mut Worksheet,
    rows: &[(String, Value)],
    st: &Styles,
) -> Result<(), XlsxError> {
    ws.set_name("Statement")?;
    header(ws, &["Key", "Value"], &[34.0, 40.0], st)?;
    for (i, (key, value)) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        put_text(ws, r, 0, key)?;
        write_cell(ws, r, 1, value.borrowed(), &[], st)?;
    }
    finish(ws, rows.len(), 2)
}

/// KPI per category and month (in ten-thousandths) and revenue per month (in units of
/// 10⁻¹⁶), from the partner's lines: exact sums (see [`crate::exact`]).
pub fn monthly(s: &Statement) -> (Vec<[i128; 12]>, [i128; 12]) {
    let from = s.refresh.window().0.index();
    let mut kpi = vec![[0; 12]; s.categories.len()];
    let mut revenue = [0; 12];
    let a = s.accepted;
    for i in s.lines.clone() {
        let Some(m) = a.month_index.get(i).map(|m| m - from) else {
            continue;
        };
        let Some(m) = usize::try_from(m).ok().filter(|m| *m < 12) else {
            continue;
        };
        if let Some(k) = a
            .category
            .get(i)
            .and_then(|c| s.categories.iter().position(|x| x == c))
        {
            kpi[k][m] += a.kpi_units.get(i).unwrap_or(0);
        }
        revenue[m] += a.revenue_usd_units.get(i).unwrap_or(0);
    }
    (kpi, revenue)
}

fn monthly_sheet(ws: &mut Worksheet, s: &Statement, st: &Styles) -> Result<(), XlsxError> {
    ws.set_name("Monthly KPIs")?;
    let n = s.categories.len();
    let mut names: Vec<String> = vec!["Month".into()];
    names.extend(s.categories.iter().map(|c| format!("KPI {c}")));
    names.push("Revenue USD".into());
    names.extend(s.categories.iter().map(|c| format!("Cumulative {c}")));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let widths: Vec<f64> = names
        .iter()
        .map(|h| (h.len() as f64 + 2.0).max(12.0))
        .collect();
    header(ws, &refs, &widths, st)?;
    for c in 1..names.len() {
        ws.set_column_format(c as u16, &st.number)?;
    }
    let (kpi, revenue) = monthly(s);
    let amount = |units: i128| exact::round4_f64(units, exact::AMOUNT_SCALE);
    let from = s.refresh.window().0;
    let mut cumulative = vec![0; n];
    for m in 0..12 {
        let r = m as u32 + 1;
        ws.write_string(r, 0, from.plus(m as i32).to_string())?;
        for k in 0..n {
            cumulative[k] += kpi[k][m];
            ws.write_number(r, 1 + k as u16, amount(kpi[k][m]))?;
            ws.write_number(r, 2 + (n + k) as u16, amount(cumulative[k]))?;
        }
        let usd = exact::round4_f64(revenue[m], exact::USD_SCALE);
        ws.write_number(r, 1 + n as u16, usd)?;
    }
    finish(ws, 12, names.len())?;
    // A chart of each category's running total over the window (the requirement of each is on
    // the Statement sheet, beside its gap).
    if s.lines.is_empty() {
        return Ok(());
    }
    let mut chart = Chart::new(ChartType::Line);
    chart.title().set_name("Cumulative KPIs over the window");
    for (k, c) in s.categories.iter().enumerate() {
        let col = 2 + (n + k) as u16;
        chart
            .add_series()
            .set_name(&format!("Cumulative {c}"))
            .set_categories(("Monthly KPIs", 1, 0, 12, 0))
            .set_values(("Monthly KPIs", 1, col, 12, col));
    }
    ws.insert_chart(14, 0, &chart)?;
    Ok(())
}

fn lines_sheet(
    ws: &mut Worksheet,
    a: &Accepted,
    rows: Range<usize>,
    st: &Styles,
) -> Result<(), XlsxError> {
    let widths = [
        7.0, 6.0, 22.0, 16.0, 16.0, 6.0, 13.0, 12.0, 14.0, 9.0, 14.0, 16.0, 9.0, 22.0, 10.0,
    ];
    header(ws, &LINES_HEADER, &widths, st)?;
    for c in [0u16, 1, 5, 14] {
        ws.set_column_format(c, &st.integer)?;
    }
    for c in [7u16, 8, 10] {
        ws.set_column_format(c, &st.number)?;
    }
    let count = rows.len();
    for (r, i) in rows.enumerate() {
        let r = r as u32 + 1;
        if let Some(d) = a.date.get(i).and_then(crate::calendar::date_of_unix_days) {
            use chrono::Datelike;
            ws.write_number(r, 0, d.month() as f64)?;
            ws.write_number(r, 1, d.year() as f64)?;
        }
        put_text(ws, r, 2, a.omlp_type.get(i).unwrap_or(""))?;
        put_text(ws, r, 3, a.purchase_unit.get(i).unwrap_or(""))?;
        put_text(ws, r, 4, a.invoice_number.get(i).unwrap_or(""))?;
        if let Some(n) = a.invoice_line.get(i) {
            ws.write_number(r, 5, n as f64)?;
        }
        put_text(ws, r, 6, a.document_type.get(i).unwrap_or(""))?;
        for (c, v) in [(7u16, &a.kpi_value), (8, &a.revenue), (10, &a.revenue_usd)] {
            if let Some(x) = v.get(i) {
                ws.write_number(r, c, x)?;
            }
        }
        put_text(ws, r, 9, a.currency.get(i).unwrap_or(""))?;
        put_text(ws, r, 11, a.category.get(i).unwrap_or(""))?;
        put_text(ws, r, 12, a.delivery.get(i).unwrap_or(""))?;
        put_text(ws, r, 13, a.source_file.get(i).unwrap_or(""))?;
        if let Some(n) = a.source_row.get(i) {
            ws.write_number(r, 14, n as f64)?;
        }
    }
    finish(ws, count, LINES_HEADER.len())
}

fn rejected_sheet(
    ws: &mut Worksheet,
    x: &Rejected,
    rows: Range<usize>,
    st: &Styles,
) -> Result<(), XlsxError> {
    let mut names = vec![
        "Delivery",
        "Source file",
        "Source row",
        "Reason",
        "Accepted copy",
    ];
    names.extend(COLUMNS);
    let mut widths = vec![9.0, 22.0, 10.0, 26.0, 28.0];
    widths.extend([16.0; 10]);
    header(ws, &names, &widths, st)?;
    ws.set_column_format(2, &st.integer)?;
    let count = rows.len();
    for (r, i) in rows.enumerate() {
        let r = r as u32 + 1;
        put_text(ws, r, 0, x.delivery.get(i).unwrap_or(""))?;
        put_text(ws, r, 1, x.source_file.get(i).unwrap_or(""))?;
        if let Some(n) = x.source_row.get(i) {
            ws.write_number(r, 2, n as f64)?;
        }
        put_text(ws, r, 3, x.reason.get(i).unwrap_or(""))?;
        put_text(
            ws,
            r,
            4,
            x.accepted_copy
                .get(i)
                .and_then(|c| c.as_deref())
                .unwrap_or(""),
        )?;
        for (c, col) in x.raw.iter().enumerate() {
            put_text(ws, r, 5 + c as u16, col.get(i).unwrap_or(""))?;
        }
    }
    finish(ws, count, names.len())
}

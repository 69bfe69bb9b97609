//! The workbook's sheets written from rows: the worksheets a sheet needs (continuing past
//! Excel's row limit), their rows, column widths and formats, frozen header, autofilter and
//! status colours.

use std::ops::Range;

use rust_xlsxwriter::{
    ConditionalFormatText, ConditionalFormatTextRule, Format, Workbook, Worksheet, XlsxError,
};

use super::cells::{Kind, Rows};
use super::Styles;
use crate::report::{layout, Value};

/// One sheet of the contract: its header, its rows and the worksheets they fill (the sheet
/// and its continuations).
pub(super) struct Table<'a> {
    pub(super) header: Vec<String>,
    pub(super) rows: &'a dyn Rows,
    pub(super) sheets: Vec<usize>,
}

/// Adds the constant-memory worksheets `name`, `name (2)`… that `rows` need.
pub(super) fn table<'a>(
    book: &mut Workbook,
    name: &str,
    header: &[String],
    rows: &'a dyn Rows,
    max_rows: usize,
) -> Result<Table<'a>, XlsxError> {
    let mut sheets = Vec::new();
    for sheet_name in sheet_names(name, rows.len(), max_rows) {
        book.add_worksheet_with_constant_memory()?
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
pub(super) fn rows_per_sheet(max_rows: usize) -> usize {
    max_rows.saturating_sub(1).max(1)
}

/// Which of a table's `rows` its `k`th worksheet holds (from 0), `per_sheet` a worksheet.
pub(super) fn worksheet_range(k: usize, per_sheet: usize, rows: usize) -> Range<usize> {
    let first = (k * per_sheet).min(rows);
    first..(first + per_sheet).min(rows)
}

/// Which of a table's data rows [`fill`] may leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// Every row, by rust_xlsxwriter: what the tests compare the rows set in as XML with.
    #[cfg_attr(not(test), allow(dead_code))]
    All,
    /// When the rows can be written as XML ([`Rows::writes_as_xml`]), each worksheet's last
    /// data row only: the rows before it are set in afterwards (see `splice`).
    EndsWherePossible,
}

/// Writes a table's rows into its worksheets, `per_sheet` rows each. Returns whether only
/// each worksheet's last data row was written (the others to be set in as XML).
pub(super) fn fill(
    table: &Table,
    sheets: Vec<&mut Worksheet>,
    styles: &Styles,
    per_sheet: usize,
    written: Written,
) -> Result<bool, XlsxError> {
    let (header, rows) = (&table.header, table.rows);
    let (widths, kinds) = column_layout(header, rows);
    let ends = written == Written::EndsWherePossible
        && rows.writes_as_xml(&kinds)
        && last_rows_hold_values(rows, per_sheet);
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
        let data = worksheet_range(part, per_sheet, rows.len());
        let (first, last) = (data.start, data.end);
        for (r, i) in data.enumerate() {
            if ends && i + 1 < last {
                continue;
            }
            rows.write_row(i, ws, r as u32 + 1, &kinds, styles, &mut scratch)?;
        }
        finish_sheet(ws, header, (last - first) as u32)?;
    }
    Ok(ends)
}

/// Whether the last data row of each worksheet holds a value: a row of blanks is not written,
/// so the rows before it would have nowhere to be set in (and the sheet's dimension would end
/// earlier than rust_xlsxwriter's).
fn last_rows_hold_values(rows: &dyn Rows, per_sheet: usize) -> bool {
    let mut values = Vec::new();
    (0..rows.len().div_ceil(per_sheet)).all(|k| {
        rows.row(
            worksheet_range(k, per_sheet, rows.len()).end - 1,
            &mut values,
        );
        values
            .iter()
            .any(|v| !matches!(v.borrowed(), Value::Empty | Value::Text("")))
    })
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

/// Column widths from the header and the first rows' text, and each column's kind of value
/// (the first value that is not text decides).
pub(super) fn column_layout(header: &[String], rows: &dyn Rows) -> (Vec<f64>, Vec<Kind>) {
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

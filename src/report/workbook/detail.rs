//! Invoice detail's package: the workbook holding Invoice detail's worksheets, written and
//! saved to memory on a thread of its own (see [`super::start`]) for [`super::assemble`].
//!
//! Invoice detail holds most of the workbook's cells. rust_xlsxwriter keeps each cell in its
//! row tables before writing it (some 300 ns a cell); here the rows are written as worksheet
//! XML straight from the frame's columns, byte for byte as rust_xlsxwriter writes them (a test
//! compares both), and deflated once, as the package is written. rust_xlsxwriter still writes
//! each worksheet's frame: its header row, its last data row (so that the dimension,
//! autofilter and ignored-error ranges are its own) and all around them; the rows between are
//! set in before the last one. A detail with a value the XML writer does not write (a date, a
//! number in a column whose first rows held none, a number that is not finite) is written by
//! rust_xlsxwriter whole.

use std::io::{Cursor, Read, Write};

use polars::prelude::DataFrame;
use rust_xlsxwriter::XlsxError;
use zip::write::SimpleFileOptions;

use super::assemble::detail_part;
use super::cells::{FrameRows, Rows};
use super::sheets::{column_layout, fill, Written};
use super::{new_workbook, save, xlsx_err, Styles, Table, DETAIL_COLUMNS, DETAIL_HEADER};
use crate::error::Result;

/// Writes Invoice detail (`detail`) into the worksheets `names`, `per_sheet` rows each, and
/// saves the package.
pub(super) fn package(
    detail: &DataFrame,
    names: &[String],
    styles: &Styles,
    per_sheet: usize,
) -> Result<Vec<u8>> {
    let t = std::time::Instant::now();
    let err = xlsx_err("Invoice detail".into());
    let mut book = new_workbook();
    styles
        .register(book.add_worksheet_with_constant_memory().map_err(&err)?)
        .map_err(&err)?;
    for name in names {
        book.add_worksheet_with_constant_memory()
            .map_err(&err)?
            .set_name(name)
            .map_err(&err)?;
    }
    let rows = FrameRows::new(detail, &DETAIL_COLUMNS)?;
    let header = DETAIL_HEADER.map(String::from).to_vec();
    let (_, kinds) = column_layout(&header, &rows);
    let as_xml = rows.writes_as_xml(&kinds);
    let table = Table {
        header,
        rows: &rows,
        sheets: Vec::new(),
    };
    let written = if as_xml { Written::Ends } else { Written::All };
    let sheets = book.worksheets_mut().iter_mut().skip(1).collect();
    fill(&table, sheets, styles, per_sheet, written).map_err(&err)?;
    let frame = save(&mut book, "Invoice detail")?;
    let saved = match as_xml {
        true => set_in_rows(&frame, &rows, per_sheet).map_err(&err)?,
        false => frame,
    };
    tracing::debug!(
        rows = rows.len(),
        as_xml,
        bytes = saved.len(),
        ms = t.elapsed().as_millis() as u64,
        "workbook: invoice detail written and saved"
    );
    Ok(saved)
}

/// The package `frame` with the data rows between each worksheet's first and last set in:
/// every other part is copied as it was deflated.
fn set_in_rows(frame: &[u8], rows: &FrameRows, per_sheet: usize) -> Result<Vec<u8>, XlsxError> {
    let sheets = rows.len().div_ceil(per_sheet).max(1);
    let mut parts = zip::ZipArchive::new(Cursor::new(frame))?;
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(frame.len() * 8)));
    for i in 0..parts.len() {
        let name = parts.by_index_raw(i)?.name()?.into_owned();
        let Some(sheet) = (0..sheets).find(|k| detail_part(*k) == name) else {
            out.raw_copy_file(parts.by_index_raw(i)?)?;
            continue;
        };
        let mut xml = String::new();
        parts.by_index(i)?.read_to_string(&mut xml)?;
        let first = sheet * per_sheet;
        let last = (first + per_sheet).min(rows.len());
        out.start_file(name.as_str(), part_options(xml.len()))?;
        write_sheet(&mut out, &xml, rows, first..last)?;
    }
    Ok(out.finish()?.into_inner())
}

/// The options rust_xlsxwriter writes its parts with (see `layout::ZIP_LEVEL`).
fn part_options(frame_len: usize) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(i64::from(crate::report::layout::ZIP_LEVEL)))
        .unix_permissions(0o600)
        .last_modified_time(zip::DateTime::default())
        // (The rows of a sheet are bounded by Excel's; this is room to spare.)
        .large_file(frame_len > 1 << 30)
}

/// Writes the worksheet `frame` (header row and last data row) with the data rows `data`
/// but the last one set in before it.
fn write_sheet(
    out: &mut impl Write,
    frame: &str,
    rows: &FrameRows,
    data: std::ops::Range<usize>,
) -> Result<(), XlsxError> {
    let styles = column_styles(frame);
    let last_row = data.len() + 1;
    let (before, after) = match data.len() {
        0 | 1 => (frame, ""),
        _ => {
            let at = frame
                .find(&format!("<row r=\"{last_row}\""))
                .ok_or_else(|| XlsxError::ParameterError("no last row to set rows in".into()))?;
            frame.split_at(at)
        }
    };
    out.write_all(before.as_bytes())?;
    let mut buf = Vec::with_capacity(1 << 20);
    for (n, i) in data.clone().take(data.len().saturating_sub(1)).enumerate() {
        rows.write_xml_row(i, n as u32 + 2, &styles, &mut buf);
        if buf.len() >= 1 << 20 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.write_all(after.as_bytes())?;
    Ok(())
}

/// The style of each column's unformatted cells, from the worksheet's `<cols>`: the
/// column's format (0 for none), as rust_xlsxwriter gives it to such a cell.
fn column_styles(frame: &str) -> Vec<u32> {
    let mut styles = Vec::new();
    let cols = frame
        .find("<cols>")
        .and_then(|s| Some(&frame[s..s + frame[s..].find("</cols>")?]))
        .unwrap_or("");
    for col in cols.split("<col").skip(1) {
        let attr = |name: &str| -> Option<usize> {
            let at = col.find(&format!(" {name}=\""))? + name.len() + 3;
            col[at..at + col[at..].find('"')?].parse().ok()
        };
        let (Some(min), Some(max)) = (attr("min"), attr("max")) else {
            continue;
        };
        if styles.len() < max {
            styles.resize(max, 0);
        }
        let style = attr("style").unwrap_or(0) as u32;
        styles[min.saturating_sub(1)..max].fill(style);
    }
    styles
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    /// The detail package as rust_xlsxwriter writes it whole.
    fn whole(detail: &DataFrame, names: &[String], per_sheet: usize) -> Vec<u8> {
        let styles = Styles::new();
        let mut book = new_workbook();
        styles
            .register(book.add_worksheet_with_constant_memory().unwrap())
            .unwrap();
        for name in names {
            book.add_worksheet_with_constant_memory()
                .unwrap()
                .set_name(name)
                .unwrap();
        }
        let rows = FrameRows::new(detail, &DETAIL_COLUMNS).unwrap();
        let table = Table {
            header: DETAIL_HEADER.map(String::from).to_vec(),
            rows: &rows,
            sheets: Vec::new(),
        };
        let sheets = book.worksheets_mut().iter_mut().skip(1).collect();
        fill(&table, sheets, &styles, per_sheet, Written::All).unwrap();
        save(&mut book, "test").unwrap()
    }

    fn part(package: &[u8], name: &str) -> String {
        let mut zip = ::zip::ZipArchive::new(Cursor::new(package)).unwrap();
        let mut text = String::new();
        zip.by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    const AWKWARD: [&str; 12] = [
        "plain",
        "a & b < c > d \"q\" 'a'",
        " leading space",
        "trailing tab\t",
        "new\nline",
        "\nnewline first",
        "_x0041_ looks escaped",
        "_x00e9_ and _x12G4_ and _x_x0041_",
        "ctrl \u{1}\u{8}\u{b}\u{c}\u{d}\u{1f} chars",
        "non-chars \u{FFFE}\u{FFFF}",
        "ünïcödé ✓ 日本",
        "",
    ];

    /// A detail frame of `n` rows whose text columns cycle through awkward strings.
    fn detail(n: usize) -> DataFrame {
        let text = |k: usize| -> Vec<Option<String>> {
            (0..n)
                .map(|i| match (i + k) % 13 {
                    12 => None,
                    j => Some(AWKWARD[j].to_string()),
                })
                .collect()
        };
        let numbers = |scale: f64| -> Vec<Option<f64>> {
            (0..n)
                .map(|i| match i % 7 {
                    6 => None,
                    5 => Some(-0.0),
                    j => Some((i as f64 - 3.3) * scale * (j as f64 + 0.5)),
                })
                .collect()
        };
        let ints = |base: i64| -> Vec<Option<i64>> {
            (0..n)
                .map(|i| (i % 11 != 10).then_some(base + i as i64))
                .collect()
        };
        df!(
            "partner_id" => text(0),
            "month" => ints(1),
            "year" => ints(2025),
            "omlp_type" => text(1),
            "purchase_unit" => text(2),
            "invoice_number" => text(3),
            "invoice_line" => ints(-5),
            "document_type" => text(4),
            "kpi_value" => numbers(1.0001),
            "revenue" => numbers(123_456_789.123),
            "currency" => text(5),
            "revenue_usd" => numbers(1e-7),
            "category" => text(6),
            "delivery" => text(7),
        )
        .unwrap()
    }

    #[test]
    fn rows_written_as_xml_are_the_bytes_rust_xlsxwriter_writes() {
        for (n, per_sheet) in [(0, 10), (1, 10), (2, 10), (40, 100), (40, 7), (21, 10)] {
            let df = detail(n);
            let names = super::super::sheet_names("Invoice detail", n, per_sheet + 1);
            let rows = FrameRows::new(&df, &DETAIL_COLUMNS).unwrap();
            let header = DETAIL_HEADER.map(String::from).to_vec();
            assert!(rows.writes_as_xml(&column_layout(&header, &rows).1));
            let fast = package(&df, &names, &Styles::new(), per_sheet).unwrap();
            let slow = whole(&df, &names, per_sheet);
            for k in 0..names.len() {
                let name = detail_part(k);
                assert_eq!(part(&fast, &name), part(&slow, &name), "{n} rows, {name}");
            }
            // Every other part is the same too.
            let list = |p: &[u8]| {
                let zip = ::zip::ZipArchive::new(Cursor::new(p)).unwrap();
                zip.file_names()
                    .map(|n| n.unwrap().into_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(list(&fast), list(&slow));
            for name in list(&slow) {
                assert_eq!(part(&fast, &name), part(&slow, &name), "{name}");
            }
        }
    }

    #[test]
    fn values_the_xml_writer_does_not_write_go_to_rust_xlsxwriter() {
        let header = DETAIL_HEADER.map(String::from).to_vec();
        let mut df = detail(30);
        let rows = FrameRows::new(&df, &DETAIL_COLUMNS).unwrap();
        assert!(rows.writes_as_xml(&column_layout(&header, &rows).1));
        // Not finite.
        let mut kpi: Vec<Option<f64>> = vec![Some(1.0); 30];
        kpi[20] = Some(f64::INFINITY);
        df.with_column(Column::new("kpi_value".into(), kpi))
            .unwrap();
        let rows = FrameRows::new(&df, &DETAIL_COLUMNS).unwrap();
        assert!(!rows.writes_as_xml(&column_layout(&header, &rows).1));
        let names = vec!["Invoice detail".to_string()];
        let written = package(&df, &names, &Styles::new(), 100).unwrap();
        assert_eq!(
            part(&written, &detail_part(0)),
            part(&whole(&df, &names, 100), &detail_part(0))
        );
        // A number where the first 2,000 rows held none: the layout foresaw text, and the
        // number carries its format itself.
        let mut df = detail(2100);
        let late: Vec<Option<f64>> = (0..2100).map(|i| (i == 2050).then_some(2.5)).collect();
        df.with_column(Column::new("revenue".into(), late)).unwrap();
        let rows = FrameRows::new(&df, &DETAIL_COLUMNS).unwrap();
        assert!(!rows.writes_as_xml(&column_layout(&header, &rows).1));
        let written = package(&df, &names, &Styles::new(), 3000).unwrap();
        let xml = part(&written, &detail_part(0));
        assert_eq!(xml, part(&whole(&df, &names, 3000), &detail_part(0)));
        assert!(xml.contains("<v>2.5</v>"));
    }

    #[test]
    fn column_styles_come_from_the_cols_element() {
        let xml = r#"<cols><col min="1" max="1" width="12"/><col min="2" max="3" width="8" style="3" customWidth="1"/><col min="5" max="5" width="9" style="2"/></cols>"#;
        assert_eq!(column_styles(xml), [0, 3, 3, 0, 2]);
        assert_eq!(column_styles("<worksheet/>"), Vec::<u32>::new());
    }
}

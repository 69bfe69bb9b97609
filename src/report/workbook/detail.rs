//! Invoice detail's package: the workbook holding Invoice detail's worksheets, written and
//! saved to memory on a thread of its own (see [`super::start`]) for [`super::assemble`].
//! Its rows are set in as XML (see `splice`) unless a value asks for rust_xlsxwriter.

use polars::prelude::DataFrame;

use super::assemble::detail_part;
use super::cells::{FrameRows, Rows};
use super::sheets::{fill, Written};
use super::splice::{set_in_rows, SetIn};
use super::{new_workbook, save, xlsx_err, Styles, Table, DETAIL_COLUMNS, DETAIL_HEADER};
use crate::error::Result;

/// Writes Invoice detail (`detail`) into the worksheets `names`, `per_sheet` rows each, and
/// saves the package; `written` says whether its rows may be set in as XML.
pub(super) fn package(
    detail: &DataFrame,
    names: &[String],
    styles: &Styles,
    per_sheet: usize,
    written: Written,
) -> Result<Vec<u8>> {
    let t = std::time::Instant::now();
    let err = xlsx_err("Invoice detail".into());
    let mut book = new_workbook();
    // Only its worksheets are published: its own properties carry a fixed date, not the
    // clock's, so that the package is the same bytes whenever it is written.
    let fixed = chrono::NaiveDate::from_ymd_opt(1980, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a date");
    book.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&fixed));
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
    let table = Table {
        header: DETAIL_HEADER.map(String::from).to_vec(),
        rows: &rows,
        sheets: Vec::new(),
    };
    let sheets = book.worksheets_mut().iter_mut().skip(1).collect();
    let as_xml = fill(&table, sheets, styles, per_sheet, written).map_err(&err)?;
    let frame = save(&mut book, "Invoice detail")?;
    let saved = match as_xml {
        true => {
            let parts = (0..names.len()).map(detail_part);
            let set_ins = SetIn::for_worksheets(parts, &rows, per_sheet);
            set_in_rows(&frame, &set_ins).map_err(&err)?
        }
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use polars::prelude::*;

    use super::super::cells::compare::{implied_references, read_back};
    use super::super::sheets::column_layout;
    use super::*;

    /// The detail package as rust_xlsxwriter writes it whole.
    fn whole(detail: &DataFrame, names: &[String], per_sheet: usize) -> Vec<u8> {
        package(detail, names, &Styles::new(), per_sheet, Written::All).unwrap()
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
    fn rows_written_as_xml_are_the_bytes_rust_xlsxwriter_writes_but_implied_references() {
        for (n, per_sheet) in [(0, 10), (1, 10), (2, 10), (40, 100), (40, 7), (21, 10)] {
            let df = detail(n);
            let names = super::super::sheet_names("Invoice detail", n, per_sheet + 1);
            let rows = FrameRows::new(&df, &DETAIL_COLUMNS).unwrap();
            let header = DETAIL_HEADER.map(String::from).to_vec();
            assert!(rows.writes_as_xml(&column_layout(&header, &rows).1));
            let fast = package(
                &df,
                &names,
                &Styles::new(),
                per_sheet,
                Written::EndsWherePossible,
            )
            .unwrap();
            let slow = whole(&df, &names, per_sheet);
            for k in 0..names.len() {
                let name = detail_part(k);
                assert_eq!(
                    implied_references(&part(&fast, &name)),
                    implied_references(&part(&slow, &name)),
                    "{n} rows, {name}"
                );
            }
            assert_eq!(read_back(&fast), read_back(&slow), "{n} rows");
            // Every other part is the same too.
            let list = |p: &[u8]| {
                let zip = ::zip::ZipArchive::new(Cursor::new(p)).unwrap();
                zip.file_names()
                    .map(|n| n.unwrap().into_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(list(&fast), list(&slow));
            for name in list(&slow) {
                assert_eq!(
                    implied_references(&part(&fast, &name)),
                    implied_references(&part(&slow, &name)),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_package_is_the_same_bytes_whenever_it_is_written() {
        let df = detail(30);
        let names = super::super::sheet_names("Invoice detail", 30, 11);
        let write = || package(&df, &names, &Styles::new(), 10, Written::EndsWherePossible);
        let first = write().unwrap();
        // (Past the next second of the clock, which a creation date would show.)
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(write().unwrap() == first);
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
        let written =
            package(&df, &names, &Styles::new(), 100, Written::EndsWherePossible).unwrap();
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
        let written = package(
            &df,
            &names,
            &Styles::new(),
            3000,
            Written::EndsWherePossible,
        )
        .unwrap();
        let xml = part(&written, &detail_part(0));
        assert_eq!(xml, part(&whole(&df, &names, 3000), &detail_part(0)));
        assert!(xml.contains("<v>2.5</v>"));
    }
}

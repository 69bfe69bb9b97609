//! Rows set into a saved package as worksheet XML. A table whose rows write as XML
//! ([`Rows::writes_as_xml`]: text, and numbers in columns of their kind) has rust_xlsxwriter
//! write each worksheet's frame only: its header row, its last data row (so that the
//! dimension, autofilter and ignored-error ranges are its own) and all around them; once the
//! package is saved, the rows between are written straight from the table's rows, byte for
//! byte as rust_xlsxwriter writes them but for the references a cell may leave out (see
//! [`super::cells::push_xml_row`]; tests compare both), and set in before the last one.
//! rust_xlsxwriter keeps each cell in its row tables before writing it (some 300 ns a cell);
//! written here, a cell costs a tenth of that.

use std::io::{Cursor, Read, Write};
use std::ops::Range;

use rust_xlsxwriter::XlsxError;
use zip::write::SimpleFileOptions;

use super::cells::Rows;
use super::deflated;
use super::sheets::worksheet_range;

/// Rows to set into a worksheet part: `data` of `rows`, whose last one the part holds.
pub(super) struct SetIn<'a> {
    pub part: String,
    pub rows: &'a dyn Rows,
    pub data: Range<usize>,
}

impl<'a> SetIn<'a> {
    /// The rows of a table's worksheets, whose parts are `parts` (in order), `per_sheet` rows
    /// each.
    pub fn for_worksheets(
        parts: impl IntoIterator<Item = String>,
        rows: &'a dyn Rows,
        per_sheet: usize,
    ) -> Vec<SetIn<'a>> {
        parts
            .into_iter()
            .enumerate()
            .map(|(k, part)| SetIn {
                part,
                rows,
                data: worksheet_range(k, per_sheet, rows.len()),
            })
            .collect()
    }
}

/// The package `frame` with the rows of each of `parts` set in: every other part is copied
/// as it was deflated; those parts are deflated again, at the workbook's ZIP level, on as
/// many threads as the pool has (see `deflated`).
pub(super) fn set_in_rows(frame: &[u8], parts: &[SetIn]) -> Result<Vec<u8>, XlsxError> {
    if parts.is_empty() {
        return Ok(frame.to_vec());
    }
    let mut package = zip::ZipArchive::new(Cursor::new(frame))?;
    // (Each part to set rows into must be found: a part left as its frame would lose them.)
    if let Some(missing) = parts
        .iter()
        .find(|p| package.index_for_name(&p.part).is_none())
    {
        return Err(XlsxError::ParameterError(format!(
            "no part {} to set rows in",
            missing.part
        )));
    }
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..package.len() {
        let name = package.by_index_raw(i)?.name()?.into_owned();
        let Some(set_in) = parts.iter().find(|p| p.part == name) else {
            out.raw_copy_file(package.by_index_raw(i)?)?;
            continue;
        };
        let mut xml = String::new();
        package.by_index(i)?.read_to_string(&mut xml)?;
        let estimated = estimated_len(&xml, set_in);
        let part = match estimated < u64::from(u32::MAX) {
            true => {
                let level = u32::from(crate::report::layout::ZIP_LEVEL);
                let threads = crate::pool::workers(usize::MAX);
                deflated::deflate_part(&name, level, threads, |mut to| {
                    write_sheet(&mut to, &xml, set_in).map_err(std::io::Error::other)
                })?
            }
            false => None,
        };
        match part {
            Some(part) => {
                let mut part = zip::ZipArchive::new(Cursor::new(part))?;
                out.raw_copy_file(part.by_index_raw(0)?)?;
            }
            // A part that may need ZIP64, by its estimate or once deflated, is deflated here,
            // on this thread, as a ZIP64 entry.
            None => {
                out.start_file(
                    name.as_str(),
                    part_options(estimated.max(u64::from(u32::MAX))),
                )?;
                write_sheet(&mut out, &xml, set_in)?;
            }
        }
    }
    Ok(out.finish()?.into_inner())
}

/// About how long the part will be: the frame, and each row set in as long as the last row
/// (twice, to be safe).
fn estimated_len(frame: &str, set_in: &SetIn) -> u64 {
    let last = set_in.data.len() + 1;
    let row = frame
        .find(&format!("<row r=\"{last}\""))
        .and_then(|at| Some(frame[at..].find("</row>")? + "</row>".len()))
        .unwrap_or(0);
    frame.len() as u64 + 2 * (row as u64) * (set_in.data.len() as u64)
}

/// The options rust_xlsxwriter writes its parts with (see `layout::ZIP_LEVEL`); ZIP64 for a
/// part that may pass 4 GiB, which a plain ZIP entry cannot hold.
fn part_options(estimated_len: u64) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(i64::from(crate::report::layout::ZIP_LEVEL)))
        .unix_permissions(0o600)
        .last_modified_time(zip::DateTime::default())
        .large_file(estimated_len >= u64::from(u32::MAX))
}

/// Writes the worksheet `frame` (header row and last data row) with the data rows of
/// `set_in` but the last one set in before it.
fn write_sheet(out: &mut impl Write, frame: &str, set_in: &SetIn) -> Result<(), XlsxError> {
    let styles = column_styles(frame);
    let data = set_in.data.clone();
    let (before, after) = match data.len() {
        0 | 1 => (frame, ""),
        n => {
            let at = frame
                .find(&format!("<row r=\"{}\"", n + 1))
                .ok_or_else(|| XlsxError::ParameterError("no last row to set rows in".into()))?;
            frame.split_at(at)
        }
    };
    out.write_all(before.as_bytes())?;
    let mut buf = Vec::with_capacity(1 << 20);
    for (n, i) in data.clone().take(data.len().saturating_sub(1)).enumerate() {
        set_in
            .rows
            .write_xml_row(i, n as u32 + 2, &styles, &mut buf);
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
    use chrono::NaiveDate;

    use super::super::assemble::worksheet_part;
    use super::super::cells::compare::{implied_references, read_back};
    use super::super::sheets::{fill, table, Written};
    use super::super::{new_workbook, Styles};
    use super::*;
    use crate::report::{Sheet, Value};

    /// The package of one table `sheet`, `per_sheet` rows a worksheet, its rows written by
    /// rust_xlsxwriter (`written` All) or set in as XML where they can be.
    fn package(sheet: &Sheet, per_sheet: usize, written: Written) -> (Vec<u8>, bool) {
        let styles = Styles::new();
        let mut book = new_workbook();
        styles
            .register(&mut book.new_worksheet_with_constant_memory().unwrap())
            .unwrap();
        let t = table(
            &mut book,
            &sheet.name,
            &sheet.titles(),
            sheet,
            per_sheet + 1,
        )
        .unwrap();
        let worksheets: Vec<_> = book.worksheets_mut().iter_mut().collect();
        let as_xml = fill(&t, worksheets, &styles, per_sheet, written).unwrap();
        let saved = book.save_to_buffer().unwrap();
        if !as_xml {
            return (saved, false);
        }
        let parts = t.sheets.iter().map(|n| worksheet_part(n + 1));
        let set_ins = SetIn::for_worksheets(parts, sheet, per_sheet);
        (set_in_rows(&saved, &set_ins).unwrap(), true)
    }

    fn parts(package: &[u8]) -> Vec<(String, String)> {
        let mut zip = ::zip::ZipArchive::new(Cursor::new(package)).unwrap();
        (0..zip.len())
            .map(|i| {
                let mut part = zip.by_index(i).unwrap();
                let mut text = String::new();
                part.read_to_string(&mut text).unwrap();
                (part.name().unwrap().into_owned(), text)
            })
            .collect()
    }

    /// A Partners-like sheet: text with a status column, dates, integers, numbers, blanks.
    fn sheet(n: usize) -> Sheet {
        let statuses = ["renew", "lapse", "downgrade", "upgrade_eligible", "at_risk"];
        let rows = (0..n)
            .map(|i| {
                let day = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()
                    + chrono::Days::new(i as u64 * 977);
                if i == 4 {
                    // A row of blanks, which no sheet row stands for.
                    return vec![
                        Value::Empty,
                        Value::Empty,
                        Value::Empty,
                        Value::Empty,
                        Value::text(""),
                        Value::Empty,
                    ];
                }
                vec![
                    // (From the 12th row on, a number among the text: a column of numbers
                    // whose text cells take its format too.)
                    if i == 11 {
                        Value::Number(2.5)
                    } else {
                        Value::text(format!("P{i:03} & <co>"))
                    },
                    Value::Date(day),
                    if i % 4 == 3 {
                        Value::Empty
                    } else {
                        Value::Int(i as i64 - 7)
                    },
                    Value::Number(i as f64 * 1234.5678 - 0.1),
                    Value::text(statuses[i % statuses.len()]),
                    if i % 3 == 0 {
                        Value::text("")
                    } else {
                        Value::text(" padded ")
                    },
                ]
            })
            .collect();
        let titles = [
            "Partner ID",
            "Enrolled on",
            "MCTs",
            "KPI courseware",
            "Renewal status",
            "Note",
        ];
        Sheet::titled("Partners", titles.map(String::from).to_vec(), rows)
    }

    /// The parts of `package` with the references a cell may leave out left out.
    fn parts_implied(package: &[u8]) -> Vec<(String, String)> {
        let implied = |(name, text): (String, String)| (name, implied_references(&text));
        parts(package).into_iter().map(implied).collect()
    }

    #[test]
    fn sheet_rows_set_in_as_xml_are_the_bytes_rust_xlsxwriter_writes_but_implied_references() {
        for (n, per_sheet) in [(0, 5), (1, 5), (2, 5), (30, 100), (30, 7), (11, 6)] {
            let sheet = sheet(n);
            let (whole, _) = package(&sheet, per_sheet, Written::All);
            let (set_in, as_xml) = package(&sheet, per_sheet, Written::EndsWherePossible);
            assert!(as_xml, "{n} rows");
            assert_eq!(
                parts_implied(&set_in),
                parts_implied(&whole),
                "{n} rows, {per_sheet} a sheet"
            );
            // Read back, every cell is where rust_xlsxwriter put it.
            assert_eq!(read_back(&set_in), read_back(&whole), "{n} rows");
        }
        // The rows between a sheet's first and last do leave references out.
        let (set_in, _) = package(&sheet(30), 100, Written::EndsWherePossible);
        let (_, xml) = parts(&set_in)
            .into_iter()
            .find(|(name, _)| name == "xl/worksheets/sheet1.xml")
            .unwrap();
        assert!(
            xml.contains("<row r=\"3\"><c s=\"2\" t=\"inlineStr\">"),
            "{xml}"
        );
    }

    #[test]
    fn a_value_the_layout_did_not_foresee_keeps_the_table_with_rust_xlsxwriter() {
        // An integer in a column of numbers: it carries its own format.
        let mut sheet = sheet(12);
        sheet.rows[11][3] = Value::Int(5);
        let (whole, _) = package(&sheet, 100, Written::All);
        let (written, as_xml) = package(&sheet, 100, Written::EndsWherePossible);
        assert!(!as_xml);
        assert_eq!(parts(&written), parts(&whole));
        // (Written whole by rust_xlsxwriter, every cell names its place.)
        assert_ne!(parts_implied(&written), parts(&written));
        // A number that is not finite.
        let mut sheet = self::sheet(12);
        sheet.rows[5][3] = Value::Number(f64::NAN);
        assert!(!package(&sheet, 100, Written::EndsWherePossible).1);
        // A last row of blanks (of the table, or of one of its worksheets).
        for (n, per_sheet) in [(5, 100), (12, 5)] {
            let sheet = self::sheet(n);
            let (whole, _) = package(&sheet, per_sheet, Written::All);
            let (written, as_xml) = package(&sheet, per_sheet, Written::EndsWherePossible);
            assert!(!as_xml, "{n} rows, {per_sheet} a sheet");
            assert_eq!(parts(&written), parts(&whole));
        }
    }

    #[test]
    fn a_part_to_set_rows_in_must_be_in_the_package() {
        let (package, _) = package(&sheet(3), 10, Written::All);
        let sheet = sheet(3);
        let set_in = SetIn {
            part: "xl/worksheets/sheet9.xml".into(),
            rows: &sheet,
            data: 0..3,
        };
        let err = set_in_rows(&package, &[set_in]).unwrap_err();
        assert!(err.to_string().contains("sheet9"), "{err}");
    }

    #[test]
    fn column_styles_come_from_the_cols_element() {
        let xml = r#"<cols><col min="1" max="1" width="12"/><col min="2" max="3" width="8" style="3" customWidth="1"/><col min="5" max="5" width="9" style="2"/></cols>"#;
        assert_eq!(column_styles(xml), [0, 3, 3, 0, 2]);
        assert_eq!(column_styles("<worksheet/>"), Vec::<u32>::new());
    }
}

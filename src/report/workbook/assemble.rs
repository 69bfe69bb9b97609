//! The workbook file assembled from two packages: the main package (every sheet but Invoice
//! detail's, which are empty stand-ins there) and Invoice detail's own package, written on a
//! thread of its own. Every part is copied as it was deflated; the stand-ins' worksheet parts
//! are taken from the detail package, once its lists of formats are checked to begin as the
//! main package's do.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The part of a package's `n`th worksheet (from 1).
pub(super) fn worksheet_part(n: usize) -> String {
    format!("xl/worksheets/sheet{n}.xml")
}

/// Invoice detail's worksheets in the detail package: its first worksheet is a blank one that
/// registers the formats (and is the package's selected sheet, so that no detail sheet is).
pub(super) fn detail_part(i: usize) -> String {
    worksheet_part(i + 2)
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
pub(super) fn styles_part<R: std::io::Read + std::io::Seek>(
    zip: &mut ::zip::ZipArchive<R>,
) -> Result<String> {
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
pub(super) fn formats_differ(main: &str, detail: &str) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use rust_xlsxwriter::{Format, Workbook};

    use super::super::Styles;
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

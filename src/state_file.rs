//! Reading back the state files earlier refreshes wrote (`state/levels/`, `state/directory/`).
//!
//! They are files on disk like any other, so nothing in them is trusted blindly: the file must
//! be a regular file with the expected header, and every row must hold what the program
//! writes there. A row that does not (a hand-edited unknown level, a duplicated partner) fails
//! the run with exit 65 naming the file and each bad row, rather than being dropped, which
//! would silently lose a carried-forward decision or a baseline entry.

use std::path::{Path, PathBuf};

use crate::calendar::Month;
use crate::error::{Error, Result, RowProblem};
use crate::report::csv_out::unescape;

/// What is wrong with one row, as (column, reason) pairs; empty when it is sound.
pub type RowCheck = fn(&[String; 4]) -> Vec<(&'static str, String)>;

/// The latest state file `<dir>/YYYY-MM.csv` whose month is before `refresh`: its month and
/// its rows (header left out), unescaped; every row checked by `check`.
pub fn read_latest(
    dir: &Path,
    refresh: Month,
    header: &[&str; 4],
    check: RowCheck,
) -> Result<Option<(Month, Vec<[String; 4]>)>> {
    let Some((month, path)) = latest(dir, refresh) else {
        return Ok(None);
    };
    let source = crate::source::read(&path)?;
    let rows = parse(&path, &source.bytes, header, check)?;
    Ok(Some((month, rows)))
}

/// The latest `<dir>/YYYY-MM.csv` with a month before `refresh`.
fn latest(dir: &Path, refresh: Month) -> Option<(Month, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let month: Month = name.strip_suffix(".csv")?.parse().ok()?;
            (month < refresh).then(|| (month, e.path()))
        })
        .max_by_key(|(m, _)| *m)
}

fn parse(
    path: &Path,
    bytes: &[u8],
    header: &[&str; 4],
    check: RowCheck,
) -> Result<Vec<[String; 4]>> {
    let mut problems = Vec::new();
    let mut report = |row: usize, column: &str, reason: String| {
        problems.push(RowProblem {
            row,
            column: column.to_string(),
            reason,
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let record = record.map_err(|e| Error::Unreadable {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let cells: Vec<String> = record.iter().map(unescape).collect();
        if row == 1 {
            if cells != header.map(String::from) {
                report(
                    row,
                    "(header)",
                    format!("is {cells:?}, expected {header:?}"),
                );
            }
            continue;
        }
        if cells.len() != 4 {
            report(
                row,
                "(row)",
                format!("has {} fields, expected 4", cells.len()),
            );
            continue;
        }
        let cells: [String; 4] = std::array::from_fn(|k| cells[k].clone());
        if cells[0].is_empty() {
            report(row, header[0], "is empty".into());
        } else if let Some(first) = seen.insert(cells[0].clone(), row) {
            report(
                row,
                header[0],
                format!("{:?} is also on row {first}", cells[0]),
            );
        }
        for (column, reason) in check(&cells) {
            report(row, column, reason);
        }
        rows.push(cells);
    }
    if bytes.is_empty() {
        report(1, "(header)", "the file is empty".into());
    }
    if !problems.is_empty() {
        return Err(Error::InvalidRows {
            file: path.to_path_buf(),
            problems,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_x(cells: &[String; 4]) -> Vec<(&'static str, String)> {
        if cells[3] == "x" {
            vec![("d", "is x".into())]
        } else {
            Vec::new()
        }
    }

    const HEADER: [&str; 4] = ["id", "b", "c", "d"];

    #[test]
    fn sound_rows_read_back_and_bad_ones_are_named() {
        let p = Path::new("state/levels/2026-10.csv");
        let rows = parse(p, b"id,b,c,d\nP1,,'=x,y\n", &HEADER, no_x).unwrap();
        assert_eq!(rows, [["P1", "", "=x", "y"].map(String::from)]);
        let e = parse(p, b"id,b,c,d\nP1,,,x\nP1,,,y\n,,,\nP2,1\n", &HEADER, no_x).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        let text = e.to_string();
        for needle in [
            "2026-10.csv",
            "row 2, column d: is x",
            "row 3, column id",
            "row 4, column id: is empty",
            "row 5, column (row)",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let e = parse(p, b"id,b,c\nP1,,\n", &HEADER, no_x).unwrap_err();
        assert!(e.to_string().contains("row 1, column (header)"), "{e}");
        assert_eq!(parse(p, b"", &HEADER, no_x).unwrap_err().exit_code(), 65);
    }
}

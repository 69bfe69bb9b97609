//! The state files a refresh leaves for the next (`state/levels/YYYY-MM.csv`,
//! `state/directory/YYYY-MM.csv`, docs/rules.md §6, §9.3, §15): their paths, columns and
//! rows, written and read back here alone.
//!
//! They are files on disk like any other, so nothing in them is trusted blindly: the file must
//! be a regular file with the expected header, and every row must hold what the program
//! writes there. A row that does not (a hand-edited unknown level, a duplicated partner) fails
//! the run with exit 65 naming the file and each bad row, rather than being dropped, which
//! would silently lose a carried-forward decision or a baseline entry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::calendar::Month;
use crate::config::program::Level;
use crate::csv_file::{escape_state, unescape};
use crate::error::{Error, Result, RowProblem};

/// The columns of `state/levels/YYYY-MM.csv`.
pub const LEVELS_HEADER: [&str; 4] = [
    "partner_id",
    "roster_enrollment",
    "enrolled_on",
    "effective_level",
];

/// The columns of `state/directory/YYYY-MM.csv`.
pub const DIRECTORY_HEADER: [&str; 4] = [
    "partner_id",
    "directory_name",
    "country",
    "landing_page_url",
];

/// A row of `state/levels/YYYY-MM.csv` (its partner_id aside): the roster's enrollment and
/// enrollment date as they were, and the effective level decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelRow {
    pub roster_enrollment: String,
    pub enrolled_on: String,
    pub effective_level: String,
}

/// The levels written by a refresh (its month, and a row per partner).
pub type PreviousLevels = (Month, HashMap<String, LevelRow>);

/// A row of `state/directory/YYYY-MM.csv`: an entry as the directory lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryRow {
    pub partner_id: String,
    pub directory_name: String,
    pub country: String,
    pub landing_page_url: String,
}

/// The path of refresh `r`'s levels file, relative to the output folder.
pub fn levels_rel(r: Month) -> String {
    format!("state/levels/{r}.csv")
}

/// The path of refresh `r`'s directory file, relative to the output folder.
pub fn directory_rel(r: Month) -> String {
    format!("state/directory/{r}.csv")
}

/// The latest `state/levels/M.csv` of `output` with M < `refresh`, if any.
pub fn read_levels(output: &Path, refresh: Month) -> Result<Option<PreviousLevels>> {
    let dir = output.join("state/levels");
    let read = read_latest(&dir, refresh, &LEVELS_HEADER, check_level_row)?;
    Ok(read.map(|(month, rows)| {
        let rows = rows
            .into_iter()
            .map(|[id, roster_enrollment, enrolled_on, effective_level]| {
                let row = LevelRow {
                    roster_enrollment,
                    enrolled_on,
                    effective_level,
                };
                (id, row)
            })
            .collect();
        (month, rows)
    }))
}

/// The latest `state/directory/M.csv` of `output` with M < `refresh`: its month and rows.
pub fn read_directory(output: &Path, refresh: Month) -> Result<Option<(Month, Vec<DirectoryRow>)>> {
    let dir = output.join("state/directory");
    let read = read_latest(&dir, refresh, &DIRECTORY_HEADER, check_directory_row)?;
    Ok(read.map(|(month, rows)| {
        let rows = rows
            .into_iter()
            .map(
                |[partner_id, directory_name, country, landing_page_url]| DirectoryRow {
                    partner_id,
                    directory_name,
                    country,
                    landing_page_url,
                },
            )
            .collect();
        (month, rows)
    }))
}

/// Writes a levels file at `path`: a row per (partner_id, row), in the order given.
pub fn write_levels(path: &Path, rows: impl IntoIterator<Item = (String, LevelRow)>) -> Result<()> {
    let rows = rows
        .into_iter()
        .map(|(id, r)| vec![id, r.roster_enrollment, r.enrolled_on, r.effective_level]);
    crate::csv_file::write(path, &LEVELS_HEADER, rows, escape_state)
}

/// Writes a directory file at `path`, the rows in the order given.
pub fn write_directory(path: &Path, rows: impl IntoIterator<Item = DirectoryRow>) -> Result<()> {
    let rows = rows.into_iter().map(|r| {
        vec![
            r.partner_id,
            r.directory_name,
            r.country,
            r.landing_page_url,
        ]
    });
    crate::csv_file::write(path, &DIRECTORY_HEADER, rows, escape_state)
}

/// What is wrong with a row of `state/levels/` (levels as the program writes them, an
/// enrollment date empty or a date).
fn check_level_row(cells: &[String; 4]) -> Vec<(&'static str, String)> {
    let level = |k: usize| {
        (!Level::ALL.iter().any(|l| l.as_str() == cells[k])).then(|| {
            (
                LEVELS_HEADER[k],
                format!("{:?} is not none, action_pack, silver or gold", cells[k]),
            )
        })
    };
    let date = (!cells[2].is_empty() && crate::calendar::parse_date(&cells[2]).is_none())
        .then(|| (LEVELS_HEADER[2], format!("{:?} is not a date", cells[2])));
    [level(1), date, level(3)].into_iter().flatten().collect()
}

/// What is wrong with a row of `state/directory/` (every listed entry has a name, a
/// two-letter country and a URL).
fn check_directory_row(cells: &[String; 4]) -> Vec<(&'static str, String)> {
    let mut wrong = Vec::new();
    for k in [1, 3] {
        if cells[k].is_empty() {
            wrong.push((DIRECTORY_HEADER[k], "is empty".to_string()));
        }
    }
    if cells[2].len() != 2 || !cells[2].bytes().all(|b| b.is_ascii_uppercase()) {
        wrong.push((
            DIRECTORY_HEADER[2],
            format!("{:?} is not a two-letter country code", cells[2]),
        ));
    }
    wrong
}

/// What is wrong with one row, as (column, reason) pairs; empty when it is sound.
type RowCheck = fn(&[String; 4]) -> Vec<(&'static str, String)>;

/// The latest state file `<dir>/YYYY-MM.csv` whose month is before `refresh`: its month and
/// its rows (header left out), unescaped; every row checked by `check`.
fn read_latest(
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

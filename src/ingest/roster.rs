//! The partner roster (`partners.csv` or `partners.xlsx`, `docs/rules.md §2.5`), checked row by
//! row.
//!
//! Master data is fixed first, never guessed: any invalid row fails the run (exit 65) with
//! every bad row listed by row number, column and reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::table::{self, Columns, RawRow};
use crate::calendar::parse_date;
use crate::config::program::Level;
use crate::error::{Error, Result, RowProblem};

pub const COLUMNS: [&str; 13] = [
    "partner_id",
    "partner_name",
    "country",
    "enrollment",
    "competency",
    "enrolled_on",
    "mct_count",
    "exams_met",
    "performance_commitment",
    "action_pack_active",
    "directory_name",
    "landing_page_url",
    "owned_domains",
];

/// The first ten columns must be in the file; the directory columns may be left out.
const REQUIRED: &[&str] = COLUMNS.split_at(10).0;

#[derive(Clone, Debug, PartialEq)]
pub struct Partner {
    pub partner_id: String,
    pub partner_name: String,
    /// Upper case.
    pub country: String,
    pub enrollment: Level,
    pub competency: String,
    pub enrolled_on: Option<NaiveDate>,
    pub mct_count: u32,
    pub exams_met: bool,
    pub performance_commitment: bool,
    pub action_pack_active: bool,
    pub directory_name: String,
    pub landing_page_url: String,
    pub owned_domains: String,
}

#[derive(Clone, Debug)]
pub struct Roster {
    /// Sorted by partner_id.
    pub partners: Vec<Partner>,
    pub unknown_columns: Vec<String>,
}

impl Roster {
    /// Finds the roster in `input`: `partners.csv`, else `partners.xlsx`. Returns the path and
    /// whether both exist (the CSV is used then, and the log says so).
    pub fn locate(input: &Path) -> Result<(PathBuf, bool)> {
        let csv = input.join("partners.csv");
        let xlsx = input.join("partners.xlsx");
        match (csv.exists(), xlsx.exists()) {
            (true, both) => Ok((csv, both)),
            (false, true) => Ok((xlsx, false)),
            (false, false) => Err(Error::MissingInput {
                what: "partner roster (partners.csv or partners.xlsx)".into(),
                path: csv,
            }),
        }
    }

    pub fn load(path: &Path) -> Result<Roster> {
        Roster::from_source(&crate::source::read(path)?)
    }

    /// The roster in the bytes of `source`, read once (their digest is `source.sha256`).
    pub fn from_source(source: &crate::source::Source) -> Result<Roster> {
        let path = source.path.as_path();
        let t = table::parse(path, source.bytes.clone())?;
        let columns = Columns::resolve(path, &t.header, &COLUMNS, REQUIRED)?;
        let mut partners = Vec::new();
        let mut problems = Vec::new();
        let mut seen: HashMap<String, u32> = HashMap::new();
        for row in t.rows {
            let row = row?;
            if let Some(problem) = row.extra_fields_problem() {
                problems.push(problem);
                continue;
            }
            partners.push(check_row(&row, &columns, &mut seen, &mut problems));
        }
        if !problems.is_empty() {
            return Err(Error::InvalidRows {
                file: path.to_path_buf(),
                problems,
            });
        }
        partners.sort_by(|a, b| a.partner_id.cmp(&b.partner_id));
        Ok(Roster {
            partners,
            unknown_columns: columns.unknown,
        })
    }

    pub fn get(&self, partner_id: &str) -> Option<&Partner> {
        self.partners
            .binary_search_by(|p| p.partner_id.as_str().cmp(partner_id))
            .ok()
            .map(|i| &self.partners[i])
    }
}

/// The partner on `row`, with every problem of the row pushed onto `problems` (`seen`: the
/// partner_ids of earlier rows and their rows).
fn check_row(
    row: &RawRow,
    columns: &Columns,
    seen: &mut HashMap<String, u32>,
    problems: &mut Vec<RowProblem>,
) -> Partner {
    let mut c = RowCheck {
        row,
        columns,
        problems,
    };
    for (k, name) in COLUMNS.iter().enumerate() {
        if columns.bad_encoding(row, k) {
            c.report(name, "is not valid UTF-8".into());
        }
    }
    let partner_id = c.partner_id(seen);
    let partner_name = c.get(1);
    if partner_name.is_empty() {
        c.report("partner_name", "is empty".into());
    }
    let country = c.country();
    let enrollment = c.enrollment();
    let competency = c.competency(enrollment);
    let enrolled_on = c.enrolled_on(enrollment);
    let mct_count = c.mct_count();
    Partner {
        partner_id,
        partner_name,
        country,
        enrollment,
        competency,
        enrolled_on,
        mct_count,
        exams_met: c.yes_no(7),
        performance_commitment: c.yes_no(8),
        action_pack_active: c.yes_no(9),
        directory_name: c.get(10),
        landing_page_url: c.get(11),
        owned_domains: c.get(12),
    }
}

/// One roster row being checked: its cells, and the problems found so far.
struct RowCheck<'a> {
    row: &'a RawRow,
    columns: &'a Columns,
    problems: &'a mut Vec<RowProblem>,
}

impl RowCheck<'_> {
    fn get(&self, k: usize) -> String {
        self.columns.get(self.row, k).to_string()
    }

    fn report(&mut self, column: &str, reason: String) {
        self.problems.push(RowProblem {
            row: self.row.row as usize,
            column: column.into(),
            reason,
        })
    }

    fn partner_id(&mut self, seen: &mut HashMap<String, u32>) -> String {
        let partner_id = self.get(0);
        if partner_id.is_empty() {
            self.report("partner_id", "is empty".into());
        } else if let Some(first) = seen.insert(partner_id.clone(), self.row.row) {
            self.report(
                "partner_id",
                format!("{partner_id:?} is also on row {first}"),
            );
            seen.insert(partner_id.clone(), first);
        }
        partner_id
    }

    /// Upper case.
    fn country(&mut self) -> String {
        let country = self.get(2).to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            let reason = format!("{:?} is not a two-letter country code", self.get(2));
            self.report("country", reason);
        }
        country
    }

    /// `none` when the cell is not a level.
    fn enrollment(&mut self) -> Level {
        let enrollment = Level::parse(&self.get(3));
        if enrollment.is_none() {
            let reason = format!("{:?} is not none, action_pack, silver or gold", self.get(3));
            self.report("enrollment", reason);
        }
        enrollment.unwrap_or(Level::None)
    }

    fn competency(&mut self, enrollment: Level) -> String {
        let competency = self.get(4);
        if enrollment.has_kpis() && competency.is_empty() {
            self.report("competency", format!("is required for {enrollment}"));
        } else if !enrollment.has_kpis() && !competency.is_empty() {
            self.report(
                "competency",
                format!("must be empty for {enrollment} (is {competency:?})"),
            );
        }
        competency
    }

    fn enrolled_on(&mut self, enrollment: Level) -> Option<NaiveDate> {
        let enrolled_raw = self.get(5);
        let enrolled_on = parse_date(&enrolled_raw);
        if enrolled_raw.is_empty() {
            if enrollment != Level::None {
                self.report("enrolled_on", format!("is required for {enrollment}"));
            }
        } else if enrolled_on.is_none() {
            self.report(
                "enrolled_on",
                format!("{enrolled_raw:?} is not a date YYYY-MM-DD in the years 1900 to 9999"),
            );
        }
        enrolled_on
    }

    /// 0 when the cell is not a whole number.
    fn mct_count(&mut self) -> u32 {
        let mct_raw = self.get(6);
        let mct_count = mct_raw
            .parse::<u32>()
            .ok()
            .filter(|_| mct_raw.bytes().all(|b| b.is_ascii_digit()));
        if mct_count.is_none() {
            self.report(
                "mct_count",
                format!("{mct_raw:?} is not a whole number ≥ 0"),
            );
        }
        mct_count.unwrap_or(0)
    }

    /// `false` when the cell is neither yes nor no.
    fn yes_no(&mut self, k: usize) -> bool {
        match self.get(k).to_lowercase().as_str() {
            "yes" => true,
            "no" => false,
            other => {
                self.report(COLUMNS[k], format!("{other:?} is not yes or no"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active,directory_name,landing_page_url,owned_domains\n";

    fn load(body: &str) -> Result<Roster> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partners.csv");
        std::fs::write(&path, format!("{HEADER}{body}")).unwrap();
        Roster::load(&path)
    }

    #[test]
    fn valid_rows_load_sorted_and_normalised() {
        let r = load(
            "P2,Åbo Utbildning Oy,fi,Silver,Data Analytics,2024-02-29,2,YES,no,No,Åbo,https://abo.fi,abo.fi\n\
             0044,Nordisk Lärande AB,SE,none,,,0,no,no,no,,,\n",
        )
        .unwrap();
        assert_eq!(r.partners[0].partner_id, "0044");
        let p = r.get("P2").unwrap();
        assert_eq!(
            (p.country.as_str(), p.enrollment, p.exams_met),
            ("FI", Level::Silver, true)
        );
        assert_eq!(p.enrolled_on, parse_date("2024-02-29"));
    }

    #[test]
    fn every_bad_row_is_listed_with_row_and_column() {
        let e = load(
            "P1,One,SE,gold,,2024-01-01,1,yes,yes,no,,,\n\
             P1,Two,SWE,silver,Security,2024-13-01,-1,maybe,yes,no,,,\n\
             P3,Three,SE,platinum,,2024-01-01,1,yes,yes,no,,,\n\
             P4,Four,ß,none,,,1,no,no,no,,,\n",
        )
        .unwrap_err();
        let Error::InvalidRows { problems, .. } = &e else {
            panic!("{e}")
        };
        let at: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.row, p.column.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (2, "competency"),
                (3, "partner_id"),
                (3, "country"),
                (3, "enrolled_on"),
                (3, "mct_count"),
                (3, "exams_met"),
                (4, "enrollment"),
                (5, "country")
            ]
        );
        assert_eq!(e.exit_code(), 65);
    }

    #[test]
    fn a_missing_column_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partners.csv");
        std::fs::write(&path, "partner_id,partner_name\nP1,x\n").unwrap();
        let e = Roster::load(&path).unwrap_err();
        assert!(
            matches!(e, Error::MissingColumn { ref column, .. } if column == "country"),
            "{e}"
        );
    }
}

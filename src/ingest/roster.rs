//! The partner roster (`partners.csv` or `partners.xlsx`, `docs/rules.md §2.5`), checked row by
//! row.
//!
//! Master data is fixed first, never guessed: any invalid row fails the run (exit 65) with
//! every bad row listed by row number, column and reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::table::{self, Columns};
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
    pub row: u32,
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
    pub file: PathBuf,
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
            let mut report = |column: &str, reason: String| {
                problems.push(RowProblem {
                    row: row.row as usize,
                    column: column.into(),
                    reason,
                })
            };
            let get = |k: usize| columns.get(&row, k).to_string();
            for (k, name) in COLUMNS.iter().enumerate() {
                if columns.bad_encoding(&row, k) {
                    report(name, "is not valid UTF-8".into());
                }
            }
            let partner_id = get(0);
            if partner_id.is_empty() {
                report("partner_id", "is empty".into());
            } else if let Some(first) = seen.insert(partner_id.clone(), row.row) {
                report(
                    "partner_id",
                    format!("{partner_id:?} is also on row {first}"),
                );
                seen.insert(partner_id.clone(), first);
            }
            let partner_name = get(1);
            if partner_name.is_empty() {
                report("partner_name", "is empty".into());
            }
            let country = get(2).to_ascii_uppercase();
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
                report(
                    "country",
                    format!("{:?} is not a two-letter country code", get(2)),
                );
            }
            let enrollment = Level::parse(&get(3));
            if enrollment.is_none() {
                report(
                    "enrollment",
                    format!("{:?} is not none, action_pack, silver or gold", get(3)),
                );
            }
            let enrollment = enrollment.unwrap_or(Level::None);
            let competency = get(4);
            if enrollment.has_kpis() && competency.is_empty() {
                report("competency", format!("is required for {enrollment}"));
            } else if !enrollment.has_kpis() && !competency.is_empty() {
                report(
                    "competency",
                    format!("must be empty for {enrollment} (is {competency:?})"),
                );
            }
            let enrolled_raw = get(5);
            let enrolled_on = parse_date(&enrolled_raw);
            if enrolled_raw.is_empty() {
                if enrollment != Level::None {
                    report("enrolled_on", format!("is required for {enrollment}"));
                }
            } else if enrolled_on.is_none() {
                report(
                    "enrolled_on",
                    format!("{enrolled_raw:?} is not a date YYYY-MM-DD in the years 1900 to 9999"),
                );
            }
            let mct_raw = get(6);
            let mct_count = mct_raw
                .parse::<u32>()
                .ok()
                .filter(|_| mct_raw.bytes().all(|b| b.is_ascii_digit()));
            if mct_count.is_none() {
                report(
                    "mct_count",
                    format!("{mct_raw:?} is not a whole number ≥ 0"),
                );
            }
            let mut yes_no = |k: usize| match get(k).to_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                other => {
                    report(COLUMNS[k], format!("{other:?} is not yes or no"));
                    false
                }
            };
            let exams_met = yes_no(7);
            let performance_commitment = yes_no(8);
            let action_pack_active = yes_no(9);
            partners.push(Partner {
                row: row.row,
                partner_id,
                partner_name,
                country,
                enrollment,
                competency,
                enrolled_on,
                mct_count: mct_count.unwrap_or(0),
                exams_met,
                performance_commitment,
                action_pack_active,
                directory_name: get(10),
                landing_page_url: get(11),
                owned_domains: get(12),
            });
        }
        if !problems.is_empty() {
            return Err(Error::InvalidRows {
                file: path.to_path_buf(),
                problems,
            });
        }
        partners.sort_by(|a, b| a.partner_id.cmp(&b.partner_id));
        Ok(Roster {
            file: path.to_path_buf(),
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

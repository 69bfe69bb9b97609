//! Invoice extracts (SPEC 3.4): reading a delivery's files into parsed rows.
//!
//! Parsing checks everything a row can be judged on by itself, in the contract's order:
//! `missing_value`, `invalid_value`, `not_an_invoice`, `unknown_document_type` and
//! `future_date`. What depends on the roster, rates, rules or earlier deliveries is left to
//! [`super::judge`], so that judging again after a roster change needs no re-parse.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;

use super::table::{self, Columns};
use crate::calendar::{parse_date, Month};
use crate::error::{Error, Result};

/// The ten extract columns, in the contract's order (also the order of `missing_value` and
/// `invalid_value` checks).
pub const COLUMNS: [&str; 10] = [
    "invoice_number",
    "invoice_line",
    "invoice_date",
    "document_type",
    "partner_id",
    "omlp_type",
    "purchase_unit",
    "kpi_value",
    "revenue",
    "currency",
];

/// A delivery's files: `*.csv` and `*.xlsx` (any case) in name order, and the others.
pub fn list_files(folder: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let entries = std::fs::read_dir(folder).map_err(|e| Error::Unreadable {
        file: folder.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut read = Vec::new();
    let mut ignored = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::Unreadable {
                file: folder.to_path_buf(),
                reason: e.to_string(),
            })?
            .path();
        if path.is_file() && table::kind_of(&path).is_some() {
            read.push(path);
        } else {
            ignored.push(path);
        }
    }
    read.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    ignored.sort();
    Ok((read, ignored))
}

/// Column buffers of a delivery's parsed rows, built row by row and turned into a frame.
#[derive(Default)]
pub struct Parsed {
    pub source_file: Vec<String>,
    pub source_row: Vec<u32>,
    pub raw: [Vec<String>; 10],
    pub pre_reason: Vec<Option<String>>,
    pub line_no: Vec<Option<i64>>,
    pub date: Vec<Option<NaiveDate>>,
    pub credit: Vec<Option<bool>>,
    pub kpi: Vec<Option<f64>>,
    pub rev: Vec<Option<f64>>,
    pub ccy: Vec<Option<String>>,
    pub month: Vec<Option<String>>,
    pub month_index: Vec<Option<i32>>,
}

/// Per-file facts for the manifest and the partition's metadata.
#[derive(Clone, Debug)]
pub struct FileRead {
    pub name: String,
    pub rows: u64,
    pub unknown_columns: Vec<String>,
}

impl Parsed {
    pub fn len(&self) -> usize {
        self.source_row.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source_row.is_empty()
    }

    /// Appends the rows of `other` after these.
    pub fn append(&mut self, other: Parsed) {
        self.source_file.extend(other.source_file);
        self.source_row.extend(other.source_row);
        for (mine, theirs) in self.raw.iter_mut().zip(other.raw) {
            mine.extend(theirs);
        }
        self.pre_reason.extend(other.pre_reason);
        self.line_no.extend(other.line_no);
        self.date.extend(other.date);
        self.credit.extend(other.credit);
        self.kpi.extend(other.kpi);
        self.rev.extend(other.rev);
        self.ccy.extend(other.ccy);
        self.month.extend(other.month);
        self.month_index.extend(other.month_index);
    }

    /// Reads one extract file of `delivery` and appends its rows.
    pub fn read_file(&mut self, path: &Path, delivery: Month) -> Result<FileRead> {
        let mut t = table::open(path)?;
        // "Invoice #" is the invoice number's name on invoices; take it when the file has no
        // invoice_number column.
        if !t
            .header
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case("invoice_number"))
        {
            if let Some(h) = t
                .header
                .iter_mut()
                .find(|h| h.trim() == "Invoice #" || h.trim().eq_ignore_ascii_case("invoice #"))
            {
                *h = "invoice_number".to_string();
            }
        }
        let columns = Columns::resolve(path, &t.header, &COLUMNS, &COLUMNS)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rows = 0;
        for row in t.rows {
            let row = row?;
            rows += 1;
            let cells: [&str; 10] = std::array::from_fn(|k| columns.get(&row, k));
            let bad: [bool; 10] = std::array::from_fn(|k| columns.bad_encoding(&row, k));
            self.push(&name, row.row, cells, bad, delivery);
        }
        Ok(FileRead {
            name,
            rows,
            unknown_columns: columns.unknown,
        })
    }

    /// Appends one row, judging what it can be judged on by itself.
    pub fn push(
        &mut self,
        file: &str,
        row: u32,
        cells: [&str; 10],
        bad: [bool; 10],
        delivery: Month,
    ) {
        let line_no = parse_line(cells[1]);
        let date = parse_date(cells[2]);
        let kpi = parse_decimal(cells[7]);
        let rev = parse_decimal(cells[8]);
        let ccy = parse_currency(cells[9]);
        let doc = cells[3].to_lowercase();
        let credit = match doc.as_str() {
            "invoice" => Some(false),
            "credit note" => Some(true),
            _ => None,
        };
        let month = date.map(Month::of);

        let valid = [
            true,
            line_no.is_some(),
            date.is_some(),
            true,
            true,
            true,
            true,
            kpi.is_some(),
            rev.is_some(),
            ccy.is_some(),
        ];
        let reason = if let Some(k) = (0..10).find(|&k| cells[k].is_empty()) {
            Some(format!("missing_value:{}", COLUMNS[k]))
        } else if let Some(k) = (0..10).find(|&k| bad[k] || !valid[k]) {
            Some(format!("invalid_value:{}", COLUMNS[k]))
        } else if credit.is_none() {
            Some(
                if doc == "order confirmation" || doc == "partner report" {
                    "not_an_invoice"
                } else {
                    "unknown_document_type"
                }
                .to_string(),
            )
        } else if month.is_some_and(|m| m > delivery) {
            Some("future_date".to_string())
        } else {
            None
        };

        self.source_file.push(file.to_string());
        self.source_row.push(row);
        for (k, raw) in self.raw.iter_mut().enumerate() {
            raw.push(cells[k].to_string());
        }
        self.pre_reason.push(reason);
        self.line_no.push(line_no);
        self.date.push(date);
        self.credit.push(credit);
        self.kpi.push(kpi);
        self.rev.push(rev);
        self.ccy.push(ccy);
        self.month.push(month.map(|m| m.to_string()));
        self.month_index.push(month.map(Month::index));
    }

    /// The parsed rows as a frame, in delivery order (`seq`).
    pub fn into_frame(self) -> PolarsResult<DataFrame> {
        let n = self.len();
        let mut columns: Vec<Column> = vec![
            Column::new("seq".into(), (0..n as u32).collect::<Vec<u32>>()),
            Column::new("source_file".into(), self.source_file),
            Column::new("source_row".into(), self.source_row),
        ];
        for (name, values) in COLUMNS.iter().zip(self.raw) {
            columns.push(Column::new((*name).into(), values));
        }
        columns.extend([
            Column::new("pre_reason".into(), self.pre_reason),
            Column::new("line_no".into(), self.line_no),
            Column::new("date".into(), self.date),
            Column::new("credit".into(), self.credit),
            Column::new("kpi".into(), self.kpi),
            Column::new("rev".into(), self.rev),
            Column::new("ccy".into(), self.ccy),
            Column::new("month".into(), self.month),
            Column::new("month_index".into(), self.month_index),
        ]);
        DataFrame::new(n, columns)
    }
}

/// `invoice_line`: a whole number ≥ 1.
pub fn parse_line(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|n| *n >= 1)
}

/// A decimal: an optional sign, digits, optionally a point with 1 to 4 digits.
pub fn parse_decimal(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int) && frac.is_none_or(|f| digits(f) && f.len() <= 4);
    // Very long digit strings would lose precision as f64; no real amount has 16 digits.
    (ok && int.len() <= 15)
        .then(|| s.parse::<f64>().ok())
        .flatten()
}

/// A currency: three letters, stored upper case.
pub fn parse_currency(s: &str) -> Option<String> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: [&str; 10] = [
        "INV-1",
        "1",
        "2026-10-03",
        "Invoice",
        "P1",
        "MOC",
        "kit",
        "120.5",
        "1150.00",
        "sek",
    ];

    fn reason(cells: [&str; 10], bad: [bool; 10], delivery: &str) -> Option<String> {
        let mut p = Parsed::default();
        p.push("f.csv", 2, cells, bad, delivery.parse().unwrap());
        p.pre_reason.pop().unwrap()
    }

    fn with(changes: &[(usize, &'static str)]) -> [&'static str; 10] {
        let mut cells = GOOD;
        for (k, v) in changes {
            cells[*k] = v;
        }
        cells
    }

    #[test]
    fn a_good_row_passes_and_is_typed() {
        let mut p = Parsed::default();
        p.push("f.csv", 2, GOOD, [false; 10], "2026-10".parse().unwrap());
        assert_eq!(p.pre_reason[0], None);
        assert_eq!(p.line_no[0], Some(1));
        assert_eq!(p.kpi[0], Some(120.5));
        assert_eq!(p.ccy[0].as_deref(), Some("SEK"));
        assert_eq!(p.credit[0], Some(false));
        assert_eq!(p.month[0].as_deref(), Some("2026-10"));
    }

    #[test]
    fn reasons_follow_the_contract_order() {
        let r = |changes: &[(usize, &'static str)]| reason(with(changes), [false; 10], "2026-10");
        assert_eq!(
            r(&[(9, ""), (0, "")]).as_deref(),
            Some("missing_value:invoice_number")
        );
        // Every missing value comes before any invalid value.
        assert_eq!(
            r(&[(1, "x"), (9, "")]).as_deref(),
            Some("missing_value:currency")
        );
        assert_eq!(
            r(&[(1, "0")]).as_deref(),
            Some("invalid_value:invoice_line")
        );
        assert_eq!(
            r(&[(2, "2026-02-30")]).as_deref(),
            Some("invalid_value:invoice_date")
        );
        assert_eq!(
            r(&[(7, "1,200.00")]).as_deref(),
            Some("invalid_value:kpi_value")
        );
        assert_eq!(
            r(&[(8, "1.23456")]).as_deref(),
            Some("invalid_value:revenue")
        );
        assert_eq!(r(&[(9, "EU")]).as_deref(), Some("invalid_value:currency"));
        // Invalid values come before the document type.
        assert_eq!(
            r(&[(3, "Proforma"), (9, "EU")]).as_deref(),
            Some("invalid_value:currency")
        );
        assert_eq!(
            r(&[(3, "order confirmation")]).as_deref(),
            Some("not_an_invoice")
        );
        assert_eq!(
            r(&[(3, "Partner Report")]).as_deref(),
            Some("not_an_invoice")
        );
        assert_eq!(
            r(&[(3, "Proforma")]).as_deref(),
            Some("unknown_document_type")
        );
        assert_eq!(
            r(&[(3, "Proforma"), (2, "2026-11-01")]).as_deref(),
            Some("unknown_document_type")
        );
        assert_eq!(r(&[(2, "2026-11-01")]).as_deref(), Some("future_date"));
        assert_eq!(r(&[(3, "CREDIT NOTE"), (2, "2025-01-31")]), None);
    }

    #[test]
    fn bad_encoding_is_an_invalid_value_of_its_column() {
        let mut bad = [false; 10];
        bad[6] = true;
        assert_eq!(
            reason(GOOD, bad, "2026-10").as_deref(),
            Some("invalid_value:purchase_unit")
        );
    }

    #[test]
    fn decimals_are_strict() {
        for ok in ["0", "12", "-3.5", "+1.2345", "007.1"] {
            assert!(parse_decimal(ok).is_some(), "{ok}");
        }
        for bad in [
            "", ".5", "5.", "1e3", "1,000", "1.23456", "--1", "NaN", "inf", " 1",
        ] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_line("12"), Some(12));
        for bad in ["0", "-1", "1.0", "x", ""] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }
}

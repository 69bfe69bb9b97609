//! The refresh's reports (docs/rules.md §13): the CSV files for machines, the analysts'
//! workbook and the manifest.
//!
//! Each sheet is described once, as a [`Sheet`] of typed [`Value`]s; the CSV files and the
//! workbook are written from the same rows, so they cannot disagree.

pub mod csv_out;
pub mod layout;
pub mod manifest;
pub mod stage;
pub mod statement;
pub mod submission;
mod watch;
pub mod workbook;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::calendar::Month;
use crate::config::program::{Level, Program};
use crate::directory::Directory;
use crate::ingest::extract::COLUMNS;
use crate::ingest::roster::{Partner, Roster};
use crate::kpi::round4;
use crate::renewal::{Decision, Outlook, Status};

/// One cell: typed so that the workbook shows numbers as numbers and dates as dates. Its text
/// is owned (`Value`, the rows of a [`Sheet`]) or borrowed (`Value<&str>`, a cell read
/// straight from a frame's column to be written).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<S = String> {
    Text(S),
    Number(f64),
    Int(i64),
    Date(NaiveDate),
    Empty,
}

impl<S: AsRef<str>> Value<S> {
    /// The same value, its text borrowed.
    pub fn borrowed(&self) -> Value<&str> {
        match self {
            Value::Text(s) => Value::Text(s.as_ref()),
            Value::Number(x) => Value::Number(*x),
            Value::Int(n) => Value::Int(*n),
            Value::Date(d) => Value::Date(*d),
            Value::Empty => Value::Empty,
        }
    }

    /// The same value, its text owned.
    pub fn owned(&self) -> Value {
        match self.borrowed() {
            Value::Text(s) => Value::Text(s.to_string()),
            Value::Number(x) => Value::Number(x),
            Value::Int(n) => Value::Int(n),
            Value::Date(d) => Value::Date(d),
            Value::Empty => Value::Empty,
        }
    }
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    pub fn date(d: Option<NaiveDate>) -> Value {
        d.map_or(Value::Empty, Value::Date)
    }

    /// The value as a CSV field (before formula escaping).
    pub fn csv(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Number(x) => csv_out::number(*x),
            Value::Int(i) => i.to_string(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Empty => String::new(),
        }
    }
}

/// A column of a sheet: its name in the sheet's CSV file (none for a column only the workbook
/// shows) and its title in the workbook.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: Option<String>,
    pub title: String,
}

impl Column {
    /// A column of both the CSV file and the workbook.
    pub fn new(name: impl Into<String>, title: impl Into<String>) -> Column {
        Column {
            name: Some(name.into()),
            title: title.into(),
        }
    }

    /// A column of the workbook only.
    pub fn titled(title: impl Into<String>) -> Column {
        Column {
            name: None,
            title: title.into(),
        }
    }
}

/// A sheet: its columns and rows, from which both its CSV file (the columns with a name) and
/// its worksheets are written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sheet {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl Sheet {
    /// A sheet of the workbook only, its columns titled `titles`.
    pub fn titled(name: impl Into<String>, titles: Vec<String>, rows: Vec<Vec<Value>>) -> Sheet {
        Sheet {
            name: name.into(),
            columns: titles.into_iter().map(Column::titled).collect(),
            rows,
        }
    }

    /// The workbook's header.
    pub fn titles(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.title.clone()).collect()
    }

    /// The CSV file's header: the names of the columns that have one.
    pub fn csv_header(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter_map(|c| c.name.as_deref())
            .collect()
    }

    /// The CSV file's rows: each row's values in the columns that have a name.
    pub fn csv_rows(&self) -> impl Iterator<Item = Vec<String>> + '_ {
        self.rows.iter().map(|row| {
            row.iter()
                .zip(&self.columns)
                .filter(|(_, c)| c.name.is_some())
                .map(|(v, _)| v.csv())
                .collect()
        })
    }
}

/// Everything a refresh computed, ready to be written.
pub struct Computed<'a> {
    pub refresh: Month,
    pub program: &'a Program,
    pub roster: &'a Roster,
    pub decisions: &'a [Decision],
    /// The anniversary watch, whose rows point into `roster` and `decisions`.
    pub watch: &'a [crate::watch::WatchRow],
    pub directory: &'a Directory,
    /// Monthly KPIs from the SQL (partner_id, category, m00…m11, total).
    pub monthly: &'a DataFrame,
    /// Rejected rows of delivery R-1.
    pub rejected: &'a DataFrame,
    /// Reject reasons of delivery R-1.
    pub reject_reasons: &'a BTreeMap<String, u64>,
    /// Rows read from delivery R-1 (accepted and rejected).
    pub read_last: u64,
    /// What changed since the previous refresh.
    pub changes: &'a crate::changes::Changes,
    /// Rejected rows per delivery and unknown partners.
    pub feeds: &'a crate::feeds::Feeds,
    /// Accepted lines invoiced in the window of R.
    pub lines_in_window: u64,
}

/// The statuses a forecast can have: the renewal statuses of a partner due at its anniversary.
const FORECAST_STATUSES: [Status; 5] = [
    Status::Extended,
    Status::UpgradeEligible,
    Status::Renew,
    Status::Downgrade,
    Status::Lapse,
];

fn categories(program: &Program) -> impl Iterator<Item = &str> {
    program.categories.iter().map(|c| c.name.as_str())
}

/// The Partners sheet's columns (Why the workbook's only).
fn partners_columns(program: &Program) -> Vec<Column> {
    let cats: Vec<&str> = categories(program).collect();
    let mut columns: Vec<Column> = [
        ("partner_id", "Partner ID"),
        ("partner_name", "Partner name"),
        ("country", "Country"),
        ("market", "Market"),
        ("enrollment", "Enrollment"),
        ("competency", "Competency"),
        ("enrolled_on", "Enrolled on"),
        ("next_anniversary", "Next anniversary"),
        ("months_to_anniversary", "Months to anniversary"),
        ("mct_count", "MCTs"),
    ]
    .map(|(name, title)| Column::new(name, title))
    .to_vec();
    columns.extend(
        cats.iter()
            .map(|c| Column::new(format!("kpi_{c}"), format!("KPI {c}"))),
    );
    columns.extend(
        [
            ("revenue_usd", "Revenue USD"),
            ("qualified_level", "Qualified level"),
            ("renewal_status", "Renewal status"),
            ("effective_level", "Effective level"),
            ("outlook", "Outlook"),
        ]
        .map(|(name, title)| Column::new(name, title)),
    );
    columns.extend(
        cats.iter()
            .map(|c| Column::new(format!("gap_{c}"), format!("Gap {c}"))),
    );
    columns.push(Column::titled("Why"));
    columns
}

/// One partner's row of the Partners sheet.
fn partner_row(p: &Partner, d: &Decision) -> Vec<Value> {
    let mut row = vec![
        Value::text(&p.partner_id),
        Value::text(&p.partner_name),
        Value::text(&p.country),
        Value::text(&d.market),
        Value::text(d.enrollment.as_str()),
        Value::text(&p.competency),
        Value::date(p.enrolled_on),
        Value::date(d.next_anniversary),
        d.months_to_anniversary
            .map_or(Value::Empty, |m| Value::Int(m as i64)),
        Value::Int(p.mct_count as i64),
    ];
    row.extend(d.kpis.kpi.iter().map(|k| Value::Number(round4(*k))));
    row.push(Value::Number(round4(d.kpis.revenue_usd)));
    row.extend([
        Value::text(d.qualified_level.as_str()),
        Value::text(d.status.as_str()),
        Value::text(d.effective_level.as_str()),
        Value::text(d.outlook.as_str()),
    ]);
    row.extend(d.gap.iter().map(|g| Value::Number(*g)));
    row.push(Value::text(crate::why::of(d)));
    row
}

impl Computed<'_> {
    /// The Partners sheet.
    pub fn partners(&self) -> Sheet {
        let rows = self
            .roster
            .partners
            .iter()
            .zip(self.decisions)
            .map(|(p, d)| partner_row(p, d))
            .collect();
        Sheet {
            name: "Partners".into(),
            columns: partners_columns(self.program),
            rows,
        }
    }

    pub fn renewals(&self) -> Sheet {
        let cats: Vec<&str> = categories(self.program).collect();
        let mut header: Vec<String> = [
            "Partner ID",
            "Partner name",
            "Enrollment",
            "Competency",
            "Anniversary",
            "Qualified level",
            "Renewal status",
            "Effective level",
            "Extension",
        ]
        .map(String::from)
        .to_vec();
        header.extend(cats.iter().map(|c| format!("KPI {c}")));
        header.extend(cats.iter().map(|c| format!("Required {c}")));
        header.push("Why".into());
        let rows = self
            .roster
            .partners
            .iter()
            .zip(self.decisions)
            .filter(|(_, d)| d.due)
            .map(|(p, d)| {
                let mut row = vec![
                    Value::text(&p.partner_id),
                    Value::text(&p.partner_name),
                    Value::text(d.enrollment.as_str()),
                    Value::text(&p.competency),
                    Value::date(d.next_anniversary),
                    Value::text(d.qualified_level.as_str()),
                    Value::text(d.status.as_str()),
                    Value::text(d.effective_level.as_str()),
                    Value::text(d.extension.clone().unwrap_or_default()),
                ];
                row.extend(d.kpis.kpi.iter().map(|k| Value::Number(round4(*k))));
                match &d.required {
                    Some(req) => row.extend(req.iter().map(|t| Value::Number(*t))),
                    None => row.extend(cats.iter().map(|_| Value::Empty)),
                }
                row.push(Value::text(crate::why::of(d)));
                row
            })
            .collect();
        Sheet::titled("Renewals", header, rows)
    }

    /// The directory submission (Changed and Why the workbook's only).
    pub fn directory_submission(&self) -> Sheet {
        let mut columns: Vec<Column> = [
            ("action", "Action"),
            ("partner_id", "Partner ID"),
            ("directory_name", "Directory name"),
            ("country", "Country"),
            ("landing_page_url", "Landing page URL"),
            ("submit_from", "Submit from"),
            ("submit_to", "Submit to"),
            ("visible_by", "Visible by"),
        ]
        .map(|(name, title)| Column::new(name, title))
        .to_vec();
        columns.extend([Column::titled("Changed"), Column::titled("Why")]);
        let rows = self
            .directory
            .changes
            .iter()
            .map(|c| {
                let row = vec![
                    Value::text(c.action.as_str()),
                    Value::text(&c.entry.partner_id),
                    Value::text(&c.entry.directory_name),
                    Value::text(&c.entry.country),
                    Value::text(&c.entry.landing_page_url),
                    Value::Date(c.submit_from),
                    Value::Date(c.submit_to),
                    Value::Date(c.visible_by),
                    Value::text(submission::changed(c)),
                    Value::text(submission::why(c, self.decisions)),
                ];
                row
            })
            .collect();
        Sheet {
            name: "Directory submission".into(),
            columns,
            rows,
        }
    }

    pub fn directory_exceptions(&self) -> Sheet {
        let header = [
            "Partner ID",
            "Directory name",
            "Country",
            "Landing page URL",
            "Reason",
        ];
        let rows = self
            .directory
            .exceptions
            .iter()
            .map(|x| {
                vec![
                    Value::text(&x.entry.partner_id),
                    Value::text(&x.entry.directory_name),
                    Value::text(&x.entry.country),
                    Value::text(&x.entry.landing_page_url),
                    Value::text(x.reason),
                ]
            })
            .collect();
        let header = header.map(String::from).to_vec();
        Sheet::titled("Directory exceptions", header, rows)
    }

    /// Rejected rows of delivery R-1.
    pub fn rejected_sheet(&self) -> PolarsResult<Sheet> {
        let mut columns: Vec<Column> = [
            ("source_file", "Source file"),
            ("source_row", "Source row"),
            ("reason", "Reason"),
        ]
        .map(|(name, title)| Column::new(name, title))
        .to_vec();
        columns.extend(COLUMNS.iter().map(|c| Column::new(*c, *c)));
        let df = self.rejected;
        let text = |name: &str| -> PolarsResult<Vec<Option<String>>> {
            Ok(df
                .column(name)?
                .str()?
                .iter()
                .map(|v| v.map(str::to_string))
                .collect())
        };
        let file = text("source_file")?;
        let reason = text("reason")?;
        let row_no: Vec<Option<u32>> = df
            .column("source_row")?
            .cast(&DataType::UInt32)?
            .u32()?
            .iter()
            .collect();
        let raw: Vec<Vec<Option<String>>> = COLUMNS
            .iter()
            .map(|c| text(c))
            .collect::<PolarsResult<_>>()?;
        let rows = (0..df.height())
            .map(|i| {
                let mut row = vec![
                    Value::text(file[i].clone().unwrap_or_default()),
                    row_no[i].map_or(Value::Empty, |r| Value::Int(r as i64)),
                    Value::text(reason[i].clone().unwrap_or_default()),
                ];
                row.extend(
                    raw.iter()
                        .map(|col| Value::text(col[i].clone().unwrap_or_default())),
                );
                row
            })
            .collect();
        Ok(Sheet {
            name: "Rejected".into(),
            columns,
            rows,
        })
    }

    /// The Summary sheet: counts by effective level, renewal status, outlook and reject reason.
    pub fn summary(&self) -> Sheet {
        let mut rows = self.summary_refresh_rows();
        rows.extend(self.summary_decision_rows());
        for (reason, n) in self.reject_reasons {
            rows.push(vec![
                Value::text("Reject reason"),
                Value::text(reason),
                Value::Int(*n as i64),
            ]);
        }
        rows.push(vec![
            Value::text("Carried forward"),
            Value::text("enrollment in R carried forward (not yet in the roster)"),
            Value::Int(self.count(|d| d.carried_forward)),
        ]);
        rows.extend(self.changes.summary_rows());
        let header = ["Group", "Item", "Value"].map(String::from).to_vec();
        Sheet::titled("Summary", header, rows)
    }

    /// The share of delivery R-1's rows that were rejected (0 when it has no row).
    fn reject_rate_last(&self) -> f64 {
        let rejected: u64 = self.reject_reasons.values().sum();
        if self.read_last == 0 {
            0.0
        } else {
            round4(rejected as f64 / self.read_last as f64)
        }
    }

    /// The Summary's Refresh and Directory groups.
    fn summary_refresh_rows(&self) -> Vec<Vec<Value>> {
        let (from, to) = self.refresh.window();
        let row = |group: &str, item: &str, value: Value| {
            vec![Value::text(group), Value::text(item), value]
        };
        vec![
            row("Refresh", "refresh", Value::text(self.refresh.to_string())),
            row("Refresh", "window", Value::text(format!("{from} … {to}"))),
            row(
                "Refresh",
                "partners",
                Value::Int(self.decisions.len() as i64),
            ),
            row(
                "Refresh",
                "reject rate of R-1",
                Value::Number(self.reject_rate_last()),
            ),
            row(
                "Directory",
                "changes to submit",
                Value::Int(self.directory.changes.len() as i64),
            ),
            row(
                "Directory",
                "exceptions",
                Value::Int(self.directory.exceptions.len() as i64),
            ),
        ]
    }

    /// The partners by effective level, renewal status and outlook; the watched ones by
    /// forecast status.
    fn summary_decision_rows(&self) -> Vec<Vec<Value>> {
        let row = |group: &str, item: &str, n: i64| {
            vec![Value::text(group), Value::text(item), Value::Int(n)]
        };
        let mut rows = Vec::new();
        for level in Level::ALL {
            rows.push(row(
                "Effective level",
                level.as_str(),
                self.count(|d| d.effective_level == level),
            ));
        }
        for status in Status::ALL {
            rows.push(row(
                "Renewal status",
                status.as_str(),
                self.count(|d| d.status == status),
            ));
        }
        for outlook in Outlook::ALL {
            rows.push(row(
                "Outlook",
                outlook.as_str(),
                self.count(|d| d.outlook == outlook),
            ));
        }
        for status in FORECAST_STATUSES {
            let watched = self.watch.iter().filter(|w| w.forecast_status == status);
            rows.push(row(
                "Forecast status",
                status.as_str(),
                watched.count() as i64,
            ));
        }
        rows
    }

    /// How many partners' decisions satisfy `f`.
    fn count(&self, f: impl Fn(&Decision) -> bool) -> i64 {
        self.decisions.iter().filter(|d| f(d)).count() as i64
    }
}

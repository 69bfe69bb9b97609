//! Changes since the previous refresh: `changes-R.csv`, the Changes sheet, the Summary's
//! count of changed decisions and what `explain` says changed (see docs/rules.md
//! §12.1).
//!
//! The previous refresh P is the latest month before R whose `reports/P/partners-P.csv` is
//! published under the output folder. Its partners are compared with R's, field by field;
//! each changed KPI is split into the lines that entered the window, the lines that left it,
//! the late lines and the effect of judging earlier deliveries again ([`split`]), so that
//! `before + entered + left + late + judged_again = after` to the last of the 4 decimals.

pub mod split;
mod words;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::info;

use crate::calendar::Month;
use crate::config::program::Program;
use crate::csv_file;
use crate::error::{Error, Result};
use crate::kpi::round4;
use crate::ledger::{self, Outcome};
use crate::renewal::Decision;
use crate::report::{Column, Sheet, Value};
use split::Parts;

/// The decision fields compared, in the order of `changes-R.csv`; the `kpi_<category>`
/// fields follow.
pub const FIELDS: [&str; 5] = [
    "enrollment",
    "qualified_level",
    "renewal_status",
    "effective_level",
    "outlook",
];

/// One side of a change.
#[derive(Clone, Debug, PartialEq)]
pub enum Side {
    Text(String),
    Number(f64),
    Empty,
}

impl Side {
    fn value(&self) -> Value {
        match self {
            Side::Text(s) => Value::text(s),
            Side::Number(x) => Value::Number(*x),
            Side::Empty => Value::Empty,
        }
    }
}

/// The split of a changed KPI: [`Parts`] and what judging earlier deliveries again changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    pub parts: Parts,
    pub judged_again: f64,
}

/// One partner's changed field.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub partner_id: String,
    pub field: String,
    pub before: Side,
    pub after: Side,
    /// For a KPI of a partner in both refreshes.
    pub split: Option<Split>,
}

/// What changed since the previous refresh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// The refresh compared against; none when no earlier refresh was published.
    pub previous: Option<Month>,
    /// Sorted by partner_id, then field.
    pub rows: Vec<Change>,
}

/// A value in units of 0.0001: the 4 decimals every KPI figure is rounded to.
fn units(x: f64) -> i64 {
    (x * 10_000.0).round() as i64
}

/// The split of a KPI that went from `before` to `after`: the parts the ledger explains, and
/// the rest, worked out in units of 0.0001 so that the five figures add up exactly.
pub fn split_change(before: f64, after: f64, parts: Parts) -> Split {
    let rest =
        units(after) - units(before) - units(parts.entered) - units(parts.left) - units(parts.late);
    Split {
        parts,
        judged_again: round4(rest as f64 / 10_000.0),
    }
}

/// The latest month before `refresh` whose partners file is published under `output`.
pub fn previous_refresh(output: &Path, refresh: Month) -> Option<Month> {
    std::fs::read_dir(output.join("reports"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<Month>().ok())
        .filter(|m| *m < refresh && partners_file(output, *m).is_file())
        .max()
}

fn partners_file(output: &Path, month: Month) -> PathBuf {
    output
        .join("reports")
        .join(month.to_string())
        .join(format!("partners-{month}.csv"))
}

/// One partner's compared fields: the five decision fields, then one per category.
type Fields = Vec<Side>;

/// Reads the compared fields of a published partners file, by partner_id. A KPI that is not
/// a number (or a category the file has no column for) is kept as text (or empty).
fn read_partners(path: &Path, categories: &[String]) -> Result<BTreeMap<String, Fields>> {
    let unreadable = |e: csv::Error| Error::Unreadable {
        file: path.to_path_buf(),
        reason: e.to_string(),
    };
    // Read once: the bytes compared with the manifest are the bytes parsed.
    // (Refused when it is not a regular file, never waited on.)
    let bytes = crate::source::read(path)?.bytes;
    // The previous refresh's partners file must be the one its manifest recorded.
    crate::report::manifest::check_published(path, &bytes)?;
    // A row with more or fewer fields than the header is a damaged file, never guessed at.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .map_err(unreadable)?
        .iter()
        .map(String::from)
        .collect();
    let position = |name: &str| header.iter().position(|h| h == name);
    let id_at = position("partner_id").ok_or_else(|| Error::MissingColumn {
        file: path.to_path_buf(),
        column: "partner_id".into(),
    })?;
    let mut wanted: Vec<(Option<usize>, bool)> =
        FIELDS.iter().map(|f| (position(f), false)).collect();
    wanted.extend(
        categories
            .iter()
            .map(|c| (position(&format!("kpi_{c}")), true)),
    );
    let mut out = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(unreadable)?;
        let id = csv_file::unescape_report(record.get(id_at).unwrap_or(""));
        let fields = wanted
            .iter()
            .map(|(at, numeric)| {
                let raw = at.and_then(|i| record.get(i)).unwrap_or("");
                match (raw, numeric) {
                    ("", _) => Side::Empty,
                    (s, true) if csv_file::is_number(s) => {
                        Side::Number(s.parse::<f64>().map_or(0.0, round4))
                    }
                    (s, _) => Side::Text(csv_file::unescape_report(s)),
                }
            })
            .collect();
        out.insert(id, fields);
    }
    Ok(out)
}

/// A partner's compared fields in refresh R.
fn fields_of(d: &Decision) -> Fields {
    let mut f: Fields = [
        d.enrollment.as_str(),
        d.qualified_level.as_str(),
        d.status.as_str(),
        d.effective_level.as_str(),
        d.outlook.as_str(),
    ]
    .iter()
    .map(|s| Side::Text(s.to_string()))
    .collect();
    f.extend(d.kpis.kpi.iter().map(|k| Side::Number(round4(*k))));
    f
}

fn differ(before: &Side, after: &Side) -> bool {
    match (before, after) {
        (Side::Number(b), Side::Number(a)) => units(*b) != units(*a),
        (b, a) => b != a,
    }
}

/// The changed fields of one partner; `splits` are its parts per category, when it is in
/// both refreshes.
fn compare(
    id: &str,
    names: &[String],
    before: Option<&Fields>,
    after: Option<&Fields>,
    splits: Option<&Vec<Parts>>,
    out: &mut Vec<Change>,
) {
    let both = before.is_some() && after.is_some();
    for (i, field) in names.iter().enumerate() {
        let side = |f: Option<&Fields>| f.map_or(Side::Empty, |f| f[i].clone());
        let (b, a) = (side(before), side(after));
        if both && !differ(&b, &a) {
            continue;
        }
        let split = match (&b, &a, both, i.checked_sub(FIELDS.len())) {
            (Side::Number(bx), Side::Number(ax), true, Some(k)) => {
                let parts = splits.map(|s| s[k]).unwrap_or_default();
                Some(split_change(*bx, *ax, parts))
            }
            _ => None,
        };
        out.push(Change {
            partner_id: id.to_string(),
            field: field.clone(),
            before: b,
            after: a,
            split,
        });
    }
}

/// Compares refresh R's decisions with the previous published refresh, splitting each
/// changed KPI by the ledger as it stands in R (`outcomes`: the deliveries ≤ R-1).
pub fn compute(
    output: &Path,
    refresh: Month,
    program: &Program,
    decisions: &[Decision],
    outcomes: &[Outcome],
) -> Result<Changes> {
    let started = Instant::now();
    let Some(previous) = previous_refresh(output, refresh) else {
        info!(
            refresh = %refresh,
            "changes: no earlier refresh is published under the output folder; changes-{refresh}.csv has its header only"
        );
        return Ok(Changes::default());
    };
    let categories: Vec<String> = program.categories.iter().map(|c| c.name.clone()).collect();
    let before = read_partners(&partners_file(output, previous), &categories)?;
    // Deliveries before P's window hold no line dated in either window. Each delivery's
    // month sums stand for its lines: the split adds values by partner, category and month.
    let deliveries = outcomes
        .iter()
        .filter(|o| o.month >= previous.window().0)
        .map(|o| Ok((o.month, ledger::scan_sums(o)?)))
        .collect::<Result<Vec<_>>>()?;
    let splits = split::split(deliveries, previous, refresh, &categories)?;
    let after: HashMap<&str, Fields> = decisions
        .iter()
        .map(|d| (d.partner_id.as_str(), fields_of(d)))
        .collect();
    let mut ids: Vec<&str> = before.keys().map(String::as_str).collect();
    ids.extend(after.keys().copied().filter(|id| !before.contains_key(*id)));
    ids.sort_unstable();
    let mut names: Vec<String> = FIELDS.map(String::from).to_vec();
    names.extend(categories.iter().map(|c| format!("kpi_{c}")));
    let mut rows = Vec::new();
    for id in ids {
        compare(
            id,
            &names,
            before.get(id),
            after.get(id),
            splits.get(id),
            &mut rows,
        );
    }
    let changes = Changes {
        previous: Some(previous),
        rows,
    };
    info!(
        previous = %previous,
        rows = changes.rows.len(),
        partners = changes.partners_changed(|_| true),
        decisions_changed = changes.partners_changed(|f| f == "effective_level" || f == "outlook"),
        ms = started.elapsed().as_millis() as u64,
        "changes: compared with the previous refresh"
    );
    Ok(changes)
}

impl Changes {
    /// How many partners have a changed field that `field` accepts.
    pub fn partners_changed(&self, field: impl Fn(&str) -> bool) -> usize {
        let mut last: Option<&str> = None;
        let mut n = 0;
        for c in self.rows.iter().filter(|c| field(&c.field)) {
            if last != Some(c.partner_id.as_str()) {
                n += 1;
                last = Some(&c.partner_id);
            }
        }
        n
    }

    /// The Changes sheet.
    pub fn sheet(&self) -> Sheet {
        let columns = [
            ("partner_id", "Partner ID"),
            ("field", "Field"),
            ("before", "Before"),
            ("after", "After"),
            ("entered", "Entered"),
            ("left", "Left"),
            ("late", "Late"),
            ("judged_again", "Judged again"),
        ]
        .map(|(name, title)| Column::new(name, title))
        .to_vec();
        let rows = self
            .rows
            .iter()
            .map(|c| {
                let mut row = vec![
                    Value::text(&c.partner_id),
                    Value::text(&c.field),
                    c.before.value(),
                    c.after.value(),
                ];
                match c.split {
                    Some(s) => row.extend(
                        [s.parts.entered, s.parts.left, s.parts.late, s.judged_again]
                            .map(Value::Number),
                    ),
                    None => row.extend([Value::Empty, Value::Empty, Value::Empty, Value::Empty]),
                }
                row
            })
            .collect();
        Sheet {
            name: "Changes".into(),
            columns,
            rows,
        }
    }

    /// The Summary's rows: the refresh compared against and how many partners' decisions
    /// changed.
    pub fn summary_rows(&self) -> Vec<Vec<Value>> {
        let group = || Value::text("Changes");
        let count = |f: &dyn Fn(&str) -> bool| Value::Int(self.partners_changed(f) as i64);
        vec![
            vec![
                group(),
                Value::text("previous refresh compared against"),
                Value::text(
                    self.previous
                        .map_or_else(|| "none".to_string(), |m| m.to_string()),
                ),
            ],
            vec![
                group(),
                Value::text("partners whose effective level or outlook changed"),
                count(&|f| f == "effective_level" || f == "outlook"),
            ],
            vec![
                group(),
                Value::text("partners whose effective level changed"),
                count(&|f| f == "effective_level"),
            ],
            vec![
                group(),
                Value::text("partners whose outlook changed"),
                count(&|f| f == "outlook"),
            ],
            vec![
                group(),
                Value::text("partners with any change"),
                count(&|_| true),
            ],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::csv_out::number;
    use proptest::prelude::*;

    fn parts(entered: f64, left: f64, late: f64) -> Parts {
        Parts {
            entered,
            left,
            late,
        }
    }

    #[test]
    fn judged_again_is_what_the_parts_leave() {
        let s = split_change(100.0, 150.25, parts(30.0, -10.5, 20.0));
        assert_eq!(s.judged_again, 10.75);
        // Figures that do not add up in binary floating point still add up in the file.
        let s = split_change(0.1, 0.3, parts(0.1, 0.0, 0.0));
        assert_eq!(number(s.judged_again), "0.1");
    }

    fn kpi(v: f64) -> Side {
        Side::Number(v)
    }

    fn text(v: &str) -> Side {
        Side::Text(v.into())
    }

    #[test]
    fn partners_in_one_refresh_list_every_field_without_a_split() {
        let names: Vec<String> = FIELDS
            .iter()
            .map(|f| f.to_string())
            .chain(["kpi_courseware".to_string()])
            .collect();
        let fields = vec![
            text("silver"),
            text("silver"),
            text("not_due"),
            text("silver"),
            text("on_track"),
            kpi(12.5),
        ];
        let mut out = Vec::new();
        compare("N1", &names, None, Some(&fields), None, &mut out);
        assert_eq!(out.len(), 6);
        assert!(out
            .iter()
            .all(|c| c.before == Side::Empty && c.split.is_none()));
        out.clear();
        compare("G1", &names, Some(&fields), None, None, &mut out);
        assert_eq!(out.len(), 6);
        assert!(out
            .iter()
            .all(|c| c.after == Side::Empty && c.split.is_none()));
        // In both: only what differs; KPIs compared as numbers.
        out.clear();
        let mut later = fields.clone();
        later[4] = text("at_risk");
        later[5] = kpi(12.50001);
        compare("B1", &names, Some(&fields), Some(&later), None, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, "outlook");
        later[5] = kpi(13.0);
        out.clear();
        let split = vec![parts(0.5, 0.0, 0.0)];
        compare(
            "B1",
            &names,
            Some(&fields),
            Some(&later),
            Some(&split),
            &mut out,
        );
        assert_eq!(out[1].field, "kpi_courseware");
        assert_eq!(out[1].split.unwrap().judged_again, 0.0);
    }

    proptest! {
        /// before + entered + left + late + judged_again = after, exactly, as written.
        #[test]
        fn the_written_split_adds_up(
            before in -1e9f64..1e9,
            after in -1e9f64..1e9,
            entered in -1e9f64..1e9,
            left in -1e9f64..0.0,
            late in -1e9f64..1e9,
        ) {
            let (before, after) = (round4(before), round4(after));
            let s = split_change(before, after, parts(round4(entered), round4(left), round4(late)));
            let written = [before, s.parts.entered, s.parts.left, s.parts.late, s.judged_again];
            let as_units = |x: f64| -> i128 {
                let text = number(x);
                let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
                let negative = int.starts_with('-');
                let int: i128 = int.trim_start_matches('-').parse().unwrap();
                let frac: i128 = format!("{frac:0<4}").parse().unwrap();
                let v = int * 10_000 + frac;
                if negative { -v } else { v }
            };
            let sum: i128 = written.iter().map(|x| as_units(*x)).sum();
            prop_assert_eq!(sum, as_units(after));
        }
    }
}

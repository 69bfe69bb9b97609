//! What a published refresh R left under the output folder, as a statement reads it: the
//! manifest, `partners-R.csv`, `watch-R.csv` when there is one, and the check that the ledger
//! still holds the rows R used (see docs/rules.md §11).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::calendar::Month;
use crate::csv_file;
use crate::error::{Error, Result};
use crate::ledger::{self, partition_rel, PartitionMeta};
use crate::report::manifest::{DeliveryCounts, Manifest};

/// A published CSV file: its header and rows as text (the `'` that keeps a formula-like value
/// from becoming a formula taken off again), rows found by their first column.
#[derive(Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    by_id: HashMap<String, usize>,
}

impl Table {
    /// Reads a published report: a regular file, read once, that must be the file its
    /// refresh published (its SHA-256 the one in that refresh's `manifest`).
    pub fn read(path: &Path, manifest: &Manifest) -> Result<Table> {
        let unreadable = |reason: String| Error::Unreadable {
            file: path.to_path_buf(),
            reason,
        };
        let bytes = crate::source::read(path)?.bytes;
        manifest.check_output(path, &bytes)?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes.as_slice());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| unreadable(e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        let mut by_id = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| unreadable(e.to_string()))?;
            let row: Vec<String> = record.iter().map(csv_file::unescape_report).collect();
            if let Some(id) = row.first() {
                by_id.insert(id.clone(), rows.len());
            }
            rows.push(row);
        }
        Ok(Table {
            header,
            rows,
            by_id,
        })
    }

    pub fn row_of(&self, id: &str) -> Option<&[String]> {
        self.by_id.get(id).map(|&i| self.rows[i].as_slice())
    }

    /// The value of `column` in `row`, empty when the file has no such column.
    pub fn get<'a>(&self, row: &'a [String], column: &str) -> &'a str {
        self.header
            .iter()
            .position(|h| h == column)
            .and_then(|i| row.get(i))
            .map_or("", |s| s.as_str())
    }
}

/// Refresh R as published.
#[derive(Debug)]
pub struct Published {
    pub refresh: Month,
    pub manifest: Manifest,
    pub partners: Table,
    pub watch: Option<Table>,
    /// The KPI categories, in the order of the `kpi_<category>` columns.
    pub categories: Vec<String>,
}

fn not_published(refresh: Month, path: PathBuf) -> Error {
    Error::MissingInput {
        what: format!(
            "refresh {refresh} is not published under the output folder: run \
             `kpi-refresh run --refresh {refresh} --force` first; its file"
        ),
        path,
    }
}

/// Exit 66 naming the run to do when refresh R was not published.
pub fn require(output: &Path, refresh: Month) -> Result<(PathBuf, PathBuf)> {
    let reports = output.join("reports").join(refresh.to_string());
    let manifest_path = reports.join("manifest.json");
    let partners_path = reports.join(format!("partners-{refresh}.csv"));
    for path in [&manifest_path, &partners_path] {
        if !path.is_file() {
            return Err(not_published(refresh, path.clone()));
        }
    }
    Ok((manifest_path, partners_path))
}

/// Reads what refresh R published: exit 66 naming the run to do when it was not.
pub fn load(output: &Path, refresh: Month) -> Result<Published> {
    let (manifest_path, partners_path) = require(output, refresh)?;
    let reports = output.join("reports").join(refresh.to_string());
    let manifest = Manifest::read(&manifest_path)?
        .ok_or_else(|| not_published(refresh, manifest_path.clone()))?;
    if manifest.refresh != refresh.to_string() {
        return Err(Error::Unreadable {
            file: manifest_path,
            reason: format!("it is the manifest of refresh {}", manifest.refresh),
        });
    }
    let partners = Table::read(&partners_path, &manifest)?;
    let categories = partners
        .header
        .iter()
        .filter_map(|h| h.strip_prefix("kpi_").map(str::to_string))
        .collect();
    let watch_path = reports.join(format!("watch-{refresh}.csv"));
    let watch = if std::fs::symlink_metadata(&watch_path).is_ok() {
        Some(Table::read(&watch_path, &manifest)?)
    } else {
        None
    };
    Ok(Published {
        refresh,
        manifest,
        partners,
        watch,
        categories,
    })
}

/// The deliveries ≤ R-1 that R used, oldest first.
pub fn used_deliveries(p: &Published) -> Vec<Month> {
    let last = p.refresh.plus(-1);
    let mut months: Vec<Month> = p
        .manifest
        .deliveries
        .iter()
        .filter_map(|d| d.delivery.parse::<Month>().ok())
        .filter(|m| *m <= last)
        .collect();
    months.sort();
    months
}

/// Checks that the ledger holds the rows R used: every partition R's manifest lists is there
/// with the same rows, and no other partition ≤ R-1 has appeared. Otherwise the ledger would
/// not give R's published figures: exit 66 naming the run that publishes R again.
pub fn check_ledger(output: &Path, p: &Published) -> Result<()> {
    let r = p.refresh;
    let changed = |delivery: String, why: &str| Error::MissingInput {
        what: format!(
            "the ledger partition of delivery {delivery} as refresh {r} used it ({why}); the \
             statement would not show {r}'s published figures. Publish {r} again with \
             `kpi-refresh run --refresh {r} --force`, then make the statement; the partition"
        ),
        path: output.join(partition_rel(delivery.parse().unwrap_or(r))),
    };
    for d in &p.manifest.deliveries {
        let Ok(month) = d.delivery.parse::<Month>() else {
            continue;
        };
        let dir = output.join(partition_rel(month));
        // Read like every file the program wrote: a regular file, its files checked against
        // the digests its metadata recorded (docs/rules.md §15).
        let meta: Option<PartitionMeta> = crate::source::read(&dir.join(ledger::META))
            .ok()
            .and_then(|t| serde_json::from_slice(&t.bytes).ok());
        let Some(meta) = meta else {
            return Err(changed(d.delivery.clone(), "it is no longer in the ledger"));
        };
        if !same_rows(d, &meta) {
            return Err(changed(
                d.delivery.clone(),
                "a later refresh judged it again, with other rows",
            ));
        }
        if let Some(why) = crate::partition_check::verify(&dir, &meta) {
            return Err(changed(
                d.delivery.clone(),
                &format!("it cannot be trusted: {why}"),
            ));
        }
    }
    let used = used_deliveries(p);
    if let Ok(entries) = std::fs::read_dir(output.join("ledger")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(month) = name
                .strip_prefix("delivery=")
                .and_then(|m| m.parse::<Month>().ok())
            else {
                continue;
            };
            if month < r && !used.contains(&month) {
                return Err(changed(
                    month.to_string(),
                    &format!("a later refresh added it; {r} did not use it"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether a partition holds the rows a manifest recorded: by their digest, or, for a
/// manifest written before the digest was kept, by the counts.
fn same_rows(recorded: &DeliveryCounts, meta: &PartitionMeta) -> bool {
    match &recorded.rows_digest {
        Some(digest) => *digest == meta.rows_digest(),
        None => {
            recorded.read == meta.read
                && recorded.accepted == meta.accepted
                && recorded.rejected == meta.rejected
        }
    }
}

//! `manifest.json`: what a refresh read and wrote, with SHA-256 of every input and output and
//! counts that add up (for every delivery, read = accepted + rejected).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Relative to the input folder.
    pub path: String,
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCounts {
    pub delivery: String,
    pub judged_in_this_run: bool,
    pub read: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    /// What decides the partition's rows ([`crate::ledger::PartitionMeta::rows_digest`]):
    /// a statement of this refresh checks that the ledger still holds these rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_digest: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub partners: u64,
    pub lines_in_window: u64,
    pub partners_due: u64,
    pub directory_changes: u64,
    pub directory_exceptions: u64,
    pub rejected_rows_of_last_delivery: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative to the output folder.
    pub path: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub refresh: String,
    pub window: Window,
    pub status: String,
    pub tool_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub inputs: Vec<InputFile>,
    /// Months between the earliest delivery and R-1 without a delivery folder, allowed by
    /// `--allow-missing` (empty when there is no gap).
    #[serde(default)]
    pub allowed_missing: Vec<String>,
    pub deliveries: Vec<DeliveryCounts>,
    pub counts: Counts,
    pub outputs: Vec<OutputFile>,
}

impl Manifest {
    /// Reads a published manifest; `None` when the file is not there. Read like an input: a
    /// manifest that is not a regular file is refused, never waited on.
    pub fn read(path: &Path) -> Result<Option<Manifest>> {
        if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            return Ok(None);
        }
        let text = crate::source::read(path)?.bytes;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Unreadable {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text =
            serde_json::to_vec_pretty(self).map_err(|e| Error::internal("manifest", e))?;
        text.push(b'\n');
        std::fs::write(path, text).map_err(|e| Error::write(path, e))
    }
}

/// A report read back (`path`, whose bytes are `bytes`) must be the file its refresh published:
/// when the manifest beside it names it, its SHA-256 must be the one recorded there. A file
/// changed since it was published is refused (65), never used (docs/rules.md §15).
pub fn check_published(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(reports) = path.parent() else {
        return Ok(());
    };
    match Manifest::read(&reports.join("manifest.json"))? {
        Some(manifest) => manifest.check_output(path, bytes),
        None => Ok(()),
    }
}

impl Manifest {
    /// [`check_published`] with this manifest, already read.
    pub fn check_output(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let recorded = self
            .outputs
            .iter()
            .find(|o| o.path.rsplit('/').next() == Some(name));
        match recorded {
            Some(o) if o.sha256 != crate::digest::sha256_bytes(bytes) => Err(Error::Unreadable {
                file: path.to_path_buf(),
                reason: "differs from the file its refresh published (its SHA-256 is not \
                             the one in that refresh's manifest.json); publish that refresh \
                             again with `run`"
                    .into(),
            }),
            _ => Ok(()),
        }
    }
}

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
    /// Reads a published manifest; `None` when the file is not there.
    pub fn read(path: &Path) -> Result<Option<Manifest>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Unreadable {
                    file: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
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

//! What a published refresh recorded, for the commands that tell about it (`explain`): its
//! manifest, and whether what they work out from the inputs today is what was published.
//!
//! A refresh that was not published, or whose inputs or results differ from what its manifest
//! records, is exit 66 naming the `run` to do: an answer never contradicts the published
//! reports. See docs/rules.md §14.1.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{today, RunConfig};
use crate::error::{Error, Result};
use crate::report::manifest::{InputFile, Manifest};

/// The `run` that publishes refresh R of `cfg` (with `--force` when R is not open today).
pub fn run_command(cfg: &RunConfig) -> String {
    let r = cfg.refresh();
    let force = today().map_or(true, |t| cfg.check_open(t).is_err());
    format!(
        "kpi-refresh run --refresh {r} --input {} --output {}{}",
        cfg.input().display(),
        cfg.output().display(),
        if force { " --force" } else { "" }
    )
}

fn not_published(cfg: &RunConfig, reason: String) -> Error {
    Error::NotPublished {
        reason,
        command: run_command(cfg),
    }
}

/// The manifest of the published refresh R; exit 66 when R was not published.
pub fn manifest(cfg: &RunConfig) -> Result<Manifest> {
    let r = cfg.refresh();
    let path = cfg
        .output()
        .join("reports")
        .join(r.to_string())
        .join("manifest.json");
    Manifest::read(&path)?.ok_or_else(|| {
        not_published(
            cfg,
            format!(
                "the refresh of {r} was not published under {} (no {})",
                cfg.output().display(),
                path.display()
            ),
        )
    })
}

/// The input files that differ between the manifest and `now` (changed, added or removed).
pub fn changed_inputs(recorded: &[InputFile], now: &[InputFile]) -> Vec<String> {
    let map = |files: &[InputFile]| -> BTreeMap<String, String> {
        files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect()
    };
    let (before, after) = (map(recorded), map(now));
    let mut paths: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Fails (exit 66) when the inputs read today are not those the published refresh read.
pub fn check_inputs(cfg: &RunConfig, recorded: &Manifest, now: &[InputFile]) -> Result<()> {
    let changed = changed_inputs(&recorded.inputs, now);
    if changed.is_empty() {
        return Ok(());
    }
    Err(not_published(
        cfg,
        format!(
            "the inputs changed since the refresh of {} was published ({}), so its published \
             reports no longer say what these inputs give",
            cfg.refresh(),
            changed.join(", ")
        ),
    ))
}

/// Fails (exit 66) when the file `computed` (worked out today) differs from the published
/// output `rel` recorded in the manifest.
pub fn check_output(
    cfg: &RunConfig,
    recorded: &Manifest,
    rel: &str,
    computed: &Path,
) -> Result<()> {
    let now = crate::digest::sha256_file(computed).map_err(|e| Error::write(computed, e))?;
    let published = recorded.outputs.iter().find(|o| o.path == rel);
    if published.is_some_and(|o| o.sha256 == now) {
        return Ok(());
    }
    Err(not_published(
        cfg,
        format!(
            "{rel} as published differs from what the output folder and inputs give today \
             (an earlier refresh was run again since?)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, sha: &str) -> InputFile {
        InputFile {
            path: path.into(),
            sha256: sha.into(),
            rows: None,
        }
    }

    #[test]
    fn changed_added_and_removed_inputs_are_named() {
        let before = [file("a", "1"), file("b", "2"), file("c", "3")];
        let after = [file("a", "1"), file("b", "9"), file("d", "4")];
        assert_eq!(changed_inputs(&before, &after), ["b", "c", "d"]);
        assert!(changed_inputs(&before, &before).is_empty());
    }
}

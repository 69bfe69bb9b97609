//! The bad-input corpus: every folder of `tests/corpus/` but `base` is one case, an overlay on
//! the base input with a `case.toml` saying what the contract expects of it (see
//! `tests/corpus/README.md`). Each case runs the real binary and must end with the expected exit
//! code (never a panic), a message naming what is wrong, and, when it succeeds, exactly the
//! expected rejected rows and directory exceptions, with the counts adding up.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use calamine::Reader;
use common::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    #[serde(default)]
    args: Option<Vec<String>>,
    exit: i32,
    #[serde(default)]
    stderr: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    output_is_file: bool,
    /// (source file, source row, reason) of every row of `rejected-2026-11.csv`.
    rejected: Option<Vec<[String; 3]>>,
    /// (partner id, reason) of every row of the Directory exceptions sheet.
    exceptions: Option<Vec<[String; 2]>>,
    /// Text that must appear in one of the CSV reports.
    #[serde(default)]
    csv_contains: Vec<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn cases() -> Vec<(String, Case)> {
    let mut cases: Vec<(String, Case)> = std::fs::read_dir(corpus())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir() && e.file_name() != "base")
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path().join("case.toml"))
                .unwrap_or_else(|err| panic!("{name}/case.toml: {err}"));
            let case: Case =
                toml::from_str(&text).unwrap_or_else(|err| panic!("{name}/case.toml: {err}"));
            (name, case)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

/// Runs one case's command on the base input with the case's files; the folder and what the
/// command gave.
fn run_case(name: &str, case: &Case) -> Result<(Work, std::process::Output), String> {
    let w = Work::empty();
    copy_dir(&corpus().join("base"), &w.input());
    let overlay = corpus().join(name).join("input");
    if overlay.is_dir() {
        copy_dir(&overlay, &w.input());
    }
    for rel in &case.remove {
        std::fs::remove_file(w.input().join(rel)).map_err(|e| format!("remove {rel}: {e}"))?;
    }
    if case.output_is_file {
        std::fs::write(w.output(), "not a folder").unwrap();
    }
    let default_args = ["run", "--refresh", "2026-11", "--force"].map(String::from);
    let args = case.args.clone().unwrap_or_else(|| default_args.to_vec());
    let out = Command::new(BIN)
        .args(&args)
        .arg("--input")
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_TODAY", "2026-11-20")
        .env_remove("KPI_REFRESH_FAILPOINT")
        .envs(&case.env)
        .output()
        .unwrap();
    Ok((w, out))
}

/// Runs one case; returns what went wrong, if anything.
fn check(name: &str, case: &Case) -> Result<(), String> {
    let (w, out) = run_case(name, case)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    if code != Some(case.exit) {
        return Err(format!(
            "exit {code:?}, expected {}; stderr:\n{stderr}",
            case.exit
        ));
    }
    if stderr.contains("panicked") {
        return Err(format!("a panic message:\n{stderr}"));
    }
    for needle in &case.stderr {
        if !stderr.contains(needle.as_str()) {
            return Err(format!("stderr lacks {needle:?}:\n{stderr}"));
        }
    }
    let reports = w.output().join("reports/2026-11");
    if case.exit != 0 {
        // A failed run publishes nothing.
        return match reports.exists() {
            true => Err("a failed run published reports".into()),
            false => Ok(()),
        };
    }
    check_published(&reports, case)
}

/// The published refresh of a case that succeeded: counts that add up, the rejected rows and
/// directory exceptions expected, no formula, and the texts the CSV reports must hold.
fn check_published(reports: &std::path::Path, case: &Case) -> Result<(), String> {
    let read = |file: &str| std::fs::read_to_string(reports.join(file)).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&read("manifest.json")).unwrap();
    for d in manifest["deliveries"].as_array().unwrap() {
        let rejected: u64 = d["rejected"]
            .as_object()
            .map(|m| m.values().map(|v| v.as_u64().unwrap()).sum())
            .unwrap_or_else(|| d["rejected"].as_u64().unwrap_or(0));
        if d["read"].as_u64().unwrap() != d["accepted"].as_u64().unwrap() + rejected {
            return Err(format!("counts do not add up: {d}"));
        }
    }
    if let Some(expected) = &case.rejected {
        let rows = csv_rows(&read("rejected-2026-11.csv"));
        let got: Vec<[String; 3]> = rows[1..]
            .iter()
            .map(|r| [r[0].clone(), r[1].clone(), r[2].clone()])
            .collect();
        if &got != expected {
            return Err(format!("rejected rows {got:?}, expected {expected:?}"));
        }
    }
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(reports.join("kpi-refresh-2026-11.xlsx"))
            .map_err(|e| format!("workbook: {e}"))?;
    if let Some(expected) = &case.exceptions {
        let sheet = book.worksheet_range("Directory exceptions").unwrap();
        let got: Vec<[String; 2]> = sheet
            .rows()
            .skip(1)
            .map(|r| [r[0].to_string(), r[4].to_string()])
            .collect();
        if &got != expected {
            return Err(format!(
                "directory exceptions {got:?}, expected {expected:?}"
            ));
        }
    }
    // No input text is a formula in any sheet.
    for sheet in book.sheet_names() {
        let formulas = book.worksheet_formula(&sheet).unwrap();
        if let Some(f) = formulas.used_cells().find(|(_, _, f)| !f.is_empty()) {
            return Err(format!("a formula in {sheet}: {f:?}"));
        }
    }
    if !case.csv_contains.is_empty() {
        let all: String = ["partners", "directory-submission", "rejected"]
            .iter()
            .map(|f| read(&format!("{f}-2026-11.csv")))
            .collect();
        for needle in &case.csv_contains {
            if !all.contains(needle.as_str()) {
                return Err(format!("no CSV report holds {needle:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_corpus_case_gives_what_the_contract_says() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, case)| {
            check(name, case)
                .err()
                .map(|e| format!("{name} ({}): {e}", case.about))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn the_corpus_names_every_exit_code_reject_reason_and_directory_reason() {
    let cases = cases();
    for code in [0, 64, 65, 66, 70, 73, 75, 78] {
        assert!(cases.iter().any(|(_, c)| c.exit == code), "exit {code}");
    }
    let rejected: Vec<&str> = cases
        .iter()
        .flat_map(|(_, c)| c.rejected.iter().flatten())
        .map(|r| r[2].split(':').next().unwrap())
        .collect();
    for reason in [
        "missing_value",
        "invalid_value",
        "not_an_invoice",
        "unknown_document_type",
        "future_date",
        "unknown_partner",
        "unknown_omlp_type",
        "sign_mismatch",
        "no_fx_rate",
        "duplicate_line",
    ] {
        assert!(rejected.contains(&reason), "{reason}");
    }
    let directory: Vec<&str> = cases
        .iter()
        .flat_map(|(_, c)| c.exceptions.iter().flatten())
        .map(|r| r[1].as_str())
        .collect();
    for reason in [
        "missing_directory_name",
        "invalid_directory_name",
        "invalid_country",
        "invalid_url",
        "url_not_https",
        "url_not_partner_owned",
    ] {
        assert!(directory.contains(&reason), "{reason}");
    }
}

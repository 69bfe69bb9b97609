//! Crash safety and exclusivity, for real: the binary is killed (SIGKILL) during ingest,
//! compute and publish on a generated input, and two runs are started together.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

const SYNTH: &str = env!("CARGO_BIN_EXE_kpi-synth");

fn synth(w: &Work, lines: usize) {
    let out = Command::new(SYNTH)
        .args([
            "--partners",
            "3000",
            "--deliveries",
            "13",
            "--seed",
            "7",
            "--lines-per-delivery",
        ])
        .arg(lines.to_string())
        .arg("--out")
        .arg(w.input())
        .output()
        .unwrap();
    assert_success(&out);
}

fn refresh_cmd(w: &Work, month: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "run",
        "--refresh",
        month,
        "--force",
        "--max-reject-rate",
        "0.2",
        "--input",
    ])
    .arg(w.input())
    .arg("--output")
    .arg(w.output());
    cmd
}

/// The published files: everything but the program's own work folder.
fn published(w: &Work) -> Vec<(String, String)> {
    tree_hashes(&w.output())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".kpi-refresh"))
        .collect()
}

fn without_run_times(tree: Vec<(String, String)>) -> Vec<(String, String)> {
    tree.into_iter()
        .filter(|(p, _)| !p.ends_with("manifest.json") && !p.ends_with(".xlsx"))
        .collect()
}

/// Starts a refresh and kills it with SIGKILL as soon as its log shows `marker`; whether the
/// marker was seen, and whether the run had already finished on its own (a busy machine can
/// let it publish between the line and the kill).
fn kill_at(w: &Work, month: &str, marker: &str) -> (bool, bool) {
    let mut child = refresh_cmd(w, month)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = false;
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains(marker) {
            seen = true;
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    (seen, status.success())
}

#[test]
fn killed_runs_leave_the_output_as_it_was_and_the_next_run_gives_the_same_result() {
    let reference = Work::empty();
    synth(&reference, 20_000);
    let mut cmd = refresh_cmd(&reference, "2026-10");
    assert_success(&cmd.output().unwrap());
    let mut cmd = refresh_cmd(&reference, "2026-11");
    assert_success(&cmd.output().unwrap());

    let w = Work::empty();
    synth(&w, 20_000);
    assert_success(&refresh_cmd(&w, "2026-10").output().unwrap());
    let before = published(&w);
    // During ingest (a delivery of the new month is judged), compute, and just before publish.
    for marker in [
        "delivery=2026-10",
        "kpi: window totals",
        "renewal: decisions",
        "report: files staged",
    ] {
        let (seen, finished) = kill_at(&w, "2026-11", marker);
        assert!(seen, "the run never logged {marker:?}");
        if finished {
            // The run published before the kill reached it: nothing to check here.
            break;
        }
        let journal = w.output().join(".kpi-refresh/journal.json");
        if journal.exists() {
            // Killed inside the commit itself: the next run completes it.
            continue;
        }
        assert_eq!(
            published(&w),
            before,
            "killed at {marker:?}: the output changed"
        );
    }
    assert_success(&refresh_cmd(&w, "2026-11").output().unwrap());
    assert_eq!(
        without_run_times(published(&w)),
        without_run_times(published(&reference))
    );
}

#[test]
fn two_runs_started_together_end_with_one_success_and_one_75() {
    let w = Work::empty();
    synth(&w, 20_000);
    let a = refresh_cmd(&w, "2026-11")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = refresh_cmd(&w, "2026-11")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(75)],
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let loser = if a.status.code() == Some(75) { &a } else { &b };
    assert!(
        String::from_utf8_lossy(&loser.stderr).contains("another kpi-refresh run holds the lock")
    );
}

//! Trusting nothing on disk blindly: inputs that are not regular files, state and ledger files
//! damaged by hand, a crafted publish journal, symbolic links where the program writes, a
//! publish that fails half-way, many files in one delivery, and digests of the bytes parsed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn corpus_base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/base")
}

/// The corpus's base input (two partners, rates, delivery 2026-10) and a delivery 2026-09.
fn base() -> Work {
    let w = Work::empty();
    copy_dir(&corpus_base(), &w.input());
    w.write(
        "extracts/2026-09/s.csv",
        "invoice_number,invoice_line,invoice_date,document_type,partner_id,omlp_type,\
         purchase_unit,kpi_value,revenue,currency\n\
         S1,1,2026-09-02,Invoice,P1,MOC,kit,40,400.00,USD\n\
         S2,1,2026-09-03,Invoice,P1,Exam Voucher,voucher,3,30.00,EUR\n",
    );
    w
}

/// `run --refresh 2026-11 --force` on `w`, today being 2026-11-20, without a failpoint.
fn refresh_cmd(w: &Work) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--refresh", "2026-11", "--force", "--input"])
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_TODAY", "2026-11-20")
        .env_remove("KPI_REFRESH_FAILPOINT");
    cmd
}

fn run_with(w: &Work, env: &[(&str, &str)]) -> Output {
    let mut cmd = refresh_cmd(w);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The published files (the program's own folder aside) without run times.
fn published(w: &Work) -> Vec<(String, String)> {
    tree_hashes(&w.output())
        .into_iter()
        .filter(|(p, _)| {
            !p.starts_with(".kpi-refresh") && !p.ends_with("manifest.json") && !p.ends_with(".xlsx")
        })
        .collect()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn an_input_that_is_a_fifo_is_66_without_hanging() {
    for rel in [
        "program.toml",
        "partners.csv",
        "fx_rates.csv",
        "extracts/2026-10/b.csv",
    ] {
        let w = base();
        let path = w.input().join(rel);
        let _ = std::fs::remove_file(&path);
        mkfifo(&path);
        // No writer ever opens the FIFO: a reader would block for good.
        let out = run_with(&w, &[]);
        assert_exit(&out, 66, rel.rsplit('/').next().unwrap());
        assert!(stderr(&out).contains("FIFO"), "{rel}: {}", stderr(&out));
        assert!(!w.output().join("reports/2026-11").exists(), "{rel}");
    }
}

#[test]
fn a_state_file_with_an_invalid_row_is_65_naming_file_and_row() {
    for (dir, bad) in [
        ("levels", "partner_id,roster_enrollment,enrolled_on,effective_level\nP1,silver,2025-03-05,platinum\n"),
        ("directory", "partner_id,directory_name,country,landing_page_url\nP1,Contoso Learning,SE,https://learn.contoso.se/courses\nP1,Again,SE,https://x.contoso.se/\n"),
    ] {
        let w = base();
        let path = w.output().join("state").join(dir).join("2026-10.csv");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bad).unwrap();
        let out = run_with(&w, &[]);
        assert_exit(&out, 65, "2026-10.csv");
        let err = stderr(&out);
        assert!(err.contains(&format!("state/{dir}")), "{err}");
        assert!(err.contains("row 2") || err.contains("row 3"), "{err}");
        assert!(!w.output().join("reports/2026-11").exists());
    }
}

#[test]
fn a_symlinked_lock_is_never_followed() {
    let w = base();
    let victim = w.dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::create_dir_all(w.output().join(".kpi-refresh")).unwrap();
    std::os::unix::fs::symlink(&victim, w.output().join(".kpi-refresh/lock")).unwrap();
    let out = run_with(&w, &[]);
    assert_exit(&out, 73, "symbolic link");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// Writes `text` as the journal of a commit left half done.
fn plant_journal(w: &Work, text: &str) -> PathBuf {
    let dir = w.output().join(".kpi-refresh");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_crafted_or_garbage_journal_is_73_and_nothing_is_deleted() {
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("keep.txt"), "keep").unwrap();
    let target = precious.to_string_lossy().into_owned();
    let crafted = [
        format!(r#"{{"staging": ".kpi-refresh/staging-1", "moves": [{{"Remove": "{target}"}}]}}"#),
        r#"{"staging": ".kpi-refresh/staging-1", "moves": [{"Remove": "../../x"}]}"#.to_string(),
        format!(r#"{{"staging": "{target}", "moves": [{{"Put": "reports"}}]}}"#),
        "this is no journal".to_string(),
        String::new(),
    ];
    for text in crafted {
        let w = base();
        w.refresh("2026-11");
        let before = published(&w);
        let journal = plant_journal(&w, &text);
        let out = run_with(&w, &[]);
        assert_exit(&out, 73, "journal.json");
        assert!(!stderr(&out).contains("panicked"));
        assert_eq!(
            std::fs::read_to_string(precious.join("keep.txt")).unwrap(),
            "keep"
        );
        assert_eq!(published(&w), before, "{text}");
        assert!(
            journal.exists(),
            "the refused journal stays for the operator"
        );
    }
}

#[test]
fn a_journal_that_is_a_fifo_or_stages_through_a_link_is_73_without_blocking() {
    // A FIFO as the journal: refused before it is opened (a read would block for good).
    let w = base();
    w.refresh("2026-11");
    let dir = w.output().join(".kpi-refresh");
    mkfifo(&dir.join("journal.json"));
    let out = run_with(&w, &[]);
    assert_exit(&out, 73, "not a regular file");
    // A staging folder that is a symbolic link to a folder outside: nothing is brought in,
    // nothing leaves.
    let w = base();
    w.refresh("2026-11");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "keep").unwrap();
    let dir = w.output().join(".kpi-refresh");
    std::os::unix::fs::symlink(outside.path(), dir.join("staging-1")).unwrap();
    plant_journal(
        &w,
        r#"{"staging": ".kpi-refresh/staging-1", "moves": [{"Put": "keep.txt"}]}"#,
    );
    let out = run_with(&w, &[]);
    assert_exit(&out, 73, "staging");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep.txt")).unwrap(),
        "keep"
    );
    assert!(!w.output().join("keep.txt").exists());
}

#[test]
fn a_publish_failing_half_way_leaves_the_output_as_it_was() {
    let w = base();
    w.refresh("2026-11");
    let before = published(&w);
    // Delivery 2026-10 changes: this run would replace its partition, the state and reports.
    w.write(
        "extracts/2026-10/c.csv",
        "invoice_number,invoice_line,invoice_date,document_type,partner_id,omlp_type,\
         purchase_unit,kpi_value,revenue,currency\nC1,1,2026-10-09,Invoice,P1,MOC,kit,5,5,USD\n",
    );
    for failpoint in ["cross-device-rename", "cross-device-destination"] {
        let out = run_with(&w, &[("KPI_REFRESH_FAILPOINT", failpoint)]);
        assert_exit(&out, 73, "cross");
        assert_eq!(published(&w), before, "{failpoint}");
        let work = w.output().join(".kpi-refresh");
        assert!(!work.join("journal.json").exists(), "{failpoint}");
        let left: Vec<_> = std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock")
            .collect();
        assert!(left.is_empty(), "{failpoint}: {left:?}");
    }
    // The next run proceeds.
    let out = run_with(&w, &[]);
    assert_success(&out);
    // courseware: 10 and 5 (2026-10), 40 (2026-09).
    assert!(w.report("2026-11", "partners-2026-11.csv").contains(",55,"));
}

#[test]
fn a_damaged_ledger_partition_is_judged_again_never_trusted() {
    let w = base();
    w.refresh("2026-11");
    let before = published(&w);
    let ledger = w.output().join("ledger");
    let (sep, oct) = (
        ledger.join("delivery=2026-09"),
        ledger.join("delivery=2026-10"),
    );
    type Damage<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let swap = |name: &'static str| {
        let (sep, oct) = (sep.join(name), oct.join(name));
        Box::new(move || {
            let (a, b) = (std::fs::read(&sep).unwrap(), std::fs::read(&oct).unwrap());
            std::fs::write(&sep, b).unwrap();
            std::fs::write(&oct, a).unwrap();
        })
    };
    let damages: [Damage; 4] = [
        ("swapped", swap("accepted.parquet")),
        // The KPIs are computed from the month sums: another delivery's (valid Parquet)
        // would give wrong KPIs, not an error.
        (
            "sums replaced",
            Box::new(|| {
                std::fs::copy(sep.join("sums.parquet"), oct.join("sums.parquet"))
                    .map(drop)
                    .unwrap()
            }),
        ),
        (
            "truncated",
            Box::new(|| {
                let p = oct.join("rejected.parquet");
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            }),
        ),
        (
            "edited counts",
            Box::new(|| {
                let p = oct.join("_partition.json");
                let text = std::fs::read_to_string(&p).unwrap();
                let edited = text.replacen("\"accepted\": 2", "\"accepted\": 1000", 1);
                assert_ne!(text, edited);
                std::fs::write(&p, edited).unwrap();
            }),
        ),
    ];
    for (what, damage) in damages {
        damage();
        let out = run_with(&w, &[]);
        assert_success(&out);
        assert!(
            stderr(&out).contains("not trusted"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(published(&w), before, "{what}");
        let manifest: serde_json::Value =
            serde_json::from_str(&w.report("2026-11", "manifest.json")).unwrap();
        let oct = &manifest["deliveries"].as_array().unwrap()[1];
        assert_eq!(oct["delivery"], "2026-10");
        assert_eq!(oct["accepted"], 2, "{what}");
    }
}

#[test]
fn the_manifest_digests_are_of_the_bytes_parsed() {
    let w = base();
    w.refresh("2026-11");
    for rel in [
        "program.toml",
        "partners.csv",
        "fx_rates.csv",
        "extracts/2026-09/s.csv",
        "extracts/2026-10/a.csv",
    ] {
        let bytes = std::fs::read(w.input().join(rel)).unwrap();
        assert_eq!(manifest_digest(&w, rel), sha256_hex(&bytes), "{rel}");
    }
}

#[test]
fn two_thousand_small_files_in_one_delivery() {
    let w = base();
    let header = "invoice_number,invoice_line,invoice_date,document_type,partner_id,omlp_type,\
                  purchase_unit,kpi_value,revenue,currency\n";
    for i in 0..2000 {
        w.write(
            &format!("extracts/2026-10/f{i:04}.csv"),
            &format!("{header}M{i},1,2026-10-05,Invoice,P1,MOC,kit,1,1,USD\n"),
        );
    }
    let out = run_with(&w, &[]);
    assert_success(&out);
    let manifest: serde_json::Value =
        serde_json::from_str(&w.report("2026-11", "manifest.json")).unwrap();
    let oct = manifest["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["delivery"] == "2026-10")
        .unwrap();
    assert_eq!(oct["read"], 2002);
    assert_eq!(oct["accepted"], 2002);
}

/// program.toml with `n` KPI categories (the base's two first), thresholds 0.
fn with_categories(w: &Work, n: usize) {
    let base = std::fs::read_to_string(corpus_base().join("program.toml")).unwrap();
    let extra: String = (2..n).map(|i| format!("c{i} = [\"T{i}\"]\n")).collect();
    let program = base.replace(
        "certification = [\"Exam Voucher\"]\n",
        &format!("certification = [\"Exam Voucher\"]\n{extra}"),
    );
    std::fs::write(w.input().join("program.toml"), program).unwrap();
}

#[test]
fn too_many_kpi_categories_are_78_naming_the_key_and_the_most_that_fit_work() {
    let w = base();
    with_categories(&w, 8200);
    let out = run_with(&w, &[]);
    assert_exit(&out, 78, "kpi_categories");
    assert!(stderr(&out).contains("3274"), "{}", stderr(&out));
    let w = base();
    with_categories(&w, 3274);
    let out = run_with(&w, &[]);
    assert_success(&out);
    let header = w.report("2026-11", "partners-2026-11.csv");
    assert!(header.lines().next().unwrap().contains("gap_c3273"));
}

#[test]
fn a_fifo_planted_in_the_ledger_or_the_state_does_not_block_the_run() {
    let w = base();
    w.refresh("2026-11");
    let before = published(&w);
    let meta = w.output().join("ledger/delivery=2026-10/_partition.json");
    std::fs::remove_file(&meta).unwrap();
    mkfifo(&meta);
    // The partition cannot be checked: it is judged again from its delivery.
    let out = run_with(&w, &[]);
    assert_success(&out);
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    assert_eq!(published(&w), before);
    // A state file that is a FIFO is refused unopened.
    let state = w.output().join("state/levels/2026-10.csv");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    mkfifo(&state);
    assert_exit(&run_with(&w, &[]), 66, "2026-10.csv");
}

/// Delivery 2026-09 as it reads after the change: a value changed and a line added.
const CHANGED_2026_09: &str = "invoice_number,invoice_line,invoice_date,document_type,partner_id,\
     omlp_type,purchase_unit,kpi_value,revenue,currency\n\
     S1,1,2026-09-02,Invoice,P1,MOC,kit,55,550.00,USD\n\
     S2,1,2026-09-03,Invoice,P1,Exam Voucher,voucher,3,30.00,EUR\n\
     S3,1,2026-09-04,Invoice,P1,MOC,kit,7,70.00,USD\n";

/// The SHA-256 the refresh's manifest records for input `rel`.
fn manifest_digest(w: &Work, rel: &str) -> String {
    let manifest: serde_json::Value =
        serde_json::from_str(&w.report("2026-11", "manifest.json")).unwrap();
    let inputs = manifest["inputs"].as_array().unwrap();
    let entry = inputs
        .iter()
        .find(|i| i["path"] == rel)
        .unwrap_or_else(|| panic!("{rel} in {inputs:?}"));
    entry["sha256"].as_str().unwrap().to_string()
}

/// Runs the refresh with the failpoint `stop` (it stops itself there), calls `change` while it
/// is stopped, then lets it go on; returns its output. No timing: the change happens exactly
/// at the failpoint.
fn run_changing_at(w: &Work, stop: &str, change: impl FnOnce()) -> Output {
    let mut child = refresh_cmd(w)
        .env("KPI_REFRESH_FAILPOINT", stop)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        // The state follows the command name's closing parenthesis.
        let state = text.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        if state == Some("T") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {stop}"
        );
        assert!(started.elapsed().as_secs() < 120, "never stopped at {stop}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    change();
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
    child.wait_with_output().unwrap()
}

/// The partners file of a run from nothing on the input as it reads after the change.
fn partners_of_the_changed_input() -> String {
    let fresh = base();
    fresh.write("extracts/2026-09/s.csv", CHANGED_2026_09);
    fresh.refresh("2026-11");
    fresh.report("2026-11", "partners-2026-11.csv")
}

#[test]
fn a_carry_over_read_ahead_in_vain_does_not_fail_on_that_read() {
    let w = base();
    assert_success(&run_with(&w, &[]));
    // A new rate for 2026-09's euros: 2026-09 is judged again from its kept rows, and 2026-10,
    // whose rows ask other rates, is planned as a carry-over, read ahead in case the keys
    // before it change (they do not: a rate is no key).
    let rates = std::fs::read_to_string(w.input().join("fx_rates.csv")).unwrap();
    w.write(
        "fx_rates.csv",
        &rates.replace("2026-09,EUR,1.1", "2026-09,EUR,1.15"),
    );
    // Its kept rows become unreadable once the partitions are checked: reading it ahead fails,
    // which the carry-over does not need.
    let parsed = w.output().join("ledger/delivery=2026-10/parsed.parquet");
    let out = run_changing_at(&w, "stop-after-listing", || {
        std::fs::write(&parsed, b"not parquet").unwrap()
    });
    assert_success(&out);
    assert!(
        stderr(&out).contains("rows carried over"),
        "{}",
        stderr(&out)
    );
    // The next run finds the file changed since it was recorded and judges 2026-10 again
    // from its delivery.
    let again = run_with(&w, &[]);
    assert_success(&again);
    assert!(stderr(&again).contains("not trusted"), "{}", stderr(&again));
}

#[test]
fn an_edited_partition_record_is_not_what_its_files_are_checked_against() {
    let w = base();
    assert_success(&run_with(&w, &[]));
    // A recorded SHA-256 edited: the seal no longer holds, so the record is not trusted, and
    // the files are hashed (not taken for the digests the record names).
    let path = w.output().join("ledger/delivery=2026-10/_partition.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    meta["files"][0]["sha256"] = "0".repeat(64).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let out = run_with(&w, &[]);
    assert_success(&out);
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("changed while"), "{}", stderr(&out));
    // Judged again from its delivery, the partition records the file's own digests: the
    // next run reuses every delivery.
    let again = run_with(&w, &[]);
    assert_success(&again);
    let manifest: serde_json::Value =
        serde_json::from_str(&w.report("2026-11", "manifest.json")).unwrap();
    for d in manifest["deliveries"].as_array().unwrap() {
        assert_eq!(d["judged_in_this_run"], false, "{d}");
    }
}

#[test]
fn an_input_changed_between_listing_and_parsing_is_recorded_as_parsed() {
    let w = base();
    let out = run_changing_at(&w, "stop-after-listing", || {
        w.write("extracts/2026-09/s.csv", CHANGED_2026_09)
    });
    assert_success(&out);
    assert!(
        stderr(&out).contains("changed while this run read it"),
        "{}",
        stderr(&out)
    );
    // The rows published are the ones parsed, beside the digest of the bytes parsed.
    let expected = partners_of_the_changed_input();
    assert_eq!(w.report("2026-11", "partners-2026-11.csv"), expected);
    assert_eq!(
        manifest_digest(&w, "extracts/2026-09/s.csv"),
        sha256_hex(CHANGED_2026_09.as_bytes())
    );
    // And beside it the BLAKE3 of the same bytes, which later runs check the file by.
    let meta = w.output().join("ledger/delivery=2026-09/_partition.json");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    assert_eq!(
        meta["files"][0]["blake3"],
        blake3::hash(CHANGED_2026_09.as_bytes()).to_hex().as_str()
    );
    // The run planned with the digest listed, so the next run judges the partition again
    // (its rows carried over, the same answers): its data and the reports stay as they are,
    // only the judgement's hash in `_partition.json` is brought up to date.
    let without_meta = |w: &Work| -> Vec<(String, String)> {
        published(w)
            .into_iter()
            .filter(|(p, _)| !p.ends_with("_partition.json"))
            .collect()
    };
    let before = without_meta(&w);
    let again = run_with(&w, &[]);
    assert_success(&again);
    assert!(!stderr(&again).contains("changed while"));
    assert_eq!(w.report("2026-11", "partners-2026-11.csv"), expected);
    assert_eq!(without_meta(&w), before);
    // From then on the partition is trusted as it is: reruns are byte-identical.
    let settled = published(&w);
    assert_success(&run_with(&w, &[]));
    assert_eq!(published(&w), settled);
}

#[test]
fn an_input_changed_after_parsing_is_judged_again_by_the_next_run() {
    let w = base();
    let original = std::fs::read(w.input().join("extracts/2026-09/s.csv")).unwrap();
    let out = run_changing_at(&w, "stop-before-commit", || {
        w.write("extracts/2026-09/s.csv", CHANGED_2026_09)
    });
    assert_success(&out);
    // What was published is what was parsed: the file as it was, with its digest.
    assert_eq!(
        manifest_digest(&w, "extracts/2026-09/s.csv"),
        sha256_hex(&original)
    );
    let expected = partners_of_the_changed_input();
    assert_ne!(w.report("2026-11", "partners-2026-11.csv"), expected);
    // The next run sees a file that is not the one its partition holds, and judges it again.
    let again = run_with(&w, &[]);
    assert_success(&again);
    assert_eq!(w.report("2026-11", "partners-2026-11.csv"), expected);
    assert_eq!(
        manifest_digest(&w, "extracts/2026-09/s.csv"),
        sha256_hex(CHANGED_2026_09.as_bytes())
    );
}

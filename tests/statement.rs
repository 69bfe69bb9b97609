//! `kpi-refresh statement`: partner statements of a published refresh, run as the real binary.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use calamine::{Data, Reader};
use common::*;

type Cells = Vec<Vec<Data>>;

fn sheet(path: &Path, name: &str) -> Cells {
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = book.worksheet_range(name).unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

fn has_formula(path: &Path) -> bool {
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let names = book.sheet_names();
    names.iter().any(|n| {
        book.worksheet_formula(n)
            .unwrap()
            .used_cells()
            .any(|(_, _, f)| !f.is_empty())
    })
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

fn number(d: &Data) -> f64 {
    match d {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn statement_path(w: &Work, refresh: &str, encoded: &str) -> PathBuf {
    w.output()
        .join("statements")
        .join(refresh)
        .join(format!("statement-{refresh}-{encoded}.xlsx"))
}

/// The published partners file as maps of column to value.
fn partners(w: &Work, refresh: &str) -> Vec<HashMap<String, String>> {
    let rows = csv_rows(&w.report(refresh, &format!("partners-{refresh}.csv")));
    let header = rows[0].clone();
    rows[1..]
        .iter()
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

/// Every partner's statement adds up, per category, to its published KPIs; its Monthly KPIs
/// end on the same totals; its rejected rows all name it; no cell is a formula.
fn check_all_add_up(w: &Work, refresh: &str) -> usize {
    let partners = partners(w, refresh);
    let categories: Vec<String> = partners[0]
        .keys()
        .filter_map(|k| k.strip_prefix("kpi_").map(String::from))
        .collect();
    let mut lines_seen = 0;
    for p in &partners {
        let id = p["partner_id"].trim_start_matches('\'');
        let encoded = id.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        assert_eq!(encoded, id, "the sample ids are plain");
        let path = statement_path(w, refresh, id);
        let lines = sheet(&path, "Invoice lines");
        assert_eq!(text(&lines[0][7]), "KPI value");
        lines_seen += lines.len() - 1;
        for c in &categories {
            let sum: f64 = lines[1..]
                .iter()
                .filter(|r| text(&r[11]) == *c)
                .map(|r| number(&r[7]))
                .sum();
            let published: f64 = p[&format!("kpi_{c}")].parse().unwrap();
            assert!(
                (round4(sum) - published).abs() < 1e-9,
                "partner {id} {c}: lines {sum}, published {published}"
            );
            let monthly = sheet(&path, "Monthly KPIs");
            let col = monthly[0]
                .iter()
                .position(|h| text(h) == format!("Cumulative {c}"))
                .unwrap();
            assert_eq!(monthly.len(), 13);
            assert!((number(&monthly[12][col]) - published).abs() < 1e-6);
        }
        for r in &sheet(&path, "Rejected rows")[1..] {
            assert_eq!(text(&r[9]).trim(), id, "a rejected row of another partner");
        }
        assert!(!has_formula(&path));
    }
    lines_seen
}

fn two_refreshes() -> Work {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    w.refresh("2026-06");
    w
}

fn statement(w: &Work, args: &[&str]) -> std::process::Output {
    let mut all = vec!["statement"];
    all.extend(args);
    w.run(&all)
}

#[test]
fn sample_statements_add_up_to_the_published_kpis() {
    let w = Work::empty();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("input"),
        &w.input(),
    );
    assert_success(&w.run(&["backfill", "--from", "2026-09", "--to", "2026-11"]));
    assert_success(&statement(&w, &["--all", "--refresh", "2026-11"]));
    let n = partners(&w, "2026-11").len();
    let written = std::fs::read_dir(w.output().join("statements/2026-11"))
        .unwrap()
        .count();
    assert_eq!(written, n, "one file per partner, nothing else");
    assert!(check_all_add_up(&w, "2026-11") > 0);
}

#[test]
fn generated_statements_add_up_to_the_published_kpis() {
    // kpi-synth data: bad rows of every kind, credit notes, late lines and lines of earlier
    // deliveries sent again, over 13 deliveries.
    let w = Work::empty();
    let synth = std::process::Command::new(env!("CARGO_BIN_EXE_kpi-synth"))
        .args([
            "--partners",
            "80",
            "--lines-per-delivery",
            "2500",
            "--seed",
            "11",
        ])
        .arg("--out")
        .arg(w.input())
        .output()
        .unwrap();
    assert_success(&synth);
    assert_success(&w.run(&[
        "run",
        "--refresh",
        "2026-11",
        "--force",
        "--max-reject-rate",
        "0.2",
    ]));
    assert_success(&statement(&w, &["--all", "--refresh", "2026-11"]));
    let lines = check_all_add_up(&w, "2026-11");
    let partners_listed: usize = csv_rows(&w.report("2026-11", "partners-2026-11.csv"))
        .len()
        .saturating_sub(1);
    assert!(partners_listed >= 80, "every partner has its statement");
    assert!(lines > 20_000, "{lines} lines shown");
}

#[test]
fn fixture_statements_add_up_with_credit_notes_late_lines_and_duplicates() {
    let w = two_refreshes();
    assert_success(&statement(&w, &["--all", "--refresh", "2026-06"]));
    check_all_add_up(&w, "2026-06");

    // 007: the credit note of -50 reduces courseware.
    let lines = sheet(&statement_path(&w, "2026-06", "007"), "Invoice lines");
    let credit = lines
        .iter()
        .find(|r| text(&r[6]) == "Credit Note")
        .expect("the credit note is listed");
    assert_eq!(number(&credit[7]), -50.0);
    assert_eq!((number(&credit[0]), number(&credit[1])), (2.0, 2026.0));
    // P13: the late line dated 2025-06-30 came in delivery 2026-05.
    let lines = sheet(&statement_path(&w, "2026-06", "P13"), "Invoice lines");
    assert!(lines
        .iter()
        .any(|r| text(&r[0]) == "6" && text(&r[1]) == "2025" && text(&r[12]) == "2026-05"));

    // Duplicates name the accepted copy that counts: in an earlier delivery, or earlier in
    // the same delivery.
    let rejected = sheet(&statement_path(&w, "2026-06", "P09"), "Rejected rows");
    assert_eq!(
        text(&rejected[0][4]),
        "Accepted copy",
        "header {:?}",
        rejected[0]
    );
    let dup = rejected
        .iter()
        .find(|r| text(&r[3]) == "duplicate_line")
        .unwrap();
    assert_eq!(text(&dup[4]), "2026-04/americas-2604.csv:2");
    assert_eq!(
        (text(&dup[1]), text(&dup[2])),
        ("emea-2605.csv".into(), "6".into())
    );
    let other = rejected
        .iter()
        .find(|r| text(&r[3]) == "no_fx_rate")
        .unwrap();
    assert_eq!(text(&other[4]), "", "only duplicates name a copy");
    let rejected = sheet(&statement_path(&w, "2026-06", "P12"), "Rejected rows");
    let dup = rejected
        .iter()
        .find(|r| text(&r[3]) == "duplicate_line")
        .unwrap();
    assert_eq!(text(&dup[4]), "2026-05/americas-2605.csv:3");
    assert_eq!(
        text(&dup[12]),
        "40",
        "the rejected copy's kpi_value as read"
    );

    // P02's refused rows are its own, and text that looks like a formula stays text.
    let rejected = sheet(&statement_path(&w, "2026-06", "P02"), "Rejected rows");
    assert!(rejected
        .iter()
        .any(|r| r[11] == Data::String("=1+2".into())));
}

#[test]
fn the_statement_sheet_shows_the_published_row_requirements_and_gaps() {
    let w = two_refreshes();
    assert_success(&statement(
        &w,
        &["--partner", "007", "--refresh", "2026-06"],
    ));
    let rows = sheet(&statement_path(&w, "2026-06", "007"), "Statement");
    let value = |key: &str| -> Data {
        rows.iter()
            .find(|r| text(&r[0]) == key)
            .unwrap_or_else(|| panic!("no key {key}: {rows:?}"))[1]
            .clone()
    };
    assert_eq!(text(&value("Partner ID")), "007");
    assert_eq!(value("Enrollment"), Data::String("gold".into()));
    assert_eq!(number(&value("KPI courseware")), 320.0);
    assert_eq!(number(&value("Required courseware")), 360.0);
    assert_eq!(number(&value("Gap courseware")), 40.0);
    assert_eq!(number(&value("Required labs")), 0.0);
    assert_eq!(text(&value("Outlook")), "at_risk");
    // Only the partner asked for, and nothing left aside.
    let written: Vec<_> = std::fs::read_dir(w.output().join("statements/2026-06"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, vec!["statement-2026-06-007.xlsx".to_string()]);
}

#[test]
fn an_old_refresh_gives_its_own_figures_until_a_later_refresh_judges_its_deliveries_again() {
    let w = two_refreshes();
    assert_success(&statement(
        &w,
        &["--partner", "007", "--refresh", "2026-05"],
    ));
    let rows = sheet(&statement_path(&w, "2026-05", "007"), "Statement");
    let kpi = rows
        .iter()
        .find(|r| text(&r[0]) == "KPI courseware")
        .unwrap();
    assert_eq!(number(&kpi[1]), 300.0, "R5's figure, not R6's 320");
    let lines = sheet(&statement_path(&w, "2026-05", "007"), "Invoice lines");
    assert!(lines[1..].iter().all(|r| text(&r[12]) != "2026-05"));

    // A new month of rates: R6 judges every delivery again, with the same rows, so R5's
    // statement still stands.
    let rates = w.input().join("fx_rates.csv");
    let mut text_ = std::fs::read_to_string(&rates).unwrap();
    text_.push_str("2026-07,EUR,1.2\n");
    std::fs::write(&rates, text_).unwrap();
    w.refresh("2026-06");
    assert_success(&statement(
        &w,
        &["--partner", "007", "--refresh", "2026-05"],
    ));

    // Partner 7 joins: delivery 2026-04 named it, so R6 judges that delivery again.
    let roster = w.input().join("partners.csv");
    let mut text_ = std::fs::read_to_string(&roster).unwrap();
    text_.push_str("7,Seven Learning,US,none,,,0,no,no,no,,,,\n");
    std::fs::write(&roster, text_).unwrap();
    w.refresh("2026-06");
    let out = statement(&w, &["--partner", "007", "--refresh", "2026-05"]);
    assert_exit(&out, 66, "delivery 2026-04");
    assert_exit(&out, 66, "kpi-refresh run --refresh 2026-05");
    // R6 itself is consistent with the ledger.
    assert_success(&statement(&w, &["--partner", "7", "--refresh", "2026-06"]));
}

#[test]
fn exit_codes_for_an_unpublished_refresh_and_an_unknown_partner() {
    let w = Work::from_fixture("two_refreshes");
    let out = statement(&w, &["--all", "--refresh", "2026-05"]);
    assert_exit(&out, 66, "kpi-refresh run --refresh 2026-05");
    assert!(
        !w.output().exists(),
        "nothing written for an unpublished refresh"
    );
    w.refresh("2026-05");
    let out = statement(&w, &["--partner", "P99", "--refresh", "2026-05"]);
    assert_exit(&out, 64, "P99");
    let out = statement(&w, &["--partner", "007", "--refresh", "2026-06"]);
    assert_exit(&out, 66, "kpi-refresh run --refresh 2026-06");
    assert_exit(&statement(&w, &["--refresh", "2026-05"]), 64, "");
    // Any published month works, open or not (today is 2026-11-20).
    assert_success(&statement(
        &w,
        &["--partner", "007", "--refresh", "2026-05"],
    ));
    assert!(!w.output().join("statements/2026-06").exists());
}

#[test]
fn a_statement_trusts_no_published_file_blindly() {
    let w = two_refreshes();
    let reports = w.output().join("reports/2026-06");
    // A partners file edited since it was published: refused, naming it.
    let partners = reports.join("partners-2026-06.csv");
    let text = std::fs::read_to_string(&partners).unwrap();
    std::fs::write(&partners, text.replacen(',', ";", 3)).unwrap();
    let out = statement(&w, &["--all", "--refresh", "2026-06"]);
    assert_exit(&out, 65, "partners-2026-06.csv");
    std::fs::write(&partners, &text).unwrap();
    assert_success(&statement(&w, &["--all", "--refresh", "2026-06"]));
    // Two ledger partitions' accepted lines swapped: the ledger no longer gives the published
    // figures, and the statement says which run publishes them again.
    let a = w.output().join("ledger/delivery=2026-04/accepted.parquet");
    let b = w.output().join("ledger/delivery=2026-05/accepted.parquet");
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(bytes_a, bytes_b);
    std::fs::write(&a, &bytes_b).unwrap();
    std::fs::write(&b, &bytes_a).unwrap();
    let out = statement(&w, &["--all", "--refresh", "2026-06"]);
    assert_exit(&out, 66, "cannot be trusted");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kpi-refresh run --refresh 2026-06"));
    // A FIFO where the manifest was: refused at once, never waited on.
    let manifest = reports.join("manifest.json");
    std::fs::remove_file(&manifest).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(made.success());
    let out = statement(&w, &["--partner", "007", "--refresh", "2026-06"]);
    assert_exit(&out, 66, "manifest.json");
}

#[test]
fn every_id_gets_its_own_safe_file() {
    let w = Work::empty();
    w.write("program.toml", PROGRAM);
    let ids = ["=cmd", "../x", "a/b", "CON", "é", "abc", "ABC", "a b"];
    let mut roster = format!("{ROSTER_HEADER}\n");
    let mut extract = format!("{EXTRACT_HEADER}\n");
    for (i, id) in ids.iter().enumerate() {
        roster.push_str(&format!("\"{id}\",Partner {i},SE,none,,,1,no,no,yes,,,\n"));
        extract.push_str(&format!(
            "INV-{i},1,2026-10-0{},Invoice,\"{id}\",MOC,seat,{},100.00,USD\n",
            i + 1,
            i + 1
        ));
    }
    w.write("partners.csv", &roster);
    w.write("extracts/2026-10/x.csv", &extract);
    w.refresh("2026-11");
    assert_success(&statement(&w, &["--all", "--refresh", "2026-11"]));
    let mut names: Vec<String> = std::fs::read_dir(w.output().join("statements/2026-11"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = [
        "%3Dcmd", "..%2Fx", "a%2Fb", "CON", "%C3%A9", "abc", "ABC", "a%20b",
    ]
    .iter()
    .map(|e| format!("statement-2026-11-{e}.xlsx"))
    .collect();
    expected.sort();
    assert_eq!(names, expected);
    // Each file holds its own partner's line.
    for (i, (id, e)) in ids
        .iter()
        .zip([
            "%3Dcmd", "..%2Fx", "a%2Fb", "CON", "%C3%A9", "abc", "ABC", "a%20b",
        ])
        .enumerate()
    {
        let path = statement_path(&w, "2026-11", e);
        let lines = sheet(&path, "Invoice lines");
        assert_eq!(lines.len(), 2, "{id}");
        assert_eq!(number(&lines[1][7]), (i + 1) as f64, "{id}");
        let rows = sheet(&path, "Statement");
        assert_eq!(
            rows[1][1],
            Data::String(id.to_string()),
            "text, never a formula"
        );
        assert!(!has_formula(&path));
    }
    // One of them alone, by its id as in the roster.
    std::fs::remove_dir_all(w.output().join("statements")).unwrap();
    assert_success(&statement(
        &w,
        &[
            "--partner",
            "=cmd",
            "--partner",
            "../x",
            "--refresh",
            "2026-11",
        ],
    ));
    assert!(statement_path(&w, "2026-11", "%3Dcmd").is_file());
    assert!(statement_path(&w, "2026-11", "..%2Fx").is_file());
    assert!(!w.output().join("statements/x").exists());
}

#[test]
fn the_lock_is_held_while_writing() {
    let w = two_refreshes();
    let _held = {
        use std::fs::OpenOptions;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(w.output().join(".kpi-refresh/lock"))
            .unwrap();
        f.try_lock().unwrap();
        f
    };
    let out = statement(&w, &["--all", "--refresh", "2026-06"]);
    assert_exit(&out, 75, "lock");
    assert!(!w.output().join("statements").exists());
}

#[test]
fn statements_are_never_written_through_a_symbolic_link() {
    let w = two_refreshes();
    let elsewhere = tempfile::tempdir().unwrap();
    let statements = w.output().join("statements");
    std::fs::create_dir_all(&statements).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), statements.join("2026-06")).unwrap();
    let out = statement(&w, &["--all", "--refresh", "2026-06"]);
    assert_exit(&out, 73, "symbolic link");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    std::fs::remove_file(statements.join("2026-06")).unwrap();
    std::fs::remove_dir(&statements).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &statements).unwrap();
    let out = statement(&w, &["--all", "--refresh", "2026-06"]);
    assert_exit(&out, 73, "symbolic link");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn the_watch_figures_are_shown_when_the_refresh_published_a_watch() {
    let w = two_refreshes();
    // A watch file as the refresh writes it (its columns), for one partner.
    let watch = "partner_id,partner_name,enrollment,competency,next_anniversary,\
months_to_anniversary,decision_window_from,decision_window_to,secured_courseware,\
secured_certification,secured_labs,leaving_courseware,leaving_certification,leaving_labs,\
required_courseware,required_certification,required_labs,still_needed_courseware,\
still_needed_certification,still_needed_labs,per_month_courseware,per_month_certification,\
per_month_labs,blockers,forecast_level,forecast_status\n\
P11,Partner eleven,silver,data analytics,2026-09-01,3,2025-09,2026-08,60,15,0,0,0,0,180,30,0,\
120,15,0,40,5,0,,action_pack,downgrade\n";
    std::fs::write(w.output().join("reports/2026-06/watch-2026-06.csv"), watch).unwrap();
    // Published as the refresh publishes it: its digest in the manifest.
    let manifest_path = w.output().join("reports/2026-06/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let digest = sha256_hex(watch.as_bytes());
    let outputs = manifest["outputs"].as_array_mut().unwrap();
    let entry = outputs
        .iter_mut()
        .find(|o| o["path"] == "reports/2026-06/watch-2026-06.csv")
        .expect("the watch file is among the manifest's outputs");
    entry["sha256"] = digest.into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    assert_success(&statement(
        &w,
        &[
            "--partner",
            "P11",
            "--partner",
            "P12",
            "--refresh",
            "2026-06",
        ],
    ));
    let rows = sheet(&statement_path(&w, "2026-06", "P11"), "Statement");
    let value = |key: &str| {
        rows.iter()
            .find(|r| text(&r[0]) == key)
            .map(|r| r[1].clone())
    };
    assert_eq!(
        value("Watch: Still needed courseware"),
        Some(Data::Float(120.0))
    );
    assert_eq!(
        value("Watch: Per month courseware"),
        Some(Data::Float(40.0))
    );
    assert_eq!(
        value("Watch: Forecast status"),
        Some(Data::String("downgrade".into()))
    );
    let rows = sheet(&statement_path(&w, "2026-06", "P12"), "Statement");
    assert!(rows.iter().all(|r| !text(&r[0]).starts_with("Watch:")));
}

#[test]
fn a_sheet_past_the_row_limit_continues_on_numbered_sheets() {
    let w = two_refreshes();
    assert_success(&statement(
        &w,
        &["--partner", "007", "--refresh", "2026-06"],
    ));
    let path = statement_path(&w, "2026-06", "007");
    let whole = sheet(&path, "Invoice lines");
    assert!(whole.len() > 101, "007 has more than 100 lines");
    let out = std::process::Command::new(BIN)
        .args([
            "statement",
            "--partner",
            "007",
            "--refresh",
            "2026-06",
            "--input",
        ])
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_TODAY", "2026-11-20")
        .env("KPI_REFRESH_SHEET_ROWS", "101")
        .output()
        .unwrap();
    assert_success(&out);
    let book: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
    let names = book.sheet_names();
    let parts: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("Invoice lines"))
        .collect();
    assert_eq!(parts.len(), (whole.len() - 1).div_ceil(100));
    assert_eq!(parts[1], "Invoice lines (2)");
    let mut rows = vec![whole[0].clone()];
    for name in parts {
        let part = sheet(&path, name);
        assert_eq!(part[0], whole[0], "each part has the header");
        assert!(part.len() <= 101);
        rows.extend(part[1..].iter().cloned());
    }
    assert_eq!(rows, whole, "no row dropped, none repeated, same order");
}

//! End to end: two consecutive refreshes of a hand-checked fixture compared with expected
//! files, the workbook read back, idempotent reruns and the published layout.

mod common;

use calamine::{Data, DataType, Reader, Xlsx};
use common::*;

fn compare_with_expected(w: &Work, month: &str) {
    let expected = fixture("two_refreshes").join("expected").join(month);
    for name in [
        "partners",
        "directory-submission",
        "rejected",
        "changes",
        "quality",
    ] {
        let file = format!("{name}-{month}.csv");
        let want = std::fs::read_to_string(expected.join(&file)).unwrap();
        let got = w.report(month, &file);
        if want != got {
            let diff: Vec<String> = want
                .lines()
                .zip(got.lines())
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("- {a}\n+ {b}"))
                .collect();
            panic!(
                "{file} differs ({} vs {} lines):\n{}",
                want.lines().count(),
                got.lines().count(),
                diff.join("\n")
            );
        }
    }
}

#[test]
fn two_refreshes_match_the_hand_checked_files() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    compare_with_expected(&w, "2026-05");
    w.refresh("2026-06");
    compare_with_expected(&w, "2026-06");
    // The state after each refresh is kept; rerunning the first diffs against the same
    // (empty) baseline and gives the same list.
    assert!(w.output().join("state/levels/2026-05.csv").is_file());
    assert!(w.output().join("state/directory/2026-06.csv").is_file());
    w.refresh("2026-05");
    compare_with_expected(&w, "2026-05");
}

fn open_workbook(w: &Work, month: &str) -> Xlsx<std::io::BufReader<std::fs::File>> {
    calamine::open_workbook(
        w.output()
            .join("reports")
            .join(month)
            .join(format!("kpi-refresh-{month}.xlsx")),
    )
    .unwrap()
}

fn sheet(book: &mut Xlsx<std::io::BufReader<std::fs::File>>, name: &str) -> Vec<Vec<Data>> {
    let range = book.worksheet_range(name).unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => i.to_string(),
        Data::DateTime(dt) => dt.as_datetime().unwrap().date().to_string(),
        Data::Empty => String::new(),
        other => format!("{other:?}"),
    }
}

/// The Partners sheet of refresh 2026-05 against `partners-2026-05.csv`: the same rows, the
/// titled header ending with Why, text as text, dates as dates, numbers as numbers and no
/// formula. Returns the CSV's rows.
fn partners_agree_with_the_csv(
    w: &Work,
    book: &mut Xlsx<std::io::BufReader<std::fs::File>>,
) -> Vec<Vec<String>> {
    let partners = sheet(book, "Partners");
    let csv = csv_rows(&w.report("2026-05", "partners-2026-05.csv"));
    assert_eq!(partners.len(), csv.len());
    let header: Vec<String> = partners[0].iter().map(text).collect();
    assert_eq!(
        header[..10],
        [
            "Partner ID",
            "Partner name",
            "Country",
            "Market",
            "Enrollment",
            "Competency",
            "Enrolled on",
            "Next anniversary",
            "Months to anniversary",
            "MCTs"
        ]
    );
    assert_eq!(
        header[10..13],
        ["KPI courseware", "KPI certification", "KPI labs"]
    );
    // The workbook's Partners sheet ends with Why, after the CSV's last column.
    assert_eq!(header[header.len() - 2..], ["Gap labs", "Why"]);
    for (row, csv_row) in partners.iter().zip(&csv).skip(1) {
        let cells: Vec<String> = row.iter().map(text).collect();
        // Text columns agree (the CSV escapes formula-like text with a leading quote).
        assert_eq!(cells[0], csv_row[0]);
        assert_eq!(
            cells[1],
            csv_row[1].strip_prefix('\'').unwrap_or(&csv_row[1])
        );
        // Dates are Excel dates; numbers are numbers.
        assert!(
            matches!(row[6], Data::DateTime(_) | Data::Empty),
            "{:?}",
            row[6]
        );
        assert_eq!(cells[6], csv_row[6]);
        assert!(matches!(row[10], Data::Float(_)), "{:?}", row[10]);
        let kpi: f64 = csv_row[10].parse().unwrap();
        assert!((kpi - row[10].as_f64().unwrap()).abs() < 1e-9);
    }
    // A formula-like name is text, never a formula.
    let formulas = book.worksheet_formula("Partners").unwrap();
    assert!(formulas.used_cells().all(|(_, _, f)| f.is_empty()));
    csv
}

#[test]
fn the_workbook_has_the_contract_sheets_and_agrees_with_the_csv_files() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    let mut book = open_workbook(&w, "2026-05");
    assert_eq!(book.sheet_names(), SHEETS);
    let csv = partners_agree_with_the_csv(&w, &mut book);

    let renewals = sheet(&mut book, "Renewals");
    let due = csv.iter().skip(1).filter(|r| r[8] == "0").count();
    assert_eq!(renewals.len(), due + 1);
    assert_eq!(text(&renewals[0][4]), "Anniversary");

    let monthly = sheet(&mut book, "Monthly KPIs");
    let header: Vec<String> = monthly[0].iter().map(text).collect();
    assert_eq!(header[2], "2025-05");
    assert_eq!(header[13], "2026-04");
    assert_eq!(header[14], "Total");
    // Each row's total is the partner's KPI in its category, as Partners shows it, and the
    // sum of its months.
    let partners = sheet(&mut book, "Partners");
    let partner_header: Vec<String> = partners[0].iter().map(text).collect();
    assert!(monthly.len() > 1);
    for row in &monthly[1..] {
        let (id, category) = (text(&row[0]), text(&row[1]));
        let kpi_col = partner_header
            .iter()
            .position(|h| *h == format!("KPI {category}"))
            .unwrap_or_else(|| panic!("no KPI column for {category}"));
        let partner = partners[1..].iter().find(|p| text(&p[0]) == id).unwrap();
        let total = row[14].as_f64().unwrap();
        assert!(
            (total - partner[kpi_col].as_f64().unwrap()).abs() < 1e-9,
            "{id} {category}"
        );
        let months: f64 = row[2..14].iter().map(|m| m.as_f64().unwrap_or(0.0)).sum();
        assert!(
            (total - months).abs() < 1e-3,
            "{id} {category}: {total} against {months}"
        );
    }

    let detail = sheet(&mut book, "Invoice detail");
    assert_eq!(text(&detail[0][5]), "Invoice #");
    assert!(detail.len() > 1);

    let submission = sheet(&mut book, "Directory submission");
    let csv_sub = csv_rows(&w.report("2026-05", "directory-submission-2026-05.csv"));
    assert_eq!(submission.len(), csv_sub.len());
    assert!(matches!(submission[1][5], Data::DateTime(_)));

    let rejected = sheet(&mut book, "Rejected");
    let csv_rej = csv_rows(&w.report("2026-05", "rejected-2026-05.csv"));
    assert_eq!(rejected.len(), csv_rej.len());

    let summary = sheet(&mut book, "Summary");
    let find = |group: &str, item: &str| {
        summary
            .iter()
            .find(|r| text(&r[0]) == group && text(&r[1]) == item)
            .map(|r| text(&r[2]))
    };
    assert_eq!(find("Refresh", "refresh").as_deref(), Some("2026-05"));
    let renew = csv.iter().skip(1).filter(|r| r[15] == "renew").count();
    assert_eq!(find("Renewal status", "renew"), Some(renew.to_string()));
    let info = sheet(&mut book, "Run info");
    assert!(info.iter().any(|r| text(&r[0]) == "tool version"));
}

/// The Summary gives the share of delivery R-1's rows that were rejected, rounded to 4
/// decimals, after the partners of the Refresh group (the fixture's README: delivery 2026-04
/// rejects 6 of 136 rows, delivery 2026-05 7 of 163).
#[test]
fn the_summary_gives_the_reject_rate_of_the_last_delivery() {
    let w = Work::from_fixture("two_refreshes");
    for (month, want) in [("2026-05", 0.0441), ("2026-06", 0.0429)] {
        w.refresh(month);
        let mut book = open_workbook(&w, month);
        let summary = sheet(&mut book, "Summary");
        let at = summary
            .iter()
            .position(|r| text(&r[1]) == "reject rate of R-1")
            .expect("a reject rate row");
        assert_eq!(text(&summary[at][0]), "Refresh");
        assert_eq!(text(&summary[at - 1][1]), "partners");
        assert_eq!(summary[at][2], Data::Float(want), "{month}");
    }
}

#[test]
fn rerunning_a_refresh_gives_identical_files() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    let first = tree_hashes(&w.output());
    let cells = |w: &Work| {
        let mut book = open_workbook(w, "2026-05");
        let names = book.sheet_names();
        names
            .iter()
            .filter(|n| *n != "Run info")
            .map(|n| sheet(&mut book, n))
            .collect::<Vec<_>>()
    };
    let first_cells = cells(&w);
    w.refresh("2026-05");
    let second = tree_hashes(&w.output());
    let volatile = |p: &str| {
        p.ends_with("manifest.json") || p.ends_with(".xlsx") || p.starts_with(".kpi-refresh")
    };
    let stable = |t: &[(String, String)]| {
        t.iter()
            .filter(|(p, _)| !volatile(p))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(stable(&first), stable(&second));
    assert_eq!(cells(&w), first_cells);
}

#[test]
fn the_manifest_ties_outputs_to_inputs_by_hash() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    let m: serde_json::Value = serde_json::from_str(&w.report("2026-05", "manifest.json")).unwrap();
    assert_eq!(m["refresh"], "2026-05");
    assert_eq!(m["window"]["from"], "2025-05");
    assert_eq!(m["window"]["to"], "2026-04");
    assert_eq!(m["status"], "ok");
    for d in m["deliveries"].as_array().unwrap() {
        let rejected: u64 = d["rejected"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            d["read"].as_u64().unwrap(),
            d["accepted"].as_u64().unwrap() + rejected
        );
    }
    let hashes = tree_hashes(&w.output());
    for o in m["outputs"].as_array().unwrap() {
        let path = o["path"].as_str().unwrap();
        let (_, sha) = hashes
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("{path} is not in the output"));
        assert_eq!(o["sha256"].as_str().unwrap(), sha, "{path}");
    }
    // And the other way round: every file the run wrote is listed (this first run wrote the
    // whole ledger), but the manifest itself and the program's own working folder.
    let listed = manifest_paths(&m, "outputs");
    for (path, _) in &hashes {
        if path.starts_with(".kpi-refresh") || path.ends_with("manifest.json") {
            continue;
        }
        assert!(listed.contains(&path.as_str()), "{path} is not listed");
    }
    assert!(listed.iter().any(|p| p.ends_with("/sums.parquet")));
    let inputs = tree_hashes(&w.input());
    for i in m["inputs"].as_array().unwrap() {
        let path = i["path"].as_str().unwrap();
        let (_, sha) = inputs.iter().find(|(p, _)| p == path).unwrap();
        assert_eq!(i["sha256"].as_str().unwrap(), sha);
    }
}

#[test]
fn validate_and_explain_write_nothing() {
    let w = Work::from_fixture("two_refreshes");
    let out = w.run(&["validate", "--refresh", "2026-05"]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2026-04: read"), "{stdout}");
    assert!(!w.output().exists());
    // explain tells what was published: nothing yet, so it names the run to do.
    let out = w.run(&["explain", "--partner", "P03", "--refresh", "2026-05"]);
    assert_exit(&out, 66, "kpi-refresh run --refresh 2026-05");
    assert!(!w.output().exists());
    w.refresh("2026-05");
    let before = tree_hashes(&w.output());
    let out = w.run(&["explain", "--partner", "P03", "--refresh", "2026-05"]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Decision: downgrade"), "{stdout}");
    assert!(stdout.contains("courseware"), "{stdout}");
    assert_eq!(tree_hashes(&w.output()), before);
}

#[test]
fn verbose_logs_show_the_refresh_detail_and_not_the_libraries() {
    let w = Work::from_fixture("two_refreshes");
    let out = w.run(&["run", "--refresh", "2026-05", "--force", "-v"]);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(stderr.contains("ledger: judged"), "{stderr}");
    assert!(
        stderr.contains("workbook: invoice detail written"),
        "{stderr}"
    );
    // polars' SQL parser logs at debug level: -vv shows it, -v does not.
    assert!(!stderr.contains("Parsing sql"), "{stderr}");
    let out = w.run(&["run", "--refresh", "2026-05", "--force", "-vv"]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Parsing sql"));
}

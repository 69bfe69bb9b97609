//! Regressions: each test pins a defect found in review, so it cannot come back.

mod common;

use std::process::Command;

use calamine::Reader;
use common::*;

#[test]
fn recovery_finds_the_staging_folder_whatever_path_named_the_output() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    std::fs::write(
        w.input().join("partners.csv"),
        roster.replace("Adventure Works Academy,US", "Adventure Works Academy,CA"),
    )
    .unwrap();
    // Crash during the commit of a run that named the output folder relatively…
    let out = Command::new(BIN)
        .current_dir(w.dir.path())
        .args([
            "run",
            "--refresh",
            "2026-05",
            "--force",
            "--input",
            "input",
            "--output",
            "output",
        ])
        .env("KPI_REFRESH_FAILPOINT", "abort-during-commit")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // …then a run naming it absolutely completes that commit before failing on its own.
    let out = Command::new(BIN)
        .args(["run", "--refresh", "2026-05", "--force", "--input"])
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_FAILPOINT", "before-commit")
        .output()
        .unwrap();
    assert_exit(&out, 70, "failpoint");
    // The interrupted refresh is complete: its reports show the changed roster.
    let partners = w.report("2026-05", "partners-2026-05.csv");
    assert!(
        partners.contains("P01,Adventure Works Academy,CA"),
        "{partners}"
    );
    let ledger =
        std::fs::read_to_string(w.output().join("ledger/delivery=2026-04/_partition.json"))
            .unwrap();
    let manifest = w.report("2026-05", "manifest.json");
    let judgement = ledger
        .split("\"judgement\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(!judgement.is_empty() && manifest.contains("ledger/delivery=2026-04/_partition.json"));
}

#[test]
fn a_carried_forward_decision_survives_a_formula_like_partner_id() {
    let w = minimal();
    // Gold partner due in November 2026 with no KPIs: downgraded to the action pack.
    w.write(
        "partners.csv",
        &format!("{ROSTER_HEADER}\n@P1,At,SE,gold,Security,2024-11-05,2,yes,yes,yes,,,\n"),
    );
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.write("extracts/2026-11/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.refresh("2026-11");
    let nov = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert_eq!(
        (nov[1][0].as_str(), nov[1][14].as_str(), nov[1][15].as_str()),
        ("'@P1", "downgrade", "action_pack")
    );
    w.refresh("2026-12");
    let dec = csv_rows(&w.report("2026-12", "partners-2026-12.csv"));
    assert_eq!(
        (dec[1][4].as_str(), dec[1][14].as_str()),
        ("action_pack", "not_due"),
        "{dec:?}"
    );
}

#[test]
fn invoice_detail_names_the_delivery_with_a_single_partition() {
    let w = minimal();
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\nI1,1,2026-10-02,Invoice,P1,MOC,kit,5,5,USD\n"),
    );
    // P1 is due in November (enrolled 2024-11-05).
    w.refresh("2026-11");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx"))
            .unwrap();
    let detail = book.worksheet_range("Invoice detail").unwrap();
    let rows: Vec<Vec<String>> = detail
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][13], "Delivery");
    assert_eq!(rows[1][13], "2026-10");
    assert_eq!(
        (
            rows[1][1].as_str(),
            rows[1][2].as_str(),
            rows[1][5].as_str()
        ),
        ("10", "2026", "I1")
    );
}

#[test]
fn text_past_excels_cell_limit_is_cut_in_the_workbook_and_kept_in_the_csv() {
    let w = minimal();
    let long = "x".repeat(40_000);
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\nI1,1,2026-10-02,Invoice,P1,MOC,{long},5,5,USD\nI2,1,2026-10-02,Proforma,P1,MOC,{long},5,5,USD\n"),
    );
    let out = w.run_lenient("2026-11");
    assert_success(&out);
    assert!(w.report("2026-11", "rejected-2026-11.csv").contains(&long));
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx"))
            .unwrap();
    let detail = book.worksheet_range("Invoice detail").unwrap();
    assert_eq!(detail.get((1, 4)).unwrap().to_string().len(), 32_767);
}

#[test]
fn urls_that_hide_a_port_or_an_ip_host_are_exceptions() {
    let w = minimal();
    let rows: String = [
        ("A", "https:one.se:8443/ms"),
        ("B", "https:/one.se:443/ms"),
        ("C", "foo://10.0.0.1/x"),
        ("D", "https://@one.se/"),
        ("E", "https://www.one.se/ms"),
    ]
    .iter()
    .map(|(id, url)| {
        format!("{id},N,SE,action_pack,,2024-03-01,1,no,no,yes,Name {id},{url},one.se\n")
    })
    .collect();
    w.write("partners.csv", &format!("{ROSTER_HEADER}\n{rows}"));
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.refresh("2026-11");
    let sub = csv_rows(&w.report("2026-11", "directory-submission-2026-11.csv"));
    let ids: Vec<&str> = sub[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(ids, ["E"]);
}

#[test]
fn a_stray_cell_far_away_in_an_xlsx_extract_costs_no_memory() {
    use rust_xlsxwriter::Workbook;
    let w = minimal();
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    for (c, h) in EXTRACT_HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    for (c, v) in [
        "S1",
        "1",
        "2026-10-02",
        "Invoice",
        "P1",
        "MOC",
        "kit",
        "7",
        "7",
        "USD",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(1, c as u16, *v).unwrap();
    }
    // A dense reading of this sheet would span 17 billion cells.
    ws.write_string(1_048_575, 16_383, "stray").unwrap();
    let path = w.input().join("extracts/2026-10/far.xlsx");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    book.save(&path).unwrap();
    // The stray value lies right of the header: its row is a malformed data row (half of
    // the rows, so the reject-rate gate is lifted).
    assert_success(&w.run_lenient("2026-11"));
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert_eq!(partners.iter().find(|r| r[0] == "P1").unwrap()[10], "7");
    let rejected = csv_rows(&w.report("2026-11", "rejected-2026-11.csv"));
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[1][..3], ["far.xlsx", "1048576", "extra_fields"]);
}

/// No text from the input becomes a formula: formula-like text in every text field of the
/// roster and the extracts stays text in the workbook and gets the `'` in the CSV files.
#[test]
fn formula_like_text_never_becomes_a_formula() {
    let w = minimal();
    w.write(
        "partners.csv",
        &format!(
            "{ROSTER_HEADER}\n\
             =P1,=Name,SE,silver,=Security,2024-11-05,2,yes,yes,yes,+Dir,https://x.se/,x.se\n\
             @P2,-Name,SE,action_pack,,2024-03-01,1,no,no,yes,Plain,https://y.se/,y.se\n"
        ),
    );
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\n\
             =1+1,1,2026-10-02,Invoice,=P1,MOC,=HYPERLINK(\"http://e\"),5,5,USD\n\
             -2+3,1,2026-10-02,Invoice,@P2,MOC,@SUM(A1),5,5,USD\n\
             +cmd,1,2026-10-02,Proforma,=P1,MOC,\t=tab,=5,-5,USD\n"
        ),
    );
    let out = w.run_lenient("2026-11");
    assert_success(&out);
    let reports = w.output().join("reports/2026-11");
    for name in [
        "partners-2026-11.csv",
        "directory-submission-2026-11.csv",
        "rejected-2026-11.csv",
    ] {
        let text = std::fs::read_to_string(reports.join(name)).unwrap();
        for row in csv_rows(&text) {
            for field in row {
                let number = field.trim_start_matches(['+', '-']).parse::<f64>().is_ok();
                assert!(
                    !field.starts_with(['=', '+', '-', '@', '\t', '\r']) || number,
                    "{name}: {field:?}"
                );
            }
        }
    }
    let rejected = std::fs::read_to_string(reports.join("rejected-2026-11.csv")).unwrap();
    assert!(
        rejected.contains("'+cmd") && rejected.contains("'=5") && rejected.contains(",-5,"),
        "{rejected}"
    );
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(reports.join("kpi-refresh-2026-11.xlsx")).unwrap();
    let mut seen_text = false;
    for name in book.sheet_names() {
        let formulas = book.worksheet_formula(&name).unwrap();
        assert!(
            formulas.used_cells().all(|(_, _, f)| f.is_empty()),
            "{name} holds a formula"
        );
        let cells = book.worksheet_range(&name).unwrap();
        seen_text |= cells
            .used_cells()
            .any(|(_, _, c)| *c == "=HYPERLINK(\"http://e\")");
    }
    assert!(seen_text, "the formula-like text is kept as text");
}

#[test]
fn explain_and_a_dry_run_complete_an_interrupted_commit_before_reading() {
    let w = Work::from_fixture("two_refreshes");
    let out = Command::new(BIN)
        .args(["run", "--refresh", "2026-05", "--force", "--input"])
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_FAILPOINT", "abort-during-commit")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(w.output().join(".kpi-refresh/journal.json").exists());
    // June is not published: explain says so, after completing the commit of May.
    let out = w.run(&["explain", "--partner", "P03", "--refresh", "2026-06"]);
    assert_eq!(out.status.code(), Some(66));
    assert!(!w.output().join(".kpi-refresh/journal.json").exists());
    let out = w.run(&["explain", "--partner", "P03", "--refresh", "2026-05"]);
    assert_success(&out);
    w.refresh("2026-06");
    let out = w.run(&["explain", "--partner", "P03", "--refresh", "2026-06"]);
    assert_success(&out);
    // The 2026-05 decision (a downgrade) is published and carried into June.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("carried forward"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(w
        .output()
        .join("reports/2026-05/partners-2026-05.csv")
        .is_file());
}

#[test]
fn a_date_after_two_thousand_empty_cells_is_still_a_date() {
    let w = minimal();
    let mut roster = format!("{ROSTER_HEADER}\n");
    for i in 0..2100 {
        roster.push_str(&format!("A{i:05},N,SE,none,,,0,no,no,no,,,\n"));
    }
    roster.push_str("Z1,Late,SE,action_pack,,2024-03-01,1,no,no,yes,,,\n");
    w.write("partners.csv", &roster);
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.refresh("2026-11");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx"))
            .unwrap();
    let partners = book.worksheet_range("Partners").unwrap();
    let last = partners.rows().next_back().unwrap();
    assert_eq!(last[0].to_string(), "Z1");
    // Next anniversary is a date cell, not a bare serial number.
    assert!(
        matches!(last[7], calamine::Data::DateTime(_)),
        "{:?}",
        last[7]
    );
}

/// The limit of 10^20 USD a delivery may hold (docs/rules.md §5) holds however the delivery is
/// judged: a partner added to the roster makes the delivery judged again by difference, and
/// the lines that come in with it take the delivery past the limit.
#[test]
fn a_delivery_judged_again_by_difference_is_held_to_the_usd_limit_too() {
    let w = minimal();
    w.write(
        "fx_rates.csv",
        "month,currency,usd_per_unit\n2026-09,EUR,1.1\n2026-10,EUR,1.2\n2026-10,XXX,100000\n",
    );
    // 4 × 2·10^19 USD for P1 (8·10^19 in all), then 9·10^19 USD for P3, not in the roster yet.
    let mut rows = String::new();
    for i in 1..=4 {
        rows.push_str(&format!(
            "I{i},1,2026-10-02,Invoice,P1,MOC,kit,1,200000000000000,XXX\n"
        ));
    }
    rows.push_str("I9,1,2026-10-03,Invoice,P3,MOC,kit,1,900000000000000,XXX\n");
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\n{rows}"),
    );
    assert_success(&w.run_lenient("2026-11"));
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    w.write(
        "partners.csv",
        &format!("{roster}P3,Northwind,SE,none,,,1,no,no,yes,,,\n"),
    );
    let out = w.run_lenient("2026-11");
    assert_exit(&out, 70, "10^20 USD");
}

//! Nothing reaches a published decision unnoticed: gaps in the deliveries, malformed rows,
//! the `Why` of each decision, `explain` against what was published, and the operations
//! rules (log levels, unknown program.toml keys, the closing summary).

mod common;

use calamine::Reader;
use common::*;

/// The cells of a workbook sheet as text, header included.
fn sheet(w: &Work, month: &str, name: &str) -> Vec<Vec<String>> {
    let path = w
        .output()
        .join("reports")
        .join(month)
        .join(format!("kpi-refresh-{month}.xlsx"));
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = book.worksheet_range(name).unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_month_without_a_delivery_stops_the_run_until_it_is_allowed() {
    let w = Work::from_fixture("two_refreshes");
    let extracts = w.input().join("extracts");
    // Deliveries 2026-03 and 2026-05, and a later 2026-06: 2026-04 is a gap.
    common::copy_dir(&extracts.join("2026-05"), &extracts.join("2026-06"));
    std::fs::remove_dir_all(extracts.join("2026-04")).unwrap();
    // Rows of 2026-06 dated in June would be future in no way; duplicates are rejected, so
    // allow any share.
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--refresh",
            "2026-07",
            "--force",
            "--max-reject-rate",
            "1",
        ];
        args.extend_from_slice(extra);
        w.run(&args)
    };
    let out = run(&[]);
    assert_exit(&out, 66, "2026-04");
    assert!(
        stderr(&out).contains("--allow-missing 2026-04"),
        "{}",
        stderr(&out)
    );
    assert!(!w.output().join("reports/2026-07").exists());
    // validate says the same.
    let out = w.run(&["validate", "--refresh", "2026-07"]);
    assert_exit(&out, 66, "2026-04");

    // Two gaps: both are named, and allowing one is not enough.
    std::fs::remove_dir_all(extracts.join("2026-05")).unwrap();
    let out = run(&["--allow-missing", "2026-04"]);
    assert_exit(&out, 66, "no delivery folder for 2026-05 ");
    let out = run(&[]);
    assert_exit(&out, 66, "2026-04, 2026-05");

    let out = run(&["--allow-missing", "2026-04", "--allow-missing", "2026-05"]);
    assert_success(&out);
    let log = stderr(&out);
    assert!(
        log.contains("delivery 2026-04 is missing and allowed") && log.contains("2026-05"),
        "{log}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&w.report("2026-07", "manifest.json")).unwrap();
    assert_eq!(
        manifest["allowed_missing"],
        serde_json::json!(["2026-04", "2026-05"])
    );
    let info = sheet(&w, "2026-07", "Run info");
    assert!(
        info.iter()
            .any(|r| r[0] == "allowed missing" && r[1] == "2026-04, 2026-05"),
        "{info:?}"
    );
    let out = w.run(&[
        "validate",
        "--refresh",
        "2026-07",
        "--allow-missing",
        "2026-04",
        "--allow-missing",
        "2026-05",
    ]);
    assert!(
        stdout(&out).contains("missing, allowed by --allow-missing: 2026-04, 2026-05"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_run_without_gaps_records_none_and_backfill_passes_the_allowed_months_on() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-06");
    let manifest: serde_json::Value =
        serde_json::from_str(&w.report("2026-06", "manifest.json")).unwrap();
    assert_eq!(manifest["allowed_missing"], serde_json::json!([]));

    // backfill takes --allow-missing for every refresh of its range.
    let w2 = Work::from_fixture("two_refreshes");
    std::fs::remove_dir_all(w2.input().join("extracts/2026-04")).unwrap();
    let backfill = |extra: &[&str]| {
        let mut args = vec!["backfill", "--from", "2026-06", "--to", "2026-06"];
        args.extend_from_slice(extra);
        w2.run(&args)
    };
    assert_exit(&backfill(&[]), 66, "2026-04");
    assert_success(&backfill(&["--allow-missing", "2026-04"]));
    let manifest: serde_json::Value =
        serde_json::from_str(&w2.report("2026-06", "manifest.json")).unwrap();
    assert_eq!(manifest["allowed_missing"], serde_json::json!(["2026-04"]));
}

#[test]
fn an_xlsx_extract_row_with_a_value_right_of_the_header_is_extra_fields() {
    let w = minimal();
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    for (c, name) in EXTRACT_HEADER.split(',').enumerate() {
        ws.write(0, c as u16, name).unwrap();
    }
    let good = [
        "X1",
        "1",
        "2026-10-02",
        "Invoice",
        "P1",
        "MOC",
        "kit",
        "10",
        "100",
        "USD",
    ];
    for r in 1..=3u32 {
        for (c, v) in good.iter().enumerate() {
            let v = if c == 0 {
                format!("X{r}")
            } else {
                v.to_string()
            };
            ws.write(r, c as u16, v).unwrap();
        }
    }
    ws.write(2, 11, "stray").unwrap();
    let path = w.input().join("extracts/2026-10/x.xlsx");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    book.save(&path).unwrap();
    w.write("extracts/2026-09/a.csv", &format!("{EXTRACT_HEADER}\n"));
    assert_success(&w.run_lenient("2026-11"));
    let rejected = csv_rows(&w.report("2026-11", "rejected-2026-11.csv"));
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[1][..3], ["x.xlsx", "3", "extra_fields"]);
}

/// A silver partner due in 2026-11 with 10 of 100 courseware: a downgrade to action pack.
fn due_silver() -> Work {
    let w = minimal();
    w.write(
        "partners.csv",
        &format!(
            "{ROSTER_HEADER}\n\
             P1,Contoso,SE,silver,Security,2024-11-05,2,yes,yes,yes,Contoso,https://contoso.se/x,contoso.se\n\
             P2,Fabrikam,BR,none,,,1,no,no,yes,,,\n"
        ),
    );
    w.write("extracts/2026-09/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\nA1,1,2026-10-02,Invoice,P1,MOC,kit,10.5,100.00,USD\n"),
    );
    w
}

#[test]
fn partners_and_renewals_end_with_why() {
    let w = due_silver();
    w.refresh("2026-11");
    let why = "courseware 10.5 of 100; certification 0 of 20";
    let partners = sheet(&w, "2026-11", "Partners");
    assert_eq!(partners[0].last().unwrap(), "Why");
    assert_eq!(partners[1][0], "P1");
    assert_eq!(partners[1].last().unwrap(), why);
    assert_eq!(partners[2].last().unwrap(), "");
    let renewals = sheet(&w, "2026-11", "Renewals");
    assert_eq!(renewals[0].last().unwrap(), "Why");
    assert_eq!(renewals[1][6], "downgrade");
    assert_eq!(renewals[1].last().unwrap(), why);
    // The CSV's columns are fixed: no Why there.
    let csv = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert_eq!(csv[0].last().unwrap(), "gap_certification");
}

#[test]
fn explain_tells_only_what_was_published() {
    let w = due_silver();
    let explain = |extra: &[&str]| {
        let mut args = vec!["explain", "--partner", "P1", "--refresh", "2026-11"];
        args.extend_from_slice(extra);
        w.run(&args)
    };
    let out = explain(&[]);
    assert_exit(&out, 66, "was not published");
    assert!(
        stderr(&out).contains("kpi-refresh run --refresh 2026-11"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    w.refresh("2026-11");
    let out = explain(&[]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.starts_with("Partner P1"), "{text}");
    assert!(
        text.contains("Why: courseware 10.5 of 100; certification 0 of 20."),
        "{text}"
    );
    assert!(text.contains("not met: courseware 10.5 of 100"), "{text}");
    // No stage lines in front of the answer; they come with -v.
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(stderr(&explain(&["-v"])).contains("ingest: ledger up to date"));
    // Inputs changed since the refresh was published: no answer that could differ from it.
    w.write(
        "partners.csv",
        &format!(
            "{ROSTER_HEADER}\n\
             P1,Contoso,SE,silver,Security,2024-11-05,0,yes,yes,yes,Contoso,https://contoso.se/x,contoso.se\n\
             P2,Fabrikam,BR,none,,,1,no,no,yes,,,\n"
        ),
    );
    let out = explain(&[]);
    assert_exit(&out, 66, "partners.csv");
    assert!(stderr(&out).contains("inputs changed"), "{}", stderr(&out));
}

#[test]
fn run_ends_with_the_summary_a_dry_run_prints() {
    let w = due_silver();
    let dry = w.run(&["run", "--refresh", "2026-11", "--force", "--dry-run"]);
    assert_success(&dry);
    let out = w.refresh("2026-11");
    let summary = stdout(&out);
    assert!(
        summary.starts_with("refresh 2026-11: 2 partners, 1 lines in the window, 1 due"),
        "{summary}"
    );
    assert!(stdout(&dry).starts_with(&summary), "{}", stdout(&dry));
}

#[test]
fn a_refresh_not_open_yet_is_a_warning_not_an_error() {
    let w = due_silver();
    let out = w.run(&["run", "--refresh", "2026-12"]);
    assert_exit(&out, 75, "opens on 2026-12-15");
    let log = stderr(&out);
    assert!(log.contains("WARN") && !log.contains("ERROR"), "{log}");
    let out = w.run(&["--log-format", "json", "run", "--refresh", "2026-12"]);
    assert_exit(&out, 75, "\"level\":\"WARN\"");
}

#[test]
fn an_unknown_key_anywhere_in_program_toml_is_78_naming_it() {
    let w = due_silver();
    w.write(
        "program.toml",
        &format!("[calendar]\nrefresh_dya = 15\n{PROGRAM}"),
    );
    let out = w.run(&["run", "--refresh", "2026-11", "--force"]);
    assert_exit(&out, 78, "calendar.refresh_dya");
    assert_exit(
        &w.run(&["validate", "--refresh", "2026-11"]),
        78,
        "refresh_dya",
    );
    // A requirement block is named as a person counts it, with its line.
    let bad = PROGRAM.replace("level = \"gold\"", "level = \"platinum\"");
    let line = bad.lines().position(|l| l.contains("platinum")).unwrap() - 1;
    w.write("program.toml", &bad);
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        78,
        &format!("the 3rd [[requirements]] block, line {line}"),
    );
    // [watch] lead_months is known, and checked.
    w.write(
        "program.toml",
        &format!("{PROGRAM}\n[watch]\nlead_months = 13\n"),
    );
    assert_exit(
        &w.run(&["validate", "--refresh", "2026-11"]),
        78,
        "watch.lead_months",
    );
    w.write(
        "program.toml",
        &format!("{PROGRAM}\n[watch]\nlead_months = 2\n"),
    );
    assert_success(&w.run(&["validate", "--refresh", "2026-11"]));
}

#[test]
fn the_directory_submission_sheet_says_what_changed_and_why() {
    let w = minimal();
    let roster = |rows: &str| format!("{ROSTER_HEADER}\n{rows}");
    // B's anniversary is in November and its Action Pack is not active: it lapses then.
    w.write(
        "partners.csv",
        &roster(
            "A,Alpha,SE,action_pack,,2024-03-01,1,no,no,yes,Alpha Learning,https://alpha.se/ms,alpha.se\n\
             B,Beta,SE,action_pack,,2024-11-05,1,no,no,no,Beta Learning,https://beta.se/ms,beta.se\n\
             C,Gamma,SE,action_pack,,2024-03-01,1,no,no,yes,Gamma Learning,https://gamma.se/ms,gamma.se\n\
             D,Delta,DE,action_pack,,2024-03-01,1,no,no,yes,Delta Learning,https://delta.de/ms,delta.de\n",
        ),
    );
    w.write("extracts/2026-09/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.refresh("2026-10");
    // A renamed and moved, C left the roster, D no longer enrolled.
    w.write(
        "partners.csv",
        &roster(
            "A,Alpha,DK,action_pack,,2024-03-01,1,no,no,yes,Alpha Academy,https://alpha.se/ms,alpha.se\n\
             B,Beta,SE,action_pack,,2024-11-05,1,no,no,no,Beta Learning,https://beta.se/ms,beta.se\n\
             D,Delta,DE,none,,,1,no,no,yes,Delta Learning,https://delta.de/ms,delta.de\n",
        ),
    );
    w.refresh("2026-11");
    let rows = sheet(&w, "2026-11", "Directory submission");
    let tail: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[8].as_str(), r[9].as_str()])
        .collect();
    assert_eq!(
        tail,
        [
            ["Action", "Partner ID", "Changed", "Why"],
            [
                "UPDATE",
                "A",
                "directory_name: Alpha Learning → Alpha Academy; country: SE → DK",
                ""
            ],
            ["REMOVE", "B", "", "lapse"],
            ["REMOVE", "C", "", "left the roster"],
            ["REMOVE", "D", "", "downgrade to none"],
        ]
    );
    // The CSV keeps its eight columns.
    let csv = csv_rows(&w.report("2026-11", "directory-submission-2026-11.csv"));
    assert!(csv.iter().all(|r| r.len() == 8));
}

/// The text of one part of a workbook (a zip).
fn part(xlsx: &std::path::Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(xlsx).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
    text
}

/// The worksheet part of the sheet `name`, found through the workbook part and its relations.
fn sheet_part(xlsx: &std::path::Path, name: &str) -> String {
    let book = part(xlsx, "xl/workbook.xml");
    let at = book.find(&format!("<sheet name=\"{name}\"")).unwrap();
    let rid = book[at..]
        .split("r:id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let rels = part(xlsx, "xl/_rels/workbook.xml.rels");
    let at = rels.find(&format!("Id=\"{rid}\"")).unwrap();
    let start = rels[..at].rfind('<').unwrap();
    let target = rels[start..]
        .split("Target=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    part(xlsx, &format!("xl/{target}"))
}

#[test]
fn the_workbook_keeps_ids_in_view_prints_sensibly_and_labels_its_charts() {
    let w = due_silver();
    w.refresh("2026-11");
    let xlsx = w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx");
    let partners = sheet_part(&xlsx, "Partners");
    assert!(partners.contains("xSplit=\"2\" ySplit=\"1\""), "{partners}");
    assert!(partners.contains("orientation=\"landscape\""), "{partners}");
    assert!(partners.contains("fitToHeight=\"0\""), "{partners}");
    assert!(
        partners.contains("<pageSetUpPr fitToPage=\"1\"/>"),
        "{partners}"
    );
    assert!(partners.contains("numberStoredAsText=\"1\""), "{partners}");
    let renewals = sheet_part(&xlsx, "Renewals");
    assert!(renewals.contains("xSplit=\"2\" ySplit=\"1\""), "{renewals}");
    let monthly = sheet_part(&xlsx, "Monthly KPIs");
    assert!(monthly.contains("xSplit=\"1\" ySplit=\"1\""), "{monthly}");
    let detail = sheet_part(&xlsx, "Invoice detail");
    assert!(detail.contains("xSplit=\"1\" ySplit=\"1\""), "{detail}");
    assert!(detail.contains("orientation=\"landscape\""), "{detail}");
    // The header row repeats on every printed page of every sheet, Invoice detail included.
    let book = part(&xlsx, "xl/workbook.xml");
    for name in ["Partners", "Invoice detail", "Directory submission"] {
        let title = format!("'{name}'!$1:$1");
        let plain = format!("{}!$1:$1", name);
        assert!(
            book.contains(&title) || book.contains(&plain),
            "{name}: {book}"
        );
    }
    // Summary on one page; its charts: partners due by renewal status and by outlook, each bar
    // labelled with its count and coloured as the sheets colour the status.
    let summary = sheet_part(&xlsx, "Summary");
    assert!(
        summary.contains("<pageSetUpPr fitToPage=\"1\"/>")
            && !summary.contains("fitToHeight=\"0\""),
        "{summary}"
    );
    let chart = part(&xlsx, "xl/charts/chart1.xml");
    assert!(chart.contains("Decisions of R (partners due)"), "{chart}");
    assert!(chart.contains("<c:showVal val=\"1\"/>"), "{chart}");
    // Data in hidden rows is plotted (no plotVisOnly): a filter on Summary hides no bar.
    assert!(!chart.contains("plotVisOnly"), "{chart}");
    let rows = sheet(&w, "2026-11", "Summary");
    let status_rows: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i][0] == "Renewal status")
        .collect();
    // Extended … lapse: the statuses of partners due (two rows after not_enrolled, not_due).
    let (first, last) = (status_rows[2] + 1, *status_rows.last().unwrap() + 1);
    assert!(
        chart.contains(&format!("Summary!$B${first}:$B${last}"))
            && chart.contains(&format!("Summary!$C${first}:$C${last}")),
        "{chart}"
    );
    assert_eq!(rows[status_rows[6]][1], "lapse");
    // The directory's changes and exceptions have lines of their own.
    assert!(rows
        .iter()
        .any(|r| r[0] == "Directory" && r[1] == "changes to submit" && r[2] == "1"));
    assert!(rows
        .iter()
        .any(|r| r[0] == "Directory" && r[1] == "exceptions" && r[2] == "0"));
    // Lapse (the last bar) is red, downgrade amber, upgrade_eligible green.
    for colour in ["F8CBAD", "FFEB9C", "C6EFCE"] {
        assert!(chart.contains(colour), "{colour}: {chart}");
    }
    let outlook = part(&xlsx, "xl/charts/chart2.xml");
    assert!(outlook.contains("Partners by outlook") && outlook.contains("<c:showVal val=\"1\"/>"));
}

#[test]
fn explain_refuses_when_an_earlier_refresh_was_run_again_since() {
    let w = minimal();
    let roster = |name: &str| {
        format!(
            "{ROSTER_HEADER}\n\
             A,Alpha,SE,action_pack,,2024-03-01,1,no,no,yes,{name},https://alpha.se/ms,alpha.se\n"
        )
    };
    w.write("partners.csv", &roster("Alpha Learning"));
    w.write("extracts/2026-09/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.refresh("2026-10");
    w.refresh("2026-11");
    let explain = || w.run(&["explain", "--partner", "A", "--refresh", "2026-11"]);
    assert_success(&explain());
    // October is published again from another roster: its directory state, November's
    // baseline, changes, so November's published submission is not what it gives now.
    w.write("partners.csv", &roster("Alpha Academy"));
    w.refresh("2026-10");
    w.write("partners.csv", &roster("Alpha Learning"));
    let out = explain();
    assert_exit(&out, 66, "directory-submission-2026-11.csv");
    assert!(stderr(&out).contains("kpi-refresh run --refresh 2026-11"));
}

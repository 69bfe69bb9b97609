//! Publishing: failures leave the output as it was, a crash during the commit is completed by
//! the next run, large sheets continue on further sheets, and a dry run writes nothing.

mod common;

use std::process::Command;

use common::*;

fn stable(tree: Vec<(String, String)>) -> Vec<(String, String)> {
    tree.into_iter()
        .filter(|(p, _)| !p.starts_with(".kpi-refresh"))
        .collect()
}

fn run_with(w: &Work, month: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--refresh", month, "--force", "--input"])
        .arg(w.input())
        .arg("--output")
        .arg(w.output());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_failure_before_publishing_leaves_the_old_reports_in_place() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    let before = stable(tree_hashes(&w.output()));
    // Change an input so that a successful run would change the ledger and the reports.
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    std::fs::write(
        w.input().join("partners.csv"),
        roster.replace("Adventure Works Academy,US", "Adventure Works Academy,CA"),
    )
    .unwrap();
    let out = run_with(&w, "2026-05", &[("KPI_REFRESH_FAILPOINT", "before-commit")]);
    assert_exit(&out, 70, "failpoint before-commit");
    assert_eq!(stable(tree_hashes(&w.output())), before);
    assert!(!w
        .output()
        .join(".kpi-refresh")
        .read_dir()
        .unwrap()
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("staging")));
    // The next run succeeds.
    w.refresh("2026-05");
    assert_ne!(stable(tree_hashes(&w.output())), before);
}

#[test]
fn a_crash_during_the_commit_is_completed_by_the_next_run() {
    let reference = Work::from_fixture("two_refreshes");
    reference.refresh("2026-05");
    let w = Work::from_fixture("two_refreshes");
    let out = run_with(
        &w,
        "2026-05",
        &[("KPI_REFRESH_FAILPOINT", "abort-during-commit")],
    );
    assert!(!out.status.success());
    assert!(
        w.output().join(".kpi-refresh/journal.json").exists(),
        "the journal survives the crash"
    );
    // Any later run first completes the interrupted commit.
    w.refresh("2026-05");
    let volatile = |p: &str| p.ends_with("manifest.json") || p.ends_with(".xlsx");
    let strip = |t: Vec<(String, String)>| {
        stable(t)
            .into_iter()
            .filter(|(p, _)| !volatile(p))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(tree_hashes(&w.output())),
        strip(tree_hashes(&reference.output()))
    );
    assert!(!w.output().join(".kpi-refresh/journal.json").exists());
}

#[test]
fn sheets_past_the_row_limit_continue_on_numbered_sheets() {
    use calamine::Reader;
    let w = Work::from_fixture("two_refreshes");
    let out = run_with(&w, "2026-05", &[("KPI_REFRESH_SHEET_ROWS", "6")]);
    assert_success(&out);
    let xlsx = w.output().join("reports/2026-05/kpi-refresh-2026-05.xlsx");
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
    let names = book.sheet_names();
    // 16 partners at 5 data rows a sheet: Partners, Partners (2), (3), (4), right after it.
    let at = names.iter().position(|n| n == "Partners").unwrap();
    assert_eq!(
        names[at..at + 5],
        [
            "Partners",
            "Partners (2)",
            "Partners (3)",
            "Partners (4)",
            "Monthly KPIs"
        ]
    );
    let mut ids = Vec::new();
    for name in &names[at..at + 4] {
        let range = book.worksheet_range(name).unwrap();
        let rows: Vec<_> = range.rows().collect();
        assert_eq!(
            rows[0][0].to_string(),
            "Partner ID",
            "{name} has the header"
        );
        assert!(rows.len() <= 6);
        ids.extend(rows[1..].iter().map(|r| r[0].to_string()));
    }
    let csv = csv_rows(&w.report("2026-05", "partners-2026-05.csv"));
    let csv_ids: Vec<String> = csv[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, csv_ids, "no row dropped, order kept");
    // Invoice detail (written on a thread of its own) takes its place after the Anniversary
    // watch, which follows Renewals.
    let at = names.iter().position(|n| n == "Invoice detail").unwrap();
    assert!(names[at - 1].starts_with("Anniversary watch"), "{names:?}");
    let watch = names.iter().position(|n| n == "Anniversary watch").unwrap();
    assert!(names[watch - 1].starts_with("Renewals"), "{names:?}");
    let detail: Vec<&String> = names[at..]
        .iter()
        .take_while(|n| n.starts_with("Invoice detail"))
        .collect();
    assert!(detail.len() >= 2, "{names:?}");
    for (i, name) in detail.iter().enumerate() {
        let expected = match i {
            0 => "Invoice detail".to_string(),
            i => format!("Invoice detail ({})", i + 1),
        };
        assert_eq!(**name, expected);
        let range = book.worksheet_range(name).unwrap();
        assert_eq!(range.rows().next().unwrap()[0].to_string(), "Partner ID");
    }
    assert_eq!(names[at + detail.len()], "Changes");
    // Together the detail's sheets hold, in order, the rows of the one sheet a run without
    // the limit writes; each sheet's autofilter covers its own rows.
    let cells = |book: &mut calamine::Xlsx<_>, name: &str| -> Vec<Vec<String>> {
        let range = book.worksheet_range(name).unwrap();
        range
            .rows()
            .skip(1)
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    };
    let mut parts = Vec::new();
    for name in &detail {
        let rows = cells(&mut book, name);
        assert!(rows.len() <= 5, "{name}: {} rows", rows.len());
        let filter = format!("'{name}'!$A$1:$N${}<", rows.len().max(1) + 1);
        assert!(part(&xlsx, "xl/workbook.xml").contains(&filter), "{filter}");
        parts.extend(rows);
    }
    let whole = Work::from_fixture("two_refreshes");
    whole.refresh("2026-05");
    let mut one: calamine::Xlsx<_> = calamine::open_workbook(
        whole
            .output()
            .join("reports/2026-05/kpi-refresh-2026-05.xlsx"),
    )
    .unwrap();
    assert_eq!(parts, cells(&mut one, "Invoice detail"));
}

#[test]
fn a_dry_run_writes_nothing_and_says_what_it_would_write() {
    let w = Work::from_fixture("two_refreshes");
    let out = w.run(&["run", "--refresh", "2026-05", "--force", "--dry-run"]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("partners-2026-05.csv") && stdout.contains("ADD"),
        "{stdout}"
    );
    assert!(!w.output().exists());
    w.refresh("2026-05");
    let before = tree_hashes(&w.output());
    assert_success(&w.run(&["run", "--refresh", "2026-06", "--force", "--dry-run"]));
    assert_eq!(tree_hashes(&w.output()), before);
}

#[test]
fn backfill_runs_in_order_stops_at_the_first_failure_and_continues() {
    let w = Work::from_fixture("two_refreshes");
    // Delivery 2026-05 is needed by 2026-06; hide it so the backfill stops there.
    std::fs::rename(
        w.input().join("extracts/2026-05"),
        w.dir.path().join("2026-05"),
    )
    .unwrap();
    let out = w.run(&["backfill", "--from", "2026-04", "--to", "2026-06"]);
    assert_exit(&out, 66, "delivery 2026-05");
    assert!(
        w.output().join("reports/2026-04").is_dir() && w.output().join("reports/2026-05").is_dir()
    );
    assert!(!w.output().join("reports/2026-06").exists());
    std::fs::rename(
        w.dir.path().join("2026-05"),
        w.input().join("extracts/2026-05"),
    )
    .unwrap();
    assert_success(&w.run(&["backfill", "--from", "2026-04", "--to", "2026-06"]));
    let expected = std::fs::read_to_string(
        fixture("two_refreshes").join("expected/2026-06/partners-2026-06.csv"),
    )
    .unwrap();
    assert_eq!(w.report("2026-06", "partners-2026-06.csv"), expected);
}

#[test]
fn json_logs_are_one_object_per_line_with_stage_counts() {
    let w = Work::from_fixture("two_refreshes");
    let out = w.run(&[
        "--log-format",
        "json",
        "run",
        "--refresh",
        "2026-05",
        "--force",
    ]);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stage = |msg: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with(msg)))
            .cloned()
    };
    let ingest = stage("ingest: ledger up to date").expect("an ingest line");
    assert!(ingest["read"].as_u64().unwrap() > 0 && ingest["ms"].is_u64());
    assert!(stage("kpi:").is_some() && stage("renewal:").is_some() && stage("publish:").is_some());
    let quiet = w.run(&["-q", "run", "--refresh", "2026-05", "--force"]);
    assert_success(&quiet);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}

/// A part of the published workbook, as text.
fn part(xlsx: &std::path::Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(xlsx).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
    text
}

/// The attributes of the cell `cell` ("I2") in a worksheet's `xml`: a cell without a
/// reference is the one after the cell before it in its row.
fn cell_element<'a>(xml: &'a str, cell: &str) -> &'a str {
    let split = cell.find(|c: char| c.is_ascii_digit()).unwrap();
    let (letters, row) = cell.split_at(split);
    let column = |letters: &str| {
        letters
            .bytes()
            .fold(0, |n, b| n * 26 + usize::from(b - b'A' + 1))
    };
    let row_xml = xml.split(&format!("<row r=\"{row}\"")).nth(1).unwrap();
    let row_xml = &row_xml[..row_xml.find("</row>").unwrap()];
    let mut at = 0;
    for el in row_xml.split("<c").skip(1) {
        let el = &el[..el.find('>').unwrap()];
        at = match el.split(" r=\"").nth(1) {
            Some(r) => {
                column(r[..r.find('"').unwrap()].trim_end_matches(|c: char| c.is_ascii_digit()))
            }
            None => at + 1,
        };
        if at == column(letters) {
            return el;
        }
    }
    panic!("no cell {cell}")
}

/// The values of attribute `attr` of the elements `<tag …>` in `xml`, in order.
fn attrs(xml: &str, tag: &str, attr: &str) -> Vec<String> {
    xml.split(&format!("<{tag} "))
        .skip(1)
        .map(|el| {
            let el = &el[..el.find('>').unwrap()];
            el.split(&format!(" {attr}=\""))
                .nth(1)
                .or_else(|| el.strip_prefix(&format!("{attr}=\"")))
                .map(|v| v[..v.find('"').unwrap()].to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_refresh_with_no_partner_due_has_an_invoice_detail_of_its_header_alone() {
    use calamine::Reader;
    let w = minimal();
    w.write(
        "extracts/2026-09/a.csv",
        &format!("{EXTRACT_HEADER}\nI1,1,2026-09-02,Invoice,P1,MOC,kit,5,5,USD\n"),
    );
    // P1's anniversary is in November (enrolled 2024-11-05): nobody is due in October.
    w.refresh("2026-10");
    let xlsx = w.output().join("reports/2026-10/kpi-refresh-2026-10.xlsx");
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
    let detail = book.worksheet_range("Invoice detail").unwrap();
    assert_eq!(detail.height(), 1);
    assert_eq!(detail.get_value((0, 5)).unwrap().to_string(), "Invoice #");
    assert!(part(&xlsx, "xl/workbook.xml").contains("'Invoice detail'!$A$1:$N$2<"));
}

#[test]
fn invoice_detail_saved_apart_fits_the_workbook_it_is_assembled_into() {
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    let xlsx = w.output().join("reports/2026-05/kpi-refresh-2026-05.xlsx");
    let book = part(&xlsx, "xl/workbook.xml");
    let sheets = attrs(&book, "sheet", "name");
    let at = sheets.iter().position(|n| n == "Invoice detail").unwrap();
    let detail = part(&xlsx, &format!("xl/worksheets/sheet{}.xml", at + 1));
    assert!(
        detail.contains("<row r=\"2\"><c t=\"inlineStr\">"),
        "the detail's own cells, each after the one before leaving its reference out"
    );
    // One sheet is selected, Summary; a second selected tab would group the two.
    let selected: Vec<usize> = (1..=sheets.len())
        .filter(|i| {
            part(&xlsx, &format!("xl/worksheets/sheet{i}.xml")).contains("tabSelected=\"1\"")
        })
        .collect();
    assert_eq!(selected, [1]);
    // The autofilter the workbook part names covers the detail's rows.
    let rows = detail.matches("<row ").count();
    assert!(
        book.contains(&format!("'Invoice detail'!$A$1:$N${rows}<")),
        "{book}"
    );
    // Numbers in the detail keep the number formats of their columns: KPI value (I), Revenue
    // USD (L) show decimals, Line (G) is an integer.
    let styles = part(&xlsx, "xl/styles.xml");
    let xfs = &styles[styles.find("<cellXfs").unwrap()..];
    let num_fmt_of_xf = attrs(xfs, "xf", "numFmtId");
    let codes: std::collections::HashMap<String, String> = attrs(&styles, "numFmt", "numFmtId")
        .into_iter()
        .zip(attrs(&styles, "numFmt", "formatCode"))
        .collect();
    let format_of = |cell: &str| {
        let el = cell_element(&detail, cell);
        let s: usize = el
            .split("s=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let id = &num_fmt_of_xf[s];
        codes[id].clone()
    };
    assert_eq!(format_of("I2"), "#,##0.00");
    assert_eq!(format_of("L2"), "#,##0.00");
    assert_eq!(format_of("G2"), "0");
}

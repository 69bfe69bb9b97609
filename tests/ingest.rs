//! Ingestion and the ledger, through the real binary: reject reasons, file formats, duplicate
//! rules across deliveries, partitions reused or judged again, and the reject-rate gate.

mod common;

use common::*;

/// `n` good invoice lines of partner P1 dated in `month`, numbered from `first`.
fn good_lines(prefix: &str, month: &str, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("{prefix}-{i},1,{month}-10,Invoice,P1,MOC,kit,10,100.00,USD\n"))
        .collect()
}

fn rejected(w: &Work, month: &str) -> Vec<Vec<String>> {
    csv_rows(&w.report(month, &format!("rejected-{month}.csv")))
}

fn manifest(w: &Work, month: &str) -> serde_json::Value {
    serde_json::from_str(&w.report(month, "manifest.json")).unwrap()
}

/// Whether the refresh of 2026-11 judged each delivery.
fn judged(w: &Work) -> Vec<bool> {
    manifest(w, "2026-11")["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["judged_in_this_run"].as_bool().unwrap())
        .collect()
}

/// A delivery 2026-10 with a line of every reject reason, in the order of the reasons, among
/// 400 good lines (2026-09 holds the line sent again).
fn with_every_reject_reason() -> Work {
    let w = minimal();
    w.write(
        "extracts/2026-09/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("OLD", "2026-09", 1, 5)),
    );
    let bad = "\
X1,1,2026-10-01,Invoice,P1,MOC,kit,10,100,\n\
X2,0,2026-10-01,Invoice,P1,MOC,kit,10,100,USD\n\
X3,1,2026-10-32,Invoice,P1,MOC,kit,10,100,USD\n\
X4,1,2026-10-01,Invoice,P1,MOC,kit,1e3,100,USD\n\
X5,1,2026-10-01,Invoice,P1,MOC,kit,10,100.12345,USD\n\
X6,1,2026-10-01,Invoice,P1,MOC,kit,10,100,US\n\
X7,1,2026-10-01,Order Confirmation,P1,MOC,kit,10,100,USD\n\
X8,1,2026-10-01,partner report,P1,MOC,kit,10,100,USD\n\
X9,1,2026-10-01,Proforma,P1,MOC,kit,10,100,USD\n\
X10,1,2026-11-01,Invoice,P1,MOC,kit,10,100,USD\n\
X11,1,2026-10-01,Invoice,P9,MOC,kit,10,100,USD\n\
X12,1,2026-10-01,Invoice,P1,Webinar,kit,10,100,USD\n\
X13,1,2026-10-01,Invoice,P1,MOC,kit,-10,100,USD\n\
X14,1,2026-10-01,Credit Note,P1,MOC,kit,-10,100,USD\n\
X15,1,2026-10-01,Invoice,P1,MOC,kit,10,100,NOK\n\
OLD-1,1,2026-10-01,Invoice,P1,MOC,kit,10,100,USD\n\
X16,1,2026-10-01,Invoice,P1,MOC,kit,10,100,USD\n\
X16,1,2026-10-02,Invoice,P1,MOC,kit,20,200,USD\n\
,1,2026-10-32,Invoice,P1,MOC,kit,10,100,USD\n";
    // Enough good lines to stay under the reject-rate gate.
    let body = format!(
        "{EXTRACT_HEADER}\n{bad}{}",
        good_lines("G", "2026-10", 1, 400)
    );
    w.write("extracts/2026-10/b.csv", &body);
    w
}

/// Delivery 2026-10's counts in the manifest of 2026-11: read = accepted + rejected.
fn assert_counts_add_up(w: &Work) {
    let m = manifest(w, "2026-11");
    let last = &m["deliveries"][1];
    assert_eq!(last["delivery"], "2026-10");
    assert_eq!(last["read"], 419);
    assert_eq!(last["accepted"], 401);
    let rejected: u64 = last["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rejected, 18);
    assert_eq!(last["rejected"]["duplicate_line"], 2);
}

#[test]
fn every_reject_reason_in_order_and_counts_add_up() {
    let w = with_every_reject_reason();
    w.refresh("2026-11");
    let rows = rejected(&w, "2026-11");
    assert_eq!(rows[0][..3], ["source_file", "source_row", "reason"]);
    assert_eq!(
        rows[0][3..],
        EXTRACT_HEADER
            .split(',')
            .map(String::from)
            .collect::<Vec<_>>()[..]
    );
    let reasons: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("2", "missing_value:currency"),
            ("3", "invalid_value:invoice_line"),
            ("4", "invalid_value:invoice_date"),
            ("5", "invalid_value:kpi_value"),
            ("6", "invalid_value:revenue"),
            ("7", "invalid_value:currency"),
            ("8", "not_an_invoice"),
            ("9", "not_an_invoice"),
            ("10", "unknown_document_type"),
            ("11", "future_date"),
            ("12", "unknown_partner"),
            ("13", "unknown_omlp_type"),
            ("14", "sign_mismatch"),
            ("15", "sign_mismatch"),
            ("16", "no_fx_rate"),
            ("17", "duplicate_line"),
            ("19", "duplicate_line"),
            ("20", "missing_value:invoice_number"),
        ]
    );
    // Raw values are kept as read.
    assert_eq!(
        rows[4][3..],
        [
            "X4",
            "1",
            "2026-10-01",
            "Invoice",
            "P1",
            "MOC",
            "kit",
            "1e3",
            "100",
            "USD"
        ]
    );
    assert_counts_add_up(&w);
}

#[test]
fn bom_crlf_quoting_header_case_and_column_order() {
    let w = minimal();
    let text = "\u{feff}Currency, REVENUE ,kpi_value,Purchase_Unit,omlp_type,partner_id,document_type,invoice_date,invoice_line,invoice_number,Sales Rep\r\n\
                usd,100.5,10.25,\"kit, \"\"deluxe\"\"\",moc on-demand,P1,INVOICE,2026-10-03,1,\"INV,1\",Anna\r\n\
                EUR,-50,-5,kit,MOC,P1,credit note,2026-10-04,2,INV-2,Bo\r\n";
    w.write("extracts/2026-10/a.csv", text);
    w.write("extracts/2026-10/notes.txt", "ignored");
    w.refresh("2026-11");
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    let p1 = partners.iter().find(|r| r[0] == "P1").unwrap();
    let header = &partners[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(p1[col("kpi_courseware")], "5.25");
    assert_eq!(p1[col("revenue_usd")], "40.5"); // 100.5 USD - 50 EUR × 1.2
    assert_eq!(rejected(&w, "2026-11").len(), 1);
    let m = manifest(&w, "2026-11");
    let inputs = manifest_paths(&m, "inputs");
    assert!(
        inputs.contains(&"extracts/2026-10/a.csv")
            && !inputs.iter().any(|p| p.ends_with("notes.txt")),
        "{inputs:?}"
    );
}

#[test]
fn xlsx_extract_with_date_cells_and_numeric_ids() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let w = minimal();
    // The roster's partner id is numeric in the extract.
    w.write(
        "partners.csv",
        &format!("{ROSTER_HEADER}\n4401234,Contoso,SE,none,,,0,no,no,no,,,\n0044,Zero,SE,none,,,0,no,no,no,,,\n"),
    );
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in EXTRACT_HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    let rows: [(f64, f64, &str); 3] = [
        (7001.0, 1.0, "MOC"),
        (7001.0, 2.0, "Exam Voucher"),
        (7002.0, 1.0, "Webinar"),
    ];
    for (r, (inv, line, omlp)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        ws.write_number(r, 0, *inv).unwrap();
        ws.write_number(r, 1, *line).unwrap();
        ws.write_datetime_with_format(r, 2, ExcelDateTime::from_ymd(2026, 10, 5).unwrap(), &date)
            .unwrap();
        ws.write_string(r, 3, "Invoice").unwrap();
        ws.write_number(r, 4, 4401234.0).unwrap();
        ws.write_string(r, 5, *omlp).unwrap();
        ws.write_string(r, 6, "kit").unwrap();
        ws.write_number(r, 7, 12.5).unwrap();
        ws.write_number(r, 8, 100.0).unwrap();
        ws.write_string(r, 9, "USD").unwrap();
    }
    // An all-empty row is no data row but keeps its number; the next row is row 6.
    ws.write_string(5, 0, "7003").unwrap();
    ws.write_string(5, 1, "1").unwrap();
    ws.write_string(5, 2, "2026-10-06").unwrap();
    ws.write_string(5, 3, "Invoice").unwrap();
    ws.write_string(5, 4, "0044").unwrap();
    ws.write_string(5, 5, "MOC").unwrap();
    ws.write_string(5, 6, "kit").unwrap();
    ws.write_string(5, 7, "1").unwrap();
    ws.write_string(5, 8, "1").unwrap();
    ws.write_string(5, 9, "USD").unwrap();
    let path = w.input().join("extracts/2026-10/apac.XLSX");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    book.save(&path).unwrap();
    let mut body = format!("{EXTRACT_HEADER}\n");
    body.push_str(
        &(0..60)
            .map(|i| format!("C{i},1,2026-10-01,Invoice,0044,MOC,kit,1,1,USD\n"))
            .collect::<String>(),
    );
    w.write("extracts/2026-10/b.csv", &body);
    w.refresh("2026-11");
    let rows = rejected(&w, "2026-11");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[1],
        [
            "apac.XLSX",
            "4",
            "unknown_omlp_type",
            "7002",
            "1",
            "2026-10-05",
            "Invoice",
            "4401234",
            "Webinar",
            "kit",
            "12.5",
            "100",
            "USD"
        ]
    );
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    let p = partners.iter().find(|r| r[0] == "4401234").unwrap();
    assert_eq!((p[10].as_str(), p[11].as_str()), ("12.5", "12.5"));
    let zero = partners.iter().find(|r| r[0] == "0044").unwrap();
    assert_eq!(zero[10], "61");
}

#[test]
fn duplicates_across_deliveries_earliest_wins_even_when_corrected_later() {
    let w = minimal();
    // D1 first has a sign mismatch on line (INV-9, 1): it claims no key, so D2's copy counts.
    w.write(
        "extracts/2026-09/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nINV-9,1,2026-09-05,Invoice,P1,MOC,kit,-10,100,USD\n{}",
            good_lines("A", "2026-09", 1, 40)
        ),
    );
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nINV-9,1,2026-10-05,Invoice,P1,MOC,kit,30,100,USD\n{}",
            good_lines("B", "2026-10", 1, 40)
        ),
    );
    w.refresh("2026-11");
    let kpi = |w: &Work| {
        let rows = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
        rows.iter().find(|r| r[0] == "P1").unwrap()[10].clone()
    };
    assert_eq!(kpi(&w), "830");
    assert!(rejected(&w, "2026-11").len() == 1);
    // The older delivery is corrected: its copy is accepted now and the later one is a duplicate.
    w.write(
        "extracts/2026-09/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nINV-9,1,2026-09-05,Invoice,P1,MOC,kit,10,100,USD\n{}",
            good_lines("A", "2026-09", 1, 40)
        ),
    );
    w.refresh("2026-11");
    assert_eq!(kpi(&w), "810");
    let rows = rejected(&w, "2026-11");
    assert_eq!(
        (rows[1][2].as_str(), rows[1][3].as_str()),
        ("duplicate_line", "INV-9")
    );
    let m = manifest(&w, "2026-11");
    assert_eq!(m["deliveries"][0]["judged_in_this_run"], true);
    assert_eq!(m["deliveries"][1]["judged_in_this_run"], true);
}

#[test]
fn unchanged_partitions_are_reused_and_changed_ones_replaced() {
    let w = minimal();
    w.write(
        "extracts/2026-08/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("A", "2026-08", 1, 10)),
    );
    w.write(
        "extracts/2026-09/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("B", "2026-09", 1, 10)),
    );
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("C", "2026-10", 1, 10)),
    );
    w.refresh("2026-11");
    let before = tree_hashes(&w.output().join("ledger"));
    assert!(
        before
            .iter()
            .any(|(p, _)| p.starts_with("delivery=2026-08/") && p.ends_with("accepted.parquet")),
        "{before:?}"
    );
    w.refresh("2026-11");
    assert_eq!(judged(&w), [false, false, false]);
    assert_eq!(tree_hashes(&w.output().join("ledger")), before);
    // A changed file in the middle delivery: it and every later one are judged again.
    w.write(
        "extracts/2026-09/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("B", "2026-09", 1, 11)),
    );
    w.refresh("2026-11");
    assert_eq!(judged(&w), [false, true, true]);
    let after = tree_hashes(&w.output().join("ledger"));
    let of =
        |t: &[(String, String)], p: &str| t.iter().find(|(q, _)| q == p).map(|(_, h)| h.clone());
    assert_eq!(
        of(&after, "delivery=2026-08/accepted.parquet"),
        of(&before, "delivery=2026-08/accepted.parquet")
    );
    assert_ne!(
        of(&after, "delivery=2026-09/parsed.parquet"),
        of(&before, "delivery=2026-09/parsed.parquet")
    );
    // A deleted ledger is rebuilt by the ordinary run.
    std::fs::remove_dir_all(w.output().join("ledger")).unwrap();
    w.refresh("2026-11");
    assert_eq!(judged(&w), [true, true, true]);
    assert_eq!(tree_hashes(&w.output().join("ledger")), after);
}

#[test]
fn a_partition_records_its_files_blake3_and_a_reuse_lists_their_sha256() {
    let w = minimal();
    for (month, prefix) in [("2026-09", "B"), ("2026-10", "C")] {
        w.write(
            &format!("extracts/{month}/a.csv"),
            &format!("{EXTRACT_HEADER}\n{}", good_lines(prefix, month, 1, 10)),
        );
    }
    w.refresh("2026-11");
    w.refresh("2026-11");
    assert_eq!(judged(&w), [false, false]);
    for month in ["2026-09", "2026-10"] {
        let input = std::fs::read(w.input().join(format!("extracts/{month}/a.csv"))).unwrap();
        let meta = w
            .output()
            .join(format!("ledger/delivery={month}/_partition.json"));
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
        let file = &meta["files"][0];
        assert_eq!(file["blake3"], blake3::hash(&input).to_hex().as_str());
        assert_eq!(file["sha256"], sha256_hex(&input).as_str());
        let m = manifest(&w, "2026-11");
        let listed = (m["inputs"].as_array().unwrap().iter())
            .find(|i| i["path"] == format!("extracts/{month}/a.csv").as_str())
            .unwrap();
        assert_eq!(listed["sha256"], sha256_hex(&input).as_str());
    }
}

/// Deliveries 2026-08 … 2026-10: 2026-09 names P7, not yet in the roster, and carries a key
/// that 2026-10 repeats.
fn with_a_repeated_key() -> Work {
    let w = minimal();
    w.write(
        "extracts/2026-08/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("A", "2026-08", 1, 30)),
    );
    w.write(
        "extracts/2026-09/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nK-1,1,2026-09-03,Invoice,P7,MOC,kit,5,50,EUR\n{}",
            good_lines("B", "2026-09", 1, 30)
        ),
    );
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nK-1,1,2026-10-03,Invoice,P1,MOC,kit,5,50,USD\n{}",
            good_lines("C", "2026-10", 1, 30)
        ),
    );
    w
}

/// Refreshes 2026-11: how many deliveries were (carried over, judged again from kept rows,
/// judged again by difference).
fn refresh_judging(w: &Work) -> (usize, usize, usize) {
    let out = w.refresh("2026-11");
    assert_success(&out);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    // Every output the manifest lists has the digest it gives, however its partition was
    // brought up to date (the ledger files' digests are the seals', taken as they were written).
    let files = tree_hashes(&w.output());
    for o in manifest(w, "2026-11")["outputs"].as_array().unwrap() {
        let path = o["path"].as_str().unwrap();
        let file = files.iter().find(|(p, _)| p == path);
        assert_eq!(file.map(|f| f.1.as_str()), o["sha256"].as_str(), "{path}");
    }
    (
        log.matches("rows carried over").count(),
        log.matches("judged again from kept rows").count(),
        log.matches("judged again by difference").count(),
    )
}

/// The reasons of 2026-11's rejected rows.
fn reject_reasons(w: &Work) -> Vec<String> {
    rejected(w, "2026-11")[1..]
        .iter()
        .map(|r| r[2].clone())
        .collect()
}

/// The ledger's Parquet files and their digests.
fn ledger_rows(w: &Work) -> Vec<(String, String)> {
    tree_hashes(&w.output().join("ledger"))
        .into_iter()
        .filter(|(p, _)| p.ends_with(".parquet"))
        .collect()
}

#[test]
fn a_dependency_change_no_row_asks_about_carries_the_rows_over() {
    let w = with_a_repeated_key();
    refresh_judging(&w);
    // K-1 of 2026-09 names an unknown partner and so claims no key: K-1 of 2026-10 stands.
    assert!(reject_reasons(&w).is_empty(), "{:?}", reject_reasons(&w));
    let before = ledger_rows(&w);

    // A renamed partner, a partner no row names, a new month of rates, other thresholds: every
    // partition depends on the changed files and is judged again, but no row's answer changed,
    // so the rows are carried over as they were.
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    w.write(
        "partners.csv",
        &format!(
            "{}P8,Never Invoiced,SE,none,,,0,no,no,no,,,\n",
            roster.replace("Fabrikam", "Fabrikam Learning")
        ),
    );
    let rates = std::fs::read_to_string(w.input().join("fx_rates.csv")).unwrap();
    w.write("fx_rates.csv", &format!("{rates}2026-11,EUR,1.3\n"));
    w.write(
        "program.toml",
        &PROGRAM.replace("courseware = 100", "courseware = 90"),
    );
    assert_eq!(refresh_judging(&w), (3, 0, 0));
    assert_eq!(judged(&w), [true, true, true]);
    assert_eq!(ledger_rows(&w), before);

    // P7 joins: 2026-09 is judged again by difference (its K-1 is now accepted), and so is
    // 2026-10, whose K-1 becomes a duplicate of it; 2026-08's rows are carried over.
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    w.write(
        "partners.csv",
        &format!("{roster}P7,Joiner,SE,none,,,0,no,no,no,,,\n"),
    );
    assert_eq!(refresh_judging(&w), (1, 0, 2));
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert!(partners.iter().any(|r| r[0] == "P7"));
    assert_eq!(reject_reasons(&w), ["duplicate_line"]);

    // A changed rate that a row of 2026-09 uses: that delivery is judged in full from its rows;
    // 2026-10 follows keys that did not change (a rate changes a value, not a key) and is
    // carried over.
    let rates = std::fs::read_to_string(w.input().join("fx_rates.csv")).unwrap();
    w.write(
        "fx_rates.csv",
        &rates.replace("2026-09,EUR,1.1", "2026-09,EUR,1.15"),
    );
    assert_eq!(refresh_judging(&w), (2, 1, 0));

    // The ledger kept this way equals one rebuilt from nothing.
    let kept = tree_hashes(&w.output().join("ledger"));
    std::fs::remove_dir_all(w.output().join("ledger")).unwrap();
    assert_eq!(refresh_judging(&w), (0, 0, 0));
    assert_eq!(tree_hashes(&w.output().join("ledger")), kept);

    // P7 leaves again: judged by difference, K-1 of 2026-10 stands again, and the ledger
    // equals one rebuilt from nothing.
    w.write("partners.csv", &roster);
    assert_eq!(refresh_judging(&w), (1, 0, 2));
    assert!(reject_reasons(&w).is_empty(), "{:?}", reject_reasons(&w));
    let kept = tree_hashes(&w.output().join("ledger"));
    std::fs::remove_dir_all(w.output().join("ledger")).unwrap();
    assert_eq!(refresh_judging(&w), (0, 0, 0));
    assert_eq!(tree_hashes(&w.output().join("ledger")), kept);
}

#[test]
fn a_later_delivery_whose_rows_cannot_change_keeps_its_files() {
    // 2026-08 names P9, not yet in the roster; 2026-09 and 2026-10 repeat none of its keys.
    let w = minimal();
    w.write(
        "extracts/2026-08/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nJ-1,1,2026-08-03,Invoice,P9,MOC,kit,5,50,USD\n{}",
            good_lines("A", "2026-08", 1, 30)
        ),
    );
    for (month, prefix) in [("2026-09", "B"), ("2026-10", "C")] {
        w.write(
            &format!("extracts/{month}/a.csv"),
            &format!("{EXTRACT_HEADER}\n{}", good_lines(prefix, month, 1, 30)),
        );
    }
    refresh_judging(&w);
    use std::os::unix::fs::MetadataExt;
    let inode = |month: &str| {
        let path = format!("ledger/delivery={month}/accepted.parquet");
        std::fs::metadata(w.output().join(path)).unwrap().ino()
    };
    let before = (inode("2026-08"), inode("2026-10"));

    // P9 joins: 2026-08 is judged again by difference and accepts J-1; the later deliveries
    // follow other earlier keys, so they are judged again by difference too, but none of their
    // rows can change: their files are carried over, not written again.
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    w.write(
        "partners.csv",
        &format!("{roster}P9,Joiner,SE,none,,,0,no,no,no,,,\n"),
    );
    let out = w.refresh("2026-11");
    assert_success(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.matches("judged again by difference").count(),
        3,
        "{log}"
    );
    assert_eq!(
        log.matches("no row changed: files carried over").count(),
        2,
        "{log}"
    );
    assert_eq!(judged(&w), [true, true, true]);
    assert_ne!(inode("2026-08"), before.0);
    assert_eq!(inode("2026-10"), before.1);
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert!(partners.iter().any(|r| r[0] == "P9"));

    // The ledger kept this way equals one rebuilt from nothing.
    let kept = tree_hashes(&w.output().join("ledger"));
    std::fs::remove_dir_all(w.output().join("ledger")).unwrap();
    assert_eq!(refresh_judging(&w), (0, 0, 0));
    assert_eq!(tree_hashes(&w.output().join("ledger")), kept);
}

#[test]
fn a_roster_change_turns_unknown_partner_rows_into_accepted_ones() {
    let w = minimal();
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\nN1,1,2026-10-03,Invoice,P3,MOC,kit,42,100,USD\n{}",
            good_lines("G", "2026-10", 1, 40)
        ),
    );
    w.write(
        "extracts/2026-10/b.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("H", "2026-10", 1, 40)),
    );
    w.refresh("2026-11");
    let rows = rejected(&w, "2026-11");
    assert_eq!(rows[1][2], "unknown_partner");
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    w.write(
        "partners.csv",
        &format!("{roster}P3,Net New,SE,none,,,0,no,no,no,,,\n"),
    );
    w.refresh("2026-11");
    assert_eq!(rejected(&w, "2026-11").len(), 1, "only the header is left");
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert_eq!(partners.iter().find(|r| r[0] == "P3").unwrap()[10], "42");
    // Judged again from the kept rows: the partition's parsed rows are the same file content.
    let m = manifest(&w, "2026-11");
    assert_eq!(m["deliveries"][0]["judged_in_this_run"], true);
    // Judged again by difference, the partition is the one judged in full from nothing.
    let kept = tree_hashes(&w.output().join("ledger"));
    std::fs::remove_dir_all(w.output().join("ledger")).unwrap();
    w.refresh("2026-11");
    assert_eq!(tree_hashes(&w.output().join("ledger")), kept);
}

#[test]
fn the_reject_rate_gate_fails_with_65_and_changes_nothing() {
    let w = minimal();
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good_lines("G", "2026-10", 1, 20)),
    );
    w.refresh("2026-11");
    let before = tree_hashes(&w.output());
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\n{}X,1,2026-10-01,Invoice,P9,MOC,kit,1,1,USD\n",
            good_lines("G", "2026-10", 1, 10)
        ),
    );
    let out = w.run(&["run", "--refresh", "2026-11", "--force"]);
    assert_exit(&out, 65, "delivery 2026-10: 1 of 11 rows rejected");
    let after: Vec<_> = tree_hashes(&w.output())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".kpi-refresh/"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".kpi-refresh/"))
        .collect();
    assert_eq!(after, before);
    // A higher limit lets it through.
    assert_success(&w.run(&[
        "run",
        "--refresh",
        "2026-11",
        "--force",
        "--max-reject-rate",
        "0.1",
    ]));
}

#[test]
fn a_missing_column_or_corrupt_file_fails_with_65_naming_it() {
    let w = minimal();
    w.write("extracts/2026-10/a.csv", "invoice_number,invoice_line,invoice_date,document_type,partner_id,omlp_type,purchase_unit,kpi_value,currency\n");
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        65,
        "a.csv: missing required column \"revenue\"",
    );
    assert!(!w.output().join("reports").exists());
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.write("extracts/2026-10/b.xlsx", "this is not a zip file");
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        65,
        "b.xlsx: cannot be read",
    );
}

#[test]
fn missing_delivery_or_empty_delivery_folder_is_66() {
    let w = minimal();
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        66,
        "delivery 2026-10",
    );
    std::fs::create_dir_all(w.input().join("extracts/2026-10")).unwrap();
    w.write("extracts/2026-10/readme.txt", "no extract here");
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        66,
        "2026-10",
    );
}

#[test]
fn a_partner_who_joins_with_most_of_a_delivery_has_it_judged_in_full() {
    let w = minimal();
    // 30 lines of P7 (not in the roster yet) and 10 of P1.
    let p7: String = (1..=30)
        .map(|i| format!("Q-{i},1,2026-10-10,Invoice,P7,MOC,kit,10,100.00,USD\n"))
        .collect();
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\n{p7}{}",
            good_lines("C", "2026-10", 1, 10)
        ),
    );
    let refresh = |w: &Work| -> String {
        let out = w.run_lenient("2026-11");
        assert_success(&out);
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    refresh(&w);
    assert_eq!(rejected(&w, "2026-11").len() - 1, 30);
    let roster = std::fs::read_to_string(w.input().join("partners.csv")).unwrap();
    w.write(
        "partners.csv",
        &format!("{roster}P7,Joiner,SE,none,,,0,no,no,no,,,\n"),
    );
    // Three quarters of the rows change: judging them all costs less than setting them in.
    let log = refresh(&w);
    assert!(log.contains("judged again from kept rows"), "{log}");
    assert!(!log.contains("judged again by difference"), "{log}");
    assert_eq!(rejected(&w, "2026-11").len() - 1, 0);
    let kept = tree_hashes(&w.output().join("ledger"));
    std::fs::remove_dir_all(w.output().join("ledger")).unwrap();
    refresh(&w);
    assert_eq!(tree_hashes(&w.output().join("ledger")), kept);
}

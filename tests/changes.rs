//! Changes since the previous refresh, data quality and unknown partners, end to end: a
//! hand-checked fixture of two refreshes two months apart (2026-09, then 2026-11) with a
//! roster change in between, run through the binary.
//!
//! Partner P1's courseware KPI goes from 165 to 137.5 with every part of the split at work:
//! - entered +30: INV-5 (2026-09), a month in the window of 2026-11 but not of 2026-09;
//! - left -40: INV-1 (2025-09), counted by 2026-09, out of the window of 2026-11;
//! - late +7.5: INV-4, dated 2026-06 (in both windows), delivered in 2026-09;
//! - judged again -25: P3 joins the roster, so its INV-9 line of delivery 2026-07, rejected as
//!   `unknown_partner` before, is accepted now and P1's later copy of INV-9 (delivery
//!   2026-08, accepted by 2026-09) becomes a `duplicate_line`.

mod common;

use calamine::{Data, Reader, Xlsx};
use common::*;

const ROSTER_V1: &str = "P1,Contoso,SE,silver,Security,2024-05-05,2,yes,yes,yes,Contoso,https://contoso.se/x,contoso.se\n\
P2,Fabrikam,BR,none,,,1,no,no,yes,,,\n\
P4,Gone Training,US,none,,,0,no,no,no,,,\n";

const ROSTER_V2: &str = "P1,Contoso,SE,silver,Security,2024-05-05,2,yes,yes,yes,Contoso,https://contoso.se/x,contoso.se\n\
P2,Fabrikam,BR,none,,,1,no,no,yes,,,\n\
P3,Litware,NL,none,,,1,no,no,yes,,,\n";

fn roster(w: &Work, rows: &str) {
    w.write("partners.csv", &format!("{ROSTER_HEADER}\n{rows}"));
}

fn fixture() -> Work {
    let w = Work::empty();
    w.write("program.toml", PROGRAM);
    roster(&w, ROSTER_V1);
    let delivery = |month: &str, rows: &str| {
        w.write(
            &format!("extracts/{month}/a.csv"),
            &format!("{EXTRACT_HEADER}\n{rows}"),
        );
    };
    delivery(
        "2026-07",
        "INV-1,1,2025-09-10,Invoice,P1,MOC,kit,40,40,USD\n\
         INV-2,1,2026-03-05,Invoice,P1,MOC,kit,100,100,USD\n\
         INV-9,1,2026-04-01,Invoice,P3,MOC,kit,25,25,USD\n\
         INV-7,1,2026-05-02,Invoice,P9,Exam Voucher,v,5,5,USD\n",
    );
    delivery(
        "2026-08",
        "INV-9,1,2026-04-01,Invoice,P1,MOC,kit,25,25,USD\n\
         INV-3,1,2026-08-03,Invoice,P1,Exam Voucher,v,10,10,USD\n\
         INV-12,1,2025-01-15,Invoice,P9,MOC,kit,100,100,USD\n\
         INV-13,1,2026-02-01,Invoice, P9 ,Paper Book,b,50,50,USD\n",
    );
    delivery(
        "2026-09",
        "INV-4,1,2026-06-15,Invoice,P1,MOC,kit,7.5,7.5,USD\n\
         INV-5,1,2026-09-20,Invoice,P1,MOC,kit,30,30,USD\n",
    );
    delivery(
        "2026-10",
        "INV-6,1,2026-10-01,Invoice,P2,MOC On-Demand,x,12,12,USD\n\
         INV-8,1,2026-10-05,Invoice,P9,moc,kit,3,3,USD\n\
         INV-11,1,2026-07-07,Invoice,P1,Exam Voucher,v,10,10,USD\n",
    );
    delivery(
        "2026-11",
        "INV-10,1,2026-11-02,Invoice,P1,MOC,kit,1,1,USD\n",
    );
    w
}

/// Runs a refresh that may reject any share of a delivery (the fixture's deliveries are small
/// and carry unknown partners on purpose).
fn refresh(w: &Work, month: &str) -> String {
    let out = w.run_lenient(month);
    assert_success(&out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The fixture refreshed in 2026-09 with the first roster, then in 2026-11 with the second.
fn two_refreshes() -> Work {
    let w = fixture();
    refresh(&w, "2026-09");
    roster(&w, ROSTER_V2);
    refresh(&w, "2026-11");
    w
}

const CHANGES_2026_11: &str = "partner_id,field,before,after,entered,left,late,judged_again
P1,qualified_level,action_pack,silver,,,,
P1,outlook,at_risk,on_track,,,,
P1,kpi_courseware,165,137.5,30,-40,7.5,-25
P1,kpi_certification,10,20,0,0,10,0
P2,kpi_courseware,0,12,12,0,0,0
P3,enrollment,,none,,,,
P3,qualified_level,,action_pack,,,,
P3,renewal_status,,not_enrolled,,,,
P3,effective_level,,none,,,,
P3,outlook,,eligible_to_enroll,,,,
P3,kpi_courseware,,25,,,,
P3,kpi_certification,,0,,,,
P4,enrollment,none,,,,,
P4,qualified_level,none,,,,,
P4,renewal_status,not_enrolled,,,,,
P4,effective_level,none,,,,,
P4,outlook,not_eligible,,,,,
P4,kpi_courseware,0,,,,,
P4,kpi_certification,0,,,,,
";

const QUALITY_2026_11: &str = "delivery,reason,rows,share_of_read
2026-07,unknown_partner,1,0.25
2026-08,duplicate_line,1,0.25
2026-08,unknown_partner,2,0.5
2026-10,unknown_partner,1,0.3333
";

const CHANGES_HEADER: &str = "partner_id,field,before,after,entered,left,late,judged_again\n";

#[test]
fn a_skipped_month_compares_with_the_latest_published_refresh_and_splits_the_change() {
    let w = two_refreshes();
    assert!(!w.output().join("reports/2026-10").exists());
    assert_eq!(w.report("2026-11", "changes-2026-11.csv"), CHANGES_2026_11);
    // Every split adds up: before + entered + left + late + judged_again = after.
    for row in csv_rows(CHANGES_2026_11).iter().skip(1) {
        if row[4].is_empty() {
            continue;
        }
        let units = |s: &str| (s.parse::<f64>().unwrap() * 10_000.0).round() as i64;
        let sum: i64 = [2, 4, 5, 6, 7].iter().map(|i| units(&row[*i])).sum();
        assert_eq!(sum, units(&row[3]), "{row:?}");
    }
}

#[test]
fn the_first_refresh_has_no_previous_one_header_only_and_the_log_says_so() {
    let w = fixture();
    let log = refresh(&w, "2026-09");
    assert_eq!(w.report("2026-09", "changes-2026-09.csv"), CHANGES_HEADER);
    assert!(log.contains("no earlier refresh"), "{log}");
    // Quality covers every delivery up to 2026-08 as judged with the first roster.
    assert_eq!(
        w.report("2026-09", "quality-2026-09.csv"),
        "delivery,reason,rows,share_of_read\n\
         2026-07,unknown_partner,2,0.5\n\
         2026-08,unknown_partner,2,0.5\n"
    );
}

#[test]
fn quality_counts_are_the_manifests_per_delivery_counts() {
    let w = two_refreshes();
    let quality = w.report("2026-11", "quality-2026-11.csv");
    assert_eq!(quality, QUALITY_2026_11);
    let m: serde_json::Value = serde_json::from_str(&w.report("2026-11", "manifest.json")).unwrap();
    let mut from_manifest = Vec::new();
    for d in m["deliveries"].as_array().unwrap() {
        let read = d["read"].as_u64().unwrap() as f64;
        for (reason, n) in d["rejected"].as_object().unwrap() {
            let n = n.as_u64().unwrap();
            let share = ((n as f64 / read) * 10_000.0).round() / 10_000.0;
            from_manifest.push(vec![
                d["delivery"].as_str().unwrap().to_string(),
                reason.clone(),
                n.to_string(),
                share.to_string(),
            ]);
        }
    }
    assert_eq!(csv_rows(&quality)[1..], from_manifest[..]);
    // Both new files are listed among the outputs with their hashes.
    let hashes = tree_hashes(&w.output());
    for name in ["changes-2026-11.csv", "quality-2026-11.csv"] {
        let path = format!("reports/2026-11/{name}");
        let listed = m["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} is not listed"));
        let (_, sha) = hashes.iter().find(|(p, _)| *p == path).unwrap();
        assert_eq!(listed["sha256"].as_str().unwrap(), sha);
    }
}

#[test]
fn rerunning_a_refresh_after_a_later_one_gives_the_same_changes() {
    let w = two_refreshes();
    let first = w.report("2026-11", "changes-2026-11.csv");
    let quality = w.report("2026-11", "quality-2026-11.csv");
    refresh(&w, "2026-12");
    // The next refresh compares with 2026-11: INV-10 entered; nothing was dated 2025-11.
    let next = w.report("2026-12", "changes-2026-12.csv");
    assert!(
        next.contains("P1,kpi_courseware,137.5,138.5,1,0,0,0\n"),
        "{next}"
    );
    refresh(&w, "2026-11");
    assert_eq!(w.report("2026-11", "changes-2026-11.csv"), first);
    assert_eq!(w.report("2026-11", "quality-2026-11.csv"), quality);
}

type Book = Xlsx<std::io::BufReader<std::fs::File>>;

fn open(w: &Work, month: &str) -> Book {
    calamine::open_workbook(
        w.output()
            .join(format!("reports/{month}/kpi-refresh-{month}.xlsx")),
    )
    .unwrap()
}

fn sheet(book: &mut Book, name: &str) -> Vec<Vec<Data>> {
    let range = book.worksheet_range(name).unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => i.to_string(),
        Data::Empty => String::new(),
        other => format!("{other:?}"),
    }
}

fn texts(rows: &[Vec<Data>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(cell_text).collect())
        .collect()
}

#[test]
fn the_workbook_shows_changes_quality_and_unknown_partners() {
    let w = two_refreshes();
    let mut book = open(&w, "2026-11");
    assert_eq!(book.sheet_names(), SHEETS);
    let changes = sheet(&mut book, "Changes");
    assert_eq!(
        texts(&changes[..1]),
        [[
            "Partner ID",
            "Field",
            "Before",
            "After",
            "Entered",
            "Left",
            "Late",
            "Judged again"
        ]]
    );
    // The same rows as the CSV file; KPI figures are numbers.
    assert_eq!(texts(&changes[1..]), csv_rows(CHANGES_2026_11)[1..]);
    let courseware = &changes[3];
    assert_eq!(cell_text(&courseware[1]), "kpi_courseware");
    for (i, v) in [165.0, 137.5, 30.0, -40.0, 7.5, -25.0].iter().enumerate() {
        assert_eq!(courseware[i + 2], Data::Float(*v));
    }

    let quality = sheet(&mut book, "Data quality");
    assert_eq!(
        texts(&quality[..1]),
        [["Delivery", "Reason", "Rows", "Share of read"]]
    );
    assert_eq!(texts(&quality[1..]), csv_rows(QUALITY_2026_11)[1..]);
    assert_eq!(quality[4][3], Data::Float(0.3333));

    // P9's four rows: INV-12 is dated before the window, INV-13's type is in no category;
    // "moc" is matched like MOC. P3 joined the roster and is gone from the sheet.
    let unknown = sheet(&mut book, "Unknown partners");
    assert_eq!(
        texts(&unknown),
        [
            [
                "Partner ID",
                "Rows",
                "First delivery",
                "Last delivery",
                "KPI courseware",
                "KPI certification"
            ],
            ["P9", "4", "2026-07", "2026-10", "3", "5"]
        ]
    );
    assert_eq!(unknown[1][1], Data::Float(4.0));

    let summary = texts(&sheet(&mut book, "Summary"));
    let find = |item: &str| {
        summary
            .iter()
            .find(|r| r[0] == "Changes" && r[1] == item)
            .map(|r| r[2].clone())
    };
    assert_eq!(
        find("previous refresh compared against").as_deref(),
        Some("2026-09")
    );
    // P1 (outlook), P3 (only in 2026-11) and P4 (only in 2026-09).
    assert_eq!(
        find("partners whose effective level or outlook changed").as_deref(),
        Some("3")
    );
    assert_eq!(
        find("partners whose effective level changed").as_deref(),
        Some("2")
    );
}

#[test]
fn the_new_sheets_have_a_frozen_header_and_an_autofilter() {
    let w = two_refreshes();
    let path = w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut part = |n: usize| {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name(&format!("xl/worksheets/sheet{n}.xml")).unwrap(),
            &mut text,
        )
        .unwrap();
        text
    };
    // Changes, Data quality and Unknown partners are the 7th, 11th and 12th sheets.
    for (n, range) in [(7, "A1:H20"), (11, "A1:D5"), (12, "A1:F2")] {
        let xml = part(n);
        assert!(xml.contains("state=\"frozen\""), "sheet {n}");
        assert!(
            xml.contains(&format!("<autoFilter ref=\"{range}\"")),
            "sheet {n}: {xml}"
        );
    }
}

#[test]
fn a_partner_added_to_the_roster_leaves_unknown_partners_and_its_rows_count() {
    let w = fixture();
    refresh(&w, "2026-09");
    let mut book = open(&w, "2026-09");
    let unknown = texts(&sheet(&mut book, "Unknown partners"));
    // Before: P3's INV-9 (2026-04, in the window) and P9's rows up to delivery 2026-08.
    assert_eq!(unknown[1], ["P3", "1", "2026-07", "2026-07", "25", "0"]);
    assert_eq!(unknown[2], ["P9", "3", "2026-07", "2026-08", "0", "5"]);
    let partners = w.report("2026-09", "partners-2026-09.csv");
    assert!(!partners.contains("\nP3,"));
    drop(book);

    roster(&w, ROSTER_V2);
    refresh(&w, "2026-09");
    let mut book = open(&w, "2026-09");
    let unknown = texts(&sheet(&mut book, "Unknown partners"));
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    assert_eq!(unknown[1][0], "P9");
    // P3's row counts now: courseware 25 in the window.
    let partners = csv_rows(&w.report("2026-09", "partners-2026-09.csv"));
    let p3 = partners.iter().find(|r| r[0] == "P3").unwrap();
    assert_eq!(p3[10], "25");
}

#[test]
fn explain_tells_what_changed_with_the_split_in_words() {
    let w = two_refreshes();
    let out = w.run(&["explain", "--partner", "P1", "--refresh", "2026-11"]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Changed since the refresh of 2026-09:"),
        "{text}"
    );
    assert!(
        text.contains(
            "KPI courseware: 165 → 137.5 (-27.5): +30 from lines dated 2026-09 … 2026-10, which \
             entered the window; -40 from lines dated 2025-09 … 2025-10, which left it; +7.5 \
             from late lines (dated in both windows, delivered 2026-09 … 2026-10); -25 from \
             judging earlier deliveries again"
        ),
        "{text}"
    );
    assert!(text.contains("outlook: at_risk → on_track."), "{text}");
    let out = w.run(&["explain", "--partner", "P3", "--refresh", "2026-11"]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("was not in the refresh of 2026-09"), "{text}");
}

#[test]
fn a_previous_partners_file_changed_since_it_was_published_is_refused() {
    let w = fixture();
    refresh(&w, "2026-09");
    let path = w.output().join("reports/2026-09/partners-2026-09.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    // One more field on a row: the file is no longer what 2026-09 published.
    let damaged = text.replacen("\nP1,", "\nP1,extra,", 1);
    assert_ne!(damaged, text);
    std::fs::write(&path, damaged).unwrap();
    let out = w.run_lenient("2026-11");
    assert_exit(&out, 65, "partners-2026-09.csv");
    assert!(!w.output().join("reports/2026-11").exists());
}

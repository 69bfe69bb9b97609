//! Hostile and broken extracts: each ends in the contract's exit code or reject reason, with
//! a message naming the file, and never in a panic (exit 101) or a lost row.

mod common;

use common::*;

fn good(n: usize) -> String {
    (0..n)
        .map(|i| format!("G{i},1,2026-10-02,Invoice,P1,MOC,kit,1,1,USD\n"))
        .collect()
}

fn run(w: &Work) -> std::process::Output {
    w.run_lenient("2026-11")
}

fn rejected(w: &Work) -> Vec<Vec<String>> {
    csv_rows(&w.report("2026-11", "rejected-2026-11.csv"))
}

#[test]
fn a_nul_byte_and_invalid_utf8_are_values_not_crashes() {
    let w = minimal();
    let mut bytes = format!("{EXTRACT_HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"N\x001,1,2026-10-02,Invoice,P1,MOC,kit,1,1,USD\n");
    bytes.extend_from_slice(b"U1,1,2026-10-02,Invoice,P1,MOC,k\xff\xfeit,1,1,USD\n");
    let path = w.input().join("extracts/2026-10/a.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    assert_success(&run(&w));
    let rows = rejected(&w);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[1][1].as_str(), rows[1][2].as_str()),
        ("3", "invalid_value:purchase_unit")
    );
    let m: serde_json::Value = serde_json::from_str(&w.report("2026-11", "manifest.json")).unwrap();
    assert_eq!(
        (
            m["deliveries"][0]["read"].as_u64(),
            m["deliveries"][0]["accepted"].as_u64()
        ),
        (Some(2), Some(1))
    );
}

#[test]
fn a_truncated_or_fake_xlsx_is_65_naming_the_file() {
    let w = minimal();
    let sample = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("input/extracts/2026-03/apac.xlsx"),
    )
    .unwrap();
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\n{}", good(3)),
    );
    std::fs::write(
        w.input().join("extracts/2026-10/cut.xlsx"),
        &sample[..sample.len() / 2],
    )
    .unwrap();
    assert_exit(&run(&w), 65, "cut.xlsx: cannot be read");
    std::fs::write(
        w.input().join("extracts/2026-10/cut.xlsx"),
        b"PK\x03\x04 not really a zip",
    )
    .unwrap();
    assert_exit(&run(&w), 65, "cut.xlsx: cannot be read");
    assert!(!w.output().join("reports").exists());
}

#[test]
fn ten_thousand_columns_a_huge_line_and_a_repeated_header() {
    let w = minimal();
    let extra: String = (0..10_000).map(|i| format!(",x{i}")).collect();
    let values: String = (0..10_000).map(|_| ",v").collect();
    w.write(
        "extracts/2026-10/wide.csv",
        &format!("{EXTRACT_HEADER}{extra}\nW1,1,2026-10-02,Invoice,P1,MOC,kit,1,1,USD{values}\n"),
    );
    let huge = "k".repeat(50_000_000);
    w.write(
        "extracts/2026-10/long.csv",
        &format!("{EXTRACT_HEADER}\nL1,1,2026-10-02,Invoice,P1,MOC,{huge},1,1,USD\n"),
    );
    w.write(
        "extracts/2026-10/repeat.csv",
        &format!("{EXTRACT_HEADER}\n{}{EXTRACT_HEADER}\n", good(2)),
    );
    assert_success(&run(&w));
    let rows = rejected(&w);
    // The repeated header is a data row: its invoice_line is no number.
    assert_eq!(
        rows.len(),
        2,
        "{:?}",
        rows.iter().map(|r| r[..3].to_vec()).collect::<Vec<_>>()
    );
    assert_eq!(
        rows[1][..3],
        ["repeat.csv", "4", "invalid_value:invoice_line"]
    );
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    assert_eq!(partners.iter().find(|r| r[0] == "P1").unwrap()[10], "4");
}

#[test]
fn an_unterminated_quote_is_a_row_not_a_crash() {
    let w = minimal();
    w.write(
        "extracts/2026-10/a.csv",
        &format!(
            "{EXTRACT_HEADER}\n{}Q1,1,2026-10-02,Invoice,P1,MOC,\"kit,1,1,USD\n",
            good(2)
        ),
    );
    let out = run(&w);
    // The open quote swallows the rest of the file into one value: that row lacks its last
    // columns and is rejected; nothing panics and the earlier rows count.
    assert_success(&out);
    let rows = rejected(&w);
    assert_eq!(rows[1][..3], ["a.csv", "4", "missing_value:kpi_value"]);
}

#[test]
fn an_xlsx_whose_shared_strings_are_a_zip_bomb_is_65_naming_the_file() {
    use std::io::Write;
    let w = minimal();
    let sample = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("input/extracts/2026-03/apac.xlsx"),
    )
    .unwrap();
    // The sample's parts, with a shared-strings part of 1.1 GiB that deflates to about 1 MB.
    let mut from = zip::ZipArchive::new(std::io::Cursor::new(sample)).unwrap();
    let mut bomb = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..from.len() {
        let part = from.by_index_raw(i).unwrap();
        if part.name().unwrap() != "xl/sharedStrings.xml" {
            bomb.raw_copy_file(part).unwrap();
        }
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(true);
    bomb.start_file("xl/sharedStrings.xml", options).unwrap();
    bomb.write_all(b"<?xml version=\"1.0\"?><sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">")
        .unwrap();
    let chunk = "<si><t>x</t></si>".repeat(1 << 16);
    for _ in 0..(1_100 << 20) / chunk.len() {
        bomb.write_all(chunk.as_bytes()).unwrap();
    }
    bomb.write_all(b"</sst>").unwrap();
    let bytes = bomb.finish().unwrap().into_inner();
    assert!(bytes.len() < 16 << 20, "{} bytes", bytes.len());
    let path = w.input().join("extracts/2026-10/bomb.xlsx");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let out = run(&w);
    assert_exit(&out, 65, "bomb.xlsx");
    assert_exit(&out, 65, "xl/sharedStrings.xml expands past 1024 MiB");
    assert!(!w.output().join("ledger").exists());
}

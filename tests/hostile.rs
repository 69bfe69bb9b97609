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
    w.run(&[
        "run",
        "--refresh",
        "2026-11",
        "--force",
        "--max-reject-rate",
        "1",
    ])
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

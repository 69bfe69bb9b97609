//! The ledger is a standard dataset: DuckDB reads `ledger/delivery=*/` as the Hive-partitioned
//! Parquet it is (docs/ledger.md), and its window sums equal the published KPIs of
//! `partners-R.csv` (docs/rules.md §5).
//!
//! Needs `python3` with DuckDB (`pip install duckdb`; `.ci/run` installs it and sets
//! `KPI_REFRESH_REQUIRE_DUCKDB=1`, which makes its absence a failure). Without it, and without
//! that variable, the test says so on stderr and checks nothing else.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::*;
use kpi_refresh::calendar::Month;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/duckdb/window_sums.py");

fn duckdb_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("KPI_REFRESH_REQUIRE_DUCKDB").is_none(),
            "python3 with DuckDB is required here: pip install duckdb"
        );
        eprintln!("DuckDB for Python not found (pip install duckdb): the cross-check is not run");
    }
    found
}

/// The month `n` months before `month` (YYYY-MM).
fn before(month: &str, n: i32) -> String {
    month.parse::<Month>().unwrap().plus(-n).to_string()
}

/// DuckDB's sums: (partner, category) -> (kpi, revenue in USD); each partner's totals under
/// the empty category.
fn duckdb_sums(output: &Path, refresh: &str) -> HashMap<(String, String), (f64, f64)> {
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(output)
        .arg(refresh)
        .arg(before(refresh, 12))
        .arg(before(refresh, 1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows = csv_rows(&text);
    assert_eq!(
        rows[0],
        ["partner_id", "category", "kpi_value", "revenue_usd"]
    );
    rows[1..]
        .iter()
        .map(|r| {
            let n = |s: &str| s.parse::<f64>().unwrap();
            ((r[0].clone(), r[1].clone()), (n(&r[2]), n(&r[3])))
        })
        .collect()
}

/// Compares every partner's `kpi_<category>` and `revenue_usd` of `partners-R.csv` with
/// DuckDB's sums (absent: 0), and every DuckDB sum with a partner of the file. Returns the
/// number of non-zero KPI figures compared.
fn compare(w: &Work, refresh: &str) -> usize {
    let sums = duckdb_sums(&w.output(), refresh);
    let text = w.report(refresh, &format!("partners-{refresh}.csv"));
    let rows = csv_rows(&text);
    let header = &rows[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let categories: Vec<String> = header
        .iter()
        .filter_map(|h| h.strip_prefix("kpi_").map(String::from))
        .collect();
    let mut compared = 0;
    for row in &rows[1..] {
        let id = &row[col("partner_id")];
        for category in &categories {
            let (kpi, _) = sums
                .get(&(id.clone(), category.clone()))
                .copied()
                .unwrap_or((0.0, 0.0));
            let published: f64 = row[col(&format!("kpi_{category}"))].parse().unwrap();
            assert_eq!(
                published, kpi,
                "{refresh} partner {id} kpi_{category}: published {published}, DuckDB {kpi}"
            );
            compared += usize::from(kpi != 0.0);
        }
        let revenue = sums.get(&(id.clone(), String::new())).map_or(0.0, |s| s.1);
        let published: f64 = row[col("revenue_usd")].parse().unwrap();
        // The ledger's amounts are decimals (a line's USD revenue with all its 16 places), so
        // both engines sum them exactly and round the same sum the same way.
        assert_eq!(
            published, revenue,
            "{refresh} partner {id} revenue_usd: published {published}, DuckDB {revenue}"
        );
    }
    let ids: Vec<&String> = rows[1..].iter().map(|r| &r[col("partner_id")]).collect();
    for (id, category) in sums.keys() {
        assert!(
            ids.contains(&id),
            "DuckDB sums partner {id} ({category}), not published"
        );
        assert!(
            category.is_empty() || categories.contains(category),
            "DuckDB category {category} not published"
        );
    }
    compared
}

#[test]
fn duckdb_reads_the_sample_ledger_and_sums_the_published_kpis() {
    if !duckdb_available() {
        return;
    }
    let w = Work::empty();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("input"),
        &w.input(),
    );
    assert_success(&w.run(&["backfill", "--from", "2026-09", "--to", "2026-11"]));
    for refresh in ["2026-09", "2026-10", "2026-11"] {
        assert!(compare(&w, refresh) > 50, "{refresh}: few figures compared");
    }
}

#[test]
fn duckdb_sums_credit_notes_late_lines_and_duplicates_as_published() {
    if !duckdb_available() {
        return;
    }
    let w = Work::from_fixture("two_refreshes");
    w.refresh("2026-05");
    w.refresh("2026-06");
    for refresh in ["2026-05", "2026-06"] {
        assert!(compare(&w, refresh) > 0, "{refresh}: nothing compared");
    }
}

//! Properties of ingestion over generated rows: every row is accepted or rejected with one
//! reason (read = accepted + rejected), whatever the values.

use kpi_refresh::calendar::Month;
use kpi_refresh::config::program::Program;
use kpi_refresh::ingest::extract::Parsed;
use kpi_refresh::ingest::fx::FxRates;
use kpi_refresh::ingest::judge::{judge, Lookups};
use kpi_refresh::ingest::roster::Roster;
use polars::prelude::*;
use proptest::prelude::*;

fn roster() -> Roster {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partners.csv");
    std::fs::write(
        &path,
        "partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active\n\
         P1,One,SE,none,,,0,no,no,no\nP2,Two,BR,none,,,0,no,no,no\n",
    )
    .unwrap();
    Roster::load(&path).unwrap()
}

fn cell(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(choices).prop_map(String::from),
        1 => "[ -~]{0,6}",
    ]
}

fn row() -> impl Strategy<Value = [String; 10]> {
    (
        cell(&["INV-1", "INV-2", "INV-3", ""]),
        cell(&["1", "2", "0", "x", ""]),
        cell(&["2026-10-01", "2026-09-30", "2026-11-01", "2026-02-30", ""]),
        cell(&[
            "Invoice",
            "credit note",
            "Order Confirmation",
            "Proforma",
            "",
        ]),
        cell(&["P1", "P2", "P9", ""]),
        cell(&["MOC", "exam voucher", "Webinar", ""]),
        cell(&["kit", ""]),
        cell(&["10", "-10", "0", "1.23456", ""]),
        cell(&["100", "-100", "1,0", ""]),
        cell(&["USD", "EUR", "NOK", "E1", ""]),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i, j)| [a, b, c, d, e, f, g, h, i, j])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn read_equals_accepted_plus_rejected(rows in proptest::collection::vec(row(), 0..60), prior in proptest::collection::vec(row(), 0..20)) {
        let program = Program::parse("[kpi_categories]\ncourseware = [\"MOC\"]\ncertification = [\"Exam Voucher\"]").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fx_path = dir.path().join("fx.csv");
        std::fs::write(&fx_path, "month,currency,usd_per_unit\n2026-10,EUR,1.1\n").unwrap();
        let fx = FxRates::load(&fx_path).unwrap();
        let lookups = Lookups::new(&program, &roster(), &fx).unwrap();
        let delivery: Month = "2026-10".parse().unwrap();
        let frame = |rows: &[[String; 10]]| {
            let mut parsed = Parsed::new("f.csv", rows.len());
            for (i, r) in rows.iter().enumerate() {
                let cells: [&str; 10] = std::array::from_fn(|k| r[k].as_str());
                parsed.push(i as u32 + 2, cells, [false; 10], delivery);
            }
            parsed.into_frame().unwrap()
        };
        let earlier = judge(frame(&prior).lazy(), delivery.plus(-1), &lookups, None).unwrap();
        prop_assert_eq!(earlier.accepted.height() + earlier.rejected.height(), prior.len());
        let keys = earlier.accepted.select(["invoice_number", "invoice_line"]).unwrap();
        let judged = judge(frame(&rows).lazy(), delivery, &lookups, Some(&keys)).unwrap();
        prop_assert_eq!(judged.accepted.height() + judged.rejected.height(), rows.len());
        prop_assert_eq!(judged.rejected.column("reason").unwrap().null_count(), 0);
        // Accepted keys are unique, and none was accepted earlier.
        let mut keys: Vec<(String, i64)> = Vec::new();
        let numbers = judged.accepted.column("invoice_number").unwrap().str().unwrap().clone();
        let lines = judged.accepted.column("invoice_line").unwrap().i64().unwrap().clone();
        for i in 0..judged.accepted.height() {
            keys.push((numbers.get(i).unwrap().to_string(), lines.get(i).unwrap()));
        }
        let n = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), n);
    }
}

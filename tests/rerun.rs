//! End-to-end properties over generated programs (roster and two deliveries), through the
//! binary: a rerun is byte-identical (workbook cells aside from the run times), and neither the
//! order of rows nor how a delivery is split into files changes what counts, when every key is
//! unique (so the first-wins rule for duplicates does not apply).

mod common;

use calamine::Reader;
use common::*;
use proptest::prelude::*;

fn partner() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["none", "action_pack", "silver", "gold"][..]),
        prop::sample::select(&["2024-11-05", "2025-11-30", "2025-06-01", "2026-02-28"][..]),
        0..3u8,
        any::<[bool; 3]>(),
        prop::sample::select(&["SE", "BR", "UK", "US"][..]),
        prop::sample::select(
            &[
                "https://learn.example.se/x",
                "http://learn.example.se/",
                "",
            ][..],
        ),
    )
        .prop_map(|(level, since, mct, yes, country, url)| {
            let yn = |b: bool| if b { "yes" } else { "no" };
            let (competency, since) = match level {
                "none" => ("", ""),
                "action_pack" => ("", since),
                _ => ("Security", since),
            };
            format!(
                "Partner,{country},{level},{competency},{since},{mct},{},{},{},Partner Learning,{url},example.se",
                yn(yes[0]),
                yn(yes[1]),
                yn(yes[2])
            )
        })
}

fn line(month: &'static str) -> impl Strategy<Value = String> {
    (
        1..3u8,
        prop::sample::select(&["02", "15", "28"][..]),
        prop::sample::select(&["Invoice", "Credit Note", "Proforma"][..]),
        0..7u8,
        prop::sample::select(&["MOC", "Exam Voucher", "Webinar"][..]),
        prop::sample::select(&["10", "-10", "250.5", "x"][..]),
        prop::sample::select(&["100.00", "-100.00", "12.3456"][..]),
        prop::sample::select(&["USD", "EUR", "NOK"][..]),
    )
        .prop_map(move |(line, day, doc, p, omlp, kpi, rev, ccy)| {
            format!("{line},{month}-{day},{doc},P{p},{omlp},kit,{kpi},{rev},{ccy}")
        })
}

/// Rows of one delivery, each with a unique invoice number.
fn delivery(month: &'static str, tag: &'static str) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(line(month), 1..40).prop_map(move |rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, r)| format!("{tag}{i},{r}"))
            .collect()
    })
}

/// Writes the program; each delivery's rows go to `files` files, row `i` to file `i % files`,
/// in the order given.
fn write(w: &Work, roster: &[String], deliveries: &[(&str, Vec<String>)], files: usize) {
    w.write("program.toml", PROGRAM);
    let rows: String = roster
        .iter()
        .enumerate()
        .map(|(i, r)| format!("P{i},{r}\n"))
        .collect();
    w.write("partners.csv", &format!("{ROSTER_HEADER}\n{rows}"));
    w.write(
        "fx_rates.csv",
        "month,currency,usd_per_unit\n2026-09,EUR,1.1\n2026-10,EUR,1.2\n",
    );
    for (month, lines) in deliveries {
        for f in 0..files {
            let body: String = lines
                .iter()
                .skip(f)
                .step_by(files)
                .map(|l| format!("{l}\n"))
                .collect();
            w.write(
                &format!("extracts/{month}/part-{f}.csv"),
                &format!("{EXTRACT_HEADER}\n{body}"),
            );
        }
    }
}

fn refresh(w: &Work) {
    assert_success(&w.run_lenient("2026-11"));
}

fn cells(w: &Work) -> Vec<(String, Vec<Vec<String>>)> {
    let path = w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx");
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    book.sheet_names()
        .into_iter()
        .filter(|n| n != "Run info")
        .map(|n| {
            let range = book.worksheet_range(&n).unwrap();
            let rows = range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect();
            (n, rows)
        })
        .collect()
}

/// The rejected rows without their place (file and row), sorted.
fn rejected_values(w: &Work) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = csv_rows(&w.report("2026-11", "rejected-2026-11.csv"))[1..]
        .iter()
        .map(|r| r[2..].to_vec())
        .collect();
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn reruns_are_identical_and_order_does_not_count(
        roster in prop::collection::vec(partner(), 1..6),
        september in delivery("2026-09", "S"),
        october in delivery("2026-10", "O"),
        seed in any::<u64>(),
    ) {
        let w = Work::empty();
        write(&w, &roster, &[("2026-09", september.clone()), ("2026-10", october.clone())], 1);
        refresh(&w);
        let first = tree_hashes(&w.output());
        let first_cells = cells(&w);
        refresh(&w);
        let stable = |t: &[(String, String)]| -> Vec<(String, String)> {
            t.iter()
                .filter(|(p, _)| {
                    !(p.ends_with("manifest.json") || p.ends_with(".xlsx") || p.starts_with(".kpi-refresh"))
                })
                .cloned()
                .collect()
        };
        prop_assert_eq!(stable(&first), stable(&tree_hashes(&w.output())));
        prop_assert_eq!(&cells(&w), &first_cells);

        // The same rows shuffled and dealt into three files per delivery.
        let shuffle = |rows: &[String], salt: u64| {
            let mut rows = rows.to_vec();
            rows.sort_by_key(|r| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (r, seed, salt).hash(&mut h);
                h.finish()
            });
            rows
        };
        let other = Work::empty();
        write(
            &other,
            &roster,
            &[("2026-09", shuffle(&september, 1)), ("2026-10", shuffle(&october, 2))],
            3,
        );
        refresh(&other);
        for file in ["partners-2026-11.csv", "directory-submission-2026-11.csv"] {
            prop_assert_eq!(w.report("2026-11", file), other.report("2026-11", file), "{}", file);
        }
        prop_assert_eq!(rejected_values(&w), rejected_values(&other));
    }
}

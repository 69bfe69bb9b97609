//! Properties of ingestion over generated rows: every row is accepted or rejected with one
//! reason (read = accepted + rejected), whatever the values.

use kpi_refresh::calendar::Month;
use kpi_refresh::config::program::Program;
use kpi_refresh::ingest::extract::Parsed;
use kpi_refresh::ingest::fx::FxRates;
use kpi_refresh::ingest::judge::{judge, Lookups, PriorKeys};
use kpi_refresh::ingest::roster::Roster;
use polars::prelude::*;
use proptest::prelude::*;

fn roster() -> Roster {
    roster_of(&["P1", "P2"])
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
        let earlier = judge(&frame(&prior), delivery.plus(-1), &lookups, &PriorKeys::default()).unwrap();
        prop_assert_eq!(earlier.accepted.height() + earlier.rejected.height(), prior.len());
        let mut keys = PriorKeys::default();
        keys.add(earlier.accepted.clone().lazy()).unwrap();
        let judged = judge(&frame(&rows), delivery, &lookups, &keys).unwrap();
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

/// Lookups of two categories, the given roster and EUR rates for the given months.
fn lookups_of(roster: &Roster, eur_months: [&str; 2]) -> Lookups {
    let program = Program::parse(
        "[kpi_categories]\ncourseware = [\"MOC\"]\ncertification = [\"Exam Voucher\"]",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx_path = dir.path().join("fx.csv");
    let [a, b] = eur_months;
    std::fs::write(
        &fx_path,
        format!("month,currency,usd_per_unit\n{a},EUR,1.1\n{b},EUR,1.05\n"),
    )
    .unwrap();
    Lookups::new(&program, roster, &FxRates::load(&fx_path).unwrap()).unwrap()
}

fn lookups() -> Lookups {
    lookups_of(&roster(), ["2026-10", "2026-09"])
}

/// A row with a unique key (so that no first-wins rule applies) and values drawn from good and
/// bad ones.
fn keyed_rows() -> impl Strategy<Value = Vec<[String; 10]>> {
    proptest::collection::vec(row(), 0..50).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r[0] = format!("K{i}");
                r
            })
            .collect()
    })
}

fn judged_sets(
    rows: &[[String; 10]],
    order: &[usize],
    lookups: &Lookups,
) -> (Vec<String>, Vec<String>) {
    let delivery: Month = "2026-10".parse().unwrap();
    let mut parsed = Parsed::new("f.csv", rows.len());
    for &i in order {
        let cells: [&str; 10] = std::array::from_fn(|k| rows[i][k].as_str());
        parsed.push(i as u32 + 2, cells, [false; 10], delivery);
    }
    let judged = judge(
        &parsed.into_frame().unwrap(),
        delivery,
        lookups,
        &PriorKeys::default(),
    )
    .unwrap();
    let accepted = judged
        .accepted
        .column("invoice_number")
        .unwrap()
        .str()
        .unwrap()
        .clone();
    let mut accepted: Vec<String> = accepted.iter().flatten().map(String::from).collect();
    let numbers = judged
        .rejected
        .column("invoice_number")
        .unwrap()
        .str()
        .unwrap()
        .clone();
    let reasons = judged
        .rejected
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .clone();
    let mut rejected: Vec<String> = numbers
        .iter()
        .zip(reasons.iter())
        .map(|(n, r)| format!("{}:{}", n.unwrap_or(""), r.unwrap_or("")))
        .collect();
    accepted.sort();
    rejected.sort();
    (accepted, rejected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Without duplicate keys, the order of the rows does not change what is accepted and
    /// why the others are rejected.
    #[test]
    fn row_order_does_not_change_the_judgement(rows in keyed_rows(), seed in any::<u64>()) {
        let lookups = lookups();
        let forward: Vec<usize> = (0..rows.len()).collect();
        let mut shuffled = forward.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(judged_sets(&rows, &forward, &lookups), judged_sets(&rows, &shuffled, &lookups));
    }

    /// The SQL window totals equal a plain recomputation from the accepted lines.
    #[test]
    fn kpi_totals_equal_a_recomputation_from_accepted_lines(rows in keyed_rows()) {
        use kpi_refresh::exact;
        use kpi_refresh::kpi::{month_sums, Kpis};
        use std::collections::BTreeMap;
        let lookups = lookups();
        let delivery: Month = "2026-10".parse().unwrap();
        let mut parsed = Parsed::new("f.csv", rows.len());
        for (i, r) in rows.iter().enumerate() {
            let cells: [&str; 10] = std::array::from_fn(|k| r[k].as_str());
            parsed.push(i as u32 + 2, cells, [false; 10], delivery);
        }
        let judged = judge(&parsed.into_frame().unwrap(), delivery, &lookups, &PriorKeys::default()).unwrap();
        let program = Program::parse("[kpi_categories]\ncourseware = [\"MOC\"]\ncertification = [\"Exam Voucher\"]").unwrap();
        let sums = month_sums(judged.accepted.clone().lazy()).unwrap().lazy();
        let mut kpis = Kpis::new(vec![sums], "2026-11".parse().unwrap(), &program).unwrap();
        let totals = kpis.totals().unwrap();
        // Summed line by line in whole units (ten-thousandths; 10^-16 for USD), then rounded.
        let mut expected: BTreeMap<(String, usize), i128> = BTreeMap::new();
        let mut revenue: BTreeMap<String, i128> = BTreeMap::new();
        let a = &judged.accepted;
        let ids = a.column("partner_id").unwrap().str().unwrap().clone();
        let cats = a.column("category").unwrap().str().unwrap().clone();
        let (values, kpi_scale) = exact::units(a.column("kpi_value").unwrap()).unwrap();
        let (usd, usd_scale) = exact::units(a.column("revenue_usd").unwrap()).unwrap();
        for i in 0..a.height() {
            let id = ids.get(i).unwrap().to_string();
            let cat = usize::from(cats.get(i).unwrap() == "certification");
            *expected.entry((id.clone(), cat)).or_insert(0) += values.get(i).unwrap();
            *revenue.entry(id).or_insert(0) += usd.get(i).unwrap();
        }
        for ((id, cat), sum) in &expected {
            prop_assert_eq!(totals[id].kpi[*cat], exact::round4_f64(*sum, kpi_scale));
        }
        for (id, sum) in &revenue {
            prop_assert_eq!(totals[id].revenue_usd, exact::round4_f64(*sum, usd_scale));
        }
        let lines: u64 = totals.values().map(|t| t.lines).sum();
        prop_assert_eq!(lines as usize, a.height());
    }
}

/// A roster of the partners `ids`.
fn roster_of(ids: &[&str]) -> Roster {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partners.csv");
    let mut text = "partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active\n".to_string();
    for id in ids {
        text.push_str(&format!("{id},{id} AB,SE,none,,,0,no,no,no\n"));
    }
    std::fs::write(&path, text).unwrap();
    Roster::load(&path).unwrap()
}

const PARTNERS: [&str; 4] = ["P1", "P2", "P3", "P4"];

fn lookups_with(roster: &[bool]) -> Lookups {
    let ids: Vec<&str> = PARTNERS
        .iter()
        .zip(roster)
        .filter(|(_, on)| **on)
        .map(|(id, _)| *id)
        .collect();
    lookups_of(&roster_of(&ids), ["2026-08", "2026-09"])
}

/// A row that passes parsing, from a small space of keys, so that keys repeat within and
/// across deliveries; now and then a row from [`row`] instead.
fn keyed_valid_row() -> impl Strategy<Value = [String; 10]> {
    let valid = (
        proptest::sample::select(&["INV-1", "INV-2", "INV-3"][..]),
        proptest::sample::select(&["1", "2"][..]),
        proptest::sample::select(&["2026-08-15", "2026-09-01"][..]),
        proptest::sample::select(&["Invoice", "credit note"][..]),
        proptest::sample::select(&PARTNERS[..]),
        proptest::sample::select(&["MOC", "exam voucher", "Webinar"][..]),
        proptest::sample::select(&["10", "-10", "0"][..]),
        proptest::sample::select(&["USD", "EUR", "NOK"][..]),
    )
        .prop_map(|(n, l, d, t, p, o, v, c)| [n, l, d, t, p, o, "kit", v, v, c].map(String::from));
    prop_oneof![6 => valid, 1 => row()]
}

/// A delivery's rows as parsed from two files, `a.csv` and `b.csv`.
fn delivery_frame(delivery: Month, rows: &[[String; 10]]) -> DataFrame {
    let half = rows.len() / 2;
    let frames = [("a.csv", &rows[..half]), ("b.csv", &rows[half..])]
        .into_iter()
        .map(|(name, rows)| {
            let mut parsed = Parsed::new(name, rows.len());
            for (i, r) in rows.iter().enumerate() {
                let cells: [&str; 10] = std::array::from_fn(|k| r[k].as_str());
                parsed.push(i as u32 + 2, cells, [false; 10], delivery);
            }
            parsed.into_frame().unwrap()
        })
        .collect();
    kpi_refresh::ingest::extract::concat_files(frames).unwrap()
}

/// `df` written to Parquet and read back, as the ledger keeps a judgement.
fn through_parquet(df: &DataFrame) -> DataFrame {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.parquet");
    let mut df = df.clone();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .with_compression(ParquetCompression::Lz4Raw)
        .finish(&mut df)
        .unwrap();
    ParquetReader::new(std::fs::File::open(&path).unwrap())
        .finish()
        .unwrap()
}

/// A judgement's keys in one order, to compare as sets.
fn sorted_keys(keys: &DataFrame) -> DataFrame {
    keys.sort(
        ["invoice_number", "invoice_line"],
        SortMultipleOptions::default(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Judging again by difference after a roster change gives what judging again in full
    /// gives, for every delivery of a chain: accepted and rejected rows, values and order, and
    /// the keys handed on to the next delivery. The earlier judgement is read back from Parquet,
    /// as the ledger keeps it.
    #[test]
    fn judging_again_by_difference_equals_judging_in_full(
        deliveries in proptest::collection::vec(proptest::collection::vec(keyed_valid_row(), 0..20), 3),
        before in proptest::collection::vec(any::<bool>(), 4),
        after in proptest::collection::vec(any::<bool>(), 4),
    ) {
        use kpi_refresh::ingest::judge::{rejudge, EarlierJudgement};
        let months: Vec<Month> = ["2026-09", "2026-10", "2026-11"].iter().map(|m| m.parse().unwrap()).collect();
        let frames: Vec<DataFrame> = deliveries.iter().zip(&months).map(|(rows, m)| delivery_frame(*m, rows)).collect();
        let chain = |lookups: &Lookups| {
            let mut prior = PriorKeys::default();
            let mut out = Vec::new();
            for (frame, month) in frames.iter().zip(&months) {
                let j = judge(frame, *month, lookups, &prior).unwrap();
                prior.add_judged(j.keys.clone()).unwrap();
                out.push(j);
            }
            out
        };
        let earlier = chain(&lookups_with(&before));
        let lookups = lookups_with(&after);
        let full = chain(&lookups);
        let mut prior = PriorKeys::default();
        for (((frame, month), old), want) in frames.iter().zip(&months).zip(earlier).zip(full) {
            let old = EarlierJudgement { accepted: through_parquet(&old.accepted), rejected: through_parquet(&old.rejected) };
            let got = rejudge(frame.clone().lazy(), old, *month, &lookups, &prior).unwrap();
            prop_assert!(got.accepted.equals_missing(&want.accepted), "accepted of {}:\n{}\nwanted\n{}", month, got.accepted, want.accepted);
            prop_assert!(got.rejected.equals_missing(&want.rejected), "rejected of {}:\n{}\nwanted\n{}", month, got.rejected, want.rejected);
            prop_assert!(sorted_keys(&got.keys).equals(&sorted_keys(&want.keys)), "keys of {}", month);
            prior.add_judged(got.keys).unwrap();
        }
    }
}

/// An invoice line of September that passes every check (its partner aside).
fn valid_line(number: &str, partner: &str) -> [String; 10] {
    [
        number,
        "1",
        "2026-09-01",
        "Invoice",
        partner,
        "MOC",
        "kit",
        "10",
        "10",
        "USD",
    ]
    .map(String::from)
}

#[test]
fn rows_that_share_a_row_number_are_judged_in_full() {
    // Rows numbered alike (as an earlier version numbered lines ending in a carriage return
    // alone) cannot be placed by file and row: the delivery is judged in full, not by
    // difference, and loses no row.
    use kpi_refresh::ingest::judge::{rejudge, EarlierJudgement};
    let month: Month = "2026-10".parse().unwrap();
    let numbers: Vec<String> = (1..=14).map(|i| format!("INV-{i}")).collect();
    let mut parsed = Parsed::new("a.csv", numbers.len());
    for (i, number) in numbers.iter().enumerate() {
        // The first three rows share row 2; the first names P2, which joins the roster.
        let partner = if i == 0 { "P2" } else { "P1" };
        let cells = valid_line(number, partner);
        let cells: [&str; 10] = std::array::from_fn(|k| cells[k].as_str());
        parsed.push(2 + i.saturating_sub(2) as u32, cells, [false; 10], month);
    }
    let frame =
        kpi_refresh::ingest::extract::concat_files(vec![parsed.into_frame().unwrap()]).unwrap();
    let old = judge(
        &frame,
        month,
        &lookups_with(&[true, false, false, false]),
        &PriorKeys::default(),
    )
    .unwrap();
    let new = lookups_with(&[true, true, false, false]);
    let want = judge(&frame, month, &new, &PriorKeys::default()).unwrap();
    let got = rejudge(
        frame.clone().lazy(),
        EarlierJudgement {
            accepted: old.accepted,
            rejected: old.rejected,
        },
        month,
        &new,
        &PriorKeys::default(),
    )
    .unwrap();
    assert_eq!(want.accepted.height(), 14);
    assert!(
        got.accepted.equals_missing(&want.accepted),
        "{}",
        got.accepted
    );
    assert!(got.rejected.equals_missing(&want.rejected));
}

/// The cases of [`judging_again_by_difference_equals_judging_in_full`] spelt out: a key
/// accepted by the second delivery whose copy in the first is accepted once its partner joins
/// the roster; and the other way round when the partner leaves it.
#[test]
fn a_key_accepted_earlier_after_a_roster_change_makes_a_later_copy_a_duplicate() {
    use kpi_refresh::ingest::judge::{rejudge, EarlierJudgement};
    let months: [Month; 2] = ["2026-09".parse().unwrap(), "2026-10".parse().unwrap()];
    let line = |partner: &str| valid_line("INV-7", partner);
    let frames = [
        delivery_frame(months[0], &[line("P2")]),
        delivery_frame(months[1], &[line("P1")]),
    ];
    let reasons = |j: &kpi_refresh::ingest::judge::Judged| -> (usize, Vec<String>) {
        let r = j.rejected.column("reason").unwrap().str().unwrap().clone();
        (
            j.accepted.height(),
            r.iter().flatten().map(String::from).collect(),
        )
    };
    for (before, after, second) in [
        (
            [true, false, false, false],
            [true, true, false, false],
            (0, vec!["duplicate_line".to_string()]),
        ),
        (
            [true, true, false, false],
            [true, false, false, false],
            (1, vec![]),
        ),
    ] {
        let (old, new) = (lookups_with(&before), lookups_with(&after));
        let j1 = judge(&frames[0], months[0], &old, &PriorKeys::default()).unwrap();
        let mut prior = PriorKeys::default();
        prior.add_judged(j1.keys).unwrap();
        let j2 = judge(&frames[1], months[1], &old, &prior).unwrap();
        let mut r1 = rejudge(
            frames[0].clone().lazy(),
            EarlierJudgement {
                accepted: j1.accepted,
                rejected: j1.rejected,
            },
            months[0],
            &new,
            &PriorKeys::default(),
        )
        .unwrap();
        let mut prior = PriorKeys::default();
        prior.add_judged(std::mem::take(&mut r1.keys)).unwrap();
        let r2 = rejudge(
            frames[1].clone().lazy(),
            EarlierJudgement {
                accepted: j2.accepted,
                rejected: j2.rejected,
            },
            months[1],
            &new,
            &prior,
        )
        .unwrap();
        assert_eq!(reasons(&r2), second, "roster {before:?} -> {after:?}");
    }
}

//! The anniversary watch (docs/rules.md §10): the hand-computed fixture
//! `tests/fixtures/watch` (its README works every figure out), the sheet read back, `explain`,
//! `[watch] lead_months`, and properties over generated programs and lines.

mod common;

use calamine::{Data, Reader};
use common::*;
use kpi_refresh::calendar::Month;
use kpi_refresh::config::program::Program;
use kpi_refresh::ingest::roster::Roster;
use kpi_refresh::kpi::{round4, Kpis};
use kpi_refresh::{exact, renewal, watch};
use polars::prelude::*;
use proptest::prelude::*;

#[test]
fn every_watch_field_matches_the_hand_computed_fixture() {
    let w = Work::from_fixture("watch");
    w.refresh("2026-11");
    let expected =
        std::fs::read_to_string(fixture("watch").join("expected/2026-11/watch-2026-11.csv"))
            .unwrap();
    assert_eq!(w.report("2026-11", "watch-2026-11.csv"), expected);
    // W1 is on track today, yet lapses at its anniversary if it buys nothing more.
    let partners = csv_rows(&w.report("2026-11", "partners-2026-11.csv"));
    let outlook = partners[0].iter().position(|h| h == "outlook").unwrap();
    let w1 = partners.iter().find(|r| r[0] == "W1").unwrap();
    assert_eq!(w1[outlook], "on_track");
    // The manifest lists the file with its hash.
    let manifest = w.report("2026-11", "manifest.json");
    assert!(
        manifest.contains("reports/2026-11/watch-2026-11.csv"),
        "{manifest}"
    );
}

#[test]
fn the_watch_sheet_follows_renewals_and_the_summary_counts_forecasts() {
    let w = Work::from_fixture("watch");
    w.refresh("2026-11");
    let path = w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx");
    let mut book = calamine::open_workbook_auto(&path).unwrap();
    let names = book.sheet_names();
    let at = |n: &str| names.iter().position(|s| s == n).unwrap();
    assert_eq!(at("Anniversary watch"), at("Renewals") + 1);
    assert_eq!(at("Invoice detail"), at("Anniversary watch") + 1);
    let sheet = book.worksheet_range("Anniversary watch").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(header[0], "Partner ID");
    assert_eq!(header[4], "Next anniversary");
    assert_eq!(header[8], "Secured courseware");
    assert_eq!(header[16], "Per month courseware");
    assert_eq!(header.last().unwrap(), "Forecast status");
    assert_eq!(rows.len(), 6);
    let w1 = rows
        .iter()
        .find(|r| r[0] == Data::String("W1".into()))
        .unwrap();
    // A date cell and numbers as numbers.
    assert!(matches!(w1[4], Data::DateTime(_)), "{:?}", w1[4]);
    assert_eq!(w1[8], Data::Float(7412.0));
    assert_eq!(w1[16], Data::Float(862.6667));
    assert_eq!(w1[20], Data::String("lapse".into()));
    let summary = book.worksheet_range("Summary").unwrap();
    let count = |item: &str| {
        summary
            .rows()
            .find(|r| {
                r[0] == Data::String("Forecast status".into()) && r[1] == Data::String(item.into())
            })
            .map(|r| r[2].clone())
    };
    assert_eq!(count("lapse"), Some(Data::Float(2.0)));
    assert_eq!(count("downgrade"), Some(Data::Float(2.0)));
    assert_eq!(count("extended"), Some(Data::Float(1.0)));
    assert_eq!(count("renew"), Some(Data::Float(0.0)));
}

#[test]
fn explain_tells_the_watch_in_words() {
    let w = Work::from_fixture("watch");
    w.refresh("2026-11");
    let out = w.run(&["explain", "--partner", "W1", "--refresh", "2026-11"]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for words in [
        "anniversary 2027-02-28",
        "decided on 2026-02 … 2027-01",
        "secured so far 7,412 of 10,000 courseware",
        "4,000 will leave the window by then",
        "still needed 2,588, about 862.67 a month",
        "blockers: none",
    ] {
        assert!(text.contains(words), "{words:?} missing in:\n{text}");
    }
    let out = w.run(&["explain", "--partner", "X1", "--refresh", "2026-11"]);
    assert_success(&out);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Anniversary watch"));
}

#[test]
fn lead_months_sets_how_far_ahead_the_watch_looks() {
    let w = Work::from_fixture("watch");
    let program = std::fs::read_to_string(w.input().join("program.toml")).unwrap();
    w.write(
        "program.toml",
        &program.replace("lead_months = 3", "lead_months = 0"),
    );
    w.refresh("2026-11");
    let rows = csv_rows(&w.report("2026-11", "watch-2026-11.csv"));
    let ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["W3"]);
    w.write(
        "program.toml",
        &program.replace("lead_months = 3", "lead_months = 1.5"),
    );
    let out = w.run(&["run", "--refresh", "2026-11", "--force"]);
    assert_exit(&out, 78, "watch.lead_months");
}

// ---- properties over generated programs and lines ----

const LEVELS: [&str; 4] = ["none", "action_pack", "silver", "gold"];

fn program_text(thresholds: &[(u32, u32)], from_2027: bool, ext: (u32, u32)) -> String {
    let mut t = String::from(
        "[kpi_categories]\ncourseware = [\"MOC\"]\ncertification = [\"Exam Voucher\"]\n\
         [markets]\ndefault = \"mature\"\nemerging = [\"BR\"]\n\
         [watch]\nlead_months = 12\n",
    );
    let dates = if from_2027 {
        vec!["2025-07-01", "2027-01-01"]
    } else {
        vec!["2025-07-01"]
    };
    for (i, date) in dates.iter().enumerate() {
        let (silver, gold) = thresholds[i];
        t.push_str(&format!(
            "[[requirements]]\neffective_from = {date}\nlevel = \"action_pack\"\nmin_mct = 1\n\
             [[requirements]]\neffective_from = {date}\nlevel = \"silver\"\nmin_mct = 2\nkpi = {{ courseware = {silver}, certification = {} }}\n\
             [[requirements]]\neffective_from = {date}\nlevel = \"gold\"\nmarket = \"mature\"\nmin_mct = 3\nkpi = {{ courseware = {gold} }}\n",
            silver / 4
        ));
    }
    t.push_str(&format!(
        "[[extensions]]\nname = \"X\"\nanniversary_from = 2026-{:02}-01\nanniversary_to = 2027-{:02}-28\n",
        ext.0, ext.1
    ));
    t
}

type GenPartner = (usize, u32, u32, bool, bool, bool, u32);

fn roster_of(partners: &[GenPartner]) -> Roster {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partners.csv");
    let mut text = format!("{ROSTER_HEADER}\n");
    let yes = |b: bool| if b { "yes" } else { "no" };
    for (i, (level, month, day, exams, perf, active, mct)) in partners.iter().enumerate() {
        let level = LEVELS[*level];
        let enrolled = if level == "none" {
            String::new()
        } else {
            format!("2024-{month:02}-{day:02}")
        };
        let competency = if level == "silver" || level == "gold" {
            "Security"
        } else {
            ""
        };
        let country = if i % 3 == 0 { "BR" } else { "SE" };
        text.push_str(&format!(
            "G{i:03},Partner {i},{country},{level},{competency},{enrolled},{mct},{},{},{},,,\n",
            yes(*exams),
            yes(*perf),
            yes(*active)
        ));
    }
    std::fs::write(&path, text).unwrap();
    Roster::load(&path).unwrap()
}

fn gen_partner() -> impl Strategy<Value = GenPartner> {
    (
        0usize..4,
        1u32..13,
        1u32..29,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u32..5,
    )
}

fn gen_lines(n: usize) -> impl Strategy<Value = Vec<(usize, bool, i32, i64)>> {
    // (partner, certification?, month offset from R-12, kpi in ten-thousandths)
    proptest::collection::vec(
        (0..n, any::<bool>(), 0i32..12, -2_000_000i64..40_000_000),
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn due_forecasts_equal_decisions_and_secured_plus_leaving_is_the_kpi(
        partners in proptest::collection::vec(gen_partner(), 1..24),
        lines in gen_lines(24),
        thresholds in proptest::collection::vec((0u32..20_000, 0u32..60_000), 2),
        from_2027 in any::<bool>(),
        ext in (1u32..13, 1u32..13),
        refresh_month in 1u32..13,
    ) {
        let program = Program::parse(&program_text(&thresholds, from_2027, ext)).unwrap();
        let roster = roster_of(&partners);
        let refresh = Month::new(2026, refresh_month).unwrap();
        let (from, _) = refresh.window();
        let ids: Vec<String> = roster.partners.iter().map(|p| p.partner_id.clone()).collect();
        let lines: Vec<_> = lines.into_iter().filter(|l| l.0 < ids.len()).collect();
        let mut frame = df!(
            "partner_id" => lines.iter().map(|l| ids[l.0].as_str()).collect::<Vec<_>>(),
            "category" => lines.iter().map(|l| if l.1 { "certification" } else { "courseware" }).collect::<Vec<_>>(),
            "month_index" => lines.iter().map(|l| from.index() + l.2).collect::<Vec<_>>(),
        ).unwrap();
        // The ledger's decimals: KPI values of 4 places, USD revenues of 16.
        let units = |scale: i128| lines.iter().map(|l| Some(i128::from(l.3) * scale)).collect_ca("".into());
        frame.with_column(exact::column("kpi_value", units(1), exact::AMOUNT_SCALE).unwrap()).unwrap();
        frame.with_column(exact::column("revenue_usd", units(1_000_000_000_000), exact::USD_SCALE).unwrap()).unwrap();
        let sums = kpi_refresh::kpi::month_sums(frame.lazy()).unwrap().lazy();
        let mut kpis = Kpis::new(vec![sums], refresh, &program).unwrap();
        let totals = kpis.totals().unwrap();
        let decisions = renewal::decide(&program, &roster, refresh, &totals, None);
        let secured = kpis.secured(&watch::watched(&decisions, 12)).unwrap();
        let rows = watch::build(&program, &roster, &decisions, 12, &secured);
        let enrolled = decisions.iter().filter(|d| d.enrollment.as_str() != "none").count();
        prop_assert_eq!(rows.len(), enrolled, "a lead of 12 months watches every enrolled partner");
        for w in &rows {
            let d = &decisions[w.index];
            if d.due {
                prop_assert_eq!(w.forecast_level, d.qualified_level);
                prop_assert_eq!(w.forecast_status, d.status);
                prop_assert!(w.per_month.is_none());
            }
            for k in 0..2 {
                prop_assert!((round4(w.secured[k] + w.leaving[k]) - round4(d.kpis.kpi[k])).abs() < 1e-9);
                prop_assert!(w.still_needed[k] >= 0.0);
            }
        }
    }
}

#[test]
fn every_sheet_has_a_frozen_header_and_a_worksheet_autofilter() {
    let w = Work::from_fixture("watch");
    w.refresh("2026-11");
    let path = w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx");
    let mut zip = ::zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut read = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
        text
    };
    let sheets = read("xl/workbook.xml").matches("<sheet ").count();
    assert_eq!(sheets, 13);
    for n in 1..=sheets {
        let xml = read(&format!("xl/worksheets/sheet{n}.xml"));
        assert!(
            xml.contains("state=\"frozen\""),
            "sheet {n} has no frozen header"
        );
        assert!(
            xml.contains("<autoFilter ref="),
            "sheet {n} has no autofilter"
        );
    }
}

//! The verdicts of a delivery's rows short of `duplicate_line` (docs/rules.md §3, reasons
//! 1–10): [`prepare`], one pass over the parsed rows in order, each looked up in this run's
//! roster, OMLP types and rates ([`Lookups`]).

use polars::prelude::*;

use super::lookups::Lookups;
use super::prior_keys::key_hashes;
use crate::exact;

/// The verdicts of a delivery's rows before the keys accepted earlier are looked at: for each
/// row in `seq` order, the first reason that applies short of `duplicate_line` (null for a
/// row still standing), its USD rate, canonical OMLP type and category, its key's parts and
/// their hash. It depends on the rows and the lookups alone, so it can be worked out ahead of
/// the deliveries before it.
pub struct Verdicts {
    pub(super) verdicts: DataFrame,
}

impl Verdicts {
    /// About how many MiB the verdicts take (see [`crate::logging::frame_mib`]).
    pub fn mib(&self) -> usize {
        crate::logging::frame_mib(&self.verdicts)
    }
}

/// What one row looks up, answered once for each distinct OMLP spelling and (month,
/// currency): a delivery has few of either.
struct Answers<'a> {
    lookups: &'a Lookups,
    omlp: PlHashMap<&'a str, Option<(&'a str, &'a str)>>,
    rates: PlHashMap<(i32, &'a str), Option<i128>>,
}

impl<'a> Answers<'a> {
    /// The canonical spelling and category of an OMLP type, matched ignoring case.
    fn omlp(&mut self, spelling: &'a str) -> Option<(&'a str, &'a str)> {
        let lookups = self.lookups;
        *self
            .omlp
            .entry(spelling)
            .or_insert_with(|| lookups.omlp_rule(spelling))
    }

    /// The USD rate of a currency in a month (USD's is 1, whatever the month).
    fn rate(&mut self, month: Option<i32>, ccy: &'a str) -> Option<i128> {
        if ccy == "USD" {
            return Some(10i128.pow(exact::RATE_SCALE as u32));
        }
        let lookups = self.lookups;
        let month = month?;
        *self
            .rates
            .entry((month, ccy))
            .or_insert_with(|| lookups.rate(month, ccy))
    }
}

/// Whether an invoice has a negative value or a credit note a positive one.
fn sign_mismatch(credit: Option<bool>, kpi: Option<i128>, rev: Option<i128>) -> bool {
    match (credit, kpi, rev) {
        (Some(false), Some(kpi), Some(rev)) => kpi < 0 || rev < 0,
        (Some(true), Some(kpi), Some(rev)) => kpi > 0 || rev > 0,
        // (A row without them has its reason already: a missing or invalid value.)
        _ => false,
    }
}

/// Works out the verdicts of `parsed` (rows in `seq` order) up to `duplicate_line`: the
/// reason settled by the parse, else `unknown_partner`, `unknown_omlp_type`, `sign_mismatch`
/// or `no_fx_rate`, the first that applies. Every row gets its OMLP type's canonical spelling
/// and category, and its USD rate, where they exist.
pub fn prepare(parsed: &DataFrame, lookups: &Lookups) -> PolarsResult<Verdicts> {
    let n = parsed.height();
    let text = |name: &str| -> PolarsResult<&StringChunked> { parsed.column(name)?.str() };
    let (mut pre, mut partner) = (text("pre_reason")?.iter(), text("partner_id")?.iter());
    let (mut omlp, mut ccy) = (text("omlp_type")?.iter(), text("ccy")?.iter());
    let mut month = parsed.column("month_index")?.i32()?.iter();
    let mut credit = parsed.column("credit")?.bool()?.iter();
    let (kpi, _) = exact::units(parsed.column("kpi")?)?;
    let (rev, _) = exact::units(parsed.column("rev")?)?;
    let (mut kpi, mut rev) = (kpi.iter(), rev.iter());

    let mut answers = Answers {
        lookups,
        omlp: PlHashMap::new(),
        rates: PlHashMap::new(),
    };
    let builder = |name: &str| StringChunkedBuilder::new(name.into(), n);
    let (mut reason, mut canonical) = (builder("reason"), builder("omlp_canonical"));
    let mut category = builder("category");
    let mut usd_rate: Vec<Option<i128>> = Vec::with_capacity(n);
    for _ in 0..n {
        let pre = pre.next().flatten();
        let in_roster = partner
            .next()
            .flatten()
            .is_some_and(|id| lookups.in_roster(id));
        let rule = omlp.next().flatten().and_then(|t| answers.omlp(t));
        let month = month.next().flatten();
        let rate = ccy.next().flatten().and_then(|c| answers.rate(month, c));
        let mismatch = sign_mismatch(
            credit.next().flatten(),
            kpi.next().flatten(),
            rev.next().flatten(),
        );
        let why = pre.or(if !in_roster {
            Some("unknown_partner")
        } else if rule.is_none() {
            Some("unknown_omlp_type")
        } else if mismatch {
            Some("sign_mismatch")
        } else if rate.is_none() {
            Some("no_fx_rate")
        } else {
            None
        });
        reason.append_option(why);
        canonical.append_option(rule.map(|r| r.0));
        category.append_option(rule.map(|r| r.1));
        usd_rate.push(rate);
    }
    let usd_rate = exact::column(
        "usd_rate",
        usd_rate.into_iter().collect_ca("usd_rate".into()),
        exact::RATE_SCALE,
    )?;
    let mut verdicts = DataFrame::new(
        n,
        vec![
            reason.finish().into_column(),
            usd_rate,
            canonical.finish().into_column(),
            category.finish().into_column(),
            parsed.column("invoice_number")?.clone(),
            parsed.column("line_no")?.clone(),
            parsed.column("seq")?.clone(),
        ],
    )?;
    let hashes = key_hashes(
        verdicts.column("invoice_number")?,
        verdicts.column("line_no")?,
    )?;
    verdicts.with_column(hashes)?;
    Ok(Verdicts { verdicts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Month;
    use crate::config::program::Program;
    use crate::ingest::extract::Parsed;
    use crate::ingest::fx::FxRates;
    use crate::ingest::roster::Roster;

    const PROGRAM: &str =
        "[kpi_categories]\ncourseware = [\"MOC\", \"Σίγμα-Kit\"]\nexams = [\"Exam\"]";

    fn inputs() -> (Program, Roster, FxRates) {
        let dir = tempfile::tempdir().unwrap();
        let roster = dir.path().join("partners.csv");
        std::fs::write(
            &roster,
            "partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active\n\
             P1,One,SE,none,,,0,no,no,no\nP2,Two,DE,none,,,0,no,no,no\n",
        )
        .unwrap();
        let fx = dir.path().join("fx.csv");
        std::fs::write(
            &fx,
            "month,currency,usd_per_unit\n2026-09,EUR,1.0825\n2026-10,SEK,0.0912\n",
        )
        .unwrap();
        (
            Program::parse(PROGRAM).unwrap(),
            Roster::load(&roster).unwrap(),
            FxRates::load(&fx).unwrap(),
        )
    }

    /// The same verdicts as joins of the rows against the lookups as tables, on polars' lazy
    /// API: the second implementation [`prepare`] is checked against.
    fn prepare_by_joins(
        parsed: &DataFrame,
        program: &Program,
        roster: &Roster,
        fx: &FxRates,
    ) -> DataFrame {
        let ids: Vec<&str> = roster
            .partners
            .iter()
            .map(|p| p.partner_id.as_str())
            .collect();
        let partners = df!("partner_id" => ids)
            .unwrap()
            .lazy()
            .with_column(lit(true).alias("in_roster"));
        let omlp = program.omlp_table();
        let omlp = df!(
            "omlp_key" => omlp.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            "omlp_canonical" => omlp.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            "category" => omlp.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        )
        .unwrap();
        let rows = fx.rows();
        let mut rates = df!(
            "month_index" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "ccy" => rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        )
        .unwrap();
        let units = rows.iter().map(|r| Some(r.2)).collect_ca("rate".into());
        rates
            .with_column(exact::column("rate", units, exact::RATE_SCALE).unwrap())
            .unwrap();
        let on = |names: &[&str]| names.iter().map(|n| col(*n)).collect::<Vec<_>>();
        let left = || JoinArgs::new(JoinType::Left);
        let rate = when(col("ccy").eq(lit("USD")))
            .then(lit(1).cast(exact::dtype(exact::RATE_SCALE)))
            .otherwise(col("rate"));
        let sign_mismatch = (col("credit")
            .not()
            .and(col("kpi").lt(lit(0)).or(col("rev").lt(lit(0)))))
        .or(col("credit").and(col("kpi").gt(lit(0)).or(col("rev").gt(lit(0)))));
        let reason = when(col("pre_reason").is_not_null())
            .then(col("pre_reason"))
            .when(col("in_roster").is_null())
            .then(lit("unknown_partner"))
            .when(col("category").is_null())
            .then(lit("unknown_omlp_type"))
            .when(sign_mismatch)
            .then(lit("sign_mismatch"))
            .when(col("usd_rate").is_null())
            .then(lit("no_fx_rate"))
            .otherwise(lit(NULL).cast(DataType::String));
        parsed
            .clone()
            .lazy()
            .with_column(col("omlp_type").str().to_lowercase().alias("omlp_key"))
            .join(partners, on(&["partner_id"]), on(&["partner_id"]), left())
            .join(omlp.lazy(), on(&["omlp_key"]), on(&["omlp_key"]), left())
            .join(
                rates.lazy(),
                on(&["month_index", "ccy"]),
                on(&["month_index", "ccy"]),
                left(),
            )
            .with_column(rate.alias("usd_rate"))
            .with_column(reason.alias("reason"))
            .sort(["seq"], SortMultipleOptions::default())
            .select([
                col("reason"),
                col("usd_rate"),
                col("omlp_canonical"),
                col("category"),
                col("invoice_number"),
                col("line_no"),
                col("seq"),
            ])
            .collect()
            .unwrap()
    }

    /// A row of each kind: (partner, OMLP type, document type, kpi, revenue, currency, date),
    /// and the reason due.
    #[rustfmt::skip]
    fn rows() -> Vec<([&'static str; 7], Option<&'static str>)> {
        vec![
            (["P1", "MOC", "Invoice", "1", "10", "USD", "2026-10-02"], None),
            (["P2", "moc", "Invoice", "1", "10", "SEK", "2026-10-02"], None),
            (["P1", "EXAM", "Credit Note", "-1", "-10", "EUR", "2026-09-30"], None),
            (["P1", "σίγμα-kit", "Invoice", "0", "0", "usd", "2026-10-02"], None),
            (["P9", "MOC", "Invoice", "1", "10", "USD", "2026-10-02"], Some("unknown_partner")),
            (["p1", "MOC", "Invoice", "1", "10", "USD", "2026-10-02"], Some("unknown_partner")),
            (["P1", "Book", "Invoice", "1", "10", "USD", "2026-10-02"], Some("unknown_omlp_type")),
            (["P9", "Book", "Invoice", "-1", "10", "USD", "2026-10-02"], Some("unknown_partner")),
            (["P1", "MOC", "Invoice", "-1", "10", "USD", "2026-10-02"], Some("sign_mismatch")),
            (["P1", "MOC", "Credit Note", "0", "10", "EUR", "2026-10-02"], Some("sign_mismatch")),
            (["P1", "MOC", "Invoice", "1", "10", "EUR", "2026-10-02"], Some("no_fx_rate")),
            (["P1", "MOC", "Invoice", "1", "10", "SEK", "2026-09-02"], Some("no_fx_rate")),
            (["P1", "MOC", "Invoice", "", "10", "USD", "2026-10-02"], Some("missing_value:kpi_value")),
            (["P1", "MOC", "Order Confirmation", "1", "1", "USD", "2026-10-02"], Some("not_an_invoice")),
        ]
    }

    /// The rows of `rows` parsed, in delivery 2026-10.
    fn parsed_of(rows: &[([&str; 7], Option<&str>)]) -> DataFrame {
        let oct: Month = "2026-10".parse().unwrap();
        let mut parsed = Parsed::new("f.csv", rows.len());
        for (i, ([partner, omlp, doc, kpi, rev, ccy, date], _)) in rows.iter().enumerate() {
            let line = (i + 1).to_string();
            let cells = [
                "INV-1", &line, date, doc, partner, omlp, "kit", kpi, rev, ccy,
            ];
            parsed.push(i as u32 + 2, cells, [false; 10], oct);
        }
        parsed.into_frame().unwrap()
    }

    #[test]
    fn every_reason_up_to_duplicates_agrees_with_joins_on_the_lookup_tables() {
        let (program, roster, fx) = inputs();
        let lookups = Lookups::new(&program, &roster, &fx).unwrap();
        let rows = rows();
        let parsed = parsed_of(&rows);
        let verdicts = prepare(&parsed, &lookups).unwrap().verdicts;
        let reasons: Vec<Option<&str>> = verdicts
            .column("reason")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        let due: Vec<Option<&str>> = rows.iter().map(|r| r.1).collect();
        assert_eq!(reasons, due);
        let by_joins = prepare_by_joins(&parsed, &program, &roster, &fx);
        let ours = verdicts.drop("key_hash").unwrap();
        assert!(ours.equals_missing(&by_joins), "{ours}\n{by_joins}");
        // A hash for every row's key.
        assert_eq!(verdicts.column("key_hash").unwrap().null_count(), 0);
    }

    #[test]
    fn an_omlp_type_is_lowered_as_program_toml_lowers_it() {
        // A final Σ after 16 ASCII letters: lowered to ς, as Rust lowers program.toml's types
        // (polars 0.55's lowering gives σ there).
        let spelling = "ABCDEFGHIJKLMNOPΣ";
        let program =
            Program::parse(&format!("[kpi_categories]\nexams = [\"{spelling}\"]")).unwrap();
        let (_, roster, fx) = inputs();
        let lookups = Lookups::new(&program, &roster, &fx).unwrap();
        let rows = [(
            ["P1", spelling, "Invoice", "1", "10", "USD", "2026-10-02"],
            None,
        )];
        let parsed = parsed_of(&rows);
        let verdicts = prepare(&parsed, &lookups).unwrap().verdicts;
        let column = |name: &str| verdicts.column(name).unwrap().str().unwrap().get(0);
        assert_eq!(column("reason"), None);
        assert_eq!(column("category"), Some("exams"));
        // The asks name the type as the verdicts looked it up, so the lookups' answers (and
        // their digests) follow program.toml's rule for it.
        let asks = super::super::LookupKeys::of(&parsed).unwrap();
        assert_eq!(asks.omlp_keys, ["abcdefghijklmnopς"]);
        assert!(lookups.omlp_rule(&asks.omlp_keys[0]).is_some());
    }
}

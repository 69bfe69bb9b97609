//! KPIs over the refresh window (`docs/rules.md §5`), computed by the SQL in `sql/` with polars'
//! `SQLContext`.
//!
//! The ledger's accepted lines are registered as `lines` and the refresh's parameters as the
//! one-row table `params` (never formatted into SQL text). `window_months.sql` turns `params`
//! into the window's twelve months: polars SQL cannot compare a column with a scalar subquery,
//! and filtering by an inequality join on `params` costs 25 times an equi-join on the months
//! (22 s against 0.9 s on 6.4 million lines). `window_sums.sql` adds up the deliveries' month
//! sums; totals and the monthly table are built from its sums. `categories` gives the order of
//! `[kpi_categories]`; `due` names the partners whose invoice detail is shown.
//!
//! The lines are not read at all at a refresh: `month_sums.sql` sums each delivery's lines per
//! partner, category and month when its partition is written, the ledger keeps those sums, and
//! `window_sums.sql` adds up the window's months of every delivery in reach.

use std::collections::HashMap;

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::calendar::Month;
use crate::config::program::Program;
use crate::error::Result;
use crate::exact;

const WINDOW_MONTHS: &str = include_str!("../sql/window_months.sql");
const MONTH_SUMS: &str = include_str!("../sql/month_sums.sql");
const WINDOW_SUMS: &str = include_str!("../sql/window_sums.sql");
const WINDOW_TOTALS: &str = include_str!("../sql/window_totals.sql");
const MONTHLY_KPIS: &str = include_str!("../sql/monthly_kpis.sql");
const INVOICE_DETAIL: &str = include_str!("../sql/invoice_detail.sql");
const WATCH_SECURED: &str = include_str!("../sql/watch_secured.sql");

/// One partner's window totals, category values in `[kpi_categories]` order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartnerKpis {
    pub kpi: Vec<f64>,
    pub revenue_usd: f64,
    pub lines: u64,
}

/// The SQL context of one refresh.
pub struct Kpis {
    ctx: SQLContext,
    categories: Vec<String>,
}

impl Kpis {
    /// Registers the refresh's parameters and sums the window from `month_sums`: the
    /// [`month_sums`] of each delivery that can hold a window line, in delivery order.
    pub fn new(
        month_sums: Vec<LazyFrame>,
        refresh: Month,
        program: &Program,
    ) -> PolarsResult<Kpis> {
        let mut ctx = window_context(refresh)?;
        let month_sums = match month_sums.is_empty() {
            true => no_sums()?,
            false => concat(month_sums, UnionArgs::default())?,
        };
        ctx.register("month_sums", month_sums);
        // The sums are exact decimals (see crate::exact), the same in any order, so the
        // streaming engine may add them up on both cores in any order (0.42–0.6 s → 0.24–0.33 s
        // in the monthly run); the queries that read them sort their results.
        let mut sums = streamed(ctx.execute(WINDOW_SUMS)?)?;
        sums.rechunk_mut_par();
        ctx.unregister("month_sums");
        ctx.register("window_sums", sums.lazy());
        let categories: Vec<String> = program.categories.iter().map(|c| c.name.clone()).collect();
        let positions: Vec<i32> = (0..categories.len() as i32).collect();
        ctx.register(
            "categories",
            df!("category" => &categories, "position" => positions)?.lazy(),
        );
        Ok(Kpis { ctx, categories })
    }

    /// Window totals per partner (partners without a line in the window are absent), each
    /// figure the exact sum rounded to 4 decimals.
    pub fn totals(&mut self) -> Result<HashMap<String, PartnerKpis>> {
        let df = self.ctx.execute(WINDOW_TOTALS)?.collect()?;
        let ids = df.column("partner_id")?.str()?;
        let cats = df.column("category")?.str()?;
        let kpi = exact::round4_column(df.column("kpi")?)?;
        let kpi = kpi.f64()?;
        let (revenue, revenue_scale) = exact::units(df.column("revenue_usd")?)?;
        let lines = df.column("lines")?.cast(&DataType::UInt64)?;
        let lines = lines.u64()?;
        let mut out: HashMap<String, (PartnerKpis, i128)> = HashMap::new();
        let n = self.categories.len();
        for i in 0..df.height() {
            let (Some(id), Some(cat)) = (ids.get(i), cats.get(i)) else {
                continue;
            };
            let Some(k) = self.categories.iter().position(|c| c == cat) else {
                continue;
            };
            let (entry, revenue_units) = out.entry(id.to_string()).or_insert_with(|| {
                let kpis = PartnerKpis {
                    kpi: vec![0.0; n],
                    ..Default::default()
                };
                (kpis, 0)
            });
            entry.kpi[k] = kpi.get(i).unwrap_or(0.0);
            *revenue_units += revenue.get(i).unwrap_or(0);
            entry.lines += lines.get(i).unwrap_or(0);
        }
        Ok(out
            .into_iter()
            .map(|(id, (mut kpis, revenue_units))| {
                kpis.revenue_usd = exact::round4_f64(revenue_units, revenue_scale);
                (id, kpis)
            })
            .collect())
    }

    /// The anniversary watch's secured KPIs: for each `(partner_id, months_to_anniversary)` in
    /// `watched`, the sums of its window lines dated from R-12 + months_to_anniversary on, per
    /// category in `[kpi_categories]` order (partners without such a line are absent).
    pub fn secured(&mut self, watched: &[(&str, i32)]) -> Result<HashMap<String, Vec<f64>>> {
        let ids: Vec<&str> = watched.iter().map(|w| w.0).collect();
        let months: Vec<i32> = watched.iter().map(|w| w.1).collect();
        self.ctx.register(
            "watched",
            df!("partner_id" => ids, "months_to_anniversary" => months)?.lazy(),
        );
        let df = self.ctx.execute(WATCH_SECURED)?.collect()?;
        let ids = df.column("partner_id")?.str()?;
        let cats = df.column("category")?.str()?;
        let secured = exact::round4_column(df.column("secured")?)?;
        let secured = secured.f64()?;
        let mut out: HashMap<String, Vec<f64>> = HashMap::new();
        for i in 0..df.height() {
            let (Some(id), Some(cat)) = (ids.get(i), cats.get(i)) else {
                continue;
            };
            let Some(k) = self.categories.iter().position(|c| c == cat) else {
                continue;
            };
            out.entry(id.to_string())
                .or_insert_with(|| vec![0.0; self.categories.len()])[k] =
                secured.get(i).unwrap_or(0.0);
        }
        Ok(out)
    }

    /// Monthly KPIs: partner_id, category, m00 … m11 (window months, oldest first), total.
    pub fn monthly(&mut self) -> Result<DataFrame> {
        const SUMS: [&str; 13] = [
            "m00", "m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09", "m10", "m11",
            "total",
        ];
        let monthly = self.ctx.execute(MONTHLY_KPIS)?;
        let monthly = monthly.drop(cols(["category_position"])).collect()?;
        Ok(exact::round4_columns(monthly, &SUMS)?)
    }
}

/// One delivery's sums per partner, KPI category and month (`month_sums.sql`), sorted: what
/// the ledger keeps beside the delivery's `lines` and the window is summed from.
pub fn month_sums(lines: LazyFrame) -> PolarsResult<DataFrame> {
    let mut ctx = SQLContext::new();
    ctx.register("lines", lines);
    ctx.execute(MONTH_SUMS)?.collect()
}

/// No month sum, with the columns the window's SQL reads.
fn no_sums() -> PolarsResult<LazyFrame> {
    Ok(DataFrame::new(
        0,
        vec![
            Column::new("partner_id".into(), Vec::<String>::new()),
            Column::new("category".into(), Vec::<String>::new()),
            Column::new("month_index".into(), Vec::<i32>::new()),
            exact::empty_column("kpi_value", exact::AMOUNT_SCALE)?,
            exact::empty_column("revenue_usd", exact::USD_SCALE)?,
            Column::new("lines".into(), Vec::<u32>::new()),
        ],
    )?
    .lazy())
}

/// The SQL context of the window: `params`, `month_offsets` and `window_months`.
fn window_context(refresh: Month) -> PolarsResult<SQLContext> {
    let (from, to) = refresh.window();
    let mut ctx = SQLContext::new();
    let params = df!(
        "refresh" => [refresh.to_string()],
        "window_from" => [from.index()],
        "window_to" => [to.index()],
    )?;
    ctx.register("params", params.lazy());
    ctx.register(
        "month_offsets",
        df!("month_offset" => (0..12).collect::<Vec<i32>>())?.lazy(),
    );
    let months = ctx.execute(WINDOW_MONTHS)?.collect()?;
    ctx.register("window_months", months.lazy());
    Ok(ctx)
}

/// Invoice detail: the window's lines of the partners `due` in the refresh, sorted by partner,
/// date, invoice # and line. It needs no KPI, so it can be worked out (and its sheet written)
/// while the KPIs are computed.
pub fn invoice_detail(lines: LazyFrame, refresh: Month, due: &[&str]) -> Result<DataFrame> {
    // The SQL's join on `due` is also given to the scan as a filter on the partner: polars
    // pushes a filter, not a join, into the Parquet reader, which then decodes the other
    // columns for the due partners' rows only (0.4 s against 0.8 s for the 5.9 million lines of the benchmark).
    let due_ids = Series::new("partner_id".into(), due);
    let lines = lines.filter(col("partner_id").is_in(lit(due_ids).implode(false), false));
    let mut ctx = window_context(refresh)?;
    ctx.register("lines", lines);
    ctx.register("due", df!("partner_id" => due)?.lazy());
    // The amounts as the numbers a sheet holds, each the nearest to its exact value.
    let lines = streamed(ctx.execute(INVOICE_DETAIL)?)?;
    Ok(exact::f64_columns(
        lines,
        &["kpi_value", "revenue", "revenue_usd"],
    )?)
}

/// Runs a query over the ledger on polars' streaming engine, which reads the Parquet files in
/// batches instead of loading every column first (a lower peak memory). Only for queries whose
/// result does not depend on the order of the batches: exact sums, or a sorted selection.
fn streamed(lf: LazyFrame) -> PolarsResult<DataFrame> {
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// Rounds to 4 decimals, as every KPI figure is compared and shown (docs/rules.md §5): the
/// value times 10,000 rounded half away from zero, and -0 given as 0. From 2⁵³ ten-thousandths
/// on (about 9 × 10¹¹) doubles lie further apart than 0.0001, so every one is as rounded as it
/// can be and is given back as it is (multiplying and dividing would move it).
pub fn round4(x: f64) -> f64 {
    const EVERY_DOUBLE_IS_ROUNDED: f64 = (1u64 << 53) as f64 / 10_000.0;
    if x.abs() >= EVERY_DOUBLE_IS_ROUNDED {
        return x;
    }
    let r = (x * 10_000.0).round() / 10_000.0;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ties: values whose product by 10,000 is exactly half-way between two integers (checked
    /// on the scaled value, since 2.50005 itself is not exact in binary).
    const TIES: [(f64, f64); 5] = [
        (0.03125, 313.0),
        (-0.03125, -313.0),
        (0.15625, 1563.0),
        (2.50005, 25001.0),
        (0.00005, 1.0),
    ];

    #[test]
    fn ties_round_half_away_from_zero_as_exact_sums_do() {
        for (x, units) in TIES {
            assert_eq!((x * 10_000.0).fract().abs(), 0.5, "{x} is a tie");
            assert_eq!(round4(x), units / 10_000.0, "{x}");
        }
        assert_eq!(round4(-0.00001).to_bits(), 0.0f64.to_bits());
        assert_eq!(round4(1.23456), 1.2346);
        // An exact sum rounded and made a double is rounded again to itself, however large.
        for units in [9_972_872_710_635_983i128, -12_345_678_901_234_567_891] {
            let figure = exact::f64_of_units4(units);
            assert_eq!(round4(figure).to_bits(), figure.to_bits(), "{units}");
        }
        // The same ties as exact decimals of 5 places (the sums' rounding, crate::exact).
        for (x, units) in TIES {
            let exact_units = (x * 100_000.0).round() as i128;
            assert_eq!(exact::round4_units(exact_units, 5), units as i128, "{x}");
        }
    }

    fn program() -> Program {
        Program::parse(
            "[kpi_categories]\ncourseware = [\"MOC\"]\ncertification = [\"Exam Voucher\"]",
        )
        .unwrap()
    }

    fn lines(rows: &[(&str, &str, &str, f64, f64)]) -> LazyFrame {
        let month_index: Vec<i32> = rows
            .iter()
            .map(|r| r.2.parse::<Month>().unwrap().index())
            .collect();
        let mut df = df!(
            "partner_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "category" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "month_index" => month_index,
        )
        .unwrap();
        // As the ledger holds them: decimals of 4 places, and USD revenues of 16 (these have
        // at most 4 significant places).
        let units = |x: f64| Some((x * 10_000.0).round() as i128);
        let kpi = rows.iter().map(|r| units(r.3)).collect_ca("".into());
        let usd = rows
            .iter()
            .map(|r| units(r.4).map(|u| u * 1_000_000_000_000))
            .collect_ca("".into());
        df.with_column(exact::column("kpi_value", kpi, exact::AMOUNT_SCALE).unwrap())
            .unwrap();
        df.with_column(exact::column("revenue_usd", usd, exact::USD_SCALE).unwrap())
            .unwrap();
        df.lazy()
    }

    #[test]
    fn window_edges_r12_and_r1_count_r13_and_r_do_not() {
        let l = lines(&[
            ("P1", "courseware", "2025-10", 1000.0, 1.0),
            ("P1", "courseware", "2025-11", 10.0, 1.0),
            ("P1", "courseware", "2026-10", 5.5, 2.0),
            ("P1", "courseware", "2026-11", 1000.0, 1.0), // R
            ("P1", "certification", "2026-01", -2.25, -1.0),
            ("P2", "certification", "2026-12", 7.0, 1.0),
        ]);
        let mut k = Kpis::new(vec![sums(l)], "2026-11".parse().unwrap(), &program()).unwrap();
        let t = k.totals().unwrap();
        assert_eq!(t["P1"].kpi, vec![15.5, -2.25]);
        assert_eq!(t["P1"].revenue_usd, 2.0);
        assert_eq!(t["P1"].lines, 3);
        assert!(!t.contains_key("P2"));
        let m = k.monthly().unwrap();
        assert_eq!(m.height(), 2);
        // Category order is the program's, not alphabetical.
        assert_eq!(
            m.column("category").unwrap().str().unwrap().get(0),
            Some("courseware")
        );
        assert_eq!(m.column("m00").unwrap().f64().unwrap().get(0), Some(10.0));
        assert_eq!(m.column("m11").unwrap().f64().unwrap().get(0), Some(5.5));
        // A month without a line is 0, not empty.
        assert_eq!(m.column("m05").unwrap().f64().unwrap().get(0), Some(0.0));
        assert_eq!(m.column("m00").unwrap().f64().unwrap().get(1), Some(0.0));
        assert_eq!(m.column("total").unwrap().f64().unwrap().get(0), Some(15.5));
    }

    /// A delivery's month sums, as the ledger keeps them.
    fn sums(lines: LazyFrame) -> LazyFrame {
        month_sums(lines).unwrap().lazy()
    }

    /// Random lines: `n` over the partners `ids`, two categories and the months `months`, from
    /// a small deterministic generator (no extra dependency) seeded with `seed`.
    fn random_rows<'a>(
        seed: u64,
        n: usize,
        ids: &'a [String],
        months: &'a [String],
    ) -> Vec<(&'a str, &'static str, &'a str, f64, f64)> {
        let mut seed = seed;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        (0..n)
            .map(|_| {
                let kpi = (next(2_000_000) as f64 - 500_000.0) / 10_000.0;
                let cat = if next(2) == 0 {
                    "courseware"
                } else {
                    "certification"
                };
                let id = ids[next(ids.len() as u64) as usize].as_str();
                let month = months[next(months.len() as u64) as usize].as_str();
                (id, cat, month, kpi, kpi * 1.0856)
            })
            .collect()
    }

    #[test]
    fn sql_month_sums_match_the_lazy_api_and_come_sorted() {
        let months: Vec<String> = (0..14)
            .map(|i| Month::new(2025, 10).unwrap().plus(i).to_string())
            .collect();
        let ids: Vec<String> = (0..25).map(|i| format!("P{i:03}")).collect();
        let rows = random_rows(0x5DEECE66D, 3000, &ids, &months);
        let sql = month_sums(lines(&rows)).unwrap();
        assert_eq!(
            sql.column("revenue_usd").unwrap().dtype(),
            &exact::dtype(exact::USD_SCALE)
        );
        let keys = ["partner_id", "category", "month_index"];
        let lazy = lines(&rows)
            .group_by(keys.map(col))
            .agg([
                col("kpi_value").sum(),
                col("revenue_usd").sum(),
                len().alias("lines"),
            ])
            .sort(keys, SortMultipleOptions::default())
            .collect()
            .unwrap();
        assert!(sql.height() > 500, "{}", sql.height());
        assert_eq!(sql.height(), lazy.height());
        // Exact sums: equal to the last place.
        for name in keys.iter().chain(&["lines", "kpi_value", "revenue_usd"]) {
            let (a, b) = (sql.column(name).unwrap(), lazy.column(name).unwrap());
            assert!(a.equals(&b.cast(a.dtype()).unwrap()), "{name}");
        }
        // Sorted: the same lines in another order give the same sums, row for row.
        let mut reversed = rows.clone();
        reversed.reverse();
        let again = month_sums(lines(&reversed)).unwrap();
        for name in keys {
            assert!(
                again
                    .column(name)
                    .unwrap()
                    .equals(sql.column(name).unwrap()),
                "{name}"
            );
        }
    }

    /// The same window totals written with the lazy API, to check the SQL against.
    fn lazy_totals(lines: LazyFrame, refresh: Month) -> DataFrame {
        let (from, to) = refresh.window();
        lines
            .filter(
                col("month_index")
                    .gt_eq(lit(from.index()))
                    .and(col("month_index").lt_eq(lit(to.index()))),
            )
            .group_by([col("partner_id"), col("category")])
            .agg([
                col("kpi_value").sum().alias("kpi"),
                col("revenue_usd").sum(),
            ])
            .sort(["partner_id", "category"], SortMultipleOptions::default())
            .collect()
            .unwrap()
    }

    #[test]
    fn sql_window_matches_the_lazy_api_on_random_data() {
        // 2,000 lines over 40 partners and 30 months.
        let months: Vec<String> = (0..30)
            .map(|i| Month::new(2024, 6).unwrap().plus(i).to_string())
            .collect();
        let ids: Vec<String> = (0..40).map(|i| format!("P{i:03}")).collect();
        let rows = random_rows(0x2545F4914F6CDD1D, 2000, &ids, &months);
        let refresh: Month = "2026-03".parse().unwrap();
        // The SQL sums the lines as three deliveries, each on its own, then adds them up; the
        // lazy API sums them as one frame.
        let partitions = rows.chunks(700).map(|c| sums(lines(c))).collect();
        let mut k = Kpis::new(partitions, refresh, &program()).unwrap();
        let sql = k.totals().unwrap();
        let lazy = lazy_totals(lines(&rows), refresh);
        let mut checked = 0;
        for i in 0..lazy.height() {
            let id = lazy
                .column("partner_id")
                .unwrap()
                .str()
                .unwrap()
                .get(i)
                .unwrap();
            let cat = lazy
                .column("category")
                .unwrap()
                .str()
                .unwrap()
                .get(i)
                .unwrap();
            let c = usize::from(cat == "certification");
            let expected = exact::round4_column(lazy.column("kpi").unwrap()).unwrap();
            let expected = expected.f64().unwrap().get(i).unwrap();
            assert_eq!(sql[id].kpi[c], expected, "{id} {cat}");
            checked += 1;
        }
        assert!(checked > 40);
        let sql_pairs: usize = sql
            .values()
            .map(|p| p.kpi.iter().filter(|v| **v != 0.0).count())
            .sum();
        assert!(sql_pairs <= checked);
    }

    /// The watch's secured sums written with the lazy API: each watched partner's lines dated
    /// from A-12 = R-12 + months_to_anniversary to R-1.
    fn lazy_secured(lines: LazyFrame, refresh: Month, watched: &[(&str, i32)]) -> DataFrame {
        let (from, to) = refresh.window();
        let watched = df!(
            "partner_id" => watched.iter().map(|w| w.0).collect::<Vec<_>>(),
            "months_to_anniversary" => watched.iter().map(|w| w.1).collect::<Vec<_>>(),
        )
        .unwrap();
        lines
            .join(
                watched.lazy(),
                [col("partner_id")],
                [col("partner_id")],
                JoinArgs::new(JoinType::Inner),
            )
            .filter(
                col("month_index")
                    .gt_eq(lit(from.index()) + col("months_to_anniversary"))
                    .and(col("month_index").lt_eq(lit(to.index()))),
            )
            .group_by([col("partner_id"), col("category")])
            .agg([col("kpi_value").sum().alias("secured")])
            .collect()
            .unwrap()
    }

    #[test]
    fn sql_watch_secured_matches_the_lazy_api_on_random_data() {
        let refresh: Month = "2026-11".parse().unwrap();
        let months: Vec<String> = (-16..2).map(|i| refresh.plus(i).to_string()).collect();
        let ids: Vec<String> = (0..30).map(|i| format!("W{i:02}")).collect();
        let rows = random_rows(0x9E3779B97F4A7C15, 3000, &ids, &months);
        // Every lead from 0 (due) to 12 months, and partners that are not watched.
        let watched: Vec<(&str, i32)> = ids
            .iter()
            .take(26)
            .enumerate()
            .map(|(i, id)| (id.as_str(), (i % 13) as i32))
            .collect();
        let mut k = Kpis::new(vec![sums(lines(&rows))], refresh, &program()).unwrap();
        let sql = k.secured(&watched).unwrap();
        let totals = k.totals().unwrap();
        let lazy = lazy_secured(lines(&rows), refresh, &watched);
        let (lid, lcat) = (
            lazy.column("partner_id").unwrap().str().unwrap(),
            lazy.column("category").unwrap().str().unwrap(),
        );
        let lval = exact::round4_column(lazy.column("secured").unwrap()).unwrap();
        let lval = lval.f64().unwrap();
        for i in 0..lazy.height() {
            let (id, cat) = (lid.get(i).unwrap(), lcat.get(i).unwrap());
            let c = usize::from(cat == "certification");
            let expected = lval.get(i).unwrap();
            assert_eq!(sql[id][c], expected, "{id} {cat}");
        }
        // Where the lazy API found no line of the decision window, the SQL's sum is 0.
        let found: usize = sql
            .values()
            .map(|v| v.iter().filter(|x| **x != 0.0).count())
            .sum();
        assert!(found <= lazy.height() && lazy.height() > 20);
        assert!(!sql.contains_key("W27"), "partners not watched are absent");
        // A partner due in R (lead 0) has secured its whole window.
        assert_eq!(sql["W00"], totals["W00"].kpi);
        assert_eq!(sql["W13"], totals["W13"].kpi);
    }
}

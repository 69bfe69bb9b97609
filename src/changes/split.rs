//! The split of a KPI change between two refreshes into its causes, computed by the SQL in
//! `sql/change_months.sql` and `sql/change_split.sql` with polars' `SQLContext`.
//!
//! The ledger's accepted lines, as each delivery's month sums (a refresh reads no line), are
//! registered as two tables, `earlier_lines` (deliveries before the previous refresh P) and
//! `later_lines` (deliveries P … R-1), and the two refreshes as the one-row table `params`
//! (never formatted into SQL text). `change_months.sql` lists the months of both windows;
//! `change_split.sql` joins the lines on them and sums per partner and category (see
//! docs/rules.md §12.1). Each month's lines lie in its delivery or later ones, so of the
//! earlier deliveries only the lines dated outside R's window or P's can matter: that is
//! given to their scan as a filter, which polars pushes into the Parquet reader.

use std::collections::HashMap;

use polars::prelude::*;
use polars::sql::SQLContext;

use crate::calendar::Month;
use crate::exact;

const CHANGE_MONTHS: &str = include_str!("../../sql/change_months.sql");
const CHANGE_SPLIT: &str = include_str!("../../sql/change_split.sql");

/// The parts of a KPI change that the ledger explains, rounded to 4 decimals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Parts {
    /// Lines dated in R's window but not in P's.
    pub entered: f64,
    /// Minus the lines P counted (deliveries before P) dated in P's window but not in R's.
    pub left: f64,
    /// Lines dated in both windows that arrived in deliveries P … R-1.
    pub late: f64,
}

/// Per partner, the parts of each category's change, in `categories` order (a category
/// without a line in either window has zero parts; a partner without one is absent).
pub type Splits = HashMap<String, Vec<Parts>>;

/// One delivery's accepted lines (`partner_id`, `category`, `month_index`, `kpi_value`), or
/// its month sums (`crate::kpi::month_sums`), which give the same split: every part adds
/// values by partner, category and month, so a month's sum stands for its lines.
pub type Delivery = (Month, LazyFrame);

/// The split of every partner's KPI change from refresh `previous` to `refresh`, from the
/// accepted lines of the ledger as it stands in `refresh`: `deliveries` are (at least) those
/// of `previous - 12` … `refresh - 1`.
pub fn split(
    deliveries: Vec<Delivery>,
    previous: Month,
    refresh: Month,
    categories: &[String],
) -> PolarsResult<Splits> {
    let df = split_frame(deliveries, previous, refresh)?;
    let ids = df.column("partner_id")?.str()?;
    let cats = df.column("category")?.str()?;
    let value = |name: &str| -> PolarsResult<Float64Chunked> {
        Ok(exact::round4_column(df.column(name)?)?.f64()?.clone())
    };
    let (entered, left, late) = (value("entered")?, value("left_window")?, value("late")?);
    let mut out: Splits = HashMap::new();
    for i in 0..df.height() {
        let (Some(id), Some(cat)) = (ids.get(i), cats.get(i)) else {
            continue;
        };
        let Some(k) = categories.iter().position(|c| c == cat) else {
            continue;
        };
        let parts = out
            .entry(id.to_string())
            .or_insert_with(|| vec![Parts::default(); categories.len()]);
        parts[k] = Parts {
            entered: entered.get(i).unwrap_or(0.0),
            left: left.get(i).unwrap_or(0.0),
            late: late.get(i).unwrap_or(0.0),
        };
    }
    Ok(out)
}

/// The lines of `deliveries` as one frame of the columns the split reads (an empty frame of
/// them when there is none).
fn lines(deliveries: Vec<LazyFrame>) -> PolarsResult<LazyFrame> {
    let columns = [
        col("partner_id"),
        col("category"),
        col("month_index"),
        col("kpi_value"),
    ];
    if deliveries.is_empty() {
        let empty = DataFrame::new(
            0,
            vec![
                Column::new("partner_id".into(), Vec::<String>::new()),
                Column::new("category".into(), Vec::<String>::new()),
                Column::new("month_index".into(), Vec::<i32>::new()),
                exact::empty_column("kpi_value", exact::AMOUNT_SCALE)?,
            ],
        )?;
        return Ok(empty.lazy());
    }
    let frames = deliveries
        .into_iter()
        .map(|lf| lf.select(columns.clone()))
        .collect::<Vec<_>>();
    concat(frames, UnionArgs::default())
}

/// The SQL's result: partner_id, category, entered, left_window, late.
fn split_frame(
    deliveries: Vec<Delivery>,
    previous: Month,
    refresh: Month,
) -> PolarsResult<DataFrame> {
    let (earlier, later): (Vec<Delivery>, Vec<Delivery>) =
        deliveries.into_iter().partition(|(m, _)| *m < previous);
    let (r_from, _) = refresh.window();
    // What the SQL's join keeps of an earlier delivery: lines dated outside one of the two
    // windows (lines dated in both were counted by both refreshes).
    let outside_both = col("month_index")
        .lt(lit(r_from.index()))
        .or(col("month_index").gt(lit(previous.plus(-1).index())));
    let earlier = lines(earlier.into_iter().map(|(_, lf)| lf).collect())?.filter(outside_both);
    let later = lines(later.into_iter().map(|(_, lf)| lf).collect())?;
    let mut ctx = SQLContext::new();
    ctx.register("earlier_lines", earlier);
    ctx.register("later_lines", later);
    let params = df!(
        "previous_from" => [previous.window().0.index()],
        "refresh_from" => [r_from.index()],
    )?;
    ctx.register("params", params.lazy());
    ctx.register(
        "month_offsets",
        df!("month_offset" => (0..12).collect::<Vec<i32>>())?.lazy(),
    );
    let months = ctx.execute(CHANGE_MONTHS)?.collect()?;
    ctx.register("change_months", months.lazy());
    // Exact decimal sums (rounded by `split`), the same in any order.
    ctx.execute(CHANGE_SPLIT)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::round4;
    use proptest::prelude::*;

    const CATEGORIES: [&str; 2] = ["courseware", "certification"];

    /// One accepted line: partner, category index, invoice month, delivery, KPI value.
    type Line = (usize, usize, Month, Month, f64);

    /// The lines as the ledger holds them: KPI values as decimals of 4 places.
    fn frame(lines: &[Line]) -> LazyFrame {
        let mut df = df!(
            "partner_id" => lines.iter().map(|l| format!("P{:02}", l.0)).collect::<Vec<_>>(),
            "category" => lines.iter().map(|l| CATEGORIES[l.1]).collect::<Vec<_>>(),
            "month_index" => lines.iter().map(|l| l.2.index()).collect::<Vec<_>>(),
            "delivery" => lines.iter().map(|l| l.3.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let kpi = lines
            .iter()
            .map(|l| Some(i128::from(units(l.4))))
            .collect_ca("kpi_value".into());
        df.with_column(exact::column("kpi_value", kpi, exact::AMOUNT_SCALE).unwrap())
            .unwrap();
        df.lazy()
    }

    /// The lines by delivery, one frame each.
    fn deliveries(lines: &[Line]) -> Vec<Delivery> {
        let mut months: Vec<Month> = lines.iter().map(|l| l.3).collect();
        months.sort();
        months.dedup();
        months
            .into_iter()
            .map(|m| {
                let of: Vec<Line> = lines.iter().copied().filter(|l| l.3 == m).collect();
                (m, frame(&of))
            })
            .collect()
    }

    fn categories() -> Vec<String> {
        CATEGORIES.map(String::from).to_vec()
    }

    /// The same split written with the lazy API and plain filters (deliveries compared as
    /// `YYYY-MM` text), to check the SQL against.
    fn lazy_split(lines: LazyFrame, previous: Month, refresh: Month) -> DataFrame {
        let within = |m: Month| {
            let (from, to) = m.window();
            col("month_index")
                .gt_eq(lit(from.index()))
                .and(col("month_index").lt_eq(lit(to.index())))
        };
        let after = col("delivery").gt_eq(lit(previous.to_string()));
        let sum_where = |cond: Expr| when(cond).then(col("kpi_value")).otherwise(lit(0)).sum();
        lines
            .filter(within(previous).or(within(refresh)))
            .group_by([col("partner_id"), col("category")])
            .agg([
                sum_where(within(refresh).and(within(previous).not())).alias("entered"),
                (lit(0)
                    - sum_where(
                        within(previous)
                            .and(within(refresh).not())
                            .and(after.clone().not()),
                    ))
                .alias("left_window"),
                sum_where(within(previous).and(within(refresh)).and(after)).alias("late"),
            ])
            .sort(["partner_id", "category"], SortMultipleOptions::default())
            .collect()
            .unwrap()
    }

    /// Lines over 40 months (up to 3 months late), values with at most 4 decimals.
    fn generated(seed: u64, n: usize) -> Vec<Line> {
        let mut seed = seed | 1;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let start = Month::new(2024, 1).unwrap();
        (0..n)
            .map(|_| {
                let month = start.plus(next(40) as i32);
                let delivery = month.plus(next(4) as i32);
                let kpi = (next(4_000_000) as f64 - 1_000_000.0) / 10_000.0;
                (next(30) as usize, next(2) as usize, month, delivery, kpi)
            })
            .collect()
    }

    #[test]
    fn sql_split_matches_the_lazy_api_on_generated_data() {
        for (seed, previous, refresh) in [
            (7, "2026-01", "2026-02"),
            (11, "2025-10", "2026-03"),
            (13, "2024-06", "2026-09"),
        ] {
            let lines = generated(seed, 3000);
            let (previous, refresh): (Month, Month) =
                (previous.parse().unwrap(), refresh.parse().unwrap());
            let sql = split(deliveries(&lines), previous, refresh, &categories()).unwrap();
            let lazy = lazy_split(frame(&lines), previous, refresh);
            assert!(lazy.height() > 20, "{seed}: {}", lazy.height());
            let ids = lazy.column("partner_id").unwrap().str().unwrap();
            let cats = lazy.column("category").unwrap().str().unwrap();
            let get = |name: &str, i: usize| {
                let rounded = exact::round4_column(lazy.column(name).unwrap()).unwrap();
                rounded.f64().unwrap().get(i).unwrap()
            };
            let mut nonzero = [0; 3];
            for i in 0..lazy.height() {
                let (id, cat) = (ids.get(i).unwrap(), cats.get(i).unwrap());
                let k = CATEGORIES.iter().position(|c| *c == cat).unwrap();
                let got = sql[id][k];
                let want = [get("entered", i), get("left_window", i), get("late", i)];
                assert_eq!([got.entered, got.left, got.late], want, "{seed} {id} {cat}");
                for (n, v) in nonzero.iter_mut().zip(want) {
                    *n += usize::from(v != 0.0);
                }
            }
            // Every part occurs, so the comparison checks each of them; windows that do not
            // overlap have no late line.
            if refresh.index() - previous.index() < 12 {
                assert!(nonzero.iter().all(|n| *n > 0), "{seed}: {nonzero:?}");
            } else {
                assert!(
                    nonzero[0] > 0 && nonzero[1] > 0 && nonzero[2] == 0,
                    "{seed}: {nonzero:?}"
                );
            }
            let sql_pairs: usize = sql.values().map(|v| v.len()).sum();
            assert!(sql_pairs >= lazy.height());
        }
    }

    #[test]
    fn a_partner_without_lines_in_either_window_is_absent() {
        let m = |s: &str| s.parse::<Month>().unwrap();
        let lines = [
            (1, 0, m("2020-01"), m("2020-01"), 5.0),
            (2, 1, m("2026-01"), m("2026-03"), 2.5),
        ];
        let got = split(
            deliveries(&lines),
            m("2026-02"),
            m("2026-04"),
            &categories(),
        )
        .unwrap();
        assert!(!got.contains_key("P01"));
        // Dated in both windows, delivered in 2026-03 (after P = 2026-02): late.
        assert_eq!(
            got["P02"][1],
            Parts {
                entered: 0.0,
                left: 0.0,
                late: 2.5
            }
        );
        assert_eq!(got["P02"][0], Parts::default());
    }

    /// Window totals per partner and category of `lines` for refresh `month`, rounded.
    fn totals(lines: &[Line], month: Month, last_delivery: Month) -> HashMap<(usize, usize), f64> {
        let (from, to) = month.window();
        let mut out = HashMap::new();
        for l in lines {
            if l.2 >= from && l.2 <= to && l.3 <= last_delivery {
                *out.entry((l.0, l.1)).or_insert(0.0) += l.4;
            }
        }
        out.into_iter().map(|(k, v)| (k, round4(v))).collect()
    }

    fn units(x: f64) -> i64 {
        (x * 10_000.0).round() as i64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// When the ledger's earlier deliveries were not judged again, the parts explain the
        /// whole change: before + entered + left + late = after, to the last decimal.
        #[test]
        fn without_judging_again_the_parts_add_up_exactly(
            seed in 1u64..u64::MAX,
            n in 1usize..400,
            previous_offset in 0i32..30,
            gap in 1i32..16,
        ) {
            let lines = generated(seed, n);
            let previous = Month::new(2024, 1).unwrap().plus(previous_offset);
            let refresh = previous.plus(gap);
            let in_ledger: Vec<Line> = lines.iter().copied().filter(|l| l.3 < refresh).collect();
            prop_assume!(!in_ledger.is_empty());
            let before = totals(&in_ledger, previous, previous.plus(-1));
            let after = totals(&in_ledger, refresh, refresh.plus(-1));
            let parts = split(
                deliveries(&in_ledger),
                previous,
                refresh,
                &categories(),
            )
            .unwrap();
            for partner in 0..30 {
                for k in 0..2 {
                    let b = before.get(&(partner, k)).copied().unwrap_or(0.0);
                    let a = after.get(&(partner, k)).copied().unwrap_or(0.0);
                    let p = parts
                        .get(&format!("P{partner:02}"))
                        .map(|v| v[k])
                        .unwrap_or_default();
                    prop_assert_eq!(
                        units(b) + units(p.entered) + units(p.left) + units(p.late),
                        units(a),
                        "P{:02} {}: {} {:?} {}", partner, CATEGORIES[k], b, p, a
                    );
                }
            }
        }
    }
}

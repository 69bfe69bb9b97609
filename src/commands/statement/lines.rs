//! The ledger rows a statement shows, read once for every partner asked for: the accepted
//! lines of R's window (deliveries R-12 … R-1) sorted by partner, invoice date, invoice # and
//! line, and the rejected rows of those deliveries sorted by trimmed partner_id, delivery,
//! file and row, each `duplicate_line` with where its accepted copy was read. Each partner's
//! rows are one range of each, so the workbooks can be written from them in parallel.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use polars::prelude::*;

use crate::calendar::Month;
use crate::error::Result;
use crate::exact;
use crate::ingest::extract::{parse_line, COLUMNS};
use crate::ledger::{self, partition_rel};
use crate::report::statement::{Accepted, Rejected};

/// Accepted window lines of some partners, each partner's lines one range.
pub struct Lines {
    pub accepted: Accepted,
    ranges: HashMap<String, Range<usize>>,
}

/// Rejected rows of the partners asked for, each partner's rows one range.
pub struct Rejections {
    pub rejected: Rejected,
    ranges: HashMap<String, Range<usize>>,
}

impl Lines {
    pub fn of(&self, partner_id: &str) -> Range<usize> {
        self.ranges.get(partner_id).cloned().unwrap_or(0..0)
    }
}

impl Rejections {
    pub fn of(&self, partner_id: &str) -> Range<usize> {
        self.ranges.get(partner_id).cloned().unwrap_or(0..0)
    }
}

fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(PlRefPath::try_from_path(path)?, ScanArgsParquet::default())
}

fn scan_all(output: &Path, months: &[Month], file: &str) -> PolarsResult<LazyFrame> {
    let frames = months
        .iter()
        .map(|m| scan(&output.join(partition_rel(*m)).join(file)))
        .collect::<PolarsResult<Vec<_>>>()?;
    concat(frames, UnionArgs::default())
}

fn id_list(ids: &[String]) -> Expr {
    lit(Series::new("ids".into(), ids)).implode(false)
}

fn text(df: &DataFrame, name: &str) -> PolarsResult<StringChunked> {
    Ok(df.column(name)?.str()?.clone())
}

/// The deliveries of R's window among those R used.
fn window_of(refresh: Month, used: &[Month]) -> Vec<Month> {
    let from = refresh.window().0;
    used.iter().copied().filter(|m| *m >= from).collect()
}

/// Reads the accepted window lines of the partners `ids` (of every partner when `None`) from
/// the deliveries R used (`used`, oldest first).
pub fn read_lines(
    output: &Path,
    refresh: Month,
    used: &[Month],
    ids: Option<&[String]>,
) -> Result<Lines> {
    let (from, to) = refresh.window();
    let accepted = read_accepted(output, &window_of(refresh, used), from, to, ids)?;
    let ranges = runs(&accepted.partner_id).into_iter().collect();
    Ok(Lines { accepted, ranges })
}

/// Reads the rejected rows of R's window that name one of `ids`, with the accepted copies of
/// the duplicates among them (from every delivery R used).
pub fn read_rejections(
    output: &Path,
    refresh: Month,
    used: &[Month],
    ids: &[String],
) -> Result<Rejections> {
    let mut rejected = read_rejected(output, &window_of(refresh, used), ids)?;
    rejected.accepted_copy = accepted_copies(output, used, &rejected)?;
    let ranges = runs(&rejected.partner_id).into_iter().collect();
    Ok(Rejections { rejected, ranges })
}

/// The runs of equal values of a sorted column.
fn runs(ids: &StringChunked) -> Vec<(String, Range<usize>)> {
    let mut out: Vec<(String, Range<usize>)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let id = id.unwrap_or("");
        match out.last_mut() {
            Some((last, range)) if last == id => range.end = i + 1,
            _ => out.push((id.to_string(), i..i + 1)),
        }
    }
    out
}

fn read_accepted(
    output: &Path,
    window: &[Month],
    from: Month,
    to: Month,
    ids: Option<&[String]>,
) -> Result<Accepted> {
    let mut lf = if window.is_empty() {
        return empty_accepted();
    } else {
        scan_all(output, window, ledger::ACCEPTED)?
    };
    if let Some(ids) = ids {
        lf = lf.filter(col("partner_id").is_in(id_list(ids), false));
    }
    let mut df = lf
        .filter(
            col("month_index")
                .gt_eq(lit(from.index()))
                .and(col("month_index").lt_eq(lit(to.index()))),
        )
        .select([
            col("partner_id"),
            col("invoice_date").cast(DataType::Int32).alias("date"),
            col("month_index").cast(DataType::Int32),
            col("omlp_type"),
            col("purchase_unit"),
            col("invoice_number"),
            col("invoice_line").cast(DataType::Int64),
            col("document_type"),
            col("kpi_value"),
            col("revenue"),
            col("currency"),
            col("revenue_usd"),
            col("kpi_value").alias("kpi_units"),
            col("revenue_usd").alias("revenue_usd_units"),
            col("category"),
            col("delivery"),
            col("source_file"),
            col("source_row").cast(DataType::Int64),
        ])
        .sort(
            ["partner_id", "date", "invoice_number", "invoice_line"],
            SortMultipleOptions::default().with_multithreaded(true),
        )
        .collect()?;
    df.rechunk_mut_par();
    // The amounts as the numbers a sheet holds, each the nearest to its exact value.
    let df = exact::f64_columns(df, &["kpi_value", "revenue", "revenue_usd"])?;
    accepted_of(&df)
}

fn accepted_of(df: &DataFrame) -> Result<Accepted> {
    let int = |name: &str| -> PolarsResult<Int64Chunked> { Ok(df.column(name)?.i64()?.clone()) };
    let float =
        |name: &str| -> PolarsResult<Float64Chunked> { Ok(df.column(name)?.f64()?.clone()) };
    // The ledger's decimals have these scales (docs/ledger.md); another is a damaged ledger.
    let units = |name: &str, scale: usize| -> PolarsResult<Int128Chunked> {
        let (units, found) = exact::units(df.column(name)?)?;
        polars_ensure!(
            found == scale,
            ComputeError: "ledger column {name} has {found} decimal places, not {scale}"
        );
        Ok(units)
    };
    Ok(Accepted {
        partner_id: text(df, "partner_id")?,
        date: df.column("date")?.i32()?.clone(),
        month_index: df.column("month_index")?.i32()?.clone(),
        omlp_type: text(df, "omlp_type")?,
        purchase_unit: text(df, "purchase_unit")?,
        invoice_number: text(df, "invoice_number")?,
        invoice_line: int("invoice_line")?,
        document_type: text(df, "document_type")?,
        kpi_value: float("kpi_value")?,
        revenue: float("revenue")?,
        currency: text(df, "currency")?,
        revenue_usd: float("revenue_usd")?,
        kpi_units: units("kpi_units", exact::AMOUNT_SCALE)?,
        revenue_usd_units: units("revenue_usd_units", exact::USD_SCALE)?,
        category: text(df, "category")?,
        delivery: text(df, "delivery")?,
        source_file: text(df, "source_file")?,
        source_row: int("source_row")?,
    })
}

fn empty_accepted() -> Result<Accepted> {
    let s = |n: &str| Column::new(n.into(), Vec::<String>::new());
    let df = DataFrame::new(
        0,
        vec![
            s("partner_id"),
            Column::new("date".into(), Vec::<i32>::new()),
            Column::new("month_index".into(), Vec::<i32>::new()),
            s("omlp_type"),
            s("purchase_unit"),
            s("invoice_number"),
            Column::new("invoice_line".into(), Vec::<i64>::new()),
            s("document_type"),
            Column::new("kpi_value".into(), Vec::<f64>::new()),
            Column::new("revenue".into(), Vec::<f64>::new()),
            s("currency"),
            Column::new("revenue_usd".into(), Vec::<f64>::new()),
            exact::empty_column("kpi_units", exact::AMOUNT_SCALE)?,
            exact::empty_column("revenue_usd_units", exact::USD_SCALE)?,
            s("category"),
            s("delivery"),
            s("source_file"),
            Column::new("source_row".into(), Vec::<i64>::new()),
        ],
    )?;
    accepted_of(&df)
}

fn read_rejected(output: &Path, window: &[Month], ids: &[String]) -> Result<Rejected> {
    let mut columns = vec![
        col("partner_id")
            .str()
            .strip_chars(lit(NULL))
            .alias("partner_id_trimmed"),
        col("delivery"),
        col("source_file"),
        col("source_row").cast(DataType::Int64),
        col("reason"),
    ];
    columns.extend(COLUMNS.iter().map(|c| col(*c).cast(DataType::String)));
    let df = if window.is_empty() {
        DataFrame::empty()
    } else {
        let mut df = scan_all(output, window, ledger::REJECTED)?
            .select(columns)
            .filter(col("partner_id_trimmed").is_in(id_list(ids), false))
            .sort(
                [
                    "partner_id_trimmed",
                    "delivery",
                    "source_file",
                    "source_row",
                ],
                SortMultipleOptions::default(),
            )
            .collect()?;
        df.rechunk_mut_par();
        df
    };
    let empty_text = || StringChunked::from_iter_values("".into(), std::iter::empty::<&str>());
    let text_or_empty = |name: &str| -> PolarsResult<StringChunked> {
        if df.height() == 0 {
            Ok(empty_text())
        } else {
            text(&df, name)
        }
    };
    Ok(Rejected {
        partner_id: text_or_empty("partner_id_trimmed")?,
        delivery: text_or_empty("delivery")?,
        source_file: text_or_empty("source_file")?,
        source_row: if df.height() == 0 {
            Int64Chunked::from_vec("".into(), Vec::new())
        } else {
            df.column("source_row")?.i64()?.clone()
        },
        reason: text_or_empty("reason")?,
        raw: COLUMNS
            .iter()
            .map(|c| text_or_empty(c))
            .collect::<PolarsResult<_>>()?,
        accepted_copy: Vec::new(),
    })
}

/// The key of a rejected row as judging compares it: trimmed invoice #, parsed line.
fn raw_key(rejected: &Rejected, i: usize) -> Option<(String, i64)> {
    let number = rejected.raw[0].get(i)?.trim();
    let line = parse_line(rejected.raw[1].get(i)?.trim())?;
    Some((number.to_string(), line))
}

/// For each `duplicate_line` row, where the accepted copy that counts was read.
fn accepted_copies(
    output: &Path,
    used: &[Month],
    rejected: &Rejected,
) -> Result<Vec<Option<String>>> {
    let n = rejected.reason.len();
    let duplicate = |i: usize| rejected.reason.get(i) == Some("duplicate_line");
    let numbers: Vec<String> = (0..n)
        .filter(|i| duplicate(*i))
        .filter_map(|i| raw_key(rejected, i).map(|k| k.0))
        .collect();
    if numbers.is_empty() || used.is_empty() {
        return Ok(vec![None; n]);
    }
    let df = scan_all(output, used, ledger::ACCEPTED)?
        .select([
            col("invoice_number"),
            col("invoice_line").cast(DataType::Int64),
            col("delivery"),
            col("source_file"),
            col("source_row").cast(DataType::Int64),
        ])
        .filter(col("invoice_number").is_in(id_list(&numbers), false))
        .collect()?;
    let (num, line) = (
        df.column("invoice_number")?.str()?,
        df.column("invoice_line")?.i64()?,
    );
    let (delivery, file) = (
        df.column("delivery")?.str()?,
        df.column("source_file")?.str()?,
    );
    let row = df.column("source_row")?.i64()?;
    let mut copies: HashMap<(String, i64), String> = HashMap::new();
    for i in 0..df.height() {
        let (Some(num), Some(line)) = (num.get(i), line.get(i)) else {
            continue;
        };
        let place = format!(
            "{}/{}:{}",
            delivery.get(i).unwrap_or(""),
            file.get(i).unwrap_or(""),
            row.get(i).unwrap_or(0)
        );
        copies.insert((num.trim().to_string(), line), place);
    }
    Ok((0..n)
        .map(|i| {
            duplicate(i)
                .then(|| raw_key(rejected, i))
                .flatten()
                .and_then(|k| copies.get(&k).cloned())
        })
        .collect())
}

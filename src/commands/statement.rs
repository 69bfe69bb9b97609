//! `statement`: one workbook per partner with every figure of a published refresh R, written
//! to `statements/R/statement-R-<id>.xlsx` under the output folder.
//!
//! It reads only what R published: its manifest, `partners-R.csv` (and `watch-R.csv` when
//! there is one) and the ledger partitions R used, after checking that the ledger still holds
//! R's rows ([`published`]). The ledger is read once for all the partners asked for
//! ([`lines`]); the workbooks are then written on two threads, each aside and renamed into
//! place, under the output folder's lock. The partner's figures are the published ones: the
//! Statement sheet copies its row of `partners-R.csv`, and the invoice lines are checked to
//! add up to it. Rules: docs/rules.md §11.

mod lines;
mod published;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tracing::{info, warn};

use crate::calendar::{parse_date, Month};
use crate::cli::StatementArgs;
use crate::config::program::{Level, Program};
use crate::config::today;
use crate::error::{Error, Result};
use crate::exact;
use crate::kpi::round4;
use crate::publish;
use crate::report::statement::{self as sheet, Statement};
use crate::report::workbook::sheet_rows;
use crate::report::Value;
use published::Published;

/// The statement's file name: every byte of the id outside `A-Z a-z 0-9 . _ -` is written
/// `%XX` (upper-case hex), so distinct ids give distinct names that are safe on any file
/// system (no separator, no reserved device name thanks to the prefix).
pub fn file_name(refresh: Month, partner_id: &str) -> String {
    let mut name = format!("statement-{refresh}-");
    for b in partner_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(".xlsx");
    name
}

pub fn statement(args: &StatementArgs) -> Result<()> {
    let started = Instant::now();
    let refresh = match args.refresh {
        Some(m) => m,
        None => Month::of(today()?),
    };
    let out = &args.folders.output;
    // Unpublished: said before anything is locked or created.
    published::require(out, refresh)?;
    let _lock = publish::lock(out, true)?;
    if publish::recover(out)? {
        info!("completed the publishing of an interrupted earlier run");
    }
    let p = published::load(out, refresh)?;
    published::check_ledger(out, &p)?;
    let ids = chosen(&p, args)?;
    let program = Program::load(&args.folders.input.join("program.toml"))?;
    let used = published::used_deliveries(&p);
    let t = Instant::now();
    let rejections = lines::read_rejections(out, refresh, &used, &ids)?;
    info!(
        rejected = rejections.rejected.partner_id.len(),
        ms = t.elapsed().as_millis() as u64,
        "statement: rejected rows read"
    );
    // Neither folder may be a symbolic link: statements are written only under the output
    // folder (docs/rules.md §11).
    let statements = crate::publish_guard::work_dir(out, "statements")?;
    let dir = crate::publish_guard::work_dir(&statements, &refresh.to_string())?;
    remove_left_aside(&dir);
    let progress = crate::logging::progress(ids.len() as u64, "statements");
    let batches = batches(&p, ids.len());
    for batch in ids.chunks(ids.len().div_ceil(batches).max(1)) {
        let t = Instant::now();
        // Every partner's lines at once need no filter on the partner.
        let filter = (!(args.all && batches == 1)).then_some(batch);
        let lines = lines::read_lines(out, refresh, &used, filter)?;
        info!(
            partners = batch.len(),
            lines = lines.accepted.partner_id.len(),
            ms = t.elapsed().as_millis() as u64,
            "statement: ledger lines read"
        );
        let t = Instant::now();
        let rows = Rows {
            lines: &lines,
            rejections: &rejections,
        };
        write_all(&p, &program, &rows, batch, &dir, &progress)?;
        info!(
            statements = batch.len(),
            ms = t.elapsed().as_millis() as u64,
            "statement: workbooks written"
        );
    }
    progress.finish_and_clear();
    info!(
        statements = ids.len(),
        folder = %dir.display(),
        total_ms = started.elapsed().as_millis() as u64,
        "statement: done"
    );
    Ok(())
}

/// Files a killed statement left aside (`.statement-….tmp`): under the lock, no one writes them.
fn remove_left_aside(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".statement-") && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The ledger rows of a batch of partners.
struct Rows<'a> {
    lines: &'a lines::Lines,
    rejections: &'a lines::Rejections,
}

/// Lines held in memory at once, at most (about 250 bytes each): the partners are written in
/// batches of about this many lines, each batch read from the ledger by its own scan.
const LINES_PER_BATCH: u64 = 1_500_000;

/// How many batches the `n` partners asked for are written in, from the lines of the window
/// R's manifest counted.
fn batches(p: &Published, n: usize) -> usize {
    let all = p.partners.rows.len().max(1) as u64;
    let lines = p.manifest.counts.lines_in_window * n as u64 / all;
    (lines.div_ceil(LINES_PER_BATCH) as usize).clamp(1, n.max(1))
}

/// The partners asked for, in the order given (each once), or all of `partners-R.csv`.
fn chosen(p: &Published, args: &StatementArgs) -> Result<Vec<String>> {
    if args.all {
        return Ok(p
            .partners
            .rows
            .iter()
            .filter_map(|r| r.first().cloned())
            .collect());
    }
    let mut ids: Vec<String> = Vec::new();
    for id in &args.partner {
        if p.partners.row_of(id).is_none() {
            return Err(Error::Usage(format!(
                "partner {id:?} is not in reports/{r}/partners-{r}.csv of refresh {r}",
                r = p.refresh
            )));
        }
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

/// Writes every statement on two threads; the first failure stops both.
fn write_all(
    p: &Published,
    program: &Program,
    rows: &Rows,
    ids: &[String],
    dir: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let max_rows = sheet_rows();
    let warned = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    let written = write_one(p, program, rows, id, dir, max_rows, &warned);
                    if let Err(e) = written {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().expect("not poisoned").get_or_insert(e);
                        break;
                    }
                    progress.inc(1);
                }
            });
        }
    });
    match first_error.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn write_one(
    p: &Published,
    program: &Program,
    rows: &Rows,
    id: &str,
    dir: &Path,
    max_rows: usize,
    warned: &AtomicBool,
) -> Result<()> {
    let row = p.partners.row_of(id).expect("chosen from partners-R.csv");
    let (lines, rejects) = (rows.lines.of(id), rows.rejections.of(id));
    let summary = summary(p, program, row, warned);
    let statement = Statement {
        refresh: p.refresh,
        partner_id: id,
        categories: &p.categories,
        summary: &summary,
        accepted: &rows.lines.accepted,
        lines,
        rejected: &rows.rejections.rejected,
        rejects,
    };
    check_totals(p, row, &statement)?;
    let name = file_name(p.refresh, id);
    let target = dir.join(&name);
    let aside: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = sheet::write(&statement, &aside, max_rows)
        .and_then(|()| std::fs::rename(&aside, &target).map_err(|e| Error::write(&target, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    result
}

/// The invoice lines must add up to the published KPIs: otherwise the ledger no longer gives
/// R's figures, and the statement is not written (exit 66).
fn check_totals(p: &Published, row: &[String], s: &Statement) -> Result<()> {
    let (kpi, _) = sheet::monthly(s);
    for (k, c) in p.categories.iter().enumerate() {
        let published: f64 = p
            .partners
            .get(row, &format!("kpi_{c}"))
            .parse()
            .unwrap_or(0.0);
        let lines = exact::round4_f64(kpi[k].iter().sum(), exact::AMOUNT_SCALE);
        if (lines - published).abs() > 0.000_11 {
            return Err(Error::MissingInput {
                what: format!(
                    "the ledger lines of partner {:?} add up to {c} {lines}, but refresh {r} \
                     published {published}: publish {r} again with `kpi-refresh run --refresh \
                     {r} --force`; the ledger",
                    s.partner_id,
                    r = p.refresh
                ),
                path: PathBuf::from("ledger"),
            });
        }
    }
    Ok(())
}

/// A CSV column's title on the Statement sheet, as the workbook titles it.
fn title(column: &str, categories: &[String]) -> String {
    let fixed = [
        ("partner_id", "Partner ID"),
        ("mct_count", "MCTs"),
        ("revenue_usd", "Revenue USD"),
    ];
    if let Some((_, t)) = fixed.iter().find(|(c, _)| *c == column) {
        return t.to_string();
    }
    for c in categories {
        if let Some(prefix) = column.strip_suffix(&format!("_{c}")) {
            let prefix = match prefix {
                "kpi" => "KPI".to_string(),
                other => sentence(other),
            };
            return format!("{prefix} {c}");
        }
    }
    sentence(column)
}

fn sentence(snake: &str) -> String {
    let words = snake.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A published value, typed by its column: dates, whole numbers, decimals, text.
fn typed(column: &str, value: &str) -> Value {
    if value.is_empty() {
        return Value::Empty;
    }
    let date = matches!(column, "enrolled_on" | "next_anniversary");
    let int = matches!(column, "months_to_anniversary" | "mct_count");
    let number = [
        "kpi_",
        "gap_",
        "secured_",
        "leaving_",
        "required_",
        "still_needed_",
        "per_month_",
    ]
    .iter()
    .any(|p| column.starts_with(p))
        || column == "revenue_usd";
    if date {
        if let Some(d) = parse_date(value) {
            return Value::Date(d);
        }
    } else if int {
        if let Ok(n) = value.parse::<i64>() {
            return Value::Int(n);
        }
    } else if number {
        if let Ok(x) = value.parse::<f64>() {
            return Value::Number(x);
        }
    }
    Value::text(value)
}

/// The Statement sheet: the partner's row of the Partners sheet; per category its KPI, the
/// enrollment level's requirement and the gap; the watch figures when the partner is in the
/// watch; then the refresh and its window.
fn summary(
    p: &Published,
    program: &Program,
    row: &[String],
    warned: &AtomicBool,
) -> Vec<(String, Value)> {
    let cats = &p.categories;
    let mut out: Vec<(String, Value)> = p
        .partners
        .header
        .iter()
        .zip(row)
        .map(|(h, v)| (title(h, cats), typed(h, v)))
        .collect();
    let required = requirement(p, program, row);
    // Levels without KPIs have no gap, whatever the KPIs.
    let has_kpis = Level::parse(p.partners.get(row, "enrollment")).is_some_and(Level::has_kpis);
    for (k, c) in cats.iter().enumerate() {
        let kpi = p.partners.get(row, &format!("kpi_{c}"));
        let gap = p.partners.get(row, &format!("gap_{c}"));
        let mut req = required.as_ref().map(|r| r[k]);
        // The requirement must give the published gap; when program.toml has changed since
        // R, the published gap is what stands.
        if let (Some(t), Ok(k), Ok(g)) = (req, kpi.parse::<f64>(), gap.parse::<f64>()) {
            if has_kpis && (round4((t - k).max(0.0)) - g).abs() > 0.000_11 {
                if !warned.swap(true, Ordering::Relaxed) {
                    warn!(refresh = %p.refresh, "program.toml no longer gives the requirements of refresh {}: the Statement sheet shows a requirement only where the published gap tells it", p.refresh);
                }
                req = (g > 0.0).then(|| round4(k + g));
            }
        }
        out.push((format!("KPI {c}"), typed("kpi_", kpi)));
        out.push((
            format!("Required {c}"),
            req.map_or(Value::Empty, Value::Number),
        ));
        out.push((format!("Gap {c}"), typed("gap_", gap)));
    }
    if let Some(watch) = &p.watch {
        if let Some(w) = watch.row_of(&row[0]) {
            for (h, v) in watch.header.iter().zip(w) {
                let key = format!("Watch: {}", title(h, cats));
                if h != "partner_id" && h != "partner_name" {
                    out.push((key, typed(h, v)));
                }
            }
        }
    }
    let (from, to) = p.refresh.window();
    out.push(("Refresh".into(), Value::text(p.refresh.to_string())));
    out.push(("Window".into(), Value::text(format!("{from} … {to}"))));
    out
}

/// The enrollment level's thresholds at the decision date (the next anniversary; the first
/// day of R when not enrolled), per category of the published file: 0 for levels without
/// KPIs, none when no block matches.
fn requirement(p: &Published, program: &Program, row: &[String]) -> Option<Vec<f64>> {
    let level = Level::parse(p.partners.get(row, "enrollment"))?;
    if !level.has_kpis() {
        return Some(vec![0.0; p.categories.len()]);
    }
    let date = parse_date(p.partners.get(row, "next_anniversary"))
        .unwrap_or_else(|| p.refresh.first_day());
    let block = program.requirement(
        level,
        date,
        p.partners.get(row, "market"),
        p.partners.get(row, "competency"),
    )?;
    Some(
        p.categories
            .iter()
            .map(|c| {
                program
                    .categories
                    .iter()
                    .position(|x| &x.name == c)
                    .map_or(0.0, |k| block.kpi[k])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Month {
        "2026-11".parse().unwrap()
    }

    #[test]
    fn file_names_encode_every_unsafe_byte() {
        assert_eq!(file_name(r(), "P-1_a.b"), "statement-2026-11-P-1_a.b.xlsx");
        assert_eq!(file_name(r(), "=cmd"), "statement-2026-11-%3Dcmd.xlsx");
        assert_eq!(file_name(r(), "../x"), "statement-2026-11-..%2Fx.xlsx");
        assert_eq!(file_name(r(), "a/b"), "statement-2026-11-a%2Fb.xlsx");
        assert_eq!(file_name(r(), "CON"), "statement-2026-11-CON.xlsx");
        assert_eq!(file_name(r(), "é"), "statement-2026-11-%C3%A9.xlsx");
        assert_eq!(file_name(r(), "a%b"), "statement-2026-11-a%25b.xlsx");
        assert_ne!(file_name(r(), "abc"), file_name(r(), "ABC"));
    }

    proptest::proptest! {
        /// Distinct ids give distinct names, every name is made of safe bytes only, and the
        /// id can be read back from the name.
        #[test]
        fn distinct_ids_give_distinct_safe_names(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let (na, nb) = (file_name(r(), &a), file_name(r(), &b));
            proptest::prop_assert_eq!(a == b, na == nb);
            for n in [&na, &nb] {
                proptest::prop_assert!(n
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-%".contains(&c)));
            }
            let body = na
                .strip_prefix("statement-2026-11-")
                .and_then(|n| n.strip_suffix(".xlsx"))
                .unwrap();
            proptest::prop_assert_eq!(decode(body), a.into_bytes());
        }
    }

    fn decode(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn titles_follow_the_workbook() {
        let cats = vec!["courseware".to_string(), "still".to_string()];
        assert_eq!(title("partner_id", &cats), "Partner ID");
        assert_eq!(title("kpi_courseware", &cats), "KPI courseware");
        assert_eq!(title("gap_courseware", &cats), "Gap courseware");
        assert_eq!(
            title("still_needed_courseware", &cats),
            "Still needed courseware"
        );
        assert_eq!(
            title("months_to_anniversary", &cats),
            "Months to anniversary"
        );
    }

    #[test]
    fn values_are_typed_by_their_column() {
        assert_eq!(typed("kpi_x", "12.5"), Value::Number(12.5));
        assert_eq!(typed("mct_count", "3"), Value::Int(3));
        assert_eq!(
            typed("enrolled_on", "2025-02-03"),
            Value::Date(parse_date("2025-02-03").unwrap())
        );
        assert_eq!(typed("partner_name", "=1+1"), Value::text("=1+1"));
        assert_eq!(typed("next_anniversary", ""), Value::Empty);
    }
}

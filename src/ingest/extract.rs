//! Invoice extracts (`docs/rules.md §2.7`): reading a delivery's files into parsed rows.
//!
//! Parsing checks everything a row can be judged on by itself, in the order of `docs/rules.md §3`:
//! `extra_fields`, `missing_value`, `invalid_value`, `not_an_invoice`, `unknown_document_type` and
//! `future_date`. What depends on the roster, rates, rules or earlier deliveries is left to
//! [`super::judge`], so that judging again after a roster change needs no re-parse.

use std::path::{Path, PathBuf};

use chrono::Datelike;
use polars::prelude::*;

use super::table::{self, Columns};
use crate::calendar::{parse_date, Month};
use crate::error::{Error, Result};
use crate::exact;

/// The ten extract columns, in the order of `docs/rules.md §2.7` (also the order of
/// `missing_value` and `invalid_value` checks).
pub const COLUMNS: [&str; 10] = [
    "invoice_number",
    "invoice_line",
    "invoice_date",
    "document_type",
    "partner_id",
    "omlp_type",
    "purchase_unit",
    "kpi_value",
    "revenue",
    "currency",
];

/// A delivery's files: `*.csv` and `*.xlsx` (any case, a file named `.csv` included) in name
/// order, and the others (folders among them), which the caller names in the log. One of
/// the files to read that is not a regular file (a FIFO, a device) is refused (exit 66).
pub fn list_files(folder: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let unreadable = |e: std::io::Error| Error::Unreadable {
        file: folder.to_path_buf(),
        reason: e.to_string(),
    };
    let mut read = Vec::new();
    let mut ignored = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if table::kind_of(&path).is_none() || path.is_dir() {
            ignored.push(path);
            continue;
        }
        crate::source::check_regular(&path)?;
        read.push(path);
    }
    read.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    ignored.sort();
    Ok((read, ignored))
}

/// Column builders of one file's parsed rows, turned into a frame when the file is read.
/// Text goes straight into polars' string builders: no string per cell is allocated.
pub struct Parsed {
    source_file: String,
    source_row: Vec<u32>,
    raw: Vec<StringChunkedBuilder>,
    pre_reason: StringChunkedBuilder,
    line_no: Vec<Option<i64>>,
    date: Vec<Option<i32>>,
    credit: Vec<Option<bool>>,
    /// In ten-thousandths (see [`crate::exact`]).
    kpi: Vec<Option<i128>>,
    rev: Vec<Option<i128>>,
    ccy: StringChunkedBuilder,
    month: StringChunkedBuilder,
    month_index: Vec<Option<i32>>,
}

/// Per-file facts for the manifest and the partition's metadata.
#[derive(Clone, Debug)]
pub struct FileRead {
    pub name: String,
    /// SHA-256 of the bytes the rows were parsed from (the file is read once).
    pub sha256: String,
    /// BLAKE3 of the same bytes.
    pub blake3: String,
    pub rows: u64,
    pub unknown_columns: Vec<String>,
}

impl Parsed {
    /// Builders for the rows of the file `source_file` (its name inside the delivery folder).
    pub fn new(source_file: &str, capacity: usize) -> Parsed {
        let builder = |name: &str| StringChunkedBuilder::new(name.into(), capacity);
        Parsed {
            source_file: source_file.to_string(),
            source_row: Vec::with_capacity(capacity),
            raw: COLUMNS.iter().map(|c| builder(c)).collect(),
            pre_reason: builder("pre_reason"),
            line_no: Vec::with_capacity(capacity),
            date: Vec::with_capacity(capacity),
            credit: Vec::with_capacity(capacity),
            kpi: Vec::with_capacity(capacity),
            rev: Vec::with_capacity(capacity),
            ccy: builder("ccy"),
            month: builder("month"),
            month_index: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.source_row.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source_row.is_empty()
    }

    /// Reads one extract file of `delivery`: its rows as a frame (see [`Parsed::into_frame`]).
    pub fn read_file(path: &Path, delivery: Month) -> Result<(DataFrame, FileRead)> {
        let source = crate::source::read(path)?;
        let sha256 = source.sha256;
        let blake3 = crate::digest::blake3_bytes(&source.bytes);
        let capacity = row_capacity(path, &source.bytes);
        let mut t = table::parse(path, source.bytes)?;
        // "Invoice #" is the invoice number's name on invoices; take it when the file has no
        // invoice_number column.
        if !t
            .header
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case("invoice_number"))
        {
            if let Some(h) = t
                .header
                .iter_mut()
                .find(|h| h.trim().eq_ignore_ascii_case("invoice #"))
            {
                *h = "invoice_number".to_string();
            }
        }
        let columns = Columns::resolve(path, &t.header, &COLUMNS, &COLUMNS)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut parsed = Parsed::new(&name, capacity);
        for row in t.rows {
            let row = row?;
            let cells: [&str; 10] = std::array::from_fn(|k| columns.get(&row, k));
            let bad: [bool; 10] = std::array::from_fn(|k| columns.bad_encoding(&row, k));
            parsed.push_row(row.row, cells, bad, row.extra_fields > 0, delivery);
        }
        let rows = parsed.len() as u64;
        let frame = parsed
            .into_frame()
            .map_err(|e| Error::internal(format!("reading {}", path.display()), e))?;
        Ok((
            frame,
            FileRead {
                name,
                sha256,
                blake3,
                rows,
                unknown_columns: columns.unknown,
            },
        ))
    }

    /// Appends one well-formed row (no field beyond the header), judging what it can be
    /// judged on by itself.
    pub fn push(&mut self, row: u32, cells: [&str; 10], bad: [bool; 10], delivery: Month) {
        self.push_row(row, cells, bad, false, delivery)
    }

    /// Appends one row; `extra_fields` when it has more fields than the header (the first
    /// reason of all, since its values have shifted).
    pub fn push_row(
        &mut self,
        row: u32,
        cells: [&str; 10],
        bad: [bool; 10],
        extra_fields: bool,
        delivery: Month,
    ) {
        let line_no = parse_line(cells[1]);
        let date = parse_date(cells[2]);
        let kpi = parse_decimal(cells[7]);
        let rev = parse_decimal(cells[8]);
        let ccy = parse_currency(cells[9]);
        let doc = cells[3];
        let credit = is_credit_note(doc);
        let month = date.map(Month::of);

        let valid = [
            true,
            line_no.is_some(),
            date.is_some(),
            true,
            true,
            true,
            true,
            kpi.is_some(),
            rev.is_some(),
            ccy.is_some(),
        ];
        let reason = if extra_fields {
            Some("extra_fields".to_string())
        } else if let Some(k) = (0..10).find(|&k| cells[k].is_empty()) {
            Some(format!("missing_value:{}", COLUMNS[k]))
        } else if let Some(k) = (0..10).find(|&k| bad[k] || !valid[k]) {
            Some(format!("invalid_value:{}", COLUMNS[k]))
        } else if credit.is_none() {
            let not_invoice = doc.eq_ignore_ascii_case("order confirmation")
                || doc.eq_ignore_ascii_case("partner report");
            Some(
                if not_invoice {
                    "not_an_invoice"
                } else {
                    "unknown_document_type"
                }
                .to_string(),
            )
        } else if month.is_some_and(|m| m > delivery) {
            Some("future_date".to_string())
        } else {
            None
        };

        self.source_row.push(row);
        for (k, raw) in self.raw.iter_mut().enumerate() {
            raw.append_value(cells[k]);
        }
        self.pre_reason.append_option(reason);
        self.line_no.push(line_no);
        self.date
            .push(date.map(|d| d.num_days_from_ce() - crate::calendar::UNIX_EPOCH_DAYS_FROM_CE));
        self.credit.push(credit);
        self.kpi.push(kpi);
        self.rev.push(rev);
        let ccy = ccy
            .as_ref()
            .map(|c| std::str::from_utf8(c).expect("three ASCII letters"));
        self.ccy.append_option(ccy);
        let mut text = [0u8; 7];
        match month.map(|m| (m, m.write_text(&mut text))) {
            Some((_, Some(text))) => self.month.append_value(text),
            Some((m, None)) => self.month.append_value(m.to_string()),
            None => self.month.append_null(),
        }
        self.month_index.push(month.map(Month::index));
    }

    /// The parsed rows as a frame; `seq` numbers them from 0 in file order.
    pub fn into_frame(self) -> PolarsResult<DataFrame> {
        let n = self.len();
        let mut columns: Vec<Column> = vec![
            Column::new("seq".into(), (0..n as u32).collect::<Vec<u32>>()),
            StringChunked::full("source_file".into(), &self.source_file, n).into_column(),
            Column::new("source_row".into(), self.source_row),
        ];
        columns.extend(self.raw.into_iter().map(|b| b.finish().into_column()));
        columns.extend([
            self.pre_reason.finish().into_column(),
            Column::new("line_no".into(), self.line_no),
            Int32Chunked::from_iter_options("date".into(), self.date.into_iter())
                .into_date()
                .into_column(),
            Column::new("credit".into(), self.credit),
            exact::column(
                "kpi",
                self.kpi.into_iter().collect_ca("kpi".into()),
                exact::AMOUNT_SCALE,
            )?,
            exact::column(
                "rev",
                self.rev.into_iter().collect_ca("rev".into()),
                exact::AMOUNT_SCALE,
            )?,
            self.ccy.finish().into_column(),
            self.month.finish().into_column(),
            Column::new("month_index".into(), self.month_index),
        ]);
        DataFrame::new(n, columns)
    }
}

/// Room for the rows of the file at `path` holding `bytes`, so that its columns are not grown
/// (and copied) as rows are added. A CSV row ends at a line end, so the rows are about its
/// line feeds plus one, or its carriage returns plus one in a file without line feeds (one
/// pass over a file with line feeds: a file mixing lone carriage returns with line feeds is
/// rare, and its columns grow past what was reserved); an XLSX file's rows are guessed from its size (a row
/// takes some 60 bytes or more), to at most 65,536. Never more than [`MOST_ROWS_RESERVED`]: a
/// file of line ends alone must not reserve room for millions of rows.
fn row_capacity(path: &Path, bytes: &[u8]) -> usize {
    if table::kind_of(path) == Some(table::Kind::Xlsx) {
        return (bytes.len() / 64).clamp(1, 1 << 16);
    }
    let count = |b: u8| memchr::memchr_iter(b, bytes).count();
    let line_ends = match count(b'\n') {
        0 => count(b'\r'),
        feeds => feeds,
    };
    (line_ends + 1).min(MOST_ROWS_RESERVED)
}

/// The most rows reserved for a file before it is read (a larger file's columns grow).
const MOST_ROWS_RESERVED: usize = 1 << 20;

/// The frames of a delivery's files, in file-name order, as one frame with `seq` numbering
/// all rows in that order. Each file stays a chunk of its own, every column cut alike (no
/// column is copied, and the parsed rows are kept with a row group per file).
pub fn concat_files(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut frames = frames.into_iter();
    let Some(mut all) = frames.next() else {
        return Parsed::new("", 0).into_frame();
    };
    for mut f in frames {
        let offset = all.height() as u32;
        let n = f.height() as u32;
        f.with_column(Column::new(
            "seq".into(),
            (offset..offset + n).collect::<Vec<u32>>(),
        ))?;
        all.vstack_mut_owned(f)?;
    }
    Ok(all)
}

/// `invoice_line`: a whole number ≥ 1.
pub fn parse_line(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|n| *n >= 1)
}

/// The most significant digits before a decimal's point (leading zeros are not counted).
const DECIMAL_DIGITS: usize = 15;

/// A decimal: an optional sign, digits (any number of leading zeros, then at most 15 more),
/// optionally a point with 1 to 4 digits (docs/rules.md §2.7); its value in ten-thousandths,
/// exactly.
pub fn parse_decimal(s: &str) -> Option<i128> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let int = body.split_once('.').map_or(body, |(int, _)| int);
    if int.trim_start_matches('0').len() > DECIMAL_DIGITS {
        return None;
    }
    exact::parse_units(s, exact::AMOUNT_SCALE)
}

/// Whether a document type is a credit note (Some(true)) or an invoice (Some(false)); None for
/// any other. (Compared ignoring ASCII case: no other character lowercases to a letter of these
/// names, the Kelvin sign's k aside, which none of them holds.)
fn is_credit_note(doc: &str) -> Option<bool> {
    if doc.eq_ignore_ascii_case("invoice") {
        Some(false)
    } else if doc.eq_ignore_ascii_case("credit note") {
        Some(true)
    } else {
        None
    }
}

/// A currency: three letters, stored upper case (held on the stack: one a row).
pub fn parse_currency(s: &str) -> Option<[u8; 3]> {
    let letters: [u8; 3] = s.as_bytes().try_into().ok()?;
    letters
        .iter()
        .all(u8::is_ascii_alphabetic)
        .then(|| letters.map(|b| b.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: [&str; 10] = [
        "INV-1",
        "1",
        "2026-10-03",
        "Invoice",
        "P1",
        "MOC",
        "kit",
        "120.5",
        "1150.00",
        "sek",
    ];

    fn frame(cells: [&str; 10], bad: [bool; 10], delivery: &str) -> DataFrame {
        let mut p = Parsed::new("f.csv", 1);
        p.push(2, cells, bad, delivery.parse().unwrap());
        p.into_frame().unwrap()
    }

    fn reason(cells: [&str; 10], bad: [bool; 10], delivery: &str) -> Option<String> {
        let df = frame(cells, bad, delivery);
        df.column("pre_reason")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .map(String::from)
    }

    fn with(changes: &[(usize, &'static str)]) -> [&'static str; 10] {
        let mut cells = GOOD;
        for (k, v) in changes {
            cells[*k] = v;
        }
        cells
    }

    #[test]
    fn a_good_row_passes_and_is_typed() {
        let df = frame(GOOD, [false; 10], "2026-10");
        let get = |c: &str| df.column(c).unwrap().get(0).unwrap().to_string();
        assert_eq!(df.column("pre_reason").unwrap().null_count(), 1);
        assert_eq!(get("line_no"), "1");
        assert_eq!(get("kpi"), "120.5000");
        assert_eq!(get("ccy"), "\"SEK\"");
        assert_eq!(get("credit"), "false");
        assert_eq!(get("month"), "\"2026-10\"");
        assert_eq!(get("date"), "2026-10-03");
        assert_eq!(get("source_file"), "\"f.csv\"");
    }

    #[test]
    fn reasons_follow_the_contract_order() {
        let r = |changes: &[(usize, &'static str)]| reason(with(changes), [false; 10], "2026-10");
        assert_eq!(
            r(&[(9, ""), (0, "")]).as_deref(),
            Some("missing_value:invoice_number")
        );
        // Every missing value comes before any invalid value.
        assert_eq!(
            r(&[(1, "x"), (9, "")]).as_deref(),
            Some("missing_value:currency")
        );
        assert_eq!(
            r(&[(1, "0")]).as_deref(),
            Some("invalid_value:invoice_line")
        );
        assert_eq!(
            r(&[(2, "2026-02-30")]).as_deref(),
            Some("invalid_value:invoice_date")
        );
        assert_eq!(
            r(&[(7, "1,200.00")]).as_deref(),
            Some("invalid_value:kpi_value")
        );
        assert_eq!(
            r(&[(8, "1.23456")]).as_deref(),
            Some("invalid_value:revenue")
        );
        assert_eq!(r(&[(9, "EU")]).as_deref(), Some("invalid_value:currency"));
        // Invalid values come before the document type.
        assert_eq!(
            r(&[(3, "Proforma"), (9, "EU")]).as_deref(),
            Some("invalid_value:currency")
        );
        assert_eq!(
            r(&[(3, "order confirmation")]).as_deref(),
            Some("not_an_invoice")
        );
        assert_eq!(
            r(&[(3, "Partner Report")]).as_deref(),
            Some("not_an_invoice")
        );
        assert_eq!(
            r(&[(3, "Proforma")]).as_deref(),
            Some("unknown_document_type")
        );
        assert_eq!(
            r(&[(3, "Proforma"), (2, "2026-11-01")]).as_deref(),
            Some("unknown_document_type")
        );
        assert_eq!(r(&[(2, "2026-11-01")]).as_deref(), Some("future_date"));
        assert_eq!(r(&[(3, "CREDIT NOTE"), (2, "2025-01-31")]), None);
    }

    #[test]
    fn a_row_with_extra_fields_is_rejected_before_anything_else() {
        let mut p = Parsed::new("f.csv", 2);
        let month = "2026-10".parse().unwrap();
        p.push_row(
            2,
            with(&[(0, ""), (3, "Proforma")]),
            [true; 10],
            true,
            month,
        );
        p.push_row(3, GOOD, [false; 10], false, month);
        let df = p.into_frame().unwrap();
        let reasons: Vec<Option<&str>> = df
            .column("pre_reason")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(reasons, [Some("extra_fields"), None]);
    }

    #[test]
    fn bad_encoding_is_an_invalid_value_of_its_column() {
        let mut bad = [false; 10];
        bad[6] = true;
        assert_eq!(
            reason(GOOD, bad, "2026-10").as_deref(),
            Some("invalid_value:purchase_unit")
        );
    }

    #[test]
    fn decimals_are_strict() {
        for ok in [
            "0",
            "12",
            "-3.5",
            "+1.2345",
            "007.1",
            "000000000000001",
            "123456789012345",
            "123456789012345.1234",
            "-000000000000000.0001",
        ] {
            assert!(parse_decimal(ok).is_some(), "{ok}");
        }
        assert_eq!(parse_decimal("000000000000001"), Some(10_000));
        // Leading zeros are allowed and are not significant digits.
        assert_eq!(parse_decimal("0000000000000000000001"), Some(10_000));
        assert_eq!(parse_decimal("-000000000000000000000.5"), Some(-5_000));
        assert_eq!(
            parse_decimal("123456789012345.1234"),
            Some(1_234_567_890_123_451_234)
        );
        for bad in [
            "",
            ".5",
            "5.",
            "1e3",
            "1,000",
            "1.23456",
            "--1",
            "NaN",
            "inf",
            " 1",
            "1234567890123456",
            "0001234567890123456",
        ] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_line("12"), Some(12));
        for bad in ["0", "-1", "1.0", "x", ""] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_currency_is_three_letters_upper_cased() {
        assert_eq!(parse_currency("sek"), Some(*b"SEK"));
        assert_eq!(parse_currency("EuR"), Some(*b"EUR"));
        for bad in ["", "EU", "EURO", "E1R", "EÜ", "ÉUR", " EU"] {
            assert_eq!(parse_currency(bad), None, "{bad}");
        }
    }

    #[test]
    fn room_is_made_for_every_row_a_csv_can_hold() {
        let csv = Path::new("d.csv");
        assert_eq!(row_capacity(csv, b""), 1);
        assert_eq!(row_capacity(csv, b"h\na\nb"), 3);
        assert_eq!(row_capacity(csv, b"h\r\na\r\nb\r\n"), 4);
        // A carriage return alone ends a row too.
        assert_eq!(row_capacity(csv, b"h\ra\rb"), 3);
        // Line feeds are counted when there are any (the columns grow for lone returns).
        assert_eq!(row_capacity(csv, b"h\ra\rb\nc"), 2);
        // A file of line ends alone reserves no more than the cap.
        let blank = vec![b'\n'; MOST_ROWS_RESERVED + 10];
        assert_eq!(row_capacity(csv, &blank), MOST_ROWS_RESERVED);
        // An XLSX file's rows are guessed from its size.
        let xlsx = Path::new("d.XLSX");
        assert_eq!(row_capacity(xlsx, &[0; 640]), 10);
        assert_eq!(row_capacity(xlsx, &[]), 1);
    }

    #[test]
    fn files_are_numbered_in_order_and_stay_chunks_of_their_own() {
        let file = |name: &str, rows: u32| {
            let mut p = Parsed::new(name, 1);
            for r in 0..rows {
                p.push(r + 2, GOOD, [false; 10], "2026-10".parse().unwrap());
            }
            p.into_frame().unwrap()
        };
        let all = concat_files(vec![file("a.csv", 2), file("b.csv", 3)]).unwrap();
        let seq: Vec<u32> = all
            .column("seq")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(seq, [0, 1, 2, 3, 4]);
        let rows: Vec<u32> = all
            .column("source_row")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(rows, [2, 3, 2, 3, 4]);
        for c in all.columns() {
            let lengths: Vec<usize> = c.as_materialized_series().chunk_lengths().collect();
            assert_eq!(lengths, [2, 3], "{}", c.name());
        }
        assert_eq!(concat_files(vec![]).unwrap().height(), 0);
    }
}

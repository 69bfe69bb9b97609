//! Shared helpers of the integration tests: run the real binary on a temporary copy of a
//! fixture folder and read what it wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_kpi-refresh");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A temporary work folder with `input/` (a copy of a fixture's input) and `output/`.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn from_fixture(name: &str) -> Work {
        let work = Work::empty();
        copy_dir(&fixture(name).join("input"), &work.input());
        work
    }

    pub fn empty() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn input(&self) -> PathBuf {
        self.dir.path().join("input")
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.input().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Runs `kpi-refresh <args> --input <input> --output <output>` (with `--output` left out
    /// for `validate`).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--input").arg(self.input());
        if args.first() != Some(&"validate") {
            cmd.arg("--output").arg(self.output());
        }
        cmd.env("KPI_REFRESH_TODAY", "2026-11-20")
            .env_remove("KPI_REFRESH_SHEET_ROWS");
        cmd.output().unwrap()
    }

    pub fn refresh(&self, month: &str) -> Output {
        let out = self.run(&["run", "--refresh", month, "--force"]);
        assert_success(&out);
        out
    }

    /// `run --refresh <month> --force` letting a delivery reject any share of its rows (for
    /// inputs made of bad rows); the outcome is the caller's to check.
    pub fn run_lenient(&self, month: &str) -> Output {
        self.run(&[
            "run",
            "--refresh",
            month,
            "--force",
            "--max-reject-rate",
            "1",
        ])
    }

    pub fn report(&self, month: &str, file: &str) -> String {
        std::fs::read_to_string(self.output().join("reports").join(month).join(file)).unwrap()
    }
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn assert_exit(out: &Output, code: i32, stderr_has: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(
        stderr.contains(stderr_has),
        "expected {stderr_has:?} in stderr:\n{stderr}"
    );
}

/// Parses a CSV file into rows of fields (header included).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// SHA-256 of `bytes` in lower-case hex, as the manifest and the ledger record digests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `dir` with its SHA-256, relative paths sorted.
/// The `path` of each entry of a manifest's list `key` (`inputs` or `outputs`).
pub fn manifest_paths<'a>(manifest: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    manifest[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["path"].as_str().unwrap())
        .collect()
}

pub fn tree_hashes(dir: &Path) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((
                    p.strip_prefix(base).unwrap().to_string_lossy().into_owned(),
                    sha256_hex(&bytes),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The extract header of `docs/rules.md §2.7`.
pub const EXTRACT_HEADER: &str =
    "invoice_number,invoice_line,invoice_date,document_type,partner_id,omlp_type,purchase_unit,kpi_value,revenue,currency";

pub const ROSTER_HEADER: &str = "partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active,directory_name,landing_page_url,owned_domains";

pub const PROGRAM: &str = r#"
[kpi_categories]
courseware = ["MOC", "MOC On-Demand"]
certification = ["Exam Voucher"]

[markets]
default = "mature"
emerging = ["BR"]

[[requirements]]
effective_from = 2025-07-01
level = "action_pack"
min_mct = 1

[[requirements]]
effective_from = 2025-07-01
level = "silver"
min_mct = 1
kpi = { courseware = 100, certification = 20 }

[[requirements]]
effective_from = 2025-07-01
level = "gold"
min_mct = 1
kpi = { courseware = 300, certification = 60 }
"#;

/// A minimal valid program: rules, a roster of two partners, rates, no deliveries.
pub fn minimal() -> Work {
    let w = Work::empty();
    w.write("program.toml", PROGRAM);
    w.write(
        "partners.csv",
        &format!(
            "{ROSTER_HEADER}\n\
             P1,Contoso,SE,silver,Security,2024-11-05,2,yes,yes,yes,Contoso,https://contoso.se/x,contoso.se\n\
             P2,Fabrikam,BR,none,,,1,no,no,yes,,,\n"
        ),
    );
    w.write(
        "fx_rates.csv",
        "month,currency,usd_per_unit\n2026-09,EUR,1.1\n2026-10,EUR,1.2\n",
    );
    w
}

/// The workbook's sheets, in order.
pub const SHEETS: [&str; 13] = [
    "Summary",
    "Partners",
    "Monthly KPIs",
    "Renewals",
    "Anniversary watch",
    "Invoice detail",
    "Changes",
    "Directory submission",
    "Directory exceptions",
    "Rejected",
    "Data quality",
    "Unknown partners",
    "Run info",
];

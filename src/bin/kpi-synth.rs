//! `kpi-synth`: writes a realistic synthetic program in the input layout of kpi-refresh
//! (program.toml, partners.csv, fx_rates.csv, extracts/YYYY-MM/*.csv), deterministic for a
//! seed, with a small share of bad rows of every kind. For benchmarks and crash tests.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use kpi_refresh::calendar::Month;

#[derive(Parser, Debug)]
#[command(
    name = "kpi-synth",
    about = "Write a synthetic kpi-refresh input folder"
)]
struct Args {
    /// The input folder to write (created; existing files are replaced).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    partners: usize,
    #[arg(long, default_value_t = 10_000)]
    lines_per_delivery: usize,
    #[arg(long, default_value_t = 13)]
    deliveries: usize,
    /// The last delivery month.
    #[arg(long, default_value = "2026-10")]
    last: Month,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Files per delivery.
    #[arg(long, default_value_t = 3)]
    files: usize,
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PROGRAM: &str = r#"[calendar]
refresh_day = 15
directory_submit_from_day = 15
directory_submit_to_day = 21
directory_visible_by_day = 7

[kpi_categories]
courseware = ["MOC", "MOC On-Demand", "Custom MOC", "Microsoft Labs Online"]
certification = ["Exam Voucher", "Practice Test"]

[markets]
default = "mature"
emerging = ["BR", "IN", "ID", "MX", "ZA"]

[[requirements]]
effective_from = 2025-07-01
level = "action_pack"
min_mct = 1

[[requirements]]
effective_from = 2025-07-01
level = "silver"
market = "mature"
min_mct = 2
kpi = { courseware = 3000, certification = 600 }

[[requirements]]
effective_from = 2025-07-01
level = "silver"
market = "emerging"
min_mct = 1
kpi = { courseware = 1500, certification = 300 }

[[requirements]]
effective_from = 2025-07-01
level = "silver"
competency = "Data Analytics"
min_mct = 2
kpi = { courseware = 4000, certification = 800 }

[[requirements]]
effective_from = 2025-07-01
level = "gold"
min_mct = 4
kpi = { courseware = 9000, certification = 1800 }

[[requirements]]
effective_from = 2026-07-01
level = "silver"
min_mct = 2
kpi = { courseware = 3500, certification = 700 }

[[requirements]]
effective_from = 2026-07-01
level = "gold"
min_mct = 4
kpi = { courseware = 10000, certification = 2000 }

[[extensions]]
name = "COVID-19 competency extension"
anniversary_from = 2021-01-01
anniversary_to = 2021-06-30
exclude_competencies = ["Cloud Business Applications"]
"#;

const COUNTRIES: [&str; 14] = [
    "SE", "FI", "DE", "GB", "US", "FR", "NL", "BR", "IN", "MX", "ZA", "ID", "DK", "NO",
];
const CURRENCIES: [&str; 5] = ["USD", "EUR", "GBP", "SEK", "BRL"];
const OMLP: [&str; 6] = [
    "MOC",
    "MOC On-Demand",
    "Custom MOC",
    "Microsoft Labs Online",
    "Exam Voucher",
    "Practice Test",
];
const COMPETENCIES: [&str; 5] = [
    "Data Analytics",
    "Cloud Platform",
    "Modern Work",
    "Security",
    "Cloud Business Applications",
];

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rng = Rng(args.seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let out = &args.out;
    write(&out.join("program.toml"), PROGRAM)?;

    let first = args.last.plus(-(args.deliveries as i32) + 1);
    let ids: Vec<String> = (0..args.partners)
        .map(|i| format!("{:07}", 4_400_000 + i))
        .collect();
    write(&out.join("partners.csv"), &roster(&mut rng, &ids))?;
    write(
        &out.join("fx_rates.csv"),
        &fx_rates(&mut rng, first, args.deliveries),
    )?;
    write_extracts(&args, &mut rng, first, &ids)?;
    eprintln!(
        "wrote {} partners, {} deliveries of {} lines ({} … {}) to {}",
        args.partners,
        args.deliveries,
        args.lines_per_delivery,
        first,
        args.last,
        out.display()
    );
    Ok(())
}

/// The roster: a row per partner of `ids`.
fn roster(rng: &mut Rng, ids: &[String]) -> String {
    let mut roster = String::from("partner_id,partner_name,country,enrollment,competency,enrolled_on,mct_count,exams_met,performance_commitment,action_pack_active,directory_name,landing_page_url,owned_domains\n");
    for (i, id) in ids.iter().enumerate() {
        let country = rng.pick(&COUNTRIES);
        let level = *rng.pick(&["none", "action_pack", "silver", "silver", "gold"]);
        let competency = if level == "silver" || level == "gold" {
            *rng.pick(&COMPETENCIES)
        } else {
            ""
        };
        let enrolled = if level == "none" {
            String::new()
        } else {
            let m =
                Month::new(2019 + rng.below(7) as i32, 1 + rng.below(12) as u32).expect("valid");
            m.day(1 + rng.below(28) as u32).to_string()
        };
        let domain = format!("partner{i}.example.com");
        let url = match rng.below(50) {
            0 => format!("http://{domain}/learn"),
            1 => format!("https://other{i}.example.net/"),
            _ => format!("https://www.{domain}/microsoft"),
        };
        let _ = writeln!(
            roster,
            "{id},Partner {i} Utbildning AB,{country},{level},{competency},{enrolled},{},{},{},{},Partner {i},{url},{domain}",
            rng.below(6),
            if rng.below(10) < 8 { "yes" } else { "no" },
            if rng.below(10) < 9 { "yes" } else { "no" },
            if rng.below(10) < 7 { "yes" } else { "no" },
        );
    }
    roster
}

/// The rates of every month from the month before `first` to the last delivery.
fn fx_rates(rng: &mut Rng, first: Month, deliveries: usize) -> String {
    let mut fx = String::from("month,currency,usd_per_unit\n");
    for m in 0..deliveries as i32 + 1 {
        let month = first.plus(m - 1);
        for (c, base) in [("EUR", 1.08), ("GBP", 1.27), ("SEK", 0.095), ("BRL", 0.19)] {
            let _ = writeln!(
                fx,
                "{month},{c},{:.6}",
                base * (1.0 + (rng.below(200) as f64 - 100.0) / 10_000.0)
            );
        }
    }
    fx
}

/// The extracts of every delivery from `first` on, `args.files` files each.
fn write_extracts(args: &Args, rng: &mut Rng, first: Month, ids: &[String]) -> std::io::Result<()> {
    let header = "invoice_number,invoice_line,invoice_date,document_type,partner_id,omlp_type,purchase_unit,kpi_value,revenue,currency\n";
    let mut invoice = 0u64;
    for d in 0..args.deliveries as i32 {
        let delivery = first.plus(d);
        let dir = args.out.join("extracts").join(delivery.to_string());
        std::fs::create_dir_all(&dir)?;
        let per_file = args.lines_per_delivery.div_ceil(args.files.max(1));
        let mut written = 0;
        for f in 0..args.files.max(1) {
            let mut file = std::io::BufWriter::new(std::fs::File::create(
                dir.join(format!("part-{}.csv", f + 1)),
            )?);
            file.write_all(header.as_bytes())?;
            let mut line = String::new();
            let mut in_invoice = 0;
            for _ in 0..per_file.min(args.lines_per_delivery - written) {
                written += 1;
                if in_invoice == 0 || rng.below(3) == 0 {
                    invoice += 1;
                    in_invoice = 0;
                }
                in_invoice += 1;
                let fields = line_fields(rng, delivery, ids, invoice, in_invoice);
                line.clear();
                line.push_str(&fields.join(","));
                line.push('\n');
                file.write_all(line.as_bytes())?;
            }
            file.flush()?;
        }
    }
    Ok(())
}

/// The fields of one invoice line of `delivery`, about 1% of them bad in one way or another.
fn line_fields(
    rng: &mut Rng,
    delivery: Month,
    ids: &[String],
    invoice: u64,
    in_invoice: u32,
) -> [String; 10] {
    let late = rng.below(20) == 0;
    let month = if late {
        delivery.plus(-(1 + rng.below(3) as i32))
    } else {
        delivery
    };
    let date = month.day(1 + rng.below(28) as u32);
    let credit = rng.below(40) == 0;
    let kpi = (1 + rng.below(40_000)) as f64 / 100.0;
    let currency = rng.pick(&CURRENCIES);
    let (doc, sign) = if credit {
        ("Credit Note", "-")
    } else {
        ("Invoice", "")
    };
    let mut fields = [
        format!("INV-{invoice:09}"),
        in_invoice.to_string(),
        date.to_string(),
        doc.to_string(),
        rng.pick(ids).clone(),
        rng.pick(&OMLP).to_string(),
        "Kit".to_string(),
        format!("{sign}{kpi:.2}"),
        format!("{sign}{:.2}", kpi * 9.5),
        currency.to_string(),
    ];
    // About 1% bad rows, of every kind.
    if rng.below(100) == 0 {
        match rng.below(11) {
            0 => fields[9].clear(),
            1 => fields[1] = "0".into(),
            2 => fields[2] = format!("{}-02-30", delivery.year()),
            3 => fields[3] = "Order Confirmation".into(),
            4 => fields[3] = "Proforma".into(),
            5 => fields[2] = delivery.plus(1).day(2).to_string(),
            6 => fields[4] = "9999999".into(),
            7 => fields[5] = "Webinar".into(),
            8 => fields[7] = format!("-{}", fields[7].trim_start_matches('-')),
            9 => fields[0] = format!("INV-{:09}", invoice.saturating_sub(1)),
            // A line of an earlier delivery, sent again.
            _ => {
                fields[0] = format!("INV-{:09}", invoice.saturating_sub(250_000));
                fields[1] = "1".into();
            }
        }
    }
    fields
}

//! `program.toml`: the program rules (docs/rules.md §2.4), loaded and checked before any data
//! is read.
//!
//! Owns the calendar days, KPI categories and their OMLP types, markets, requirement blocks
//! and extensions, and the rule that picks one requirement block for a partner and a level.
//! The file is read into its shape (`shape`, serde types that refuse unknown keys) and then
//! checked in one pass (`check`); every violation is a configuration error (exit 78) naming
//! the offending key.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use toml::{Table, Value};

use super::keys::{self, Blocks, Failure};
use crate::error::{Error, Result};

mod check;
mod shape;

pub use check::{EXCEL_COLUMNS, MAX_CATEGORIES};

/// Enrollment levels, ordered `none` < `action_pack` < `silver` < `gold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    None,
    ActionPack,
    Silver,
    Gold,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::None, Level::ActionPack, Level::Silver, Level::Gold];
    /// The levels a partner can qualify for, highest first.
    pub const QUALIFYING: [Level; 3] = [Level::Gold, Level::Silver, Level::ActionPack];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::ActionPack => "action_pack",
            Level::Silver => "silver",
            Level::Gold => "gold",
        }
    }

    /// Parses a level name case-insensitively (after trimming).
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Silver and gold need KPIs; the action pack does not.
    pub fn has_kpis(self) -> bool {
        matches!(self, Level::Silver | Level::Gold)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Calendar {
    pub refresh_day: u32,
    pub directory_submit_from_day: u32,
    pub directory_submit_to_day: u32,
    pub directory_visible_by_day: u32,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            refresh_day: 15,
            directory_submit_from_day: 15,
            directory_submit_to_day: 21,
            directory_visible_by_day: 7,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Category {
    pub name: String,
    pub omlp_types: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    /// Position in program.toml (0-based), to name the block in messages.
    pub position: usize,
    /// The line of its `[[requirements]]` header, when the file has one per block.
    pub line: Option<usize>,
    pub effective_from: NaiveDate,
    pub level: Level,
    /// `None` is `"*"`, every market.
    pub market: Option<String>,
    pub competency: Option<String>,
    pub min_mct: u32,
    pub exams_required: bool,
    pub performance_commitment_required: bool,
    /// Threshold per category, in `[kpi_categories]` order (0 where not named).
    pub kpi: Vec<f64>,
}

impl Requirement {
    /// A short name for the block, as an analyst would look it up in program.toml.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "the {} [[requirements]] block",
            keys::ordinal(self.position + 1)
        );
        if let Some(line) = self.line {
            s.push_str(&format!(", line {line}"));
        }
        s.push_str(&format!(
            " ({} from {}, market {}",
            self.level,
            self.effective_from,
            self.market.as_deref().unwrap_or("*")
        ));
        if let Some(c) = &self.competency {
            s.push_str(&format!(", competency {c}"));
        }
        s.push(')');
        s
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Extension {
    pub name: String,
    pub anniversary_from: NaiveDate,
    pub anniversary_to: NaiveDate,
    pub exclude_competencies: Vec<String>,
}

impl Extension {
    /// Whether this extension keeps a level at `anniversary` for `competency`.
    pub fn applies(&self, anniversary: NaiveDate, competency: &str) -> bool {
        (self.anniversary_from..=self.anniversary_to).contains(&anniversary)
            && !self
                .exclude_competencies
                .iter()
                .any(|c| same_text(c, competency))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub calendar: Calendar,
    pub categories: Vec<Category>,
    /// Lower-cased OMLP type -> (canonical spelling, category index).
    omlp_types: HashMap<String, (String, usize)>,
    pub default_market: String,
    /// Market names as written (the default first).
    pub markets: Vec<String>,
    /// Upper-case country -> market name.
    market_of_country: HashMap<String, String>,
    pub requirements: Vec<Requirement>,
    pub extensions: Vec<Extension>,
    /// `[watch] lead_months`: how many months ahead the anniversary watch looks (0–12).
    pub watch_lead_months: u32,
}

impl Program {
    pub fn load(path: &Path) -> Result<Program> {
        Program::load_with_digest(path).map(|(program, _)| program)
    }

    /// Loads program.toml, reading it once: the program and the SHA-256 of the bytes parsed.
    pub fn load_with_digest(path: &Path) -> Result<(Program, String)> {
        let source = crate::source::read(path).map_err(|e| match e {
            Error::MissingInput { .. } => Error::MissingInput {
                what: "program rules".into(),
                path: path.to_path_buf(),
            },
            Error::Unreadable { reason, .. } => Error::config(path, "(file)", reason),
            other => other,
        })?;
        let text = std::str::from_utf8(&source.bytes)
            .map_err(|e| Error::config(path, "(file)", format!("not UTF-8: {e}")))?;
        let program =
            Program::parse(text).map_err(|(key, message)| Error::config(path, key, message))?;
        Ok((program, source.sha256))
    }

    /// Parses and checks program.toml text; an error names the key. The text is read into the
    /// shape of the file (`shape`: known keys, kinds of values), then checked once (`check`).
    pub fn parse(text: &str) -> Result<Program, Failure> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root: Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|s| format!("line {}", line_of(text, s.start)));
            (
                at.unwrap_or_else(|| "(file)".into()),
                e.message().to_string(),
            )
        })?;
        let count = |k: &str| root.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        let requirements = Blocks::find(text, "requirements", count("requirements"));
        let extensions = Blocks::find(text, "extensions", count("extensions"));
        let raw: shape::RawProgram =
            serde_path_to_error::deserialize(Value::Table(root)).map_err(|e| {
                let key = keys::name_path(e.path(), &[&requirements, &extensions]);
                // serde says "unknown field `x`, expected one of …"; program.toml has keys.
                let message = e
                    .inner()
                    .message()
                    .replacen("unknown field", "unknown key", 1);
                (key, message)
            })?;
        check::program(raw, &requirements, &extensions)
    }

    /// The canonical OMLP type and its category index, matched case-insensitively.
    pub fn omlp_type(&self, raw: &str) -> Option<(&str, usize)> {
        self.omlp_types
            .get(&raw.trim().to_lowercase())
            .map(|(name, cat)| (name.as_str(), *cat))
    }

    /// Every OMLP type as (lower-cased key, canonical spelling, category name).
    pub fn omlp_table(&self) -> Vec<(String, String, String)> {
        let mut rows: Vec<_> = self
            .omlp_types
            .iter()
            .map(|(k, (name, cat))| (k.clone(), name.clone(), self.categories[*cat].name.clone()))
            .collect();
        rows.sort();
        rows
    }

    pub fn market_of(&self, country: &str) -> &str {
        self.market_of_country
            .get(&country.to_uppercase())
            .map_or(&self.default_market, |m| m.as_str())
    }

    /// The requirement block for one partner and level at `decision_date` (docs/rules.md
    /// §7.1): the newest `effective_from` on or before the date; among those, the matching
    /// blocks; a named competency beats none, then a named market beats `"*"`.
    pub fn requirement(
        &self,
        level: Level,
        decision_date: NaiveDate,
        market: &str,
        competency: &str,
    ) -> Option<&Requirement> {
        let of_level = || {
            self.requirements
                .iter()
                .filter(|r| r.level == level && r.effective_from <= decision_date)
        };
        let newest = of_level().map(|r| r.effective_from).max()?;
        let competency = competency.trim();
        of_level()
            .filter(|r| r.effective_from == newest)
            .filter(|r| r.market.as_deref().is_none_or(|m| same_text(m, market)))
            .filter(|r| {
                r.competency
                    .as_deref()
                    .is_none_or(|c| !competency.is_empty() && same_text(c, competency))
            })
            // The first block in the file wins a tie: `max_by_key` keeps the last maximum, so
            // walk the blocks in reverse.
            .rev()
            .max_by_key(|r| (r.competency.is_some(), r.market.is_some()))
    }

    /// The first extension (in file order) that keeps a level at this anniversary.
    pub fn extension_for(&self, anniversary: NaiveDate, competency: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|e| e.applies(anniversary, competency))
    }
}

/// Names (markets, competencies) compare case-insensitively, in any script, after trimming.
pub fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_date;

    pub const SAMPLE: &str = r#"
[calendar]
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
market = "*"
min_mct = 1

[[requirements]]
effective_from = 2025-07-01
level = "silver"
market = "mature"
competency = "Data Analytics"
min_mct = 2
kpi = { courseware = 100, certification = 25 }

[[requirements]]
effective_from = 2025-07-01
level = "silver"
kpi = { courseware = 80 }

[[requirements]]
effective_from = 2025-07-01
level = "silver"
market = "emerging"
kpi = { courseware = 40 }

[[requirements]]
effective_from = 2026-07-01
level = "silver"
market = "emerging"
kpi = { courseware = 60 }

[[extensions]]
name = "COVID-19 competency extension"
anniversary_from = 2021-01-01
anniversary_to = 2021-06-30
exclude_competencies = ["Cloud Business Applications"]
"#;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    /// The machine part of the key an error names (before the block's name for people).
    fn key_of(text: &str) -> String {
        let key = Program::parse(text).unwrap_err().0;
        key.split(" (").next().unwrap_or_default().to_string()
    }

    #[test]
    fn unknown_keys_anywhere_are_errors_naming_them() {
        let e =
            Program::parse(&SAMPLE.replace("refresh_day = 15", "refresh_dya = 15")).unwrap_err();
        assert_eq!(e.0, "calendar.refresh_dya");
        assert_eq!(
            key_of(&format!(
                "{SAMPLE}
[extras]
x = 1"
            )),
            "extras"
        );
        assert_eq!(
            key_of(&format!(
                "{SAMPLE}
[watch]
lead_month = 1"
            )),
            "watch.lead_month"
        );
        let p = Program::parse(&format!(
            "{SAMPLE}
[watch]
lead_months = 6"
        ))
        .unwrap();
        assert_eq!(p.watch_lead_months, 6);
        assert_eq!(Program::parse(SAMPLE).unwrap().watch_lead_months, 3);
        let bad_ext = SAMPLE.replace("exclude_competencies", "exclude_competency");
        assert_eq!(key_of(&bad_ext), "extensions[0].exclude_competency");
    }

    #[test]
    fn blocks_are_named_as_a_person_counts_them_with_their_line() {
        let text = SAMPLE.replacen("level = \"silver\"", "level = \"platinum\"", 1);
        let (key, _) = Program::parse(&text).unwrap_err();
        let line = SAMPLE
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim() == "[[requirements]]")
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_eq!(
            key,
            format!("requirements[1].level (the 2nd [[requirements]] block, line {line})")
        );
        let p = Program::parse(SAMPLE).unwrap();
        assert!(p.requirements[1].describe().starts_with(&format!(
            "the 2nd [[requirements]] block, line {line} (silver"
        )));
    }

    #[test]
    fn sample_loads_with_defaults() {
        let p = Program::parse(SAMPLE).unwrap();
        assert_eq!(
            p.categories
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["courseware", "certification"]
        );
        assert_eq!(p.omlp_type("moc on-demand"), Some(("MOC On-Demand", 0)));
        assert_eq!(p.omlp_type(" exam voucher "), Some(("Exam Voucher", 1)));
        assert_eq!(p.omlp_type("Webinar"), None);
        assert_eq!(p.market_of("br"), "emerging");
        assert_eq!(p.market_of("SE"), "mature");
        let ap = &p.requirements[0];
        assert_eq!(
            (
                ap.min_mct,
                ap.exams_required,
                ap.performance_commitment_required
            ),
            (1, false, false)
        );
        let generic = &p.requirements[2];
        assert_eq!(
            (
                generic.min_mct,
                generic.exams_required,
                generic.market.as_deref()
            ),
            (1, true, None)
        );
        assert_eq!(generic.kpi, vec![80.0, 0.0]);
        assert_eq!(p.calendar, Calendar::default());
    }

    #[test]
    fn requirement_selection_follows_the_contract() {
        let p = Program::parse(SAMPLE).unwrap();
        let pick = |date: &str, market: &str, comp: &str| {
            p.requirement(Level::Silver, d(date), market, comp)
                .map(|r| r.position)
        };
        // Named competency beats a generic block.
        assert_eq!(pick("2026-03-01", "mature", "data analytics"), Some(1));
        assert_eq!(pick("2026-03-01", "mature", "Security"), Some(2));
        // Named market beats "*".
        assert_eq!(pick("2026-03-01", "emerging", "Security"), Some(3));
        // The newest set on or before the decision date is the only one considered.
        assert_eq!(pick("2026-07-01", "emerging", "Security"), Some(4));
        assert_eq!(pick("2026-07-01", "mature", "Security"), None);
        assert_eq!(pick("2025-06-30", "mature", "Security"), None);
        assert_eq!(
            p.requirement(Level::Gold, d("2026-03-01"), "mature", ""),
            None
        );
    }

    #[test]
    fn names_match_case_insensitively_in_any_script() {
        let text = SAMPLE
            .replace("\"Data Analytics\"", "\"SÄKERHET\"")
            .replace("\"Cloud Business Applications\"", "\"ÖVRIGT\"");
        let p = Program::parse(&text).unwrap();
        let block = p
            .requirement(Level::Silver, d("2026-03-01"), "MATURE", " säkerhet ")
            .unwrap();
        assert_eq!(block.competency.as_deref(), Some("SÄKERHET"));
        assert!(p.extension_for(d("2021-03-01"), "övrigt").is_none());
        assert!(same_text("Ärlig", "äRLIG") && !same_text("a", "b"));
    }

    #[test]
    fn extension_ranges_are_inclusive_and_exclude_competencies() {
        let p = Program::parse(SAMPLE).unwrap();
        assert!(p.extension_for(d("2021-01-01"), "Security").is_some());
        assert!(p.extension_for(d("2021-06-30"), "Security").is_some());
        assert!(p.extension_for(d("2021-07-01"), "Security").is_none());
        assert!(p
            .extension_for(d("2021-03-01"), "cloud business applications")
            .is_none());
    }

    #[test]
    fn rule_violations_name_the_key() {
        let with = |extra: &str| format!("{SAMPLE}\n{extra}");
        assert_eq!(
            key_of(&with(
                "[[requirements]]\neffective_from = 2025-07-01\nlevel = \"platinum\""
            )),
            "requirements[5].level"
        );
        assert_eq!(
            key_of(&with("[[requirements]]\neffective_from = 2025-07-01\nlevel = \"gold\"\nmarket = \"moon\"")),
            "requirements[5].market"
        );
        assert_eq!(
            key_of(&with("[[requirements]]\neffective_from = 2025-07-01\nlevel = \"gold\"\nkpi = { books = 1 }")),
            "requirements[5].kpi.books"
        );
        assert_eq!(
            key_of(&with("[[requirements]]\neffective_from = 2025-07-01\nlevel = \"gold\"\nkpi = { courseware = -1 }")),
            "requirements[5].kpi.courseware"
        );
        let twice = SAMPLE.replace("\"Practice Test\"]", "\"Practice Test\", \"moc\"]");
        assert_eq!(key_of(&twice), "kpi_categories.certification");
        let two_markets = SAMPLE.replace("\"ZA\"]", "\"ZA\"]\nnordic = [\"SE\", \"br\"]");
        assert_eq!(key_of(&two_markets), "markets.nordic");
        assert!(key_of("[calendar\nrefresh_day = 15").starts_with("line 1"));
    }

    #[test]
    fn watch_lead_months_is_a_whole_number_from_0_to_12() {
        assert_eq!(Program::parse(SAMPLE).unwrap().watch_lead_months, 3);
        let with = |v: &str| format!("{SAMPLE}\n[watch]\nlead_months = {v}\n");
        assert_eq!(Program::parse(&with("0")).unwrap().watch_lead_months, 0);
        assert_eq!(Program::parse(&with("12")).unwrap().watch_lead_months, 12);
        for bad in ["13", "-1", "2.5", "\"3\"", "true"] {
            assert_eq!(key_of(&with(bad)), "watch.lead_months", "{bad}");
        }
        assert_eq!(key_of(&format!("watch = 3\n{SAMPLE}")), "watch");
    }

    #[test]
    fn an_error_inside_a_block_names_the_block_and_the_value_kind() {
        let e = Program::parse(&SAMPLE.replacen("min_mct = 2", "min_mtc = 2", 1)).unwrap_err();
        assert!(
            e.0.starts_with("requirements[1].min_mtc (the 2nd [[requirements]] block, line "),
            "{e:?}"
        );
        let e = Program::parse(&SAMPLE.replace("\"Cloud Business Applications\"", "\"x\", 3"))
            .unwrap_err();
        assert!(
            e.0.starts_with("extensions[0].exclude_competencies[1] (the 1st [[extensions]]"),
            "{e:?}"
        );
        assert_eq!(e.1, "must be a string");
        let e =
            Program::parse(&SAMPLE.replace("refresh_day = 15", "refresh_day = 32")).unwrap_err();
        assert_eq!(
            e,
            (
                "calendar.refresh_day".to_string(),
                "must be a day of the month from 1 to 31".to_string()
            )
        );
        let e = Program::parse(&SAMPLE.replace(
            "level = \"silver\"\nmarket = \"mature\"",
            "market = \"mature\"",
        ))
        .unwrap_err();
        assert!(e.0.starts_with("requirements[1].level ("), "{e:?}");
        assert_eq!(e.1, "is missing");
    }

    #[test]
    fn a_threshold_past_fifteen_digits_names_its_key() {
        let with = |v: &str| {
            format!("{SAMPLE}\n[[requirements]]\neffective_from = 2025-07-01\nlevel = \"gold\"\nkpi = {{ courseware = {v} }}\n")
        };
        assert!(Program::parse(&with("999999999999999")).is_ok());
        assert_eq!(key_of(&with("1e308")), "requirements[5].kpi.courseware");
        assert_eq!(
            key_of(&with("1000000000000000")),
            "requirements[5].kpi.courseware"
        );
    }
}

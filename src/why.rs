//! Why a decision is what it is, in a few words: the wording of each unmet requirement and
//! the `Why` column of the Partners and Renewals sheets.
//!
//! [`crate::renewal`] words the unmet requirements of each level with the functions here;
//! `explain` prints the same texts and the workbook's `Why` joins those of the enrollment
//! level, so the two never tell different stories. See docs/rules.md §8.5.

use chrono::NaiveDate;

use crate::config::program::Level;
use crate::kpi::round4;
use crate::renewal::{Decision, Status};

/// A KPI below its threshold: `courseware 3,052.65 of 10,000`.
pub fn kpi(category: &str, value: f64, required: f64) -> String {
    format!(
        "{category} {} of {}",
        grouped(round4(value)),
        grouped(required)
    )
}

/// An action pack level without an active subscription.
pub fn action_pack() -> String {
    "Action Pack not active".to_string()
}

/// Too few Microsoft Certified Trainers: `2 MCTs of 4`.
pub fn mct(have: u32, need: u32) -> String {
    let unit = if have == 1 { "MCT" } else { "MCTs" };
    format!("{have} {unit} of {need}")
}

/// The exam requirements are not met.
pub fn exams() -> String {
    "exams not met".to_string()
}

/// No commitment to the performance requirements.
pub fn performance_commitment() -> String {
    "no performance commitment".to_string()
}

/// No requirement block of the level matches the partner at the decision date.
pub fn no_requirement(level: Level, date: NaiveDate) -> String {
    format!("no {level} requirement applies on {date}")
}

/// The `Why` of one decision: the applied extension's name for `extended`; for a partner whose
/// qualified level is below its enrollment, each unmet requirement of the enrollment level,
/// joined by `; `; empty otherwise.
pub fn of(d: &Decision) -> String {
    if d.status == Status::Extended {
        return d.extension.clone().unwrap_or_default();
    }
    if d.enrollment == Level::None || d.qualified_level >= d.enrollment {
        return String::new();
    }
    d.checks
        .iter()
        .find(|c| c.level == d.enrollment)
        .map(|c| c.unmet.join("; "))
        .unwrap_or_default()
}

/// A number with thousands separators and at most 4 decimals, trailing zeros dropped:
/// `3052.65` → `3,052.65`, `10000` → `10,000`.
pub fn grouped(x: f64) -> String {
    grouped_to(x, 4)
}

/// [`grouped`] with at most `decimals` decimals (at most 4).
pub fn grouped_to(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals.min(4), round4(x).abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if x < 0.0 && out.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::program::Program;
    use crate::ingest::roster::Partner;
    use crate::kpi::PartnerKpis;
    use crate::renewal::decide_one;

    const PROGRAM: &str = r#"
[kpi_categories]
courseware = ["MOC"]
certification = ["Exam Voucher"]

[[requirements]]
effective_from = 2025-07-01
level = "action_pack"
min_mct = 1

[[requirements]]
effective_from = 2025-07-01
level = "silver"
min_mct = 2
kpi = { courseware = 10000, certification = 20 }

[[requirements]]
effective_from = 2025-07-01
level = "gold"
min_mct = 4
competency = "Security"
kpi = { courseware = 30000, certification = 60 }

[[extensions]]
name = "Migration extension"
anniversary_from = 2026-11-10
anniversary_to = 2026-11-20
"#;

    /// A partner due in 2026-11 (anniversary 2026-11-02) that meets everything but KPIs.
    fn partner(enrollment: Level, competency: &str) -> Partner {
        Partner {
            partner_id: "P1".into(),
            partner_name: "P1".into(),
            country: "SE".into(),
            enrollment,
            competency: competency.into(),
            enrolled_on: NaiveDate::from_ymd_opt(2024, 11, 2),
            mct_count: 4,
            exams_met: true,
            performance_commitment: true,
            action_pack_active: true,
            directory_name: String::new(),
            landing_page_url: String::new(),
            owned_domains: String::new(),
        }
    }

    fn why_of(p: &Partner, courseware: f64, certification: f64) -> String {
        let program = Program::parse(PROGRAM).unwrap();
        let kpis = PartnerKpis {
            kpi: vec![courseware, certification],
            revenue_usd: 0.0,
            lines: 1,
        };
        let d = decide_one(&program, p, "2026-11".parse().unwrap(), kpis, None);
        of(&d)
    }

    #[test]
    fn the_why_of_each_kind_of_unmet_requirement() {
        let silver = partner(Level::Silver, "Data");
        // KPIs, in category order.
        assert_eq!(
            why_of(&silver, 3052.65, 5.0),
            "courseware 3,052.65 of 10,000; certification 5 of 20"
        );
        // MCTs, exams and the performance commitment, after the KPIs.
        let short = Partner {
            mct_count: 1,
            exams_met: false,
            performance_commitment: false,
            ..silver.clone()
        };
        assert_eq!(
            why_of(&short, 3052.65, 20.0),
            "courseware 3,052.65 of 10,000; 1 MCT of 2; exams not met; no performance commitment"
        );
        // An action pack without an active subscription (and too few MCTs).
        let pack = Partner {
            action_pack_active: false,
            mct_count: 0,
            competency: String::new(),
            ..partner(Level::ActionPack, "")
        };
        assert_eq!(
            why_of(&pack, 0.0, 0.0),
            "Action Pack not active; 0 MCTs of 1"
        );
        // Gold has a block for Security only: another competency has none to meet.
        let gold = partner(Level::Gold, "Data");
        assert_eq!(
            why_of(&gold, 50000.0, 100.0),
            "no gold requirement applies on 2026-11-02"
        );
        // Met, or above: empty.
        assert_eq!(why_of(&silver, 10000.0, 20.0), "");
        assert_eq!(
            why_of(&partner(Level::Silver, "Security"), 30000.0, 60.0),
            ""
        );
        assert_eq!(why_of(&partner(Level::None, ""), 0.0, 0.0), "");
    }

    #[test]
    fn an_extended_decision_names_its_extension() {
        let p = Partner {
            enrolled_on: NaiveDate::from_ymd_opt(2024, 11, 15),
            ..partner(Level::Silver, "Data")
        };
        assert_eq!(why_of(&p, 0.0, 0.0), "Migration extension");
    }

    #[test]
    fn numbers_are_grouped_with_at_most_four_decimals() {
        assert_eq!(grouped(3052.65), "3,052.65");
        assert_eq!(grouped(10000.0), "10,000");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1234567.12345), "1,234,567.1235");
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(-1500.5), "-1,500.5");
        assert_eq!(grouped(-0.00001), "0");
        assert_eq!(grouped_to(862.666_666, 2), "862.67");
        assert_eq!(grouped_to(1_000_000.5, 2), "1,000,000.5");
        assert_eq!(grouped_to(-1380.0, 2), "-1,380");
        assert_eq!(grouped_to(-0.001, 2), "0");
    }

    #[test]
    fn each_requirement_has_its_words() {
        assert_eq!(
            kpi("courseware", 3052.65, 10000.0),
            "courseware 3,052.65 of 10,000"
        );
        assert_eq!(mct(2, 4), "2 MCTs of 4");
        assert_eq!(mct(1, 2), "1 MCT of 2");
        assert_eq!(action_pack(), "Action Pack not active");
        let d = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        assert_eq!(
            no_requirement(Level::Gold, d),
            "no gold requirement applies on 2026-11-05"
        );
    }
}

//! Eligibility and renewal decisions of a refresh (docs/rules.md §6–§8).
//!
//! For every roster partner: its enrollment in R (the roster's, `none` when enrolled after R,
//! or a downgrade or lapse carried forward from `state/levels/` while the roster lags), its
//! next anniversary, the requirement block of each level at the decision date, the highest
//! level it qualifies for, and from these the renewal status, effective level, outlook and
//! KPI gaps. The levels decided are kept in `state/levels/` ([`crate::state`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use tracing::info;

use crate::calendar::{next_anniversary, Month};
use crate::config::program::{Level, Program};
use crate::error::Result;
use crate::ingest::roster::{Partner, Roster};
use crate::kpi::{round4, PartnerKpis};
pub use crate::state::{LevelRow, PreviousLevels};
use crate::why;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    NotEnrolled,
    NotDue,
    Extended,
    UpgradeEligible,
    Renew,
    Downgrade,
    Lapse,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::NotEnrolled,
        Status::NotDue,
        Status::Extended,
        Status::UpgradeEligible,
        Status::Renew,
        Status::Downgrade,
        Status::Lapse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotEnrolled => "not_enrolled",
            Status::NotDue => "not_due",
            Status::Extended => "extended",
            Status::UpgradeEligible => "upgrade_eligible",
            Status::Renew => "renew",
            Status::Downgrade => "downgrade",
            Status::Lapse => "lapse",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outlook {
    UpgradeEligible,
    OnTrack,
    AtRisk,
    EligibleToEnroll,
    NotEligible,
}

impl Outlook {
    pub const ALL: [Outlook; 5] = [
        Outlook::UpgradeEligible,
        Outlook::OnTrack,
        Outlook::AtRisk,
        Outlook::EligibleToEnroll,
        Outlook::NotEligible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outlook::UpgradeEligible => "upgrade_eligible",
            Outlook::OnTrack => "on_track",
            Outlook::AtRisk => "at_risk",
            Outlook::EligibleToEnroll => "eligible_to_enroll",
            Outlook::NotEligible => "not_eligible",
        }
    }
}

impl fmt::Display for Outlook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one partner fares against one level's requirement.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelCheck {
    pub level: Level,
    /// Index into `Program::requirements`; `None` when no block matches.
    pub requirement: Option<usize>,
    /// What is not met, in words (empty when the level is met).
    pub unmet: Vec<String>,
}

impl LevelCheck {
    pub fn met(&self) -> bool {
        self.requirement.is_some() && self.unmet.is_empty()
    }
}

/// One partner's decision in refresh R.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub partner_id: String,
    pub market: String,
    /// The enrollment in R.
    pub enrollment: Level,
    /// The enrollment in R comes from an earlier decision the roster does not show yet.
    pub carried_forward: bool,
    pub next_anniversary: Option<NaiveDate>,
    pub months_to_anniversary: Option<i32>,
    pub due: bool,
    pub decision_date: NaiveDate,
    pub kpis: PartnerKpis,
    pub checks: Vec<LevelCheck>,
    pub qualified_level: Level,
    pub status: Status,
    pub effective_level: Level,
    pub outlook: Outlook,
    pub extension: Option<String>,
    /// Thresholds of the enrollment level's block (none for `none` or no block).
    pub required: Option<Vec<f64>>,
    pub gap: Vec<f64>,
}

/// The latest `state/levels/M.csv` with M < `refresh`, if any.
pub fn load_previous_levels(output: &Path, refresh: Month) -> Result<Option<PreviousLevels>> {
    crate::state::read_levels(output, refresh)
}

/// Decides every roster partner's renewal in `refresh`, sorted by partner_id.
pub fn decide(
    program: &Program,
    roster: &Roster,
    refresh: Month,
    kpis: &HashMap<String, PartnerKpis>,
    previous: Option<&PreviousLevels>,
) -> Vec<Decision> {
    let mut missing_blocks = HashSet::new();
    let decisions = roster
        .partners
        .iter()
        .map(|p| {
            let carried = previous.and_then(|(month, rows)| carried_level(p, *month, rows.get(&p.partner_id)?));
            let kpis = kpis.get(&p.partner_id).cloned().unwrap_or_else(|| PartnerKpis {
                kpi: vec![0.0; program.categories.len()],
                ..Default::default()
            });
            let d = decide_one(program, p, refresh, kpis, carried);
            for c in d.checks.iter().filter(|c| c.requirement.is_none()) {
                if missing_blocks.insert(c.level) {
                    info!(level = %c.level, "no requirement block matches some partners for this level; they cannot qualify for it");
                }
            }
            d
        })
        .collect();
    decisions
}

/// The level carried forward from `row` (written after `month`), when the roster lags.
fn carried_level(p: &Partner, month: Month, row: &LevelRow) -> Option<Level> {
    let enrolled_on = p.enrolled_on.map(|d| d.to_string()).unwrap_or_default();
    let row_enrolled = crate::calendar::parse_date(&row.enrolled_on);
    if row_enrolled.is_some_and(|d| d > month.last_day()) {
        return None;
    }
    let same = row.roster_enrollment == p.enrollment.as_str() && row.enrolled_on == enrolled_on;
    let effective = Level::parse(&row.effective_level)?;
    (same && effective != p.enrollment).then_some(effective)
}

/// The roster partners due in `refresh` (in roster order), given the levels of the latest
/// earlier refresh: the same rule as [`decide`], without the KPIs it does not need.
pub fn due_partners<'a>(
    roster: &'a Roster,
    refresh: Month,
    previous: Option<&PreviousLevels>,
) -> Vec<&'a str> {
    roster
        .partners
        .iter()
        .filter(|p| {
            let carried = previous
                .and_then(|(month, rows)| carried_level(p, *month, rows.get(&p.partner_id)?));
            standing(p, refresh, carried).months_to_anniversary == Some(0)
        })
        .map(|p| p.partner_id.as_str())
        .collect()
}

/// A partner's enrollment in R and where it stands against its anniversary.
struct Standing {
    enrollment: Level,
    carried_forward: bool,
    next_anniversary: Option<NaiveDate>,
    months_to_anniversary: Option<i32>,
}

fn standing(p: &Partner, refresh: Month, carried: Option<Level>) -> Standing {
    let enrolled_after = p.enrolled_on.is_some_and(|d| d > refresh.last_day());
    let base = if enrolled_after {
        Level::None
    } else {
        p.enrollment
    };
    let enrollment = if enrolled_after {
        base
    } else {
        carried.unwrap_or(base)
    };
    let (next_anniversary, months_to_anniversary) = match (enrollment, p.enrolled_on) {
        (Level::None, _) | (_, None) => (None, None),
        (_, Some(on)) => {
            let next = next_anniversary(on, refresh);
            (Some(next), Some(refresh.months_until(Month::of(next))))
        }
    };
    Standing {
        enrollment,
        carried_forward: !enrolled_after && carried.is_some(),
        next_anniversary,
        months_to_anniversary,
    }
}

/// The decision for one partner, given its window KPIs and any carried-forward level.
pub fn decide_one(
    program: &Program,
    p: &Partner,
    refresh: Month,
    kpis: PartnerKpis,
    carried: Option<Level>,
) -> Decision {
    let market = program.market_of(&p.country).to_string();
    let Standing {
        enrollment,
        carried_forward,
        next_anniversary,
        months_to_anniversary,
    } = standing(p, refresh, carried);
    let due = months_to_anniversary == Some(0);
    let decision_date = next_anniversary.unwrap_or_else(|| refresh.first_day());

    let checks: Vec<LevelCheck> = Level::QUALIFYING
        .into_iter()
        .map(|level| check_level(program, p, level, decision_date, &market, &kpis))
        .collect();
    let qualified_level = checks
        .iter()
        .find(|c| c.met())
        .map_or(Level::None, |c| c.level);

    let extension = match (due, next_anniversary) {
        (true, Some(anniversary)) if enrollment.has_kpis() => program
            .extension_for(anniversary, &p.competency)
            .map(|e| e.name.clone()),
        _ => None,
    };
    let status = status_of(enrollment, due, extension.is_some(), qualified_level);
    let effective_level = match status {
        Status::Downgrade => qualified_level,
        Status::Lapse => Level::None,
        _ => enrollment,
    };
    let outlook = outlook_of(enrollment, qualified_level);
    let enrollment_block = checks
        .iter()
        .find(|c| c.level == enrollment)
        .and_then(|c| c.requirement)
        .map(|i| &program.requirements[i]);
    let required = enrollment_block.map(|r| r.kpi.clone());
    let gap = gap_to(program, enrollment, required.as_deref(), &kpis);
    Decision {
        partner_id: p.partner_id.clone(),
        market,
        enrollment,
        carried_forward,
        next_anniversary,
        months_to_anniversary,
        due,
        decision_date,
        kpis,
        checks,
        qualified_level,
        status,
        effective_level,
        outlook,
        extension,
        required,
        gap,
    }
}

/// The renewal status of a partner (docs/rules.md §8): not enrolled, not due, extended, or
/// what its qualified level at the anniversary says of its enrollment.
fn status_of(enrollment: Level, due: bool, extended: bool, qualified_level: Level) -> Status {
    if enrollment == Level::None {
        Status::NotEnrolled
    } else if !due {
        Status::NotDue
    } else if extended {
        Status::Extended
    } else if qualified_level > enrollment {
        Status::UpgradeEligible
    } else if qualified_level == enrollment {
        Status::Renew
    } else if qualified_level > Level::None {
        Status::Downgrade
    } else {
        Status::Lapse
    }
}

/// The outlook of a partner (docs/rules.md §8): its qualified level against its enrollment.
fn outlook_of(enrollment: Level, qualified_level: Level) -> Outlook {
    if enrollment == Level::None {
        if qualified_level >= Level::ActionPack {
            Outlook::EligibleToEnroll
        } else {
            Outlook::NotEligible
        }
    } else if qualified_level > enrollment {
        Outlook::UpgradeEligible
    } else if qualified_level == enrollment {
        Outlook::OnTrack
    } else {
        Outlook::AtRisk
    }
}

/// What each KPI lacks of the thresholds of the enrollment's requirement block (docs/rules.md
/// §8); 0 for every category where the enrollment has no KPI threshold or no block applies.
fn gap_to(
    program: &Program,
    enrollment: Level,
    required: Option<&[f64]>,
    kpis: &PartnerKpis,
) -> Vec<f64> {
    match (enrollment.has_kpis(), required) {
        (true, Some(req)) => req
            .iter()
            .zip(&kpis.kpi)
            .map(|(t, k)| round4((t - round4(*k)).max(0.0)))
            .collect(),
        _ => vec![0.0; program.categories.len()],
    }
}

/// How `p` fares against `level` at `date`; the unmet requirements are worded by
/// [`crate::why`], KPIs first (in category order), then the Action Pack, MCTs, exams and the
/// performance commitment.
fn check_level(
    program: &Program,
    p: &Partner,
    level: Level,
    date: NaiveDate,
    market: &str,
    kpis: &PartnerKpis,
) -> LevelCheck {
    let Some(block) = program.requirement(level, date, market, &p.competency) else {
        return LevelCheck {
            level,
            requirement: None,
            unmet: vec![why::no_requirement(level, date)],
        };
    };
    let mut unmet = Vec::new();
    if level.has_kpis() {
        for (k, category) in program.categories.iter().enumerate() {
            let value = round4(kpis.kpi[k]);
            if value < block.kpi[k] {
                unmet.push(why::kpi(&category.name, value, block.kpi[k]));
            }
        }
    }
    if level == Level::ActionPack && !p.action_pack_active {
        unmet.push(why::action_pack());
    }
    if p.mct_count < block.min_mct {
        unmet.push(why::mct(p.mct_count, block.min_mct));
    }
    if block.exams_required && !p.exams_met {
        unmet.push(why::exams());
    }
    if block.performance_commitment_required && !p.performance_commitment {
        unmet.push(why::performance_commitment());
    }
    let position = program
        .requirements
        .iter()
        .position(|r| std::ptr::eq(r, block));
    LevelCheck {
        level,
        requirement: position,
        unmet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_date;

    const PROGRAM: &str = r#"
[kpi_categories]
courseware = ["MOC"]
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
min_mct = 2
kpi = { courseware = 100, certification = 20 }

[[requirements]]
effective_from = 2025-07-01
level = "gold"
min_mct = 4
kpi = { courseware = 300, certification = 60 }

[[requirements]]
effective_from = 2025-07-01
level = "silver"
market = "emerging"
min_mct = 1
kpi = { courseware = 50 }

[[requirements]]
effective_from = 2026-12-01
level = "silver"
min_mct = 2
kpi = { courseware = 150, certification = 20 }

[[extensions]]
name = "Migration extension"
anniversary_from = 2026-11-10
anniversary_to = 2026-11-20
exclude_competencies = ["Cloud Business Applications"]
"#;

    fn partner(id: &str, enrollment: &str, enrolled_on: &str) -> Partner {
        Partner {
            partner_id: id.into(),
            partner_name: id.into(),
            country: "SE".into(),
            enrollment: Level::parse(enrollment).unwrap(),
            competency: if enrollment == "silver" || enrollment == "gold" {
                "Security".into()
            } else {
                String::new()
            },
            enrolled_on: parse_date(enrolled_on),
            mct_count: 4,
            exams_met: true,
            performance_commitment: true,
            action_pack_active: true,
            directory_name: String::new(),
            landing_page_url: String::new(),
            owned_domains: String::new(),
        }
    }

    fn kpis(courseware: f64, certification: f64) -> PartnerKpis {
        PartnerKpis {
            kpi: vec![courseware, certification],
            revenue_usd: 0.0,
            lines: 1,
        }
    }

    fn run(p: &Partner, k: PartnerKpis) -> Decision {
        let program = Program::parse(PROGRAM).unwrap();
        decide_one(&program, p, "2026-11".parse().unwrap(), k, None)
    }

    #[test]
    fn every_renewal_status_and_outlook() {
        // (partner, kpis, status, qualified, effective, outlook)
        let cases = [
            (
                partner("none", "none", ""),
                kpis(0.0, 0.0),
                Status::NotEnrolled,
                Level::ActionPack,
                Level::None,
                Outlook::EligibleToEnroll,
            ),
            (
                partner("later", "gold", "2026-12-01"),
                kpis(0.0, 0.0),
                Status::NotEnrolled,
                Level::ActionPack,
                Level::None,
                Outlook::EligibleToEnroll,
            ),
            (
                partner("notdue", "silver", "2024-03-05"),
                kpis(10.0, 0.0),
                Status::NotDue,
                Level::ActionPack,
                Level::Silver,
                Outlook::AtRisk,
            ),
            (
                partner("ext", "silver", "2024-11-15"),
                kpis(0.0, 0.0),
                Status::Extended,
                Level::ActionPack,
                Level::Silver,
                Outlook::AtRisk,
            ),
            (
                partner("up", "silver", "2024-11-02"),
                kpis(300.0, 60.0),
                Status::UpgradeEligible,
                Level::Gold,
                Level::Silver,
                Outlook::UpgradeEligible,
            ),
            (
                partner("renew", "silver", "2024-11-02"),
                kpis(100.0, 20.0),
                Status::Renew,
                Level::Silver,
                Level::Silver,
                Outlook::OnTrack,
            ),
            (
                partner("down", "gold", "2024-11-02"),
                kpis(100.0, 20.0),
                Status::Downgrade,
                Level::Silver,
                Level::Silver,
                Outlook::AtRisk,
            ),
            (
                partner("ap-up", "action_pack", "2024-11-30"),
                kpis(100.0, 20.0),
                Status::UpgradeEligible,
                Level::Silver,
                Level::ActionPack,
                Outlook::UpgradeEligible,
            ),
        ];
        for (p, k, status, qualified, effective, outlook) in cases {
            let d = run(&p, k);
            assert_eq!(
                (d.status, d.qualified_level, d.effective_level, d.outlook),
                (status, qualified, effective, outlook),
                "{}",
                p.partner_id
            );
        }
    }

    #[test]
    fn kpis_rounded_before_comparing_and_no_action_pack_not_eligible() {
        let mut lapse = partner("lapse", "silver", "2024-11-02");
        lapse.action_pack_active = false;
        let d = run(&lapse, kpis(99.99996, 20.0));
        assert_eq!(
            (d.status, d.effective_level),
            (Status::Renew, Level::Silver),
            "rounded to 4 decimals before comparing"
        );
        let d = run(&lapse, kpis(99.9999, 20.0));
        assert_eq!(
            (d.status, d.qualified_level, d.effective_level),
            (Status::Lapse, Level::None, Level::None)
        );
        let mut none = partner("nobody", "none", "");
        none.action_pack_active = false;
        assert_eq!(run(&none, kpis(0.0, 0.0)).outlook, Outlook::NotEligible);
    }

    #[test]
    fn anniversary_fields_and_gaps() {
        let d = run(&partner("p", "silver", "2024-03-05"), kpis(40.0, 25.0));
        assert_eq!(d.next_anniversary, parse_date("2027-03-05"));
        assert_eq!(d.months_to_anniversary, Some(4));
        // The decision date is the anniversary: the 2026-12-01 set applies.
        assert_eq!(d.required, Some(vec![150.0, 20.0]));
        assert_eq!(d.gap, vec![110.0, 0.0]);
        let due = run(&partner("p", "silver", "2025-11-30"), kpis(0.0, 0.0));
        assert_eq!((due.months_to_anniversary, due.due), (Some(0), true));
        let none = run(&partner("n", "none", ""), kpis(0.0, 0.0));
        assert_eq!(
            (
                none.next_anniversary,
                none.months_to_anniversary,
                none.gap.clone()
            ),
            (None, None, vec![0.0, 0.0])
        );
        let ap = run(&partner("a", "action_pack", "2020-01-01"), kpis(0.0, 0.0));
        assert_eq!(ap.gap, vec![0.0, 0.0]);
    }

    #[test]
    fn extension_skips_excluded_competency_and_action_pack() {
        let mut p = partner("cba", "gold", "2024-11-15");
        p.competency = "Cloud Business Applications".into();
        let d = run(&p, kpis(0.0, 0.0));
        assert_eq!(
            (d.status, d.effective_level, d.extension.clone()),
            (Status::Downgrade, Level::ActionPack, None)
        );
        let ap = partner("ap", "action_pack", "2024-11-15");
        let mut ap_inactive = ap.clone();
        ap_inactive.action_pack_active = false;
        assert_eq!(run(&ap_inactive, kpis(0.0, 0.0)).status, Status::Lapse);
        let d = run(&partner("g", "gold", "2024-11-15"), kpis(0.0, 0.0));
        assert_eq!(
            (d.status, d.extension.as_deref()),
            (Status::Extended, Some("Migration extension"))
        );
    }

    #[test]
    fn market_and_decision_date_pick_the_block() {
        let mut p = partner("br", "silver", "2024-11-02");
        p.country = "BR".into();
        p.mct_count = 1;
        let d = run(&p, kpis(50.0, 0.0));
        assert_eq!((d.status, d.market.as_str()), (Status::Renew, "emerging"));
        let program = Program::parse(PROGRAM).unwrap();
        // Due in December 2026: the 2026-12-01 set (courseware 150) applies.
        let d = decide_one(
            &program,
            &partner("dec", "silver", "2024-12-01"),
            "2026-12".parse().unwrap(),
            kpis(120.0, 20.0),
            None,
        );
        assert_eq!(
            (d.status, d.required.clone()),
            (Status::Downgrade, Some(vec![150.0, 20.0]))
        );
    }

    #[test]
    fn carried_forward_lapse_until_the_roster_changes() {
        let program = Program::parse(PROGRAM).unwrap();
        let p = partner("p", "silver", "2024-10-02");
        let row = LevelRow {
            roster_enrollment: "silver".into(),
            enrolled_on: "2024-10-02".into(),
            effective_level: "none".into(),
        };
        let oct: Month = "2026-10".parse().unwrap();
        assert_eq!(carried_level(&p, oct, &row), Some(Level::None));
        let d = decide_one(
            &program,
            &p,
            "2026-11".parse().unwrap(),
            kpis(500.0, 90.0),
            carried_level(&p, oct, &row),
        );
        assert_eq!(
            (
                d.enrollment,
                d.status,
                d.carried_forward,
                d.next_anniversary
            ),
            (Level::None, Status::NotEnrolled, true, None)
        );
        assert_eq!(d.outlook, Outlook::EligibleToEnroll);
        // The roster changed (re-enrolled): the roster stands.
        let mut changed = p.clone();
        changed.enrolled_on = parse_date("2026-10-20");
        assert_eq!(carried_level(&changed, oct, &row), None);
        changed.enrolled_on = p.enrolled_on;
        changed.enrollment = Level::ActionPack;
        assert_eq!(carried_level(&changed, oct, &row), None);
        // A row whose enrolled_on is after its file's month does not count.
        let later = LevelRow {
            roster_enrollment: "gold".into(),
            enrolled_on: "2026-11-03".into(),
            effective_level: "none".into(),
        };
        assert_eq!(
            carried_level(&partner("q", "gold", "2026-11-03"), oct, &later),
            None
        );
    }

    #[test]
    fn due_partners_are_the_decisions_that_are_due() {
        let program = Program::parse(PROGRAM).unwrap();
        let refresh: Month = "2026-11".parse().unwrap();
        let partners = vec![
            partner("a", "silver", "2024-11-30"),      // due
            partner("b", "gold", "2023-11-01"),        // due
            partner("c", "silver", "2024-12-01"),      // next month
            partner("d", "none", "2024-11-15"),        // not enrolled
            partner("e", "silver", "2026-11-10"),      // enrolled in R: first anniversary next year
            partner("f", "silver", "2024-11-05"),      // due, but carried forward as lapsed
            partner("g", "action_pack", "2025-11-20"), // due
        ];
        let roster = Roster {
            partners,
            unknown_columns: Vec::new(),
        };
        let previous = (
            "2026-10".parse::<Month>().unwrap(),
            HashMap::from([(
                "f".to_string(),
                LevelRow {
                    roster_enrollment: "silver".into(),
                    enrolled_on: "2024-11-05".into(),
                    effective_level: "none".into(),
                },
            )]),
        );
        for previous in [None, Some(&previous)] {
            let decided: Vec<&str> = decide(&program, &roster, refresh, &HashMap::new(), previous)
                .into_iter()
                .zip(&roster.partners)
                .filter(|(d, _)| d.due)
                .map(|(_, p)| p.partner_id.as_str())
                .collect();
            assert_eq!(due_partners(&roster, refresh, previous), decided);
        }
        assert_eq!(
            due_partners(&roster, refresh, Some(&previous)),
            ["a", "b", "g"]
        );
        assert_eq!(due_partners(&roster, refresh, None), ["a", "b", "f", "g"]);
    }
}

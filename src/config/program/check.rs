//! The one pass that turns the shape of program.toml into a [`Program`]: the defaults, the
//! required keys, and the rules between values (docs/rules.md §2.4) — a known level, market and
//! category, one OMLP type in one category, one country in one market, at most
//! [`MAX_CATEGORIES`] categories. A violation fails naming its key.

use std::collections::HashMap;

use super::shape::{
    Named, RawCalendar, RawExtension, RawMarkets, RawProgram, RawRequirement, Texts,
    DEFAULT_LEAD_MONTHS,
};
use super::{same_text, Calendar, Category, Extension, Level, Program, Requirement};
use crate::config::keys::{Blocks, Failure};

fn fail<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, Failure> {
    Err((key.into(), message.into()))
}

/// The most columns a worksheet holds.
pub const EXCEL_COLUMNS: usize = 16_384;

/// The most KPI categories a program may name: the widest sheet, the Anniversary watch, has
/// eleven columns and five per category (secured, leaving, required, still needed, per
/// month), and must fit in one worksheet.
pub const MAX_CATEGORIES: usize = (EXCEL_COLUMNS - 11) / 5;

/// The program of `raw`; `requirements` and `extensions` name the blocks in messages.
pub fn program(
    raw: RawProgram,
    requirements: &Blocks,
    extensions: &Blocks,
) -> Result<Program, Failure> {
    let calendar = calendar(raw.calendar)?;
    let (categories, omlp_types) = categories(raw.kpi_categories)?;
    let (default_market, markets, market_of_country) = markets(raw.markets.unwrap_or_default())?;
    let mut program = Program {
        calendar,
        categories,
        omlp_types,
        default_market,
        markets,
        market_of_country,
        requirements: Vec::new(),
        extensions: Vec::new(),
        watch_lead_months: raw
            .watch
            .and_then(|w| w.lead_months)
            .map_or(DEFAULT_LEAD_MONTHS, |m| m.0),
    };
    program.requirements = raw
        .requirements
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(position, block)| requirement(position, block, &program, requirements))
        .collect::<Result<_, _>>()?;
    program.extensions = raw
        .extensions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(position, block)| extension(position, block, extensions))
        .collect::<Result<_, _>>()?;
    Ok(program)
}

fn calendar(raw: Option<RawCalendar>) -> Result<Calendar, Failure> {
    let mut calendar = Calendar::default();
    let Some(raw) = raw else {
        return Ok(calendar);
    };
    let days = [
        (&mut calendar.refresh_day, raw.refresh_day),
        (
            &mut calendar.directory_submit_from_day,
            raw.directory_submit_from_day,
        ),
        (
            &mut calendar.directory_submit_to_day,
            raw.directory_submit_to_day,
        ),
        (
            &mut calendar.directory_visible_by_day,
            raw.directory_visible_by_day,
        ),
    ];
    for (slot, day) in days {
        if let Some(day) = day {
            *slot = day.0;
        }
    }
    if calendar.directory_submit_from_day > calendar.directory_submit_to_day {
        return fail(
            "calendar.directory_submit_to_day",
            "is before directory_submit_from_day",
        );
    }
    Ok(calendar)
}

/// The categories in file order, and each lower-cased OMLP type's spelling and category.
type Categories = (Vec<Category>, HashMap<String, (String, usize)>);

fn categories(raw: Option<Named<Texts>>) -> Result<Categories, Failure> {
    let Some(Named(entries)) = raw else {
        return fail(
            "kpi_categories",
            "is missing: name at least one KPI category and its OMLP types",
        );
    };
    if entries.is_empty() {
        return fail("kpi_categories", "names no category");
    }
    if entries.len() > MAX_CATEGORIES {
        return fail(
            "kpi_categories",
            format!(
                "names {} categories; at most {MAX_CATEGORIES} fit the workbook (the Anniversary \
                 watch sheet has five columns per category, and a worksheet holds \
                 {EXCEL_COLUMNS} columns)",
                entries.len(),
            ),
        );
    }
    let mut categories: Vec<Category> = Vec::new();
    let mut lookup: HashMap<String, (String, usize)> = HashMap::new();
    for (index, (name, Texts(omlp_types))) in entries.into_iter().enumerate() {
        let key = format!("kpi_categories.{name}");
        if name.trim().is_empty() || name.contains(|c: char| c.is_control()) {
            return fail(key, "is not a usable category name");
        }
        for omlp in &omlp_types {
            match lookup.get(&omlp.to_lowercase()) {
                // Listed twice in the same category: harmless.
                Some((_, other)) if *other == index => {}
                Some((_, other)) => {
                    return fail(
                        key,
                        format!(
                            "OMLP type {omlp:?} is already in category {:?}",
                            categories[*other].name
                        ),
                    )
                }
                None => {
                    lookup.insert(omlp.to_lowercase(), (omlp.clone(), index));
                }
            }
        }
        categories.push(Category { name, omlp_types });
    }
    Ok((categories, lookup))
}

/// The default market, every market name (the default first), and upper-case country → market.
type Markets = (String, Vec<String>, HashMap<String, String>);

fn markets(raw: RawMarkets) -> Result<Markets, Failure> {
    let default = raw.default.map_or_else(|| "default".to_string(), |d| d.0);
    let mut names = vec![default.clone()];
    let mut of_country: HashMap<String, String> = HashMap::new();
    for (name, Texts(countries)) in raw.listed {
        let key = format!("markets.{name}");
        if name.trim().is_empty() || name == "*" {
            return fail(key, "is not a usable market name");
        }
        for country in countries {
            let code = country.to_uppercase();
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return fail(key, format!("{country:?} is not a two-letter country code"));
            }
            if let Some(other) = of_country.insert(code.clone(), name.clone()) {
                return fail(
                    key,
                    format!("country {code} is already in market {other:?}"),
                );
            }
        }
        names.push(name);
    }
    if names[1..].iter().any(|n| same_text(n, &default)) {
        return fail(
            "markets.default",
            format!("{default:?} is also a listed market"),
        );
    }
    Ok((default, names, of_country))
}

/// The requirement block at `position` of `[[requirements]]`, with its defaults.
fn requirement(
    position: usize,
    raw: RawRequirement,
    program: &Program,
    blocks: &Blocks,
) -> Result<Requirement, Failure> {
    let at = |k: &str| blocks.key(position, k);
    let Some(level) = raw.level else {
        return fail(at("level"), "is missing");
    };
    let level = match Level::parse(&level.0) {
        Some(l) if l != Level::None => l,
        _ => {
            return fail(
                at("level"),
                format!("unknown level {:?} (action_pack, silver or gold)", level.0),
            )
        }
    };
    let Some(effective_from) = raw.effective_from else {
        return fail(at("effective_from"), "is missing");
    };
    let market = match raw.market.map(|m| m.0) {
        None => None,
        Some(name) if name == "*" => None,
        Some(name) => match program.markets.iter().find(|m| same_text(m, &name)) {
            Some(m) => Some(m.clone()),
            None => return fail(at("market"), format!("unknown market {name:?}")),
        },
    };
    let mut kpi = vec![0.0; program.categories.len()];
    for (name, threshold) in raw.kpi.map(|k| k.0).unwrap_or_default() {
        let Some(index) = program.categories.iter().position(|c| c.name == name) else {
            return fail(
                at(&format!("kpi.{name}")),
                format!("unknown KPI category {name:?}"),
            );
        };
        kpi[index] = threshold.0;
    }
    Ok(Requirement {
        position,
        line: blocks.line(position),
        effective_from: effective_from.0,
        level,
        market,
        competency: raw.competency.map(|c| c.0),
        min_mct: raw.min_mct.map_or(1, |n| n.0),
        exams_required: raw.exams_required.map_or(level.has_kpis(), |f| f.0),
        performance_commitment_required: raw
            .performance_commitment_required
            .map_or(level.has_kpis(), |f| f.0),
        kpi,
    })
}

/// The extension block at `position` of `[[extensions]]`.
fn extension(position: usize, raw: RawExtension, blocks: &Blocks) -> Result<Extension, Failure> {
    let at = |k: &str| blocks.key(position, k);
    let missing = |k: &str| (at(k), "is missing".to_string());
    let name = raw.name.ok_or_else(|| missing("name"))?.0;
    let anniversary_from = raw
        .anniversary_from
        .ok_or_else(|| missing("anniversary_from"))?
        .0;
    let anniversary_to = raw
        .anniversary_to
        .ok_or_else(|| missing("anniversary_to"))?
        .0;
    if anniversary_to < anniversary_from {
        return fail(at("anniversary_to"), "is before anniversary_from");
    }
    Ok(Extension {
        name,
        anniversary_from,
        anniversary_to,
        exclude_competencies: raw.exclude_competencies.map(|t| t.0).unwrap_or_default(),
    })
}

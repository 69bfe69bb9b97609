//! `validate`: checks program.toml, the roster, the rates and the deliveries up to R-1, and
//! prints what the run would accept and reject. Writes nothing (judging happens in a
//! temporary folder that is removed).

use super::refresh;
use crate::cli::ValidateArgs;
use crate::config::{RunConfig, RunOptions, DEFAULT_MAX_REJECT_RATE};
use crate::error::{Error, Result};
use crate::publish::Staging;

pub fn validate(args: &ValidateArgs) -> Result<()> {
    // validate has no output folder: its configuration's is an empty folder inside the
    // temporary staging, so no earlier partition is reused and every delivery is judged from
    // its files, as a first run would judge it.
    let (staging, _tmp) = Staging::detached(&args.input)?;
    let nowhere = staging.root.join("no-output");
    let cfg = RunConfig::build(RunOptions {
        refresh: args.refresh,
        input: args.input.clone(),
        output: nowhere,
        force: false,
        dry_run: false,
        // Report the shares first; the gate is applied below with the run's default.
        max_reject_rate: 1.0,
        allowed_missing: args.allow_missing.clone(),
    })?;
    println!(
        "program.toml: ok ({} categories, {} requirement blocks, {} extensions)",
        cfg.program().categories.len(),
        cfg.program().requirements.len(),
        cfg.program().extensions.len()
    );
    let mut inputs = refresh::load_inputs(&cfg)?;
    println!("roster: ok ({} partners)", inputs.roster.partners.len());
    println!("fx rates: ok ({} rates)", inputs.fx.rows().len());
    let ingested = refresh::ingest(&cfg, &mut inputs, &staging)?;
    println!(
        "deliveries up to {} (as the refresh of {} would judge them):",
        cfg.refresh().plus(-1),
        cfg.refresh()
    );
    if !ingested.allowed_missing.is_empty() {
        println!(
            "  missing, allowed by --allow-missing: {}",
            crate::gaps::list(&ingested.allowed_missing)
        );
    }
    let limit = DEFAULT_MAX_REJECT_RATE;
    let mut over = None;
    for o in &ingested.outcomes {
        let m = &o.meta;
        let share = m.reject_share();
        println!(
            "  {}: read {}, accepted {}, rejected {} ({:.2}%)",
            o.month,
            m.read,
            m.accepted,
            m.rejected_total(),
            share * 100.0
        );
        for (reason, n) in &m.rejected {
            println!("      {reason}: {n}");
        }
        if share > limit && over.is_none() {
            over = Some(Error::RejectRate {
                delivery: o.month,
                read: m.read,
                rejected: m.rejected_total(),
                share,
                max: limit,
            });
        }
    }
    match over {
        Some(e) => Err(e),
        None => {
            println!("all inputs are valid");
            Ok(())
        }
    }
}

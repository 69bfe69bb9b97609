//! Gaps in the deliveries: a month between the earliest delivery folder and R-1 that has no
//! folder of its own would leave a month of invoices silently out of the window, so it stops
//! the refresh (exit 66) unless the operator names it with `--allow-missing YYYY-MM`.
//!
//! Owns the rule, its error message and the warnings for allowed gaps; the callers record the
//! allowed gaps (log, Run info sheet, manifest `allowed_missing`). See docs/rules.md
//! §4.4.

use std::collections::BTreeSet;

use tracing::warn;

use crate::calendar::Month;
use crate::error::{Error, Result};

/// The months between `earliest` and `last` (both inclusive) that are not in `present`.
pub fn missing(present: &[Month], last: Month) -> Vec<Month> {
    let Some(earliest) = present.iter().min().copied() else {
        return Vec::new();
    };
    let have: BTreeSet<Month> = present.iter().copied().collect();
    (earliest.index()..=last.index())
        .map(Month::from_index)
        .filter(|m| !have.contains(m))
        .collect()
}

/// Checks the deliveries found up to `last` against the months the operator allowed to
/// be missing. Returns the gaps that were allowed (sorted); fails with exit 66 naming every
/// gap when any is not allowed. An allowed month that is no gap is named in the log.
pub fn check(present: &[Month], last: Month, allowed: &[Month]) -> Result<Vec<Month>> {
    let gaps = missing(present, last);
    let allowed: BTreeSet<Month> = allowed.iter().copied().collect();
    for m in allowed.iter().filter(|m| !gaps.contains(m)) {
        warn!(month = %m, "--allow-missing {m}: not a gap in the deliveries up to {last}; ignored");
    }
    let unallowed: Vec<Month> = gaps
        .iter()
        .copied()
        .filter(|m| !allowed.contains(m))
        .collect();
    if !unallowed.is_empty() {
        return Err(Error::Gap {
            months: unallowed,
            earliest: present.iter().min().copied().unwrap_or(last),
            last,
        });
    }
    for m in &gaps {
        warn!(month = %m, "delivery {m} is missing and allowed by --allow-missing: the window holds no invoice of this delivery");
    }
    Ok(gaps)
}

/// The months as the error and the records write them: `2026-05, 2026-07`.
pub fn list(months: &[Month]) -> String {
    months
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Month {
        s.parse().unwrap()
    }

    fn months(list: &[&str]) -> Vec<Month> {
        list.iter().map(|s| m(s)).collect()
    }

    #[test]
    fn a_month_without_a_folder_between_the_earliest_and_r_minus_1_is_a_gap() {
        let present = months(&["2026-03", "2026-04", "2026-06", "2026-08"]);
        assert_eq!(
            missing(&present, m("2026-09")),
            months(&["2026-05", "2026-07", "2026-09"])
        );
        // Nothing before the earliest folder is a gap.
        assert_eq!(missing(&months(&["2026-08", "2026-09"]), m("2026-09")), []);
        assert_eq!(missing(&[], m("2026-09")), []);
    }

    #[test]
    fn every_gap_must_be_allowed() {
        let present = months(&["2026-03", "2026-05", "2026-07"]);
        let e = check(&present, m("2026-07"), &months(&["2026-04"])).unwrap_err();
        assert_eq!(e.exit_code(), 66);
        let text = e.to_string();
        assert!(text.contains("2026-06"), "{text}");
        assert!(!text.contains("2026-04,"), "{text}");
        assert!(text.contains("--allow-missing 2026-06"), "{text}");
        let both = months(&["2026-06", "2026-04"]);
        assert_eq!(
            check(&present, m("2026-07"), &both).unwrap(),
            months(&["2026-04", "2026-06"])
        );
        // A month named that is no gap changes nothing.
        assert_eq!(
            check(
                &present,
                m("2026-07"),
                &months(&["2026-04", "2026-06", "2026-05"])
            )
            .unwrap(),
            months(&["2026-04", "2026-06"])
        );
    }
}

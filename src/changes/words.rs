//! What `explain` says about a partner's changes since the previous refresh: each changed
//! field, and each changed KPI's split into its causes, in words.

use std::fmt::Write as _;

use super::{Change, Changes, Side, Split};
use crate::calendar::Month;
use crate::kpi::round4;
use crate::report::csv_out::number;

impl Side {
    fn words(&self) -> String {
        match self {
            Side::Text(s) => s.clone(),
            Side::Number(x) => number(*x),
            Side::Empty => "—".into(),
        }
    }
}

impl Changes {
    /// What changed for `partner_id` since the previous refresh, in words.
    pub fn story(&self, partner_id: &str, refresh: Month) -> String {
        let mut s = String::new();
        let Some(p) = self.previous else {
            let _ = writeln!(
                s,
                "No refresh before {refresh} is published under the output folder: nothing to compare with."
            );
            return s;
        };
        let mine: Vec<&Change> = self
            .rows
            .iter()
            .filter(|c| c.partner_id == partner_id)
            .collect();
        if mine.is_empty() {
            let _ = writeln!(s, "Nothing changed since the refresh of {p}.");
            return s;
        }
        if mine.iter().all(|c| c.before == Side::Empty) {
            let _ = writeln!(
                s,
                "The partner was not in the refresh of {p}: every figure is new."
            );
            return s;
        }
        if mine.iter().all(|c| c.after == Side::Empty) {
            let _ = writeln!(
                s,
                "The partner was in the refresh of {p} but is not in this one."
            );
            return s;
        }
        let _ = writeln!(s, "Changed since the refresh of {p}:");
        for c in mine {
            let field = c
                .field
                .strip_prefix("kpi_")
                .map_or_else(|| c.field.replace('_', " "), |cat| format!("KPI {cat}"));
            let _ = write!(s, "  {field}: {} → {}", c.before.words(), c.after.words());
            match c.split {
                Some(split) => {
                    let _ = writeln!(s, "{}", split_words(&split, p, refresh));
                }
                None => {
                    let _ = writeln!(s, ".");
                }
            }
        }
        s
    }
}

/// A signed figure: `+12.5`, `-3`, `0`.
fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", number(x))
    } else {
        number(x)
    }
}

/// `from … to`, or the month alone.
fn months(from: Month, to: Month) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from} … {to}")
    }
}

/// The split of one KPI change from `p` to `r`, in words.
fn split_words(split: &Split, p: Month, r: Month) -> String {
    let (pf, pt) = p.window();
    let (rf, rt) = r.window();
    let entered = months(rf.max(pt.plus(1)), rt);
    let left = months(pf, pt.min(rf.plus(-1)));
    let total = split.parts.entered + split.parts.left + split.parts.late + split.judged_again;
    format!(
        " ({}): {} from lines dated {entered}, which entered the window; {} from lines dated \
         {left}, which left it; {} from late lines (dated in both windows, delivered {}); {} \
         from judging earlier deliveries again (a roster, rates or rules change, or a \
         corrected delivery).",
        signed(round4(total)),
        signed(split.parts.entered),
        signed(split.parts.left),
        signed(split.parts.late),
        months(p, r.plus(-1)),
        signed(split.judged_again),
    )
}

//! The Anniversary watch sheet and `watch-R.csv` (docs/rules.md §10): one
//! row per watched partner, in the order [`crate::watch::build`] gives.

use super::{Column, Computed, Sheet, Value};

/// The columns before and after the per-category groups, as (CSV name, sheet title).
const LEAD: [(&str, &str); 8] = [
    ("partner_id", "Partner ID"),
    ("partner_name", "Partner name"),
    ("enrollment", "Enrollment"),
    ("competency", "Competency"),
    ("next_anniversary", "Next anniversary"),
    ("months_to_anniversary", "Months to anniversary"),
    ("decision_window_from", "Decision window from"),
    ("decision_window_to", "Decision window to"),
];
const GROUPS: [(&str, &str); 5] = [
    ("secured", "Secured"),
    ("leaving", "Leaving"),
    ("required", "Required"),
    ("still_needed", "Still needed"),
    ("per_month", "Per month"),
];
const TAIL: [(&str, &str); 3] = [
    ("blockers", "Blockers"),
    ("forecast_level", "Forecast level"),
    ("forecast_status", "Forecast status"),
];

impl Computed<'_> {
    /// The anniversary watch.
    pub fn watch(&self) -> Sheet {
        let column = |(name, title): (&str, &str)| Column::new(name, title);
        let mut columns: Vec<Column> = LEAD.into_iter().map(column).collect();
        for (name, title) in GROUPS {
            for c in &self.program.categories {
                columns.push(Column::new(
                    format!("{name}_{}", c.name),
                    format!("{title} {}", c.name),
                ));
            }
        }
        columns.extend(TAIL.into_iter().map(column));
        let numbers = |v: &[f64]| v.iter().map(|x| Value::Number(*x)).collect::<Vec<_>>();
        let rows = self
            .watch
            .iter()
            .map(|w| {
                let p = &self.roster.partners[w.index];
                let d = &self.decisions[w.index];
                let mut row = vec![
                    Value::text(&p.partner_id),
                    Value::text(&p.partner_name),
                    Value::text(d.enrollment.as_str()),
                    Value::text(&p.competency),
                    Value::Date(w.anniversary),
                    Value::Int(w.months_to_anniversary as i64),
                    Value::text(w.window.0.to_string()),
                    Value::text(w.window.1.to_string()),
                ];
                row.extend(numbers(&w.secured));
                row.extend(numbers(&w.leaving));
                row.extend(numbers(&w.required));
                row.extend(numbers(&w.still_needed));
                match &w.per_month {
                    Some(p) => row.extend(numbers(p)),
                    None => row.extend(w.secured.iter().map(|_| Value::Empty)),
                }
                row.extend([
                    Value::text(w.blockers.join(";")),
                    Value::text(w.forecast_level.as_str()),
                    Value::text(w.forecast_status.as_str()),
                ]);
                row
            })
            .collect();
        Sheet {
            name: "Anniversary watch".into(),
            columns,
            rows,
        }
    }
}

//! The two columns that end the workbook's Directory submission sheet (not its CSV, whose
//! columns are fixed), so a submitter can act on each row as it is: `Changed` (for UPDATE,
//! each changed field `old → new`) and `Why` (for REMOVE: `lapse`, `downgrade to none` or
//! `left the roster`). See docs/rules.md §9.5.

use crate::directory::{Action, Change};
use crate::renewal::{Decision, Status};

/// `Changed` of one change: for UPDATE, `field: old → new` for each changed field, joined
/// by `; `; empty for ADD and REMOVE.
pub fn changed(c: &Change) -> String {
    match (&c.action, &c.before) {
        (Action::Update, Some(before)) => c
            .entry
            .changed_fields(before)
            .into_iter()
            .map(|(field, old, new)| format!("{field}: {old} → {new}"))
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    }
}

/// `Why` of one change: for REMOVE, why the partner no longer belongs on the directory;
/// empty for ADD and UPDATE. `decisions` are sorted by partner_id.
pub fn why(c: &Change, decisions: &[Decision]) -> String {
    if c.action != Action::Remove {
        return String::new();
    }
    let id = &c.entry.partner_id;
    let decision = decisions
        .binary_search_by(|d| d.partner_id.as_str().cmp(id))
        .ok()
        .map(|i| &decisions[i]);
    match decision {
        None => "left the roster",
        Some(d) if d.status == Status::Lapse => "lapse",
        Some(_) => "downgrade to none",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Entry;

    fn entry(id: &str, name: &str, url: &str) -> Entry {
        Entry {
            partner_id: id.into(),
            directory_name: name.into(),
            country: "SE".into(),
            landing_page_url: url.into(),
        }
    }

    fn change(action: Action, entry: Entry, before: Option<Entry>) -> Change {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
        Change {
            action,
            entry,
            before,
            submit_from: d,
            submit_to: d,
            visible_by: d,
        }
    }

    #[test]
    fn an_update_names_each_changed_field() {
        let before = entry("P1", "Contoso", "https://contoso.se/a");
        let now = entry("P1", "Contoso Learning", "https://CONTOSO.se/b");
        let c = change(Action::Update, now, Some(before.clone()));
        assert_eq!(
            changed(&c),
            "directory_name: Contoso → Contoso Learning; landing_page_url: https://contoso.se/a → https://CONTOSO.se/b"
        );
        // Scheme and host case is no change.
        let same_url = entry("P1", "Contoso", "HTTPS://Contoso.SE/a");
        assert_eq!(changed(&change(Action::Update, same_url, Some(before))), "");
        assert_eq!(
            changed(&change(Action::Add, entry("P1", "x", "y"), None)),
            ""
        );
    }
}

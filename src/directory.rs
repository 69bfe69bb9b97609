//! The Learning Partner directory submission of a refresh (`docs/rules.md §9`).
//!
//! Partners whose effective level after R is not `none` belong on the directory. Each entry is
//! checked (name, country, landing-page URL on a partner-owned domain); a failing one goes to
//! the exceptions with its first reason. The entries are diffed against the baseline, the
//! state after the latest earlier refresh (`state/directory/`, [`crate::state`]), into ADD,
//! UPDATE and REMOVE changes.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use url::{Host, Url};

use crate::calendar::Month;
use crate::config::program::{Level, Program};
use crate::error::Result;
use crate::ingest::roster::{Partner, Roster};
use crate::renewal::Decision;
use crate::state::DirectoryRow;

/// The officially assigned ISO 3166-1 alpha-2 codes.
const ISO_3166_ALPHA2: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS \
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE \
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM \
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC \
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA \
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO \
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

pub fn is_assigned_country(code: &str) -> bool {
    code.len() == 2 && ISO_3166_ALPHA2.split(' ').any(|c| c == code)
}

/// A directory entry: what the directory shows for one partner.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub partner_id: String,
    pub directory_name: String,
    pub country: String,
    pub landing_page_url: String,
}

impl Entry {
    pub fn of(p: &Partner) -> Entry {
        Entry {
            partner_id: p.partner_id.clone(),
            directory_name: p.directory_name.clone(),
            country: p.country.clone(),
            landing_page_url: p.landing_page_url.clone(),
        }
    }

    /// The fields the directory would show differently from `before`, as (field, before,
    /// now), by the rule of [`Entry::same_listing`].
    pub fn changed_fields<'a>(
        &'a self,
        before: &'a Entry,
    ) -> Vec<(&'static str, &'a str, &'a str)> {
        let mut out = Vec::new();
        if self.directory_name != before.directory_name {
            out.push((
                "directory_name",
                before.directory_name.as_str(),
                self.directory_name.as_str(),
            ));
        }
        if self.country != before.country {
            out.push(("country", before.country.as_str(), self.country.as_str()));
        }
        if url_key(&self.landing_page_url) != url_key(&before.landing_page_url) {
            out.push((
                "landing_page_url",
                before.landing_page_url.as_str(),
                self.landing_page_url.as_str(),
            ));
        }
        out
    }

    /// Whether the directory would show the same: name, country and URL (scheme and host
    /// compared case-insensitively).
    pub fn same_listing(&self, other: &Entry) -> bool {
        self.directory_name == other.directory_name
            && self.country == other.country
            && url_key(&self.landing_page_url) == url_key(&other.landing_page_url)
    }
}

/// A URL with its scheme and host lower-cased, the rest as written.
fn url_key(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!(
        "{}://{}{}",
        scheme.to_lowercase(),
        rest[..end].to_lowercase(),
        &rest[end..]
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Add,
    Update,
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "ADD",
            Action::Update => "UPDATE",
            Action::Remove => "REMOVE",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub action: Action,
    pub entry: Entry,
    /// For UPDATE, the baseline's entry (what the directory shows until the change).
    pub before: Option<Entry>,
    pub submit_from: NaiveDate,
    pub submit_to: NaiveDate,
    pub visible_by: NaiveDate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Exception {
    pub entry: Entry,
    pub reason: &'static str,
}

/// The directory outcome of a refresh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory {
    /// Sorted by action, then partner_id.
    pub changes: Vec<Change>,
    /// Sorted by partner_id.
    pub exceptions: Vec<Exception>,
    /// The directory state after R, sorted by partner_id.
    pub state: Vec<Entry>,
    /// The month of the baseline, if any.
    pub baseline_month: Option<Month>,
}

/// The first reason an entry cannot be listed, if any (`docs/rules.md §9.2` order).
pub fn check(entry: &Entry, owned_domains: &str) -> Option<&'static str> {
    let name = &entry.directory_name;
    if name.is_empty() {
        return Some("missing_directory_name");
    }
    if name.starts_with(['=', '+', '-', '@'])
        || name.chars().any(char::is_control)
        || name.chars().count() > 100
    {
        return Some("invalid_directory_name");
    }
    if !is_assigned_country(&entry.country) {
        return Some("invalid_country");
    }
    let raw = entry.landing_page_url.as_str();
    // URL parsers silently strip tabs and line breaks (and trim spaces): a URL holding any
    // whitespace or control character is refused before it is parsed.
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("invalid_url");
    }
    let Ok(url) = Url::parse(raw) else {
        return Some("invalid_url");
    };
    let Some(authority) = authority(raw) else {
        return Some("invalid_url");
    };
    // User info (even empty), a port (even the scheme's default, which the parser drops) or an
    // IP address instead of a domain.
    if authority.contains('@')
        || authority.contains(':')
        || authority.starts_with('[')
        || url.port().is_some()
    {
        return Some("invalid_url");
    }
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() && d.parse::<std::net::IpAddr>().is_err() => {
            d.trim_end_matches('.').to_lowercase()
        }
        _ => return Some("invalid_url"),
    };
    if url.scheme() != "https" {
        return Some("url_not_https");
    }
    let owned = owned_domains.split(';').filter_map(normal_domain);
    let mut owned = owned.filter(|d| !d.is_empty());
    if !owned.any(|d| {
        host == d
            || host
                .strip_suffix(&d)
                .is_some_and(|rest| rest.ends_with('.'))
    }) {
        return Some("url_not_partner_owned");
    }
    None
}

/// An owned domain trimmed, lower-cased, without a trailing dot, in the URL's (ASCII) form.
fn normal_domain(d: &str) -> Option<String> {
    let d = d.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty() {
        return None;
    }
    match Host::parse(&d) {
        Ok(Host::Domain(ascii)) => Some(ascii),
        _ => Some(d),
    }
}

/// The authority of an absolute URL `scheme://authority/...` as written, or `None` when the
/// text has no `//` after its scheme.
fn authority(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The latest `state/directory/M.csv` with M < `refresh`: (month, entries by partner_id).
pub fn load_baseline(
    output: &Path,
    refresh: Month,
) -> Result<Option<(Month, BTreeMap<String, Entry>)>> {
    let Some((month, rows)) = crate::state::read_directory(output, refresh)? else {
        return Ok(None);
    };
    let entries = rows
        .into_iter()
        .map(|row| (row.partner_id.clone(), Entry::from(row)))
        .collect();
    Ok(Some((month, entries)))
}

impl From<DirectoryRow> for Entry {
    fn from(row: DirectoryRow) -> Entry {
        Entry {
            partner_id: row.partner_id,
            directory_name: row.directory_name,
            country: row.country,
            landing_page_url: row.landing_page_url,
        }
    }
}

impl From<&Entry> for DirectoryRow {
    fn from(e: &Entry) -> DirectoryRow {
        DirectoryRow {
            partner_id: e.partner_id.clone(),
            directory_name: e.directory_name.clone(),
            country: e.country.clone(),
            landing_page_url: e.landing_page_url.clone(),
        }
    }
}

/// Builds the refresh's directory changes, exceptions and state.
pub fn build(
    program: &Program,
    roster: &Roster,
    decisions: &[Decision],
    baseline: Option<(Month, BTreeMap<String, Entry>)>,
    refresh: Month,
) -> Directory {
    let cal = &program.calendar;
    let dated = |action, entry, before| Change {
        action,
        entry,
        before,
        submit_from: refresh.day(cal.directory_submit_from_day),
        submit_to: refresh.day(cal.directory_submit_to_day),
        visible_by: refresh.plus(1).day(cal.directory_visible_by_day),
    };
    let (baseline_month, mut baseline) = match baseline {
        Some((m, b)) => (Some(m), b),
        None => (None, BTreeMap::new()),
    };
    let mut out = Directory {
        baseline_month,
        ..Directory::default()
    };
    for (p, d) in roster.partners.iter().zip(decisions) {
        debug_assert_eq!(p.partner_id, d.partner_id);
        if d.effective_level == Level::None {
            continue;
        }
        let entry = Entry::of(p);
        let listed = baseline.remove(&p.partner_id);
        match (check(&entry, &p.owned_domains), listed) {
            (Some(reason), listed) => {
                out.exceptions.push(Exception { entry, reason });
                // A listed entry in exceptions stays as it was.
                out.state.extend(listed);
            }
            (None, None) => {
                out.changes.push(dated(Action::Add, entry.clone(), None));
                out.state.push(entry);
            }
            (None, Some(old)) if old.same_listing(&entry) => out.state.push(old),
            (None, Some(old)) => {
                out.changes
                    .push(dated(Action::Update, entry.clone(), Some(old)));
                out.state.push(entry);
            }
        }
    }
    // What is left of the baseline no longer belongs on the directory.
    out.changes.extend(
        baseline
            .into_values()
            .map(|old| dated(Action::Remove, old, None)),
    );
    out.changes
        .sort_by(|a, b| (a.action, &a.entry.partner_id).cmp(&(b.action, &b.entry.partner_id)));
    out.state.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, country: &str, url: &str) -> Entry {
        Entry {
            partner_id: "P1".into(),
            directory_name: name.into(),
            country: country.into(),
            landing_page_url: url.into(),
        }
    }

    #[test]
    fn iso_codes() {
        assert_eq!(ISO_3166_ALPHA2.split(' ').count(), 249);
        assert!(
            is_assigned_country("GB") && is_assigned_country("SE") && is_assigned_country("ZW")
        );
        assert!(
            !is_assigned_country("UK") && !is_assigned_country("EU") && !is_assigned_country("gb")
        );
    }

    #[test]
    fn each_reason_in_order() {
        let ok = "https://learn.contoso.com/microsoft";
        let cases: [(Entry, &str, Option<&str>); 9] = [
            (entry("Contoso", "SE", ok), "contoso.com", None),
            (entry("", "UK", ""), "", Some("missing_directory_name")),
            (
                entry("=HYPERLINK(1)", "SE", ok),
                "contoso.com",
                Some("invalid_directory_name"),
            ),
            (
                entry("-x", "SE", ok),
                "contoso.com",
                Some("invalid_directory_name"),
            ),
            (
                entry("a\u{7}b", "SE", ok),
                "contoso.com",
                Some("invalid_directory_name"),
            ),
            (
                entry(&"å".repeat(101), "SE", ok),
                "contoso.com",
                Some("invalid_directory_name"),
            ),
            (entry(&"å".repeat(100), "SE", ok), "contoso.com", None),
            (
                entry("Contoso", "UK", ok),
                "contoso.com",
                Some("invalid_country"),
            ),
            (
                entry("Contoso", "SE", ok),
                "",
                Some("url_not_partner_owned"),
            ),
        ];
        for (e, owned, expected) in cases {
            assert_eq!(check(&e, owned), expected, "{e:?} {owned:?}");
        }
    }

    #[test]
    fn each_url_reason() {
        // (landing_page_url, owned_domains, reason) of an entry otherwise sound.
        let cases: [(&str, &str, Option<&str>); 20] = [
            ("https://CONTOSO.com./x", " Contoso.COM. ", None),
            ("", "contoso.com", Some("invalid_url")),
            ("learn.contoso.com/x", "contoso.com", Some("invalid_url")),
            (
                "https://user:pw@contoso.com/",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https://contoso.com:443/",
                "contoso.com",
                Some("invalid_url"),
            ),
            ("https://10.0.0.1/", "contoso.com", Some("invalid_url")),
            ("https://[::1]/", "contoso.com", Some("invalid_url")),
            (
                "https:contoso.com:8443/x",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https:\\\\contoso.com\\x",
                "contoso.com",
                Some("invalid_url"),
            ),
            ("https://@contoso.com/", "contoso.com", Some("invalid_url")),
            ("foo://10.0.0.1/x", "contoso.com", Some("invalid_url")),
            ("https://contoso.com:/x", "contoso.com", Some("invalid_url")),
            ("http://contoso.com/", "contoso.com", Some("url_not_https")),
            (
                "https://evilcontoso.com/",
                "contoso.com",
                Some("url_not_partner_owned"),
            ),
            (
                "https://learn.contoso.com/a\nb",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https://learn.con\ttoso.com/",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https://learn.contoso.com/a b",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https://learn.contoso.com/\u{7f}",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https://learn.contoso.com/\u{a0}x",
                "contoso.com",
                Some("invalid_url"),
            ),
            (
                "https://contoso.com.evil.net/",
                "contoso.com;fabrikam.com",
                Some("url_not_partner_owned"),
            ),
        ];
        for (url, owned, expected) in cases {
            let e = entry("Contoso", "SE", url);
            assert_eq!(check(&e, owned), expected, "{e:?} {owned:?}");
        }
    }

    #[test]
    fn urls_compare_with_scheme_and_host_case_folded() {
        let a = entry("C", "SE", "HTTPS://Contoso.COM/Path");
        assert!(a.same_listing(&entry("C", "SE", "https://contoso.com/Path")));
        assert!(!a.same_listing(&entry("C", "SE", "https://contoso.com/path")));
        assert!(!a.same_listing(&entry("C2", "SE", "https://contoso.com/Path")));
    }
}

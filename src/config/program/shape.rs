//! The shape of program.toml as serde types: which tables and keys it may hold, and the kind of
//! each value (a day, a date, a text, a threshold …).
//!
//! Every table refuses the keys it does not know, so an unknown key anywhere fails here, and a
//! value of the wrong kind fails with the message of its kind; the caller names the key from
//! the error's path. What the values mean together (a level, a market, a category, one country
//! in two markets) is checked afterwards, in `check`. See docs/rules.md §2.4.

use std::fmt;
use std::marker::PhantomData;

use chrono::NaiveDate;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Value;

use crate::calendar::parse_date;

/// The whole file: every top-level table is optional here (`check` says which are needed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawProgram {
    pub calendar: Option<RawCalendar>,
    pub kpi_categories: Option<Named<Texts>>,
    pub markets: Option<RawMarkets>,
    pub requirements: Option<Vec<RawRequirement>>,
    pub extensions: Option<Vec<RawExtension>>,
    pub watch: Option<RawWatch>,
}

/// `[calendar]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCalendar {
    pub refresh_day: Option<Day>,
    pub directory_submit_from_day: Option<Day>,
    pub directory_submit_to_day: Option<Day>,
    pub directory_visible_by_day: Option<Day>,
}

/// `[markets]`: `default`, the market of unlisted countries, and every other key a market
/// with its countries, in file order.
#[derive(Debug, Default)]
pub struct RawMarkets {
    pub default: Option<Text>,
    pub listed: Vec<(String, Texts)>,
}

/// One `[[requirements]]` block. Required keys are optional here so that `check` can say
/// which one is missing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawRequirement {
    pub effective_from: Option<Date>,
    pub level: Option<Text>,
    pub market: Option<Text>,
    pub competency: Option<Text>,
    pub min_mct: Option<Count>,
    pub exams_required: Option<Flag>,
    pub performance_commitment_required: Option<Flag>,
    pub kpi: Option<Named<Threshold>>,
}

/// One `[[extensions]]` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawExtension {
    pub name: Option<Text>,
    pub anniversary_from: Option<Date>,
    pub anniversary_to: Option<Date>,
    pub exclude_competencies: Option<Texts>,
}

/// `[watch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawWatch {
    pub lead_months: Option<LeadMonths>,
}

/// A table whose keys are names (categories, markets' countries, a block's thresholds), in
/// file order.
#[derive(Debug)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    entries.push((name, map.next_value()?));
                }
                Ok(Named(entries))
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawMarkets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Markets;
        impl<'de> Visitor<'de> for Markets {
            type Value = RawMarkets;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMarkets, A::Error> {
                let mut markets = RawMarkets::default();
                while let Some(name) = map.next_key::<String>()? {
                    if name == "default" {
                        markets.default = Some(map.next_value()?);
                    } else {
                        markets.listed.push((name, map.next_value()?));
                    }
                }
                Ok(markets)
            }
        }
        d.deserialize_map(Markets)
    }
}

/// An array of texts (OMLP types, countries, competencies).
#[derive(Debug)]
pub struct Texts(pub Vec<String>);

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> Visitor<'de> for Items {
            type Value = Texts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts, A::Error> {
                let mut items = Vec::new();
                while let Some(Text(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Texts(items))
            }
        }
        d.deserialize_seq(Items)
    }
}

/// Reads one value as it was written and checks it with `check`, whose message is the error's.
fn leaf<'de, D: Deserializer<'de>, T>(
    d: D,
    check: impl FnOnce(Value) -> Result<T, String>,
) -> Result<T, D::Error> {
    check(Value::deserialize(d)?).map_err(de::Error::custom)
}

/// Declares a value type read by `leaf` with the given check.
macro_rules! leaf_type {
    ($(#[$doc:meta])* $name:ident($inner:ty), $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                leaf(d, $check).map($name)
            }
        }
    };
}

leaf_type!(
    /// A text, trimmed, not empty.
    Text(String),
    |v| match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Value::String(_) => Err("must not be empty".into()),
        _ => Err("must be a string".into()),
    }
);

leaf_type!(
    /// A day of the month, 1 … 31.
    Day(u32),
    |v| match v {
        Value::Integer(d) if (1..=31).contains(&d) => Ok(d as u32),
        _ => Err("must be a day of the month from 1 to 31".into()),
    }
);

leaf_type!(
    /// A date, written as a TOML local date or as a text `YYYY-MM-DD`.
    Date(NaiveDate),
    |v| {
        let text = match v {
            Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
            Value::String(s) => s.trim().to_string(),
            _ => return Err("must be a date like 2025-07-01".into()),
        };
        parse_date(&text).ok_or_else(|| format!("{text:?} is not a date like 2025-07-01"))
    }
);

leaf_type!(
    /// `true` or `false`.
    Flag(bool),
    |v| match v {
        Value::Boolean(b) => Ok(b),
        _ => Err("must be true or false".into()),
    }
);

leaf_type!(
    /// A whole number ≥ 0 (`min_mct`).
    Count(u32),
    |v| match v {
        Value::Integer(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n as u32),
        _ => Err("must be a whole number ≥ 0".into()),
    }
);

/// How many months ahead the anniversary watch looks when `[watch]` does not say.
pub const DEFAULT_LEAD_MONTHS: u32 = 3;

leaf_type!(
    /// `[watch] lead_months`: a whole number of months, 0 … 12.
    LeadMonths(u32),
    |v| match v {
        Value::Integer(n) if (0..=12).contains(&n) => Ok(n as u32),
        other => Err(format!(
            "must be a whole number of months from 0 to 12 (is {other})"
        )),
    }
);

/// The largest KPI threshold: a KPI value has at most 15 digits before its point.
pub const MAX_THRESHOLD: f64 = 999_999_999_999_999.0;

leaf_type!(
    /// A KPI threshold: a number from 0 to [`MAX_THRESHOLD`].
    Threshold(f64),
    |v| {
        let threshold = match v {
            Value::Integer(n) => n as f64,
            Value::Float(f) if f.is_finite() => f,
            _ => return Err("must be a number".into()),
        };
        if threshold < 0.0 {
            return Err(format!("threshold {threshold} is below 0"));
        }
        // A threshold is compared with KPIs of at most 15 digits and written in reports as a
        // plain decimal: a larger one could only show as an overflowing gap.
        if threshold > MAX_THRESHOLD {
            return Err(format!("threshold {threshold} is above 999,999,999,999,999"));
        }
        Ok(threshold)
    }
);

//! What a delivery's rows look up, and this run's answers: [`Lookups`], the roster, rates and
//! program.toml as the tables a judgement joins against (and as maps), and [`LookupKeys`], the
//! partner ids, OMLP types and (month, currency) pairs a delivery's rows carry. The digests of
//! the answers to those keys tell the ledger when judging again would give the same.

use std::collections::{HashMap, HashSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::program::Program;
use crate::ingest::fx::FxRates;
use crate::ingest::roster::Roster;

/// This run's roster, OMLP types and rates, built once per run: as maps, which the verdicts
/// look rows up in and which answer [`LookupKeys`], and the roster as a table too, which a
/// judgement again by difference joins against.
pub struct Lookups {
    pub(super) partners: LazyFrame,
    partner_ids: HashSet<String>,
    /// Lower-cased OMLP type -> (canonical spelling, category).
    omlp_types: HashMap<String, (String, String)>,
    rate_of: HashMap<(i32, String), i128>,
}

impl Lookups {
    pub fn new(program: &Program, roster: &Roster, fx: &FxRates) -> PolarsResult<Lookups> {
        let ids: Vec<&str> = roster
            .partners
            .iter()
            .map(|p| p.partner_id.as_str())
            .collect();
        let partner_ids = ids.iter().map(|id| id.to_string()).collect();
        let partners = df!("partner_id" => ids)?
            .lazy()
            .with_column(lit(true).alias("in_roster"));
        let omlp_types = program
            .omlp_table()
            .into_iter()
            .map(|(key, name, category)| (key, (name, category)))
            .collect();
        let rate_of = fx
            .rows()
            .into_iter()
            .map(|(month, ccy, rate)| ((month, ccy), rate))
            .collect();
        Ok(Lookups {
            partners,
            partner_ids,
            omlp_types,
            rate_of,
        })
    }

    /// Whether `partner_id` is in this run's roster.
    pub(super) fn in_roster(&self, partner_id: &str) -> bool {
        self.partner_ids.contains(partner_id)
    }

    /// The canonical spelling and category of an OMLP type, matched ignoring case (as
    /// program.toml's types are lower-cased).
    pub(super) fn omlp_rule(&self, spelling: &str) -> Option<(&str, &str)> {
        (self.omlp_types.get(&Lookups::lowered(spelling)))
            .map(|(name, cat)| (name.as_str(), cat.as_str()))
    }

    /// An OMLP type lowered as program.toml's types are ([`str::to_lowercase`]), to be
    /// matched ignoring case.
    pub(super) fn lowered(spelling: &str) -> String {
        spelling.to_lowercase()
    }
    /// The rate of `ccy` in month `month_index`, in units of [`crate::exact::RATE_SCALE`].
    pub(super) fn rate(&self, month_index: i32, ccy: &str) -> Option<i128> {
        self.rate_of.get(&(month_index, ccy.to_string())).copied()
    }

    /// What each OMLP type of `asks` means, and each rate it asks for.
    fn rules<'a>(&'a self, asks: &'a LookupKeys) -> Rules<'a> {
        Rules {
            omlp_types: asks
                .omlp_keys
                .iter()
                .map(|k| (k.as_str(), self.omlp_types.get(k)))
                .collect(),
            rates: asks
                .rates
                .iter()
                .map(|(m, c)| (*m, c.as_str(), self.rate_of.get(&(*m, c.clone())).copied()))
                .collect(),
        }
    }

    /// SHA-256 of the answers of program.toml and the rates alone (what each OMLP type means,
    /// and each rate): two judgements whose rules answers agree differ only through the roster
    /// and the keys accepted before, which [`super::rejudge`] can follow row by row.
    pub fn rules_digest(&self, asks: &LookupKeys) -> String {
        digest_of(&self.rules(asks))
    }

    /// SHA-256 of the answers these lookups give to `asks`: which of the partners are in the
    /// roster, what each OMLP type means, and each rate. Two runs whose answers agree judge
    /// the same parsed rows (with the same earlier keys) the same way.
    pub fn answers_digest(&self, asks: &LookupKeys) -> String {
        #[derive(Serialize)]
        struct Answers<'a> {
            in_roster: Vec<&'a str>,
            #[serde(flatten)]
            rules: Rules<'a>,
        }
        digest_of(&Answers {
            in_roster: asks
                .partner_ids
                .iter()
                .filter(|id| self.partner_ids.contains(id.as_str()))
                .map(String::as_str)
                .collect(),
            rules: self.rules(asks),
        })
    }
}

/// The answers of program.toml and the rates to what rows ask.
#[derive(Serialize)]
struct Rules<'a> {
    omlp_types: Vec<(&'a str, Option<&'a (String, String)>)>,
    rates: Vec<(i32, &'a str, Option<i128>)>,
}

/// SHA-256 of `value` as JSON.
fn digest_of(value: &impl Serialize) -> String {
    crate::digest::sha256_bytes(
        serde_json::to_string(value)
            .expect("serialisable")
            .as_bytes(),
    )
}

/// What a delivery's parsed rows ask of the roster, the rates and program.toml: the partner
/// ids, the lower-cased OMLP types and the (invoice month, currency) pairs they carry, each
/// sorted. A judgement depends on those three inputs only through the answers to these
/// questions (see [`Lookups::answers_digest`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupKeys {
    pub partner_ids: Vec<String>,
    pub omlp_keys: Vec<String>,
    pub rates: Vec<(i32, String)>,
}

impl LookupKeys {
    ///
    /// The distinct values are gathered in hash sets, one pass over three columns: polars'
    /// `unique` on the 500,000 partner ids of a benchmark delivery took 0.1–0.5 s, the sets take
    /// a few hundredths. The OMLP types are lower-cased by polars, as the judging does, over
    /// the few distinct spellings only.
    pub fn of(parsed: &DataFrame) -> PolarsResult<LookupKeys> {
        let sorted = |set: PlHashSet<&str>| {
            let mut v: Vec<String> = set.into_iter().map(str::to_string).collect();
            v.sort_unstable();
            v
        };
        let texts = |name: &str| -> PolarsResult<PlHashSet<&str>> {
            Ok(parsed.column(name)?.str()?.iter().flatten().collect())
        };
        let partner_ids = sorted(texts("partner_id")?);
        // (Lowered as program.toml's types are, and as the verdicts look them up.)
        let mut omlp_keys: Vec<String> = (texts("omlp_type")?.into_iter())
            .map(Lookups::lowered)
            .collect();
        omlp_keys.sort_unstable();
        omlp_keys.dedup();
        let months = parsed.column("month_index")?.i32()?;
        let currencies = parsed.column("ccy")?.str()?;
        let pairs: PlHashSet<(i32, &str)> = months
            .iter()
            .zip(currencies.iter())
            .filter_map(|(m, c)| Some((m?, c?)))
            .collect();
        let mut rates: Vec<(i32, String)> =
            pairs.into_iter().map(|(m, c)| (m, c.to_string())).collect();
        rates.sort_unstable();
        Ok(LookupKeys {
            partner_ids,
            omlp_keys,
            rates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Month;
    use crate::ingest::extract::Parsed;

    /// Five rows of `delivery`: two partners in EUR, one in USD, one without a partner or
    /// currency, one without a date.
    fn five_rows(delivery: Month) -> DataFrame {
        let rows = [
            [
                "I1",
                "1",
                "2026-09-03",
                "Invoice",
                "P2",
                "MOC",
                "Kit",
                "1",
                "1",
                "EUR",
            ],
            [
                "I2",
                "1",
                "2026-10-03",
                "Invoice",
                "P1",
                "moc",
                "Kit",
                "1",
                "1",
                "USD",
            ],
            [
                "I3",
                "1",
                "2026-09-30",
                "Invoice",
                "P2",
                "Moc",
                "Kit",
                "1",
                "1",
                "EUR",
            ],
            [
                "I4",
                "1",
                "2026-10-01",
                "Invoice",
                "",
                "AΣ",
                "Kit",
                "1",
                "1",
                "",
            ],
            [
                "I5",
                "1",
                "not a date",
                "Invoice",
                "P3",
                "Exam Voucher",
                "Kit",
                "1",
                "1",
                "GBP",
            ],
        ];
        let mut parsed = Parsed::new("f.csv", rows.len());
        for (i, r) in rows.iter().enumerate() {
            parsed.push(i as u32 + 2, *r, [false; 10], delivery);
        }
        parsed.into_frame().unwrap()
    }

    #[test]
    fn asks_are_the_distinct_values_sorted_with_omlp_types_lowered_as_judging_does() {
        let delivery: Month = "2026-10".parse().unwrap();
        let frame = five_rows(delivery);
        let asks = LookupKeys::of(&frame).unwrap();
        // A missing partner id is kept as an empty text, and asked about like any other.
        assert_eq!(asks.partner_ids, ["", "P1", "P2", "P3"]);
        // The same lower-casing as the verdicts' lookup, and sorted by bytes.
        let sigma = Lookups::lowered("AΣ");
        assert_eq!(
            asks.omlp_keys,
            [sigma.as_str(), "exam voucher", "moc"].map(String::from)
        );
        assert_eq!(asks, asks_by_queries(&frame));
        // A row without a month or a currency asks for no rate.
        let (sep, oct) = (delivery.plus(-1).index(), delivery.index());
        assert_eq!(
            asks.rates,
            [(sep, "EUR".to_string()), (oct, "USD".to_string())]
        );
    }

    /// The asks as polars queries (distinct, sorted): the reference the hash sets must match.
    fn asks_by_queries(parsed: &DataFrame) -> LookupKeys {
        let distinct = |e: Expr| -> Vec<String> {
            let df = parsed
                .clone()
                .lazy()
                .select([e.alias("k")])
                .drop_nulls(None)
                .unique(None, UniqueKeepStrategy::Any)
                .sort(["k"], SortMultipleOptions::default())
                .collect()
                .unwrap();
            let k = df.column("k").unwrap().str().unwrap().clone();
            k.iter().flatten().map(str::to_string).collect()
        };
        let rates = parsed
            .clone()
            .lazy()
            .select([col("month_index"), col("ccy")])
            .drop_nulls(None)
            .unique(None, UniqueKeepStrategy::Any)
            .sort(["month_index", "ccy"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let months = rates.column("month_index").unwrap().i32().unwrap().clone();
        let ccys = rates.column("ccy").unwrap().str().unwrap().clone();
        LookupKeys {
            partner_ids: distinct(col("partner_id")),
            omlp_keys: distinct(col("omlp_type").str().to_lowercase()),
            rates: months
                .iter()
                .zip(ccys.iter())
                .map(|(m, c)| (m.unwrap(), c.unwrap().to_string()))
                .collect(),
        }
    }
}

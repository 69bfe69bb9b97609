//! The plan: what each delivery calls for, decided from what is found on disk (the delivery's
//! files, its published partition, what that partition's rows ask of the lookups and this
//! run's answers) and from the dependencies, before any delivery is judged. [`plan`] is a pure
//! function; so is [`Step::kind_after`], which settles the one choice that waits for the keys
//! accepted before the delivery (carry its rows over, or judge it again by difference).

use crate::calendar::Month;
use crate::digest::sha256_bytes;
use crate::ingest::judge::LookupKeys;

use super::{Depends, PartitionMeta, SourceFile, FORMAT};

/// A delivery's files as found: their SHA-256, and the published partition's metadata.
pub(super) struct Found {
    pub files: Vec<SourceFile>,
    pub existing: Option<PartitionMeta>,
    /// The published partition was parsed from these very files.
    pub same_files: bool,
}

impl Found {
    pub fn new(files: Vec<SourceFile>, existing: Option<PartitionMeta>) -> Found {
        let same_files = existing.as_ref().is_some_and(|m| {
            m.files
                .iter()
                .map(|f| (&f.name, &f.sha256))
                .eq(files.iter().map(|f| (&f.name, &f.sha256)))
        });
        Found {
            files,
            existing,
            same_files,
        }
    }
}

/// What the published partition's rows ask of the roster, rates and program.toml (kept with
/// the partition), with this run's answers to them. Known for a partition whose files are the
/// same only: the asks are learned again when the files are parsed again.
pub(super) struct KeptAsks {
    pub asks: LookupKeys,
    /// SHA-256 of this run's answers (see [`crate::ingest::judge::Lookups::answers_digest`]).
    pub answers: String,
    /// SHA-256 of the rules' answers alone (see
    /// [`crate::ingest::judge::Lookups::rules_digest`]).
    pub rules: String,
}

/// What a delivery calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The published partition's judgement is this run's: reused as it is.
    Reuse,
    /// A dependency changed, but not in anything these rows ask about: the rows are carried
    /// over when the keys accepted before are the same as when it was judged, and it is judged
    /// again by difference otherwise (see [`Step::kind_after`]).
    CarryOver,
    /// Judged again by difference from its published judgement: only the rules' answers are
    /// the same (the roster's, or the earlier keys, may differ).
    ByDifference,
    /// Judged again in full from the kept rows.
    JudgeKept,
    /// Parsed from its files and judged.
    Parse,
}

impl Kind {
    /// Whether the delivery is read (and its verdicts prepared) ahead of the judging.
    pub fn read_ahead(self) -> bool {
        matches!(self, Kind::ByDifference | Kind::JudgeKept | Kind::Parse)
    }
}

/// One delivery's step in [`super::update`].
pub(super) struct Step {
    pub month: Month,
    /// The delivery's files as found (`rows` still 0).
    pub files: Vec<SourceFile>,
    /// The published partition's metadata.
    pub existing: Option<PartitionMeta>,
    /// What this judgement depends on.
    pub depends: Depends,
    /// The judgement hash (see [`PartitionMeta::judgement`]).
    pub judgement: String,
    pub kept: Option<KeptAsks>,
    pub kind: Kind,
    /// Whether the delivery is read ahead of the judging (see [`read_ahead_carry_overs`]).
    pub read_ahead: bool,
}

impl Step {
    /// What the delivery calls for once the keys accepted before it are known (their digest,
    /// `earlier_keys`): a planned carry-over holds only after the very keys the published
    /// partition was judged after; otherwise the delivery is judged again by difference.
    pub fn kind_after(&self, earlier_keys: Option<&str>) -> Kind {
        match (self.kind, &self.existing) {
            (Kind::CarryOver, Some(meta)) if meta.earlier_keys.as_deref() != earlier_keys => {
                Kind::ByDifference
            }
            (kind, _) => kind,
        }
    }
}

/// The judgement each delivery calls for, oldest first, and what it needs. `sources` holds the
/// SHA-256 of the roster, rates and program.toml (its `previous` is ignored). A judgement hash
/// depends on the delivery's files and on those and the previous delivery's judgement hash,
/// so the whole chain is known from the files alone.
pub(super) fn plan(sources: &Depends, found: Vec<(Month, Found, Option<KeptAsks>)>) -> Vec<Step> {
    let mut previous: Option<String> = None;
    found
        .into_iter()
        .map(|(month, found, kept)| {
            let depends = Depends {
                previous: previous.clone(),
                ..sources.clone()
            };
            let judgement = judgement_hash(month, &found.files, &depends);
            previous = Some(judgement.clone());
            let kind = kind(&found, &judgement, kept.as_ref());
            Step {
                month,
                files: found.files,
                existing: found.existing,
                depends,
                judgement,
                kept,
                kind,
                read_ahead: kind.read_ahead(),
            }
        })
        .collect()
}

/// Marks the carry-overs that follow a delivery to judge to be read ahead too, prepared to be
/// judged again by difference: the keys that delivery accepts most likely differ from those
/// the carry-over was judged after (see [`Step::kind_after`]), and a carry-over that holds
/// after all costs only the reading thread's work.
pub(super) fn read_ahead_carry_overs(steps: &mut [Step]) {
    let mut judged_before = false;
    for step in steps {
        judged_before |= step.kind.read_ahead();
        if step.kind == Kind::CarryOver && judged_before {
            step.read_ahead = true;
        }
    }
}

/// Where in the plan the last delivery is that may look the earlier keys up: every one after
/// it is reused, so no later delivery needs them. (A carry-over counts: it is judged again by
/// difference when the keys before it turn out to differ.)
pub(super) fn last_keyed(
    mut kinds: impl DoubleEndedIterator<Item = Kind> + ExactSizeIterator,
) -> Option<usize> {
    kinds.rposition(|kind| kind != Kind::Reuse)
}

/// SHA-256 of the format, the delivery, its files and what its judgement depends on.
fn judgement_hash(month: Month, files: &[SourceFile], depends: &Depends) -> String {
    let identity: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.name.as_str(), f.sha256.as_str()))
        .collect();
    sha256_bytes(
        serde_json::to_string(&(FORMAT, month.to_string(), &identity, depends))
            .expect("serialisable")
            .as_bytes(),
    )
}

fn kind(found: &Found, judgement: &str, kept: Option<&KeptAsks>) -> Kind {
    let answers = kept.map(|k| &k.answers);
    let rules = kept.map(|k| k.rules.clone());
    match &found.existing {
        Some(meta) if meta.judgement == judgement => Kind::Reuse,
        // (The answers are known only for a partition whose files are the same.)
        Some(meta) if answers == Some(&meta.answers) => Kind::CarryOver,
        Some(meta) if rules.is_some() && meta.rules_answers == rules => Kind::ByDifference,
        _ if found.same_files => Kind::JudgeKept,
        _ => Kind::Parse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(text: &str) -> Month {
        text.parse().unwrap()
    }

    fn files(sha: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            name: "extract.csv".into(),
            sha256: sha.into(),
            rows: 0,
            blake3: None,
        }]
    }

    fn sources(roster: &str) -> Depends {
        Depends {
            roster: roster.into(),
            fx_rates: "fx".into(),
            program: "program".into(),
            previous: None,
        }
    }

    fn meta(
        judgement: &str,
        answers: &str,
        rules: &str,
        earlier_keys: Option<&str>,
    ) -> PartitionMeta {
        PartitionMeta {
            files: files("a"),
            depends: sources("old"),
            judgement: judgement.into(),
            answers: answers.into(),
            rules_answers: Some(rules.into()),
            earlier_keys: earlier_keys.map(str::to_string),
            ..PartitionMeta::example()
        }
    }

    fn kept(answers: &str, rules: &str) -> Option<KeptAsks> {
        Some(KeptAsks {
            asks: LookupKeys::default(),
            answers: answers.into(),
            rules: rules.into(),
        })
    }

    /// The judgement hash this run gives the first delivery, `2026-09`, with files `a`.
    fn first_judgement(roster: &str) -> String {
        plan(
            &sources(roster),
            vec![(month("2026-09"), Found::new(files("a"), None), None)],
        )
        .remove(0)
        .judgement
    }

    fn plan_one(existing: PartitionMeta, kept: Option<KeptAsks>, sha: &str) -> Step {
        let found = Found::new(files(sha), Some(existing));
        plan(&sources("roster"), vec![(month("2026-09"), found, kept)]).remove(0)
    }

    #[test]
    fn the_keys_are_wanted_up_to_the_last_delivery_not_reused() {
        use Kind::*;
        let last = |kinds: &[Kind]| last_keyed(kinds.iter().copied());
        assert_eq!(last(&[Parse, Parse, Parse]), Some(2));
        assert_eq!(last(&[Parse, Parse, Reuse]), Some(1));
        assert_eq!(last(&[Reuse, JudgeKept, CarryOver, Reuse]), Some(2));
        assert_eq!(last(&[ByDifference, Reuse, Reuse]), Some(0));
        assert_eq!(last(&[Reuse, Reuse]), None);
        assert_eq!(last(&[]), None);
    }

    #[test]
    fn a_new_delivery_is_parsed() {
        let step = plan(
            &sources("roster"),
            vec![(month("2026-09"), Found::new(files("a"), None), None)],
        )
        .remove(0);
        assert_eq!(step.kind, Kind::Parse);
        assert_eq!(step.depends.previous, None);
    }

    #[test]
    fn the_same_judgement_is_reused() {
        let judgement = first_judgement("roster");
        let step = plan_one(meta(&judgement, "x", "y", None), None, "a");
        assert_eq!(step.kind, Kind::Reuse);
        assert_eq!(step.kind_after(Some("anything")), Kind::Reuse);
    }

    #[test]
    fn the_same_answers_carry_the_rows_over_after_the_same_keys() {
        let step = plan_one(
            meta("old", "ans", "rules", Some("k")),
            kept("ans", "rules"),
            "a",
        );
        assert_eq!(step.kind, Kind::CarryOver);
        assert_eq!(step.kind_after(Some("k")), Kind::CarryOver);
        assert_eq!(step.kind_after(Some("other")), Kind::ByDifference);
        assert_eq!(step.kind_after(None), Kind::ByDifference);
        assert!(!step.kind.read_ahead());
    }

    #[test]
    fn the_same_rules_answers_judge_again_by_difference() {
        let step = plan_one(meta("old", "ans", "rules", None), kept("new", "rules"), "a");
        assert_eq!(step.kind, Kind::ByDifference);
        assert!(step.kind.read_ahead());
    }

    #[test]
    fn other_answers_judge_the_kept_rows_again() {
        let step = plan_one(meta("old", "ans", "rules", None), kept("new", "new"), "a");
        assert_eq!(step.kind, Kind::JudgeKept);
        // Without its asks, a partition of the same files is judged from its kept rows.
        let step = plan_one(meta("old", "ans", "rules", None), None, "a");
        assert_eq!(step.kind, Kind::JudgeKept);
    }

    #[test]
    fn carry_overs_after_a_delivery_to_judge_are_read_ahead_too() {
        let kinds = [
            Kind::Reuse,
            Kind::CarryOver,
            Kind::Parse,
            Kind::Reuse,
            Kind::CarryOver,
            Kind::JudgeKept,
            Kind::CarryOver,
        ];
        let mut steps: Vec<Step> = kinds
            .iter()
            .map(|kind| {
                let mut step = plan_one(meta("old", "ans", "rules", None), None, "b");
                (step.kind, step.read_ahead) = (*kind, kind.read_ahead());
                step
            })
            .collect();
        read_ahead_carry_overs(&mut steps);
        let ahead: Vec<bool> = steps.iter().map(|s| s.read_ahead).collect();
        assert_eq!(ahead, [false, false, true, false, true, true, true]);
    }

    #[test]
    fn changed_files_are_parsed_again() {
        let step = plan_one(meta("old", "ans", "rules", None), None, "b");
        assert_eq!(step.kind, Kind::Parse);
        assert!(step.kind.read_ahead());
    }

    #[test]
    fn judgements_chain_through_the_previous_delivery() {
        let deliveries = |roster: &str| {
            plan(
                &sources(roster),
                vec![
                    (month("2026-09"), Found::new(files("a"), None), None),
                    (month("2026-10"), Found::new(files("b"), None), None),
                ],
            )
        };
        let steps = deliveries("roster");
        assert_eq!(
            steps[1].depends.previous.as_ref(),
            Some(&steps[0].judgement)
        );
        assert_ne!(steps[0].judgement, steps[1].judgement);
        // Another roster changes every judgement hash of the chain.
        let other = deliveries("other");
        assert_ne!(steps[0].judgement, other[0].judgement);
        assert_ne!(steps[1].judgement, other[1].judgement);
        // The same inputs plan the same.
        assert_eq!(steps[1].judgement, deliveries("roster")[1].judgement);
    }
}

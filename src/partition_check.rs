//! Trusting a ledger partition only as far as it can be checked: when a partition is written,
//! its `_partition.json` records the SHA-256 and the BLAKE3 of each of the partition's own
//! files and a seal (the SHA-256 of the metadata itself); when a later run would reuse it, the
//! seal and the files' BLAKE3 are checked again (a partition written before BLAKE3 was
//! recorded: their SHA-256). A partition whose files were swapped, edited or truncated, or
//! whose metadata was edited, is not reused: it is judged again from its delivery, and the log
//! says why.

use std::collections::BTreeMap;
use std::path::Path;

use crate::digest::{sha256_bytes, Digests};
use crate::error::{Error, Result};
use crate::ledger::{PartitionMeta, ACCEPTED, ASKS, PARSED, REJECTED, SUMS};

/// The partition's own files whose digests are recorded.
pub const OWN_FILES: [&str; 5] = [PARSED, ACCEPTED, REJECTED, SUMS, ASKS];

/// The seal of `meta`: SHA-256 of its JSON with the seal left empty.
fn seal_of(meta: &PartitionMeta) -> Result<String> {
    let mut unsealed = meta.clone();
    unsealed.seal = String::new();
    let text =
        serde_json::to_vec(&unsealed).map_err(|e| Error::internal("partition metadata", e))?;
    Ok(sha256_bytes(&text))
}

/// Whether `meta` records a BLAKE3 for every one of its own files: they are checked by it.
fn checked_by_blake3(meta: &PartitionMeta) -> bool {
    OWN_FILES.iter().all(|n| meta.own_checks.contains_key(*n))
}

/// The digests recorded in `meta` for each of its own files, as they were checked: with their
/// BLAKE3 when the files are checked by it, with an empty one otherwise (a partition written
/// before BLAKE3 was recorded).
pub fn recorded(meta: &PartitionMeta) -> BTreeMap<String, Digests> {
    let by_blake3 = checked_by_blake3(meta);
    (meta.own_files.iter())
        .map(|(name, sha256)| {
            let blake3 = match by_blake3 {
                true => meta.own_checks[name].clone(),
                false => String::new(),
            };
            let sha256 = sha256.clone();
            (name.clone(), Digests { sha256, blake3 })
        })
        .collect()
}

/// Records the digests of the partition's own files and seals `meta`, which is then ready to
/// be written. The digests are those `known` (of files as they were written, or as they were
/// checked); the other files are hashed in `dir`. A file known by its SHA-256 alone is hashed
/// too, and its BLAKE3 is of the bytes recorded only if its SHA-256 still is: if one is not,
/// the partition keeps its SHA-256 alone, by which the next run finds the change out.
pub fn seal(
    dir: &Path,
    meta: &mut PartitionMeta,
    mut known: BTreeMap<String, Digests>,
) -> Result<()> {
    let (mut own, mut checks) = (BTreeMap::new(), BTreeMap::new());
    let mut by_blake3 = true;
    for name in OWN_FILES {
        let digests = match known.remove(name) {
            Some(digests) if !digests.blake3.is_empty() => digests,
            Some(digests) => {
                let found = crate::source::digests_file(&dir.join(name))?;
                by_blake3 &= found.sha256 == digests.sha256;
                Digests {
                    sha256: digests.sha256,
                    blake3: found.blake3,
                }
            }
            None => crate::source::digests_file(&dir.join(name))?,
        };
        own.insert(name.to_string(), digests.sha256);
        checks.insert(name.to_string(), digests.blake3);
    }
    meta.own_files = own;
    meta.own_checks = if by_blake3 { checks } else { BTreeMap::new() };
    meta.seal = seal_of(meta)?;
    Ok(())
}

/// Why the partition in `dir` cannot be trusted as `meta` describes it, if it cannot.
pub fn verify(dir: &Path, meta: &PartitionMeta) -> Option<String> {
    match seal_of(meta) {
        Ok(seal) if seal == meta.seal => {}
        _ => return Some("its metadata does not match its seal (edited or damaged)".into()),
    }
    if let Some(name) = OWN_FILES.iter().find(|n| !meta.own_files.contains_key(**n)) {
        return Some(format!("no digest is recorded for {name}"));
    }
    // By BLAKE3 where every file has one recorded; otherwise by SHA-256.
    let (digest, recorded): (fn(&Path) -> Result<String>, _) = if checked_by_blake3(meta) {
        (crate::source::blake3_file, &meta.own_checks)
    } else {
        (crate::source::digest_file, &meta.own_files)
    };
    // The files are digested on the pool's threads (each one's result kept as a value), then
    // judged in their order.
    let found = match crate::pool::map(&OWN_FILES, |name| Ok(digest(&dir.join(name)))) {
        Ok(found) => found,
        Err(e) => return Some(format!("its files cannot be checked: {e}")),
    };
    for (name, found) in OWN_FILES.iter().zip(found) {
        let recorded = &recorded[*name];
        match found {
            Ok(found) if &found == recorded => {}
            Ok(_) => {
                return Some(format!(
                    "{name} does not match the digest recorded when it was written"
                ))
            }
            Err(e) => return Some(format!("{name} cannot be checked: {e}")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition folder holding each own file, and its metadata sealed.
    fn sealed() -> (tempfile::TempDir, PartitionMeta) {
        let dir = tempfile::tempdir().unwrap();
        for name in OWN_FILES {
            std::fs::write(dir.path().join(name), format!("the bytes of {name}")).unwrap();
        }
        let mut meta = PartitionMeta::example();
        // (One file's digests as written, the others hashed in the folder.)
        let parsed = Digests::of_bytes(format!("the bytes of {PARSED}").as_bytes());
        seal(
            dir.path(),
            &mut meta,
            BTreeMap::from([(PARSED.into(), parsed)]),
        )
        .unwrap();
        (dir, meta)
    }

    #[test]
    fn a_sealed_partition_records_both_digests_of_each_file_and_holds() {
        let (dir, meta) = sealed();
        for name in OWN_FILES {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            let digests = Digests::of_bytes(&bytes);
            assert_eq!(meta.own_files[name], digests.sha256, "{name}");
            assert_eq!(meta.own_checks[name], digests.blake3, "{name}");
        }
        assert_eq!(verify(dir.path(), &meta), None);
        // A file edited afterwards is found out, and named.
        std::fs::write(dir.path().join(ACCEPTED), "other bytes").unwrap();
        let why = verify(dir.path(), &meta).unwrap();
        assert!(why.starts_with(ACCEPTED), "{why}");
    }

    #[test]
    fn the_files_are_checked_by_their_blake3_when_it_is_recorded() {
        let (dir, mut meta) = sealed();
        // The SHA-256 still right, the BLAKE3 wrong (and sealed so): not trusted.
        meta.own_checks.insert(SUMS.into(), "0".repeat(64));
        meta.seal = seal_of(&meta).unwrap();
        let why = verify(dir.path(), &meta).unwrap();
        assert!(why.starts_with(SUMS), "{why}");
    }

    #[test]
    fn a_partition_sealed_before_blake3_was_recorded_is_checked_by_sha256() {
        let (dir, mut meta) = sealed();
        // As such a partition's metadata is: no BLAKE3 (not even the key), sealed so.
        meta.own_checks.clear();
        meta.seal = seal_of(&meta).unwrap();
        let json = serde_json::to_string(&meta).unwrap();
        assert!(!json.contains("own_checks"), "{json}");
        let meta: PartitionMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(verify(dir.path(), &meta), None);
        // Sealed again (carried over, say), it gains the BLAKE3 of its files.
        let mut again = meta.clone();
        seal(dir.path(), &mut again, recorded(&meta)).unwrap();
        assert_eq!(again.own_checks.len(), OWN_FILES.len());
        assert_eq!(verify(dir.path(), &again), None);
        // A file changed after it was checked: sealed again, the partition keeps the SHA-256
        // recorded and no BLAKE3 of the changed bytes, so the change is found out.
        std::fs::write(dir.path().join(REJECTED), "other bytes").unwrap();
        let why = verify(dir.path(), &meta).unwrap();
        assert!(why.starts_with(REJECTED), "{why}");
        let mut again = meta.clone();
        seal(dir.path(), &mut again, recorded(&meta)).unwrap();
        assert!(again.own_checks.is_empty());
        assert_eq!(again.own_files, meta.own_files);
        let why = verify(dir.path(), &again).unwrap();
        assert!(why.starts_with(REJECTED), "{why}");
    }

    #[test]
    fn a_blake3_missing_for_one_file_is_none_for_all() {
        let (dir, mut meta) = sealed();
        meta.own_checks.remove(ASKS);
        meta.seal = seal_of(&meta).unwrap();
        // Checked by SHA-256, and so handed on: without the BLAKE3s nobody checked.
        assert_eq!(verify(dir.path(), &meta), None);
        assert!(recorded(&meta).values().all(|d| d.blake3.is_empty()));
        std::fs::write(dir.path().join(SUMS), "other bytes").unwrap();
        let mut again = meta.clone();
        seal(dir.path(), &mut again, recorded(&meta)).unwrap();
        assert!(again.own_checks.is_empty());
        assert!(verify(dir.path(), &again).unwrap().starts_with(SUMS));
    }
}

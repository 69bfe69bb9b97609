//! Trusting a ledger partition only as far as it can be checked: when a partition is written,
//! its `_partition.json` records the SHA-256 of each of the partition's own files and a seal
//! (the SHA-256 of the metadata itself); when a later run would reuse it, both are checked
//! again. A partition whose files were swapped, edited or truncated, or whose metadata was
//! edited, is not reused: it is judged again from its delivery, and the log says why.

use std::collections::BTreeMap;
use std::path::Path;

use crate::digest::sha256_bytes;
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

/// Records the digests of the partition's own files (those `known`, as they were written or
/// checked; the others hashed in `dir`) and seals `meta`, which is then ready to be written.
pub fn seal(
    dir: &Path,
    meta: &mut PartitionMeta,
    mut known: BTreeMap<String, String>,
) -> Result<()> {
    let mut own = BTreeMap::new();
    for name in OWN_FILES {
        let digest = match known.remove(name) {
            Some(digest) => digest,
            None => crate::source::digest_file(&dir.join(name))?,
        };
        own.insert(name.to_string(), digest);
    }
    meta.own_files = own;
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
    // The files are digested on the pool's threads (each one's result kept as a value), then
    // judged in their order.
    let found = match crate::pool::map(&OWN_FILES, |name| {
        Ok(crate::source::digest_file(&dir.join(name)))
    }) {
        Ok(found) => found,
        Err(e) => return Some(format!("its files cannot be checked: {e}")),
    };
    for (name, found) in OWN_FILES.iter().zip(found) {
        let recorded = &meta.own_files[*name];
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

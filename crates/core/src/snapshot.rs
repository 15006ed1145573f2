//! Online snapshots of the whole store, and restoring one (`sys/storage/raft/snapshot*`,
//! `tresor operator snapshot`, the server's scheduled snapshots).
//!
//! A snapshot is every storage entry as of one commit ([`tresor_storage::Storage::export`]),
//! taken while the server keeps serving. Values stay as the barrier wrote them, so a snapshot
//! holds nothing in clear: it is as safe as the storage itself, and opening it needs the unseal
//! keys that were current when it was taken (the root key it holds is protected by them).
//!
//! The file is a gzipped tar, as Vault's raft snapshots are, so `bao operator raft snapshot
//! save` (which checks for a non-empty `SHA256SUMS.sealed`) works unchanged:
//! * `meta.json`: format, version, creation time, entry count, key term;
//! * `state.bin`: the entries, each a big-endian `u32` length and the key, then the same for
//!   the value;
//! * `SHA256SUMS`: the SHA-256 of the two files above, as `sha256sum` prints them;
//! * `SHA256SUMS.sealed`: the same, encrypted by the barrier. A restore checks it opens with
//!   this server's keyring (the snapshot is this cluster's and unaltered) unless forced.

use crate::barrier::{aead_open, Barrier, KEYRING_PATH};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::seal::SEAL_CONFIG_PATH;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};

const FORMAT: &str = "tresor-snapshot";
const VERSION: u32 = 1;
const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";
const SEALED_SUMS: &str = "SHA256SUMS.sealed";
/// The additional data the sealed sums are encrypted under (never a storage key).
const SEALED_SUMS_AAD: &str = "snapshot/SHA256SUMS";

/// What `meta.json` says about a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    /// RFC 3339, when the snapshot was taken.
    pub created: String,
    pub entries: usize,
    /// The barrier key term active when it was taken.
    pub key_term: u32,
    pub storage_type: String,
}

/// A snapshot read back: its checksums verified, its entries in key order.
pub struct Snapshot {
    pub meta: Meta,
    pub entries: Vec<(String, Vec<u8>)>,
    sums: Vec<u8>,
    sealed_sums: Vec<u8>,
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("invalid snapshot: {msg}"))
}

fn sums_of(meta: &[u8], state: &[u8]) -> Vec<u8> {
    format!(
        "{}  {META}\n{}  {STATE}\n",
        crate::util::sha256_hex(meta),
        crate::util::sha256_hex(state)
    )
    .into_bytes()
}

/// Writes a snapshot of `entries` (sealing its checksums with `barrier`).
pub fn encode(meta: &Meta, entries: &[(String, Vec<u8>)], barrier: &Barrier) -> Result<Vec<u8>> {
    let meta_json = serde_json::to_vec_pretty(meta)?;
    let size: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut state = Vec::with_capacity(size);
    for (k, v) in entries {
        for part in [k.as_bytes(), v.as_slice()] {
            let len = u32::try_from(part.len()).map_err(|_| Error::internal("entry too large"))?;
            state.extend_from_slice(&len.to_be_bytes());
            state.extend_from_slice(part);
        }
    }
    let sums = sums_of(&meta_json, &state);
    let sealed = barrier.encrypt(SEALED_SUMS_AAD, &sums)?;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let now = crate::util::unix_now().max(0) as u64;
    for (name, body) in [
        (META, &meta_json),
        (STATE, &state),
        (SUMS, &sums),
        (SEALED_SUMS, &sealed),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(now);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_slice())
            .map_err(|e| Error::internal(format!("writing the snapshot: {e}")))?;
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| Error::internal(format!("writing the snapshot: {e}")))
}

impl Snapshot {
    /// Reads a snapshot and checks its checksums (not the sealed ones: see [`Snapshot::verify_sealed`]).
    pub fn decode(bytes: &[u8]) -> Result<Snapshot> {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let entries = tar.entries().map_err(bad)?;
        for entry in entries {
            let mut entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            if ![META, STATE, SUMS, SEALED_SUMS].contains(&name.as_str()) {
                continue;
            }
            let mut body = Vec::new();
            entry.read_to_end(&mut body).map_err(bad)?;
            files.insert(name, body);
        }
        let mut take = |name: &str| {
            files
                .remove(name)
                .ok_or_else(|| bad(format!("{name} is missing (not a Tresor snapshot?)")))
        };
        let (meta_json, state, sums, sealed_sums) =
            (take(META)?, take(STATE)?, take(SUMS)?, take(SEALED_SUMS)?);
        if sums != sums_of(&meta_json, &state) {
            return Err(bad("its content does not match its SHA256SUMS (damaged)"));
        }
        let meta: Meta = serde_json::from_slice(&meta_json).map_err(bad)?;
        if meta.format != FORMAT || meta.version != VERSION {
            return Err(bad(format!(
                "format {} version {} (this server reads {FORMAT} version {VERSION})",
                meta.format, meta.version
            )));
        }
        let entries = parse_state(&state)?;
        if entries.len() != meta.entries {
            return Err(bad("its entry count does not match its metadata"));
        }
        Ok(Snapshot {
            meta,
            entries,
            sums,
            sealed_sums,
        })
    }

    /// Whether the sealed checksums open with `barrier`'s keyring: the snapshot was taken by
    /// this cluster (any key term it still has) and is as it was written.
    pub fn verify_sealed(&self, barrier: &Barrier) -> bool {
        barrier
            .decrypt(SEALED_SUMS_AAD, &self.sealed_sums)
            .is_ok_and(|sums| crate::util::ct_eq(&sums, &self.sums))
    }

    pub fn entry(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.entries[i].1.as_slice())
    }

    /// What `operator snapshot inspect` shows: the metadata, and entries and bytes by the
    /// first segment of their keys (`core`, `logical`, `auth`, `sys` ...).
    pub fn summary(&self) -> serde_json::Value {
        let mut areas: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (k, v) in &self.entries {
            let area = k.split('/').next().unwrap_or("");
            let a = areas.entry(area).or_default();
            a.0 += 1;
            a.1 += v.len();
        }
        serde_json::json!({
            "format": self.meta.format,
            "version": self.meta.version,
            "created": self.meta.created,
            "entries": self.meta.entries,
            "key_term": self.meta.key_term,
            "storage_type": self.meta.storage_type,
            "checksums": "valid",
            "areas": areas.iter().map(|(area, (n, bytes))| {
                (area.to_string(), serde_json::json!({ "entries": n, "bytes": bytes }))
            }).collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn parse_state(mut state: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    fn part<'a>(state: &mut &'a [u8]) -> Result<&'a [u8]> {
        if state.len() < 4 {
            return Err(bad("state.bin is truncated"));
        }
        let len = u32::from_be_bytes(state[..4].try_into().expect("4 bytes")) as usize;
        if state.len() - 4 < len {
            return Err(bad("state.bin is truncated"));
        }
        let (body, rest) = state[4..].split_at(len);
        *state = rest;
        Ok(body)
    }
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    while !state.is_empty() {
        let key =
            String::from_utf8(part(&mut state)?.to_vec()).map_err(|_| bad("a key is not UTF-8"))?;
        let value = part(&mut state)?.to_vec();
        if out.last().is_some_and(|(last, _)| *last >= key) {
            return Err(bad("state.bin is not in key order"));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// What a restore did to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The snapshot's keyring opens with this server's root key: the node reloaded everything
    /// and kept serving.
    Serving,
    /// It does not (a snapshot of another cluster, forced): the node sealed itself; the
    /// snapshot's unseal keys unseal it.
    Sealed,
}

impl Core {
    /// A snapshot of everything as of one commit, taken while the server serves. Active node
    /// only (a standby forwards).
    pub async fn save_snapshot(&self) -> Result<Vec<u8>> {
        self.active()?;
        let entries = self.barrier.storage().export().await?;
        let meta = Meta {
            format: FORMAT.into(),
            version: VERSION,
            created: crate::util::now_rfc3339(),
            entries: entries.len(),
            key_term: self.barrier.key_status()?.0,
            storage_type: self.config.storage_type.clone(),
        };
        let barrier = self.barrier.clone();
        // Compressing a large store is CPU work: off the async workers.
        tokio::task::spawn_blocking(move || encode(&meta, &entries, &barrier))
            .await
            .map_err(|e| Error::internal(format!("snapshot task: {e}")))?
    }

    /// Replaces everything in storage with the snapshot's entries. Unless `force`, the
    /// snapshot must be this cluster's ([`Snapshot::verify_sealed`]). Writes that land while
    /// the restore runs may be overwritten by it.
    pub async fn restore_snapshot(&self, bytes: Vec<u8>, force: bool) -> Result<Restored> {
        self.active()?;
        let snap = tokio::task::spawn_blocking(move || Snapshot::decode(&bytes))
            .await
            .map_err(|e| Error::internal(format!("snapshot task: {e}")))??;
        if !force && !snap.verify_sealed(&self.barrier) {
            return Err(Error::bad(
                "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check",
            ));
        }
        let keyring = snap
            .entry(KEYRING_PATH)
            .ok_or_else(|| bad("it holds no keyring (not a snapshot of an initialized server)"))?;
        if snap.entry(SEAL_CONFIG_PATH).is_none() {
            return Err(bad("it holds no seal configuration"));
        }
        let opens = aead_open(&self.barrier.root_key()?, KEYRING_PATH.as_bytes(), keyring).is_ok();
        let entries = snap.entries;
        let count = entries.len();
        {
            // No unsealed state is (re)built while storage changes under it.
            let _building = self.state_lock.lock().await;
            self.barrier.storage().replace_all(entries).await?;
        }
        *self.rekey.lock().await = None;
        if !opens {
            tracing::warn!(
                entries = count,
                "snapshot restored; its keyring is another root key's: sealed"
            );
            self.seal_now();
            return Ok(Restored::Sealed);
        }
        if let Err(e) = self.load_active_state().await {
            tracing::error!(error = %e, "reloading after a snapshot restore failed; sealing");
            self.seal_now();
            return Err(e);
        }
        tracing::info!(entries = count, "snapshot restored");
        Ok(Restored::Serving)
    }
}

/// Writes `bytes` to `path` durably: a temporary file beside it, fsynced, renamed over it,
/// the directory fsynced. Readable by the owner only.
pub fn write_file_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("snapshot"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

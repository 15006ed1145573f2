//! Small shared helpers: time formatting, identifiers, hashing.

use aws_lc_rs::digest;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 for a unix timestamp.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A random identifier in UUID form (version 4), for stored things (mounts, issuers, keys,
/// ACME accounts and orders), the cluster ID and nonces. The bytes come from aws-lc's DRBG, which reseeds from the
/// OS, rather than one `getrandom` system call per UUID (the `uuid` crate's default).
pub fn uuid() -> String {
    uuid_from(random_u128())
}

/// A request's identifier in UUID form (version 4 layout): unique, not secret. Only audit
/// entries and answers carry it, for correlation, so it needs no fresh randomness: a random
/// per-process base XOR a counter spread by an odd multiplier (a bijection on 64 bits, so no
/// two requests of a process share an ID, and IDs do not look sequential). A DRBG draw per
/// request cost ~1.5% of a signing request.
pub fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(random_u128);
    let n = COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    uuid_from(base ^ u128::from(n))
}

fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness unavailable");
    u128::from_be_bytes(bytes)
}

/// Version 4 UUID text from 128 bits (the version and variant bits are set over them).
fn uuid_from(bits: u128) -> String {
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A random alphanumeric string of length `n` (for tokens and accessors).
pub fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 248 = 4 * 62: bytes at or above it are rejected so every character is equally likely.
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in crate::barrier::random_bytes(n * 2) {
            if b < 248 && out.len() < n {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Decodes hex, or None.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.trim()).ok()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// Go's `time.Duration.String()` for whole seconds (`1h0m0s`, `30m0s`, `5s`): how Vault's
/// answers print durations.
pub fn go_duration(secs: u64) -> String {
    go_duration_signed(secs.min(i64::MAX as u64) as i64)
}

/// [`go_duration`] of a signed number of seconds (`-1m30s`).
pub fn go_duration_signed(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let u = secs.unsigned_abs();
    let (h, m, s) = (u / 3600, (u % 3600) / 60, u % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// Lower-case hex of bytes (`hex::encode` collects char by char, which shows on hot paths).
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut buf).expect("buffer is twice the input");
    String::from_utf8(buf).expect("hex digits are ASCII")
}

/// Inserts into a cache of at most `limit` entries: when it is full and `key` is new, an
/// arbitrary entry (the first the map yields) makes room.
pub fn insert_bounded<K, V>(
    map: &mut std::collections::HashMap<K, V>,
    key: K,
    value: V,
    limit: usize,
) where
    K: std::hash::Hash + Eq + Clone,
{
    if map.len() >= limit && !map.contains_key(&key) {
        if let Some(evicted) = map.keys().next().cloned() {
            map.remove(&evicted);
        }
    }
    map.insert(key, value);
}

/// Constant-time equality for secrets.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_random_version_4() {
        let a = super::uuid();
        let b = super::uuid();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn request_ids_are_unique_version_4_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        }
    }
}

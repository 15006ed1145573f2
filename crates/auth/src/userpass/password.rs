//! Password hashing for userpass: argon2id (RFC 9106) with the `argon2` crate's defaults, which
//! are OWASP's recommended minimum (19 MiB of memory, 2 passes, 1 lane), stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a random 16-byte salt.
//!
//! Why argon2id rather than Vault's bcrypt: it is memory-hard, so GPU/ASIC guessing of a stolen
//! hash costs far more; its cost is tunable in memory as well as time; it hashes the whole
//! password (bcrypt silently ignores everything past 72 bytes); and the PHC string records its
//! parameters, so they can be raised later without breaking existing users. Verification
//! recomputes the hash and compares in constant time (`password-hash`'s `Output` equality).
//!
//! A login for an unknown user verifies the password against a dummy hash made with the same
//! parameters, so it costs the same time as a wrong password for a real user (no username
//! enumeration by timing). Hashing runs on the blocking pool, off the async workers.
//!
//! Imported hashes (`password_hash`): only argon2id PHC strings are accepted (bcrypt, which
//! Vault takes there, is not), with parameters bounded so a stored hash cannot make logins
//! arbitrarily expensive.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};
use std::sync::OnceLock;
use tresor_core::barrier::random_bytes;
use tresor_core::{Error, Result};

/// Largest accepted memory cost of an imported hash (KiB): 256 MiB.
const MAX_M_COST: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

static DUMMY: OnceLock<String> = OnceLock::new();

/// Hashes a password (CPU- and memory-heavy: call from the blocking pool).
pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes(16))
        .map_err(|e| Error::internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("failed to hash the password: {e}")))
}

/// The hash verified for unknown users (made once per process).
fn dummy() -> &'static str {
    DUMMY.get_or_init(|| hash(&hex::encode(random_bytes(16))).unwrap_or_default())
}

/// Makes the dummy hash now, so the first unknown-user login is not slower than the others.
pub fn warm_up() {
    let _ = dummy();
}

/// Whether `password` matches the PHC string `phc`; with `None` (unknown user) a dummy hash is
/// verified and the answer is `false`.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    let (target, real) = match phc {
        Some(p) => (p, true),
        None => (dummy(), false),
    };
    let ok = match PasswordHash::new(target) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    };
    ok && real
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| Error::internal(format!("hashing task failed: {e}")))?
}

/// [`verify`] on the blocking pool.
pub async fn verify_async(password: String, phc: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || verify(&password, phc.as_deref()))
        .await
        .map_err(|e| Error::internal(format!("verification task failed: {e}")))
}

/// Validates an imported `password_hash`: an argon2id PHC string with bounded parameters.
pub fn check_imported(phc: &str) -> Result<()> {
    let bad = || {
        Error::bad("password_hash is not a valid argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
    };
    let h = PasswordHash::new(phc).map_err(|_| bad())?;
    if h.algorithm != Algorithm::Argon2id.ident() || h.hash.is_none() || h.salt.is_none() {
        return Err(bad());
    }
    let p = Params::try_from(&h).map_err(|_| bad())?;
    if p.m_cost() > MAX_M_COST || p.t_cost() > MAX_T_COST || p.p_cost() > MAX_P_COST {
        return Err(Error::bad(format!("password_hash parameters are too expensive (at most m={MAX_M_COST}, t={MAX_T_COST}, p={MAX_P_COST})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", Some(&h)));
        assert!(!verify("correct horsf", Some(&h)));
        assert!(!verify("correct horse", None));
        assert!(!verify("x", Some("not a hash")));
        // Two hashes of one password differ (random salt).
        assert_ne!(h, hash("correct horse").unwrap());
        check_imported(&h).unwrap();
        assert!(
            check_imported("$2a$10$abcdefghijklmnopqrstuu5Q5ZfTdEJm1oZ0gY6n9s8a9bJq3cXy").is_err()
        );
        assert!(check_imported("$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA").is_err());
    }
}

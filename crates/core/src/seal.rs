//! The Shamir seal: the unseal key is split into `secret_shares` pieces of which
//! `secret_threshold` recombine it (the `sharks` crate does the GF(256) arithmetic). The unseal
//! key decrypts the root key stored at `core/root-key`; see [`crate::barrier`] for the rest of
//! the hierarchy. This module also keeps the progress of an unseal or rekey in flight.
//!
//! Why sharks: a small, audited-by-use, pure-Rust implementation of Shamir over GF(256), the
//! same construction Vault uses; shares are `1 + 32` bytes (x coordinate, then y values).

use crate::barrier::{aead_open, aead_seal, random_bytes, ROOT_KEY_PATH};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sharks::{Share, Sharks};
use std::sync::Arc;
use tresor_storage::Storage;
use zeroize::Zeroizing;

pub const SEAL_CONFIG_PATH: &str = "core/seal-config";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SealConfig {
    pub secret_shares: u8,
    pub secret_threshold: u8,
}

impl SealConfig {
    pub fn validate(&self) -> Result<()> {
        if self.secret_shares == 0 {
            return Err(Error::bad("shares must be at least one"));
        }
        if self.secret_threshold == 0 {
            return Err(Error::bad("threshold must be at least one"));
        }
        if self.secret_shares > 1 && self.secret_threshold == 1 {
            return Err(Error::bad(
                "threshold must be greater than one for multiple shares",
            ));
        }
        if self.secret_threshold > self.secret_shares {
            return Err(Error::bad("threshold cannot be larger than shares"));
        }
        Ok(())
    }
}

/// Splits `secret` into shares. With one share the share is the secret itself (as Vault does).
pub fn split(secret: &[u8], cfg: &SealConfig) -> Vec<Zeroizing<Vec<u8>>> {
    if cfg.secret_shares == 1 {
        return vec![Zeroizing::new(secret.to_vec())];
    }
    let dealer = Sharks(cfg.secret_threshold).dealer(secret);
    dealer
        .take(cfg.secret_shares as usize)
        .map(|s| Zeroizing::new(Vec::from(&s)))
        .collect()
}

/// Recombines shares into the secret.
pub fn combine(shares: &[Zeroizing<Vec<u8>>], cfg: &SealConfig) -> Result<Zeroizing<Vec<u8>>> {
    if cfg.secret_shares == 1 {
        return shares
            .first()
            .cloned()
            .ok_or_else(|| Error::bad("no key given"));
    }
    let parsed = shares
        .iter()
        .map(|s| Share::try_from(s.as_slice()).map_err(|_| Error::bad("invalid key share")))
        .collect::<Result<Vec<_>>>()?;
    let secret = Sharks(cfg.secret_threshold)
        .recover(parsed.iter())
        .map_err(|_| Error::bad("failed to recombine key shares"))?;
    Ok(Zeroizing::new(secret))
}

/// A fresh random unseal key.
pub fn new_unseal_key() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(random_bytes(32))
}

/// Decodes an unseal key given as hex or base64 (Vault accepts both).
pub fn decode_key(key: &str) -> Result<Zeroizing<Vec<u8>>> {
    let key = key.trim();
    if let Ok(b) = hex::decode(key) {
        return Ok(Zeroizing::new(b));
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| Error::bad("'key' must be a valid hex or base64 string"))
}

/// Where the seal configuration and the protected root key live (outside the barrier).
pub struct SealStore {
    storage: Arc<dyn Storage>,
}

impl SealStore {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        SealStore { storage }
    }
    /// The seal config of an initialized server ([`Error::NotInitialized`] otherwise).
    pub async fn required_config(&self) -> Result<SealConfig> {
        self.config().await?.ok_or(Error::NotInitialized)
    }
    pub async fn config(&self) -> Result<Option<SealConfig>> {
        match self.storage.get(SEAL_CONFIG_PATH).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
            None => Ok(None),
        }
    }
    /// Protects the root key under a fresh unseal key and returns the unseal key's shares.
    pub async fn protect_root_key(
        &self,
        root_key: &[u8],
        cfg: &SealConfig,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let unseal_key = new_unseal_key();
        self.protect_with(root_key, &unseal_key, cfg).await?;
        Ok(split(&unseal_key, cfg))
    }

    /// Stores the root key protected by `unseal_key`, with the seal config its shares follow.
    pub async fn protect_with(
        &self,
        root_key: &[u8],
        unseal_key: &[u8],
        cfg: &SealConfig,
    ) -> Result<()> {
        let sealed = aead_seal(unseal_key, ROOT_KEY_PATH.as_bytes(), root_key)?;
        self.storage
            .write_batch(vec![
                tresor_storage::WriteOp::Put(ROOT_KEY_PATH.into(), sealed),
                tresor_storage::WriteOp::Put(SEAL_CONFIG_PATH.into(), serde_json::to_vec(cfg)?),
            ])
            .await?;
        Ok(())
    }
    /// Recovers the root key from the unseal key's shares.
    pub async fn recover_root_key(
        &self,
        shares: &[Zeroizing<Vec<u8>>],
        cfg: &SealConfig,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let unseal_key = combine(shares, cfg)?;
        let sealed = self
            .storage
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(Error::NotInitialized)?;
        aead_open(&unseal_key, ROOT_KEY_PATH.as_bytes(), &sealed)
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::bad("failed to unseal: the key shares do not reconstruct the unseal key")
            })
    }
}

/// Shares collected so far towards an unseal (or a rekey).
#[derive(Default)]
pub struct Progress {
    pub shares: Vec<Zeroizing<Vec<u8>>>,
    pub nonce: String,
}

impl Progress {
    /// Adds a share; a share already given is ignored (Vault counts each distinct share once).
    pub fn add(&mut self, share: Zeroizing<Vec<u8>>) {
        if !self.shares.iter().any(|s| crate::util::ct_eq(s, &share)) {
            self.shares.push(share);
        }
    }
    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_combine_any_threshold_subset() {
        let secret = random_bytes(32);
        let cfg = SealConfig {
            secret_shares: 5,
            secret_threshold: 3,
        };
        let shares = split(&secret, &cfg);
        assert_eq!(shares.len(), 5);
        assert_eq!(shares[0].len(), 33);
        let subset = vec![shares[4].clone(), shares[0].clone(), shares[2].clone()];
        assert_eq!(
            combine(&subset, &cfg).unwrap().as_slice(),
            secret.as_slice()
        );
        // Too few shares recombine to something else.
        let two = vec![shares[0].clone(), shares[1].clone()];
        assert!(combine(&two, &cfg)
            .map(|k| k.as_slice() != secret.as_slice())
            .unwrap_or(true));
    }

    #[test]
    fn config_validation() {
        assert!(SealConfig {
            secret_shares: 0,
            secret_threshold: 0
        }
        .validate()
        .is_err());
        assert!(SealConfig {
            secret_shares: 3,
            secret_threshold: 4
        }
        .validate()
        .is_err());
        assert!(SealConfig {
            secret_shares: 3,
            secret_threshold: 1
        }
        .validate()
        .is_err());
        assert!(SealConfig {
            secret_shares: 1,
            secret_threshold: 1
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn keys_decode_from_hex_and_base64() {
        assert_eq!(decode_key("00ff").unwrap().as_slice(), &[0, 255]);
        assert_eq!(decode_key("AP8=").unwrap().as_slice(), &[0, 255]);
        assert!(decode_key("not a key!").is_err());
    }
}

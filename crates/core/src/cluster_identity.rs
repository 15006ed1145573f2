//! The HA cluster's TLS identity: a CA and one leaf certificate (`tresor-cluster`, both server
//! and client use) that every node presents on the cluster port when a standby forwards a
//! request to the active node (mutual TLS).
//!
//! It lives in the barrier (`core/cluster/identity`): only an unsealed node, so one that holds
//! the keys, can read it and so join (Vault's rule: unsealed means member). The first node to
//! become active creates it, before it calls itself active, with a conditional write (two nodes
//! activating in turn agree on one identity); it is never rotated (it protects only
//! node-to-node traffic of nodes that hold the barrier key anyway).
//!
//! rcgen makes the certificates, as in the PKI engine.

use crate::barrier::View;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tresor_storage::WriteOp;

/// The name in the leaf certificate; a forwarding node connects to it, resolved to the active
/// node's cluster address, so one certificate serves every node.
pub const CLUSTER_NAME: &str = "tresor-cluster";
const IDENTITY_KEY: &str = "core/cluster/identity";

/// The cluster's TLS identity (PEM).
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterIdentity { .. }")
    }
}

fn generate() -> std::result::Result<ClusterIdentity, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, PKCS_ECDSA_P256_SHA256,
    };
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Tresor cluster CA");
    ca.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(vec![CLUSTER_NAME.to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, CLUSTER_NAME);
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = leaf.signed_by(&key, &Issuer::new(ca, ca_key))?;
    Ok(ClusterIdentity {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The stored identity, if a node has been active yet.
pub async fn load(root: &View) -> Result<Option<ClusterIdentity>> {
    root.get_json(IDENTITY_KEY).await
}

/// The stored identity, created if there is none yet (active node only: a write).
pub(crate) async fn ensure(root: &View) -> Result<()> {
    if load(root).await?.is_some() {
        return Ok(());
    }
    let fresh = generate().map_err(|e| Error::internal(e.to_string()))?;
    let fresh = serde_json::to_vec(&fresh).map_err(|e| Error::internal(e.to_string()))?;
    root.update(IDENTITY_KEY, |held| match held {
        Some(_) => Ok((vec![], ())),
        None => Ok((vec![WriteOp::Put(IDENTITY_KEY.into(), fresh.clone())], ())),
    })
    .await
}

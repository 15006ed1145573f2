//! Issuers: the mount's CA certificates (each optionally bound to one of its keys), the default
//! issuer, chains, imports, and the paths `issuers` (LIST), `issuer/:issuer_ref` (read, update,
//! patch, delete), `issuer/:issuer_ref/json|pem|der`, `issuer/:issuer_ref/revoke` and
//! `config/issuers`.
//!
//! An issuer's `ca_chain` is itself followed by the issuers in the mount that signed it, up to a
//! self-signed root (or its `manual_chain` when one is set); chains are rebuilt whenever an
//! issuer is added, changed or removed. Loaded issuers (certificate parsed, key loaded) are
//! cached in memory by id and dropped on every issuer or key write.

use super::keys::{self, check_name, PrivKey};
use super::x509::{rfc3339_nanos, CertInfo};
use super::{bad, Pki};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub const ISSUER_PREFIX: &str = "config/issuer/";
pub const ISSUERS_CONFIG: &str = "config/issuers";
/// An issuer reference in a path.
pub const ISSUER_REF: &str = r"(?P<issuer_ref>\w(([\w\-.]+)?\w)?)";

/// The usages an issuer may have; all by default.
pub const ALL_USAGES: [&str; 4] = [
    "crl-signing",
    "issuing-certificates",
    "ocsp-signing",
    "read-only",
];

fn default_usage() -> Vec<String> {
    ALL_USAGES.iter().map(|s| s.to_string()).collect()
}
fn default_behavior() -> String {
    "err".into()
}

/// A stored issuer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssuerEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Empty when the mount does not hold the issuer's key.
    #[serde(default)]
    pub key_id: String,
    /// PEM.
    pub certificate: String,
    /// PEMs: the issuer first, then its parents.
    #[serde(default)]
    pub ca_chain: Vec<String>,
    #[serde(default)]
    pub manual_chain: Vec<String>,
    #[serde(default = "default_usage")]
    pub usage: Vec<String>,
    #[serde(default = "default_behavior")]
    pub leaf_not_after_behavior: String,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub revocation_time: i64,
    #[serde(default)]
    pub revocation_time_rfc3339: String,
    #[serde(default)]
    pub issuing_certificates: Vec<String>,
    #[serde(default)]
    pub crl_distribution_points: Vec<String>,
    #[serde(default)]
    pub ocsp_servers: Vec<String>,
    #[serde(default)]
    pub enable_aia_url_templating: bool,
    #[serde(default)]
    pub revocation_signature_algorithm: String,
    #[serde(default)]
    pub serial_number: String,
}

impl IssuerEntry {
    pub fn new(info: &CertInfo, key_id: &str, name: &str) -> IssuerEntry {
        IssuerEntry {
            id: tresor_core::util::uuid(),
            name: name.to_string(),
            key_id: key_id.to_string(),
            certificate: info.pem(),
            ca_chain: vec![info.pem()],
            manual_chain: vec![],
            usage: default_usage(),
            leaf_not_after_behavior: default_behavior(),
            revoked: false,
            revocation_time: 0,
            revocation_time_rfc3339: String::new(),
            issuing_certificates: vec![],
            crl_distribution_points: vec![],
            ocsp_servers: vec![],
            enable_aia_url_templating: false,
            revocation_signature_algorithm: String::new(),
            serial_number: info.serial.clone(),
        }
    }

    pub fn has_usage(&self, u: &str) -> bool {
        self.usage.iter().any(|x| x == u)
    }

    /// The issuer as `issuer/:ref` answers.
    pub fn to_json(&self) -> Value {
        let mut usage = self.usage.clone();
        usage.sort();
        let mut d = json!({
            "ca_chain": self.ca_chain,
            "certificate": format!("{}\n", self.certificate),
            "crl_distribution_points": self.crl_distribution_points,
            "delta_crl_distribution_points": [],
            "issuer_id": self.id,
            "issuer_name": self.name,
            "issuing_certificates": self.issuing_certificates,
            "key_id": self.key_id,
            "leaf_not_after_behavior": self.leaf_not_after_behavior,
            "manual_chain": if self.manual_chain.is_empty() { Value::Null } else { json!(self.manual_chain) },
            "ocsp_servers": self.ocsp_servers,
            "revocation_signature_algorithm": self.revocation_signature_algorithm,
            "revoked": self.revoked,
            "usage": usage.join(","),
        });
        if self.revoked {
            d["revocation_time"] = json!(self.revocation_time);
            d["revocation_time_rfc3339"] = json!(self.revocation_time_rfc3339);
        }
        d
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct IssuersConfig {
    #[serde(default)]
    pub default: String,
    #[serde(default)]
    pub default_follows_latest_issuer: bool,
}

/// An issuer ready to use: its entry, parsed certificate and (when the mount holds it) key.
pub struct LoadedIssuer {
    pub entry: IssuerEntry,
    pub info: CertInfo,
    /// The certificate as PEM, encoded once (every issue answers with it).
    pub pem: String,
    pub key: Option<Arc<PrivKey>>,
    /// rcgen's signer (the issuer's name, key identifier method, key usages and key), built
    /// once: rebuilding it parses the certificate again, ~5% of an EC P-256 issue.
    signer: Option<rcgen::Issuer<'static, SharedKey>>,
}

/// The issuer's key as rcgen's signer holds it, shared with [`LoadedIssuer::key`].
struct SharedKey(Arc<PrivKey>);

impl rcgen::PublicKeyData for SharedKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.pair.der_bytes()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.pair.algorithm()
    }
}

impl rcgen::SigningKey for SharedKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.0.pair.sign(msg)
    }
}

impl LoadedIssuer {
    pub fn new(entry: IssuerEntry, info: CertInfo, key: Option<PrivKey>) -> Result<LoadedIssuer> {
        let key = key.map(Arc::new);
        let signer = match &key {
            Some(k) => Some(
                rcgen::Issuer::from_ca_cert_der(&info.der.clone().into(), SharedKey(k.clone()))
                    .map_err(|e| {
                        Error::internal(format!("unable to use the issuer certificate: {e}"))
                    })?,
            ),
            None => None,
        };
        Ok(LoadedIssuer {
            pem: info.pem(),
            entry,
            info,
            key,
            signer,
        })
    }

    /// The signing key, or the error Vault gives for an issuer without one.
    pub fn signing_key(&self) -> Result<&PrivKey> {
        self.key.as_deref().ok_or_else(|| self.keyless())
    }

    fn keyless(&self) -> Error {
        bad(format!(
            "unable to sign with issuer {}: the mount does not hold its private key",
            self.entry.id
        ))
    }

    /// rcgen's view of this issuer for signing certificates and CRLs.
    pub fn rcgen_issuer(&self) -> Result<&rcgen::Issuer<'static, impl rcgen::SigningKey>> {
        self.signer.as_ref().ok_or_else(|| self.keyless())
    }

    /// The PEM chain of this issuer.
    pub fn chain(&self) -> Vec<String> {
        if self.entry.ca_chain.is_empty() {
            vec![self.pem.clone()]
        } else {
            self.entry.ca_chain.clone()
        }
    }
}

pub async fn get_issuer(s: &View, id: &str) -> Result<Option<IssuerEntry>> {
    s.get_json(&format!("{ISSUER_PREFIX}{id}")).await
}

pub async fn put_issuer(s: &View, i: &IssuerEntry) -> Result<()> {
    s.put_json(&format!("{ISSUER_PREFIX}{}", i.id), i).await
}

pub async fn list_issuers(s: &View) -> Result<Vec<IssuerEntry>> {
    let mut out = Vec::new();
    for id in s.list(ISSUER_PREFIX).await? {
        if let Some(i) = get_issuer(s, &id).await? {
            out.push(i);
        }
    }
    Ok(out)
}

pub async fn issuers_config(s: &View) -> Result<IssuersConfig> {
    Ok(s.get_json(ISSUERS_CONFIG).await?.unwrap_or_default())
}

/// Resolves `default`, an issuer id or an issuer name to an id.
pub async fn resolve_id(s: &View, reference: &str) -> Result<String> {
    let reference = reference.trim();
    if reference.is_empty() || reference == "default" {
        let cfg = issuers_config(s).await?;
        if cfg.default.is_empty() {
            return Err(bad("no default issuer currently configured"));
        }
        return Ok(cfg.default);
    }
    if s.get(&format!("{ISSUER_PREFIX}{reference}"))
        .await?
        .is_some()
    {
        return Ok(reference.to_string());
    }
    list_issuers(s)
        .await?
        .into_iter()
        .find(|i| !i.name.is_empty() && i.name == reference)
        .map(|i| i.id)
        .ok_or_else(|| {
            bad(format!(
                "unable to find PKI issuer for reference: {reference}"
            ))
        })
}

/// The stored entry for a reference.
pub async fn resolve(s: &View, reference: &str) -> Result<IssuerEntry> {
    let id = resolve_id(s, reference).await?;
    get_issuer(s, &id).await?.ok_or_else(|| {
        bad(format!(
            "unable to find PKI issuer for reference: {reference}"
        ))
    })
}

impl Pki {
    /// The loaded issuer for a reference (`default`, an id or a name), cached under the
    /// reference.
    pub async fn issuer(&self, s: &View, reference: &str) -> Result<Arc<LoadedIssuer>> {
        let reference = match reference.trim() {
            "" => "default",
            r => r,
        };
        let loaded = self
            .issuers
            .get_or_load(reference, async {
                let id = resolve_id(s, reference).await?;
                let entry = get_issuer(s, &id)
                    .await?
                    .ok_or_else(|| bad(format!("unable to find PKI issuer for reference: {id}")))?;
                let info = CertInfo::from_pem(&entry.certificate)?;
                let key = if entry.key_id.is_empty() {
                    None
                } else {
                    match keys::get_key(s, &entry.key_id).await? {
                        Some(k) => Some(k.load()?),
                        None => None,
                    }
                };
                Ok(Some(LoadedIssuer::new(entry, info, key)?))
            })
            .await?;
        Ok(loaded.expect("the loader always finds or fails"))
    }

    /// Drops every cached issuer (after any issuer or key change).
    pub fn invalidate(&self) {
        self.issuers.clear();
    }
}

/// What an import did, in Vault's answer shape.
#[derive(Default)]
pub struct ImportResult {
    pub imported_issuers: Vec<String>,
    pub existing_issuers: Vec<String>,
    pub imported_keys: Vec<String>,
    pub existing_keys: Vec<String>,
    pub mapping: Map<String, Value>,
}

impl ImportResult {
    pub fn to_json(&self) -> Value {
        let opt = |v: &Vec<String>| {
            if v.is_empty() {
                Value::Null
            } else {
                json!(v)
            }
        };
        json!({
            "existing_issuers": opt(&self.existing_issuers),
            "existing_keys": opt(&self.existing_keys),
            "imported_issuers": opt(&self.imported_issuers),
            "imported_keys": opt(&self.imported_keys),
            "mapping": self.mapping,
        })
    }
}

/// Imports keys and CA certificates (deduplicated against what the mount has), links each
/// certificate to the key that matches it, sets the default issuer when there is none, and
/// rebuilds chains. The caller holds the write lock.
pub async fn import(
    b: &Pki,
    s: &View,
    certs: Vec<CertInfo>,
    keys_in: Vec<PrivKey>,
    issuer_name: &str,
) -> Result<ImportResult> {
    let mut r = ImportResult::default();
    for k in &keys_in {
        let (id, new) = keys::import_key(s, k, "").await?;
        if new {
            r.imported_keys.push(id);
        } else if !r.existing_keys.contains(&id) {
            r.existing_keys.push(id);
        }
    }
    let all_keys = keys::list_keys(s).await?;
    let mut loaded_keys = Vec::new();
    for k in &all_keys {
        if let Ok(p) = k.load() {
            loaded_keys.push((k.id.clone(), p.spki()));
        }
    }
    let existing = list_issuers(s).await?;
    let mut cfg = issuers_config(s).await?;
    for info in certs {
        let key_id = loaded_keys
            .iter()
            .find(|(_, spki)| *spki == info.spki)
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        if let Some(e) = existing
            .iter()
            .find(|e| CertInfo::from_pem(&e.certificate).is_ok_and(|c| c.der == info.der))
        {
            let mut e = e.clone();
            if e.key_id.is_empty() && !key_id.is_empty() {
                e.key_id = key_id.clone();
                put_issuer(s, &e).await?;
            }
            r.existing_issuers.push(e.id.clone());
            r.mapping.insert(e.id.clone(), json!(e.key_id));
            continue;
        }
        let name = if r.imported_issuers.is_empty() {
            issuer_name
        } else {
            ""
        };
        let entry = IssuerEntry::new(&info, &key_id, name);
        put_issuer(s, &entry).await?;
        r.mapping.insert(entry.id.clone(), json!(key_id));
        r.imported_issuers.push(entry.id.clone());
        if cfg.default.is_empty() || cfg.default_follows_latest_issuer {
            cfg.default = entry.id.clone();
            s.put_json(ISSUERS_CONFIG, &cfg).await?;
        }
    }
    rebuild_chains(s).await?;
    b.invalidate();
    Ok(r)
}

/// Recomputes every issuer's `ca_chain`.
pub async fn rebuild_chains(s: &View) -> Result<()> {
    let issuers = list_issuers(s).await?;
    let infos: Vec<Option<CertInfo>> = issuers
        .iter()
        .map(|i| CertInfo::from_pem(&i.certificate).ok())
        .collect();
    for (idx, issuer) in issuers.iter().enumerate() {
        let Some(me) = &infos[idx] else { continue };
        let chain: Vec<String> = if !issuer.manual_chain.is_empty() {
            issuer
                .manual_chain
                .iter()
                .filter_map(|id| issuers.iter().position(|i| &i.id == id))
                .filter_map(|p| infos[p].as_ref().map(CertInfo::pem))
                .collect()
        } else {
            let mut chain = vec![me.pem()];
            let mut visited = vec![idx];
            let mut cur = me.clone();
            while !(cur.self_issued() && cur.signed_by(&cur)) && visited.len() < 16 {
                let parent = (0..issuers.len()).find(|p| {
                    !visited.contains(p) && infos[*p].as_ref().is_some_and(|pi| cur.signed_by(pi))
                });
                let Some(p) = parent else { break };
                let Some(pi) = infos[p].clone() else { break };
                chain.push(pi.pem());
                visited.push(p);
                cur = pi;
            }
            chain
        };
        if chain != issuer.ca_chain {
            let mut e = issuer.clone();
            e.ca_chain = chain;
            put_issuer(s, &e).await?;
        }
    }
    Ok(())
}

pub fn paths() -> Vec<Path<Pki>> {
    let issuer_fields = |p: Path<Pki>| {
        p.field("issuer_name", Field::string("name of the issuer"))
            .field(
                "leaf_not_after_behavior",
                Field::string("err, truncate or permit").default("err"),
            )
            .field(
                "manual_chain",
                Field::list("issuer references forming the chain"),
            )
            .field(
                "usage",
                Field::list("allowed usages")
                    .default("read-only,issuing-certificates,crl-signing,ocsp-signing"),
            )
            .field(
                "revocation_signature_algorithm",
                Field::string("signature algorithm for CRLs and OCSP"),
            )
            .field("issuing_certificates", Field::list("AIA CA issuer URLs"))
            .field(
                "crl_distribution_points",
                Field::list("CRL distribution points"),
            )
            .field("ocsp_servers", Field::list("OCSP server URLs"))
            .field(
                "enable_aia_url_templating",
                Field::bool("template the AIA URLs"),
            )
    };
    vec![
        Path::new("issuers/?")
            .op(List, list)
            .help("List the mount's issuers."),
        Path::new(format!("issuer/{ISSUER_REF}/(?P<fmt>json|pem|der)").as_str())
            .op(Read, read_cert)
            .help("The issuer's certificate and chain."),
        Path::new(format!("issuer/{ISSUER_REF}/revoke").as_str())
            .op(Update, revoke_issuer)
            .help("Revoke an issuer."),
        issuer_fields(Path::new(format!("issuer/{ISSUER_REF}").as_str()))
            .op(Read, read)
            .op(Update, update)
            .op(Patch, update)
            .op(Delete, delete)
            .help("Read, update or delete an issuer."),
        Path::new("config/issuers")
            .field(
                "default",
                Field::string("issuer reference to make the default"),
            )
            .field(
                "default_follows_latest_issuer",
                Field::bool("make each new issuer the default"),
            )
            .op(Read, read_config)
            .op(Update, write_config)
            .help("The mount's default issuer."),
    ]
}

async fn list(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let issuers = list_issuers(&c.storage).await?;
    if issuers.is_empty() {
        return Err(Error::NotFound);
    }
    let default = issuers_config(&c.storage).await?.default;
    let mut ids: Vec<String> = issuers.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    let mut info = Map::new();
    for i in &issuers {
        info.insert(
            i.id.clone(),
            json!({
                "is_default": i.id == default,
                "issuer_name": i.name,
                "key_id": i.key_id,
                "serial_number": i.serial_number,
            }),
        );
    }
    Ok(Response::data(json!({ "keys": ids, "key_info": info })))
}

async fn read(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let i = resolve(&c.storage, c.fields.str("issuer_ref")).await?;
    Ok(Response::data(i.to_json()))
}

async fn read_cert(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let i = resolve(&c.storage, c.fields.str("issuer_ref")).await?;
    match c.fields.str("fmt") {
        "json" => Ok(Response::data(json!({
            "ca_chain": i.ca_chain,
            "certificate": i.certificate,
            "issuer_id": i.id,
            "issuer_name": i.name,
        }))),
        "pem" => Ok(super::raw(
            200,
            "application/pem-certificate-chain",
            i.certificate.into_bytes(),
        )),
        _ => {
            let info = CertInfo::from_pem(&i.certificate)?;
            Ok(super::raw(200, "application/pkix-cert", info.der))
        }
    }
}

fn check_urls(field: &str, urls: &[String]) -> Result<()> {
    for u in urls {
        if !super::config::valid_url(u) {
            return Err(bad(format!(
                "invalid URL found in Authority Information Access (AIA) parameter {field}: {u}"
            )));
        }
    }
    Ok(())
}

async fn update(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut i = resolve(&c.storage, c.fields.str("issuer_ref")).await?;
    let patch = c.operation == Patch;
    let set = |name: &str| !patch || c.fields.has(name);
    if set("issuer_name") {
        let name = c.fields.str("issuer_name").to_string();
        check_name(&name, "issuer")?;
        if !name.is_empty() {
            for other in list_issuers(&c.storage).await? {
                if other.id != i.id && other.name == name {
                    return Err(bad(format!("issuer name {name} is already in use")));
                }
            }
        }
        i.name = name;
    }
    if set("leaf_not_after_behavior") {
        let v = c.fields.str("leaf_not_after_behavior");
        if !["err", "truncate", "permit"].contains(&v) {
            return Err(bad(format!("Unknown value for field `leaf_not_after_behavior`. Possible values are `err`, `truncate`, and `permit`: {v}")));
        }
        i.leaf_not_after_behavior = v.to_string();
    }
    if set("usage") {
        let mut usage = Vec::new();
        for u in c.fields.strings("usage") {
            if !ALL_USAGES.contains(&u.as_str()) {
                return Err(bad(format!("Unknown usage: {u}")));
            }
            if !usage.contains(&u) {
                usage.push(u);
            }
        }
        if i.revoked {
            usage.retain(|u| u != "issuing-certificates");
        }
        i.usage = usage;
    }
    if set("manual_chain") {
        let mut chain = Vec::new();
        for r in c.fields.strings("manual_chain") {
            if r == "self" {
                chain.push(i.id.clone());
            } else {
                chain.push(resolve_id(&c.storage, &r).await?);
            }
        }
        i.manual_chain = chain;
    }
    if set("revocation_signature_algorithm") {
        i.revocation_signature_algorithm = c.fields.str("revocation_signature_algorithm").into();
    }
    for (name, target) in [
        ("issuing_certificates", &mut i.issuing_certificates),
        ("crl_distribution_points", &mut i.crl_distribution_points),
        ("ocsp_servers", &mut i.ocsp_servers),
    ] {
        if set(name) {
            let urls = c.fields.strings(name);
            check_urls(name, &urls)?;
            *target = urls;
        }
    }
    if set("enable_aia_url_templating") {
        i.enable_aia_url_templating = c.fields.bool("enable_aia_url_templating");
    }
    put_issuer(&c.storage, &i).await?;
    rebuild_chains(&c.storage).await?;
    b.invalidate();
    let i = get_issuer(&c.storage, &i.id).await?.unwrap_or(i);
    Ok(Response::data(i.to_json()))
}

async fn delete(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    // Vault answers 200 with an empty envelope (data null), also for a missing issuer.
    let empty = Response::raw_json(
        200,
        &json!({
            "request_id": c.request_id,
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": null,
            "wrap_info": null,
            "warnings": null,
            "auth": null,
            "mount_type": c.mount.kind,
        }),
    );
    let Ok(i) = resolve(&c.storage, c.fields.str("issuer_ref")).await else {
        return Ok(empty);
    };
    c.storage
        .delete(&format!("{ISSUER_PREFIX}{}", i.id))
        .await?;
    c.storage
        .delete(&format!("{}{}", super::crl::CRL_PREFIX, i.id))
        .await?;
    let mut cfg = issuers_config(&c.storage).await?;
    let resp = if cfg.default == i.id {
        cfg.default.clear();
        c.storage.put_json(ISSUERS_CONFIG, &cfg).await?;
        Response::default().with_warning(
            "Deleted issuer was the default issuer; a new default issuer has not been set.",
        )
    } else {
        empty
    };
    rebuild_chains(&c.storage).await?;
    b.invalidate();
    Ok(resp)
}

async fn revoke_issuer(b: Arc<Pki>, c: Call) -> Result<Response> {
    let guard = b.write_lock.lock().await;
    let mut i = resolve(&c.storage, c.fields.str("issuer_ref")).await?;
    if i.revoked {
        return Ok(Response::data(i.to_json()));
    }
    let now = time::OffsetDateTime::now_utc();
    i.revoked = true;
    i.revocation_time = now.unix_timestamp();
    i.revocation_time_rfc3339 = rfc3339_nanos(now);
    i.usage.retain(|u| u != "issuing-certificates");
    put_issuer(&c.storage, &i).await?;
    b.invalidate();
    let info = CertInfo::from_pem(&i.certificate)?;
    let mut resp = Response::data(i.to_json());
    if info.self_issued() {
        resp = resp.with_warning("This issuer is a self-signed (potentially root) certificate. This means it may not be considered revoked if there is not an external, cross-signed variant of this certificate. This issuer's serial number will not appear on its own CRL.");
    }
    // Put the issuer on its parents' CRLs.
    let mut parents = Vec::new();
    for other in list_issuers(&c.storage).await? {
        if other.id == i.id {
            continue;
        }
        if let Ok(p) = CertInfo::from_pem(&other.certificate) {
            if info.signed_by(&p) {
                parents.push(other.id.clone());
            }
        }
    }
    if parents.is_empty() {
        resp = resp.with_warning("This issuer lacks another parent issuer within the mount. This means it will not appear on any other CRLs and may not be considered revoked by clients. Consider adding this issuer to its issuer's CRL as well if it is not self-signed.");
    } else {
        let rec = super::revoke::RevokedRecord {
            serial_number: info.serial.clone(),
            certificate: super::x509::b64(&info.der),
            revocation_time: i.revocation_time,
            revocation_time_rfc3339: i.revocation_time_rfc3339.clone(),
            issuer_id: parents[0].clone(),
        };
        super::revoke::store_revoked(&c.storage, &rec).await?;
    }
    if issuers_config(&c.storage).await?.default == i.id {
        resp = resp.with_warning("This issuer is currently configured as the default issuer for this mount; operations such as certificate issuance may not work until a new default issuer is selected.");
    }
    drop(guard);
    for p in parents {
        super::crl::rebuild(&b, &c.storage, &p).await?;
    }
    Ok(resp)
}

async fn read_config(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let cfg = issuers_config(&c.storage).await?;
    Ok(Response::data(json!({
        "default": cfg.default,
        "default_follows_latest_issuer": cfg.default_follows_latest_issuer,
    })))
}

async fn write_config(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut cfg = issuers_config(&c.storage).await?;
    if c.fields.has("default") {
        let reference = c.fields.str("default");
        if reference.is_empty() || reference == "default" {
            return Err(bad(
                "Invalid issuer specification; must be non-empty and can't be 'default'.",
            ));
        }
        cfg.default = match resolve_id(&c.storage, reference).await {
            Ok(id) => id,
            Err(Error::BadRequest(msg)) => {
                return Err(bad(format!("Error resolving issuer reference: {msg}")));
            }
            Err(e) => return Err(e),
        };
    } else if !c.fields.has("default_follows_latest_issuer") {
        return Err(bad(
            "Invalid issuer specification; must be non-empty and can't be 'default'.",
        ));
    }
    if c.fields.has("default_follows_latest_issuer") {
        cfg.default_follows_latest_issuer = c.fields.bool("default_follows_latest_issuer");
    }
    c.storage.put_json(ISSUERS_CONFIG, &cfg).await?;
    b.invalidate();
    Ok(Response::data(json!({
        "default": cfg.default,
        "default_follows_latest_issuer": cfg.default_follows_latest_issuer,
    })))
}

/// The issuer entry whose certificate has this serial, if the serial is one of the mount's
/// issuers.
pub async fn issuer_with_serial(s: &View, serial: &str) -> Result<Option<IssuerEntry>> {
    Ok(list_issuers(s)
        .await?
        .into_iter()
        .find(|i| i.serial_number == serial))
}

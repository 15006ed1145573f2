//! Issuers: the CA key pairs of a mount, as OpenBao has them. Each has an id (a UUID) and an
//! optional unique name; one is the default (`config/issuers`), used by roles whose
//! `issuer_ref` is `default` and by `public_key`.
//!
//! Paths: `issuers` (LIST, with `key_info`), `issuers/import(/:issuer_name)` (submit or
//! generate a key pair), `issuer/:issuer_ref` (read, rename, delete),
//! `issuer/:issuer_ref/public_key` (unauthenticated, plain text), `config/issuers` (the
//! default). Changes run under the mount's issuer lock, so a name stays unique and the
//! default always names an issuer that exists.

use super::keys::{parse_public_key, SigningKey};
use super::{roles, text, Ssh};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, FieldData, Path};
use tresor_core::logical::{Operation::*, Response};

pub const ISSUER_PREFIX: &str = "config/issuer/";
pub const ISSUERS_CONFIG: &str = "config/issuers";
/// An issuer reference in a path (Vault's `GenericNameRegex("issuer_ref")`).
const ISSUER_REF: &str = r"(?P<issuer_ref>\w(([\w\-.]+)?\w)?)";

/// A stored issuer: the CA's key pair (the private key as PEM) and its name. (No `Debug`: it
/// would print the private key.)
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuerEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub public_key: String,
    pub private_key: String,
    #[serde(default)]
    pub version: u32,
}

impl IssuerEntry {
    /// The issuer as `issuer/:ref` and `config/ca` answer it.
    pub fn to_json(&self) -> Value {
        json!({
            "issuer_id": self.id,
            "issuer_name": self.name,
            "public_key": self.public_key,
        })
    }
    /// The private key, ready to sign.
    pub fn signing_key(&self) -> Result<SigningKey> {
        SigningKey::from_pem(&self.private_key)
            .map_err(|e| Error::internal(format!("failed to parse stored CA private key: {e}")))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct IssuersConfig {
    #[serde(default)]
    default: String,
}

async fn config(s: &View) -> Result<IssuersConfig> {
    Ok(s.get_json(ISSUERS_CONFIG).await?.unwrap_or_default())
}

async fn set_default(s: &View, id: &str) -> Result<()> {
    s.put_json(
        ISSUERS_CONFIG,
        &IssuersConfig {
            default: id.to_string(),
        },
    )
    .await
}

/// The ids of every issuer.
pub async fn list_ids(s: &View) -> Result<Vec<String>> {
    let mut ids = s.list(ISSUER_PREFIX).await?;
    ids.retain(|i| !i.ends_with('/'));
    ids.sort();
    Ok(ids)
}

async fn fetch(s: &View, id: &str) -> Result<IssuerEntry> {
    s.get_json(&format!("{ISSUER_PREFIX}{id}"))
        .await?
        .ok_or_else(|| Error::bad(format!("ssh issuer id '{id}' does not exist")))
}

/// Why a reference named no issuer (OpenBao's `IssuerRefNotFound`), or a fault.
pub enum Unresolved {
    NotFound(Error),
    Failed(Error),
}

impl From<Unresolved> for Error {
    fn from(u: Unresolved) -> Error {
        match u {
            Unresolved::NotFound(e) | Unresolved::Failed(e) => e,
        }
    }
}

/// Resolves `default`, an id or a name to an issuer id.
pub async fn resolve(s: &View, reference: &str) -> std::result::Result<String, Unresolved> {
    let reference = normalize_ref(reference);
    if reference == "default" {
        let c = config(s).await.map_err(Unresolved::Failed)?;
        if c.default.is_empty() {
            return Err(Unresolved::NotFound(Error::bad(
                "no default issuer currently configured",
            )));
        }
        return Ok(c.default);
    }
    if reference.len() == 36
        && s.get(&format!("{ISSUER_PREFIX}{reference}"))
            .await
            .map_err(Unresolved::Failed)?
            .is_some()
    {
        return Ok(reference);
    }
    for id in list_ids(s).await.map_err(Unresolved::Failed)? {
        if fetch(s, &id).await.map_err(Unresolved::Failed)?.name == reference {
            return Ok(id);
        }
    }
    Err(Unresolved::NotFound(Error::bad(format!(
        "unable to find issuer for reference: {reference}"
    ))))
}

/// The issuer a reference names.
pub async fn load(s: &View, reference: &str) -> Result<IssuerEntry> {
    let id = resolve(s, reference).await?;
    fetch(s, &id).await
}

/// `default` in any case means the default issuer.
fn normalize_ref(r: &str) -> String {
    let r = r.trim();
    if r.eq_ignore_ascii_case("default") {
        "default".into()
    } else {
        r.to_string()
    }
}

/// The key pair a `config/ca` or `issuers/import` request submits or asks to generate:
/// `(public, private, generated)`, as OpenBao's `handleKeyGeneration`.
async fn key_material(f: &FieldData) -> Result<(String, String, bool)> {
    let public = f.str("public_key").to_string();
    let private = f.str("private_key").to_string();
    let explicit = f.has("generate_signing_key");
    let generate = match (explicit, f.bool("generate_signing_key")) {
        (true, true) => {
            if !public.is_empty() || !private.is_empty() {
                return Err(Error::bad(
                    "public_key and private_key must not be set when generate_signing_key is set to true",
                ));
            }
            true
        }
        _ if !public.is_empty() && !private.is_empty() => false,
        (false, _) if public.is_empty() && private.is_empty() => true,
        (true, false) if public.is_empty() && private.is_empty() => {
            return Err(Error::bad("missing public_key"))
        }
        _ => {
            return Err(Error::bad(
                "only one of public_key and private_key set; both must be set to use, or both must be blank to auto-generate",
            ))
        }
    };
    if generate {
        let key =
            SigningKey::generate_async(f.str("key_type").to_string(), f.int("key_bits"), 4096)
                .await?;
        return Ok((key.public_key_line()?, key.to_pem()?.to_string(), true));
    }
    let parsed_public = parse_public_key(&public)
        .map_err(|e| Error::bad(format!("could not parse public_key provided value: {e}")))?;
    let key = SigningKey::from_pem(&private)
        .map_err(|e| Error::bad(format!("could not parse private_key provided value: {e}")))?;
    if key.public_key()? != parsed_public {
        return Err(Error::bad(
            "public_key does not match the private_key provided",
        ));
    }
    Ok((public, private, false))
}

/// A requested issuer name, checked: not empty, not `default`, Vault's name characters, and
/// not another issuer's. `Ok(None)` when none was sent.
async fn requested_name(s: &View, f: &FieldData) -> Result<Option<String>> {
    if !f.has("issuer_name") {
        return Ok(None);
    }
    let name = f.str("issuer_name").trim().to_string();
    check_name(&name)?;
    match resolve(s, &name).await {
        Ok(_) => Err(Error::bad("issuer name already in use")),
        Err(Unresolved::NotFound(_)) => Ok(Some(name)),
        Err(Unresolved::Failed(e)) => Err(e),
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::bad("expected non-empty issuer name"));
    }
    if name.eq_ignore_ascii_case("default") {
        return Err(Error::bad(
            "reserved keyword 'default' can not be used as issuer name",
        ));
    }
    let re = regex::Regex::new(&format!("^{ISSUER_REF}$")).expect("valid regex");
    if !re.is_match(name) {
        return Err(Error::bad("issuer name contained invalid characters"));
    }
    Ok(())
}

/// Stores a new issuer (or finds the one with the same public key, when submitted); it
/// becomes the default when it is the first or `make_default` is set.
async fn import(
    s: &View,
    public: String,
    private: String,
    generated: bool,
    name: String,
    make_default: bool,
) -> Result<(IssuerEntry, bool)> {
    let known = list_ids(s).await?;
    if !generated {
        let wanted = parse_public_key(&public).map_err(Error::bad)?;
        for id in &known {
            let existing = fetch(s, id).await?;
            if parse_public_key(&existing.public_key).ok().as_ref() == Some(&wanted) {
                return Ok((existing, true));
            }
        }
    }
    let issuer = IssuerEntry {
        id: tresor_core::util::uuid(),
        name,
        public_key: public,
        private_key: private,
        version: 1,
    };
    s.put_json(&format!("{ISSUER_PREFIX}{}", issuer.id), &issuer)
        .await?;
    if known.is_empty() || make_default {
        set_default(s, &issuer.id).await?;
    }
    Ok((issuer, false))
}

/// `config/ca` (write) and `issuers/import(/:name)`: submit or generate a CA key pair.
pub async fn write_issuer(b: Arc<Ssh>, c: Call, config_ca: bool) -> Result<Response> {
    let (public, private, generated) = key_material(&c.fields).await?;
    let _lock = b.issuers_lock.lock().await;
    let s = &c.storage;
    let (name, make_default) = if config_ca {
        (String::new(), true)
    } else {
        (
            requested_name(s, &c.fields).await?.unwrap_or_default(),
            c.fields.bool("set_default"),
        )
    };
    let (issuer, existing) = import(s, public, private, generated, name, make_default).await?;
    let mut r = Response::data(issuer.to_json());
    if existing {
        r = r.with_warning(
            "An issuer with the provided public key already exists, returning the existing issuer",
        );
    }
    Ok(r)
}

/// `DELETE config/ca`: every issuer goes (Vault answers 204).
pub async fn purge(b: Arc<Ssh>, c: Call) -> Result<Response> {
    let _lock = b.issuers_lock.lock().await;
    let s = &c.storage;
    for id in list_ids(s).await? {
        s.delete(&format!("{ISSUER_PREFIX}{id}")).await?;
    }
    s.delete(ISSUERS_CONFIG).await?;
    Ok(Response::default())
}

/// The fields `config/ca` and `issuers/import` take.
pub fn submit_fields(p: Path<Ssh>) -> Path<Ssh> {
    p.field(
        "private_key",
        Field::string("Private half of the SSH key that will be used to sign certificates."),
    )
    .field(
        "public_key",
        Field::string("Public half of the SSH key that will be used to sign certificates."),
    )
    .field(
        "generate_signing_key",
        Field::bool("Generate SSH key pair internally rather than use the private_key and public_key fields.")
            .default(true),
    )
    .field(
        "key_type",
        Field::string("Key type to generate: ssh-rsa, ecdsa-sha2-nistp256/384/521, ssh-ed25519, or rsa, ec, ed25519.")
            .default("ssh-rsa"),
    )
    .field(
        "key_bits",
        Field::int("RSA key size, or the NIST curve for key_type=ec (256, 384, 521).").default(0),
    )
}

pub fn paths() -> Vec<Path<Ssh>> {
    vec![
        Path::new("issuers/?$")
            .field("after", Field::string("List entries after this one."))
            .field("limit", Field::int("How many entries to list."))
            .op(List, list)
            .help("Fetch a list of all issuers."),
        submit_fields(Path::new(
            r"issuers/import(/(?P<issuer_name>\w(([\w\-.]+)?\w)?))?",
        ))
        .field(
            "issuer_name",
            Field::string("Optional issuer name that can be used to identify the issuer."),
        )
        .field(
            "set_default",
            Field::bool("Make this issuer the default.").default(false),
        )
        .op(Update, |b, c| write_issuer(b, c, false))
        .help("Submit a new issuer with an optional explicit name."),
        Path::new(&format!("issuer/{ISSUER_REF}/public_key"))
            .op(Read, public_key)
            .help("Fetch an issuer's public key (unauthenticated, plain text)."),
        Path::new(&format!("issuer/{ISSUER_REF}"))
            .field(
                "issuer_name",
                Field::string("A unique name for the issuer (not 'default')."),
            )
            .op(Read, read)
            .op(Update, update)
            .op(Delete, delete)
            .help("Fetch, rename or delete a single issuer."),
        Path::new("config/issuers")
            .field(
                "default",
                Field::string("Reference (name or identifier) to the default issuer."),
            )
            .op(Read, read_default)
            .op(Update, write_default)
            .help("Configure or read the default SSH certificate issuer."),
    ]
}

async fn list(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let s = &c.storage;
    let default = config(s).await?.default;
    let mut ids = list_ids(s).await?;
    let after = c.fields.str("after");
    if !after.is_empty() {
        ids.retain(|i| i.as_str() > after);
    }
    let limit = c.fields.int("limit");
    if limit > 0 {
        ids.truncate(limit as usize);
    }
    let mut info = Map::new();
    for id in &ids {
        let issuer = fetch(s, id).await?;
        info.insert(
            id.clone(),
            json!({
                "issuer_name": issuer.name,
                "is_default": *id == default,
                "public_key": issuer.public_key,
            }),
        );
    }
    if ids.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(json!({ "keys": ids, "key_info": info })))
}

async fn read(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let issuer = load(&c.storage, c.fields.str("issuer_ref")).await?;
    Ok(Response::data(issuer.to_json()))
}

async fn public_key(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let issuer = load(&c.storage, c.fields.str("issuer_ref")).await?;
    Ok(text(issuer.public_key))
}

async fn update(b: Arc<Ssh>, c: Call) -> Result<Response> {
    let _lock = b.issuers_lock.lock().await;
    let s = &c.storage;
    let mut issuer = load(s, c.fields.str("issuer_ref")).await?;
    let name = c.fields.str("issuer_name").trim().to_string();
    if !c.fields.has("issuer_name") || name == issuer.name {
        return Ok(Response::data(issuer.to_json()));
    }
    check_name(&name)?;
    match resolve(s, &name).await {
        Ok(_) => return Err(Error::bad("issuer name already in use")),
        Err(Unresolved::NotFound(_)) => {}
        Err(Unresolved::Failed(e)) => return Err(e),
    }
    let old = std::mem::replace(&mut issuer.name, name);
    s.put_json(&format!("{ISSUER_PREFIX}{}", issuer.id), &issuer)
        .await?;
    let mut r = Response::data(issuer.to_json());
    if !old.is_empty() {
        r = warn_references(s, &old, r).await;
    }
    Ok(r)
}

async fn delete(b: Arc<Ssh>, c: Call) -> Result<Response> {
    let _lock = b.issuers_lock.lock().await;
    let s = &c.storage;
    let reference = normalize_ref(c.fields.str("issuer_ref"));
    let id = match resolve(s, &reference).await {
        Ok(id) => id,
        // As OpenBao: deleting what is not there succeeds.
        Err(Unresolved::NotFound(_)) => return Ok(Response::default()),
        Err(Unresolved::Failed(e)) => return Err(e),
    };
    let issuer = fetch(s, &id).await?;
    let mut r = Response::default();
    if !issuer.name.is_empty() {
        r = warn_references(s, &issuer.name, r).await;
    }
    r = warn_references(s, &issuer.id, r).await;
    s.delete(&format!("{ISSUER_PREFIX}{id}")).await?;
    if config(s).await?.default == id {
        s.delete(ISSUERS_CONFIG).await?;
        r = r.with_warning(format!(
            "Deleted issuer {id} (via issuer_ref {reference}); this was configured as the default issuer. Operations without an explicit issuer will not work until a new default is configured."
        ));
        r = warn_references(s, "default", r).await;
    }
    Ok(r)
}

/// Adds OpenBao's warning when roles name an issuer by `reference` (a rename or delete breaks
/// them). Looks at most at 100 roles.
async fn warn_references(s: &View, reference: &str, r: Response) -> Response {
    match roles::count_referencing(s, reference, 100).await {
        Ok(0) => r,
        Ok(n) => r.with_warning(format!("{n} roles reference '{reference}'")),
        Err(_) => r.with_warning(format!(
            "Unable to check if any roles referenced this issuer by '{reference}'"
        )),
    }
}

async fn read_default(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let default = config(&c.storage).await?.default;
    if default.is_empty() {
        return Err(Error::bad("no default issuer currently configured"));
    }
    Ok(Response::data(json!({ "default": default })))
}

async fn write_default(b: Arc<Ssh>, c: Call) -> Result<Response> {
    let _lock = b.issuers_lock.lock().await;
    let s = &c.storage;
    let wanted = normalize_ref(c.fields.str("default"));
    if wanted.is_empty() || wanted == "default" {
        return Err(Error::bad(
            "invalid issuer specification; must be non-empty and can't be 'default'.",
        ));
    }
    let id = resolve(s, &wanted).await?;
    let old = config(s).await?.default;
    if id == old {
        return Ok(Response::default()
            .with_warning("The default issuer is already set to the specified issuer."));
    }
    set_default(s, &id).await?;
    let mut r = Response::data(json!({ "default": id }));
    if !old.is_empty() {
        let mut w = format!("Previous default ({old}) has been updated with the issuer '{wanted}'");
        if id != wanted {
            w.push_str(&format!(" (resolved to {id})"));
        }
        r = r.with_warning(w);
    }
    Ok(r)
}

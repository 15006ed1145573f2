//! ACME's durable state in the mount's storage: accounts, orders, authorizations (with their
//! challenges), and the indexes that find them; plus their JSON as RFC 8555 §7.1 shows it.
//!
//! | key                                   | value                                        |
//! |---------------------------------------|----------------------------------------------|
//! | `acme/accounts/<id>`                  | an [`Account`]                               |
//! | `acme/thumbprints/<jwk thumbprint>`   | the account id owning that key               |
//! | `acme/account-orders/<account>/<id>`  | (empty) the account's orders                 |
//! | `acme/orders/<id>`                    | an [`Order`]                                 |
//! | `acme/authorizations/<id>`            | an [`Authz`]                                 |
//! | `acme/cert-owners/<serial>`           | the account whose order got that certificate |
//!
//! Every read-modify-write of these records happens under [`LOCK`].

use super::super::x509::{now_unix, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_core::barrier::View;
use tresor_core::error::Result;

/// Serializes updates of ACME records (all mounts; they are short).
pub static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a new order (and its authorizations) may wait for validation and finalization.
pub const ORDER_LIFETIME: i64 = 24 * 3600;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    /// `valid`, `deactivated` (or `revoked`).
    pub status: String,
    #[serde(default)]
    pub contact: Vec<String>,
    /// The account key's required JWK members.
    pub jwk: Value,
    pub thumbprint: String,
    #[serde(default)]
    pub terms_of_service_agreed: bool,
    pub created: i64,
}

/// An identifier (`dns` or `ip`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Identifier {
    pub fn to_json(&self) -> Value {
        json!({ "type": self.kind, "value": self.value })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub account: String,
    /// The directory (mount-relative, e.g. `acme` or `roles/web/acme`) it was created in.
    pub directory: String,
    /// `pending`, `ready`, `processing`, `valid` or `invalid`.
    pub status: String,
    pub identifiers: Vec<Identifier>,
    pub authorizations: Vec<String>,
    pub expires: i64,
    pub created: i64,
    /// The issued certificate (base64 DER) and its issuer, once valid.
    #[serde(default)]
    pub certificate: String,
    #[serde(default)]
    pub issuer_id: String,
    #[serde(default)]
    pub serial_number: String,
    #[serde(default)]
    pub error: Option<Value>,
}

impl Order {
    pub fn to_json(&self, base: &str) -> Value {
        let mut o = json!({
            "authorizations": self
                .authorizations
                .iter()
                .map(|a| format!("{base}/authorization/{a}"))
                .collect::<Vec<_>>(),
        });
        if self.status == "valid" {
            o["certificate"] = json!(format!("{base}/order/{}/cert", self.id));
        }
        if let Some(e) = &self.error {
            o["error"] = e.clone();
        }
        o["expires"] = json!(rfc3339(self.expires));
        o["finalize"] = json!(format!("{base}/order/{}/finalize", self.id));
        o["identifiers"] = json!(self
            .identifiers
            .iter()
            .map(Identifier::to_json)
            .collect::<Vec<_>>());
        o["status"] = json!(self.status);
        o
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Challenge {
    /// `http-01`.
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
    /// `pending`, `processing`, `valid` or `invalid`.
    pub status: String,
    #[serde(default)]
    pub validated: Option<i64>,
    #[serde(default)]
    pub error: Option<Value>,
}

impl Challenge {
    pub fn to_json(&self, base: &str, authz: &str) -> Value {
        let mut o = json!({});
        if let Some(e) = &self.error {
            o["error"] = e.clone();
        }
        o["status"] = json!(self.status);
        o["token"] = json!(self.token);
        o["type"] = json!(self.kind);
        o["url"] = json!(format!("{base}/challenge/{authz}/{}", self.kind));
        if let Some(v) = self.validated {
            o["validated"] = json!(rfc3339(v));
        }
        o
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Authz {
    pub id: String,
    pub account: String,
    pub directory: String,
    pub identifier: Identifier,
    /// `pending`, `valid`, `invalid`, `deactivated`, `expired` (or `revoked`).
    pub status: String,
    pub expires: i64,
    pub challenges: Vec<Challenge>,
}

impl Authz {
    pub fn to_json(&self, base: &str) -> Value {
        json!({
            "challenges": self
                .challenges
                .iter()
                .map(|c| c.to_json(base, &self.id))
                .collect::<Vec<_>>(),
            "expires": rfc3339(self.expires),
            "identifier": self.identifier.to_json(),
            "status": self.status,
            "wildcard": false,
        })
    }

    /// Marks a pending authorization past its expiry as `expired`; true when it changed.
    pub fn expire(&mut self) -> bool {
        if self.status == "pending" && now_unix() > self.expires {
            self.status = "expired".into();
            return true;
        }
        false
    }
}

fn account_key(id: &str) -> String {
    format!("acme/accounts/{id}")
}

pub async fn get_account(s: &View, id: &str) -> Result<Option<Account>> {
    if !safe_id(id) {
        return Ok(None);
    }
    s.get_json(&account_key(id)).await
}

pub async fn put_account(s: &View, a: &Account) -> Result<()> {
    s.put_json(&account_key(&a.id), a).await
}

pub async fn account_by_thumbprint(s: &View, thumbprint: &str) -> Result<Option<Account>> {
    match s.get(&format!("acme/thumbprints/{thumbprint}")).await? {
        Some(id) => get_account(s, &String::from_utf8_lossy(&id)).await,
        None => Ok(None),
    }
}

pub async fn put_thumbprint(s: &View, thumbprint: &str, id: &str) -> Result<()> {
    s.put(
        &format!("acme/thumbprints/{thumbprint}"),
        id.as_bytes().to_vec(),
    )
    .await
}

pub async fn delete_thumbprint(s: &View, thumbprint: &str) -> Result<()> {
    s.delete(&format!("acme/thumbprints/{thumbprint}")).await
}

pub async fn get_order(s: &View, id: &str) -> Result<Option<Order>> {
    if !safe_id(id) {
        return Ok(None);
    }
    s.get_json(&format!("acme/orders/{id}")).await
}

pub async fn put_order(s: &View, o: &Order) -> Result<()> {
    s.put_json(&format!("acme/orders/{}", o.id), o).await?;
    s.put(
        &format!("acme/account-orders/{}/{}", o.account, o.id),
        Vec::new(),
    )
    .await
}

pub async fn account_orders(s: &View, account: &str) -> Result<Vec<String>> {
    s.list(&format!("acme/account-orders/{account}/")).await
}

pub async fn get_authz(s: &View, id: &str) -> Result<Option<Authz>> {
    if !safe_id(id) {
        return Ok(None);
    }
    s.get_json(&format!("acme/authorizations/{id}")).await
}

pub async fn put_authz(s: &View, a: &Authz) -> Result<()> {
    s.put_json(&format!("acme/authorizations/{}", a.id), a)
        .await
}

pub async fn cert_owner(s: &View, serial_key: &str) -> Result<Option<String>> {
    Ok(s.get(&format!("acme/cert-owners/{serial_key}"))
        .await?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

pub async fn put_cert_owner(s: &View, serial_key: &str, account: &str) -> Result<()> {
    s.put(
        &format!("acme/cert-owners/{serial_key}"),
        account.as_bytes().to_vec(),
    )
    .await
}

/// Ids are ours (UUIDs); anything else cannot name a record.
pub fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Brings a pending or ready order's status up to date with its authorizations and expiry;
/// true when it changed (the caller stores it).
pub async fn refresh_order(s: &View, o: &mut Order) -> Result<bool> {
    let before = o.status.clone();
    if o.status == "pending" {
        let mut all_valid = true;
        for id in &o.authorizations {
            let status = match get_authz(s, id).await? {
                Some(mut a) => {
                    if a.expire() {
                        put_authz(s, &a).await?;
                    }
                    a.status
                }
                None => "invalid".into(),
            };
            match status.as_str() {
                "valid" => {}
                "pending" => all_valid = false,
                _ => {
                    o.status = "invalid".into();
                    o.error = Some(json!({
                        "type": "urn:ietf:params:acme:error:unauthorized",
                        "detail": format!("authorization {id} is {status}"),
                        "status": 403,
                    }));
                    all_valid = false;
                    break;
                }
            }
        }
        if all_valid {
            o.status = "ready".into();
        }
    }
    if matches!(o.status.as_str(), "pending" | "ready") && now_unix() > o.expires {
        o.status = "invalid".into();
        o.error = Some(json!({
            "type": "urn:ietf:params:acme:error:malformed",
            "detail": "the order expired",
            "status": 400,
        }));
    }
    Ok(o.status != before)
}

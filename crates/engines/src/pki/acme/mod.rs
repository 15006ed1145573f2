//! An ACME server (RFC 8555) on the PKI mount, with Vault's and OpenBao's path layout, so
//! standard clients (certbot, lego, ...) get certificates from the mount's issuers after
//! proving control of their names with the `http-01` challenge.
//!
//! Directories: `acme/`, `roles/:role/acme/`, `issuer/:ref/acme/` and
//! `issuer/:ref/roles/:role/acme/`, each with
//!
//! | path                          | what                                                   |
//! |-------------------------------|--------------------------------------------------------|
//! | `directory` (GET)             | the directory object                                   |
//! | `new-nonce` (HEAD, GET)       | a fresh `Replay-Nonce`                                 |
//! | `new-account`                 | create or find the account of the `jwk`                |
//! | `account/:id`                 | read, update `contact`, deactivate                     |
//! | `account/:id/orders`, `orders`| the account's orders                                   |
//! | `new-order`                   | an order for `dns`/`ip` identifiers                    |
//! | `order/:id`                   | an order (status computed from its authorizations)     |
//! | `order/:id/finalize`          | submit the CSR; the certificate is signed at once      |
//! | `order/:id/cert`              | the PEM chain (`application/pem-certificate-chain`)    |
//! | `authorization/:id`           | an authorization; deactivate                           |
//! | `challenge/:authz/http-01`    | start (or read) the `http-01` validation               |
//! | `revoke-cert`                 | revoke, signed by the account or the certificate's key |
//! | `key-change`                  | roll the account key                                   |
//!
//! plus `config/acme` and `config/cluster` ([`config`]). Every POST is a JWS ([`jws`]) whose
//! `url` must be the request's own URL (built from `config/cluster`'s `path`), whose `nonce`
//! must be one this server issued and not yet seen ([`nonce`]), and whose signature must
//! verify with the account key. Answers are plain JSON (`application/json`) or RFC 7807
//! problem documents (`application/problem+json`), with `Replay-Nonce`, `Link: <directory>;
//! rel="index"`, and `Location` where RFC 8555 asks for them; they bypass Vault's envelope
//! ([`tresor_core::logical::RawResponse`] with headers).
//!
//! Orders go pending → ready (all authorizations valid) → valid (finalize signs
//! synchronously, so `processing` is never seen) or invalid (a failed challenge, expiry).
//! What may be issued is decided by [`policy`]; validation is in [`validate`]; the records
//! are in [`store`].
//!
//! Not implemented: the `dns-01` and `tls-alpn-01` challenges (so no wildcard identifiers),
//! external account binding (`eab_policy` must be `not-required`), pre-authorization
//! (`newAuthz`), order `notBefore`/`notAfter`, tidying of ACME records, and sharing nonces
//! between cluster nodes. Role- and issuer-scoped directories are routed, but the core's
//! unauthenticated-path list has no per-segment wildcard, so through the HTTP API they need
//! a token until it has one (`roles/+/acme/*` is declared in the PKI backend's list for
//! that day).

pub mod config;
pub mod jws;
pub mod nonce;
pub mod policy;
pub mod store;
pub mod validate;

mod handlers;

use super::Pki;
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Path};
use tresor_core::logical::{Operation::*, RawResponse, Response};

/// A directory prefix: `acme`, `roles/:role/acme`, `issuer/:ref/acme` or
/// `issuer/:ref/roles/:role/acme`.
const DIR: &str =
    r"(?P<acme_dir>(?:issuer/(?P<acme_issuer>[\w\-.]+)/)?(?:roles/(?P<acme_role>[\w\-.@]+)/)?acme)";

/// An ACME error (RFC 8555 §6.7) as a problem document.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The `urn:ietf:params:acme:error:` suffix.
    pub kind: &'static str,
    pub status: u16,
    pub detail: String,
    /// A `Location` to send along (key-change conflicts).
    pub location: Option<String>,
}

macro_rules! problems {
    ($($fn:ident => $kind:literal, $status:literal;)*) => {
        impl Problem {
            $(pub fn $fn(detail: impl Into<String>) -> Problem {
                Problem { kind: $kind, status: $status, detail: detail.into(), location: None }
            })*
        }
    };
}

problems! {
    malformed => "malformed", 400;
    not_found => "malformed", 404;
    bad_nonce => "badNonce", 400;
    unauthorized => "unauthorized", 401;
    account_does_not_exist => "accountDoesNotExist", 400;
    bad_signature_algorithm => "badSignatureAlgorithm", 400;
    bad_public_key => "badPublicKey", 400;
    server_internal => "serverInternal", 500;
    rejected_identifier => "rejectedIdentifier", 400;
    unsupported_identifier => "unsupportedIdentifier", 400;
    unsupported_contact => "unsupportedContact", 400;
    invalid_contact => "invalidContact", 400;
    order_not_ready => "orderNotReady", 403;
    bad_csr => "badCSR", 400;
    already_revoked => "alreadyRevoked", 400;
    bad_revocation_reason => "badRevocationReason", 400;
    conflict => "malformed", 409;
}

impl Problem {
    /// A storage or engine error.
    pub fn internal(e: Error) -> Problem {
        Problem::server_internal(e.to_string())
    }

    /// The problem document.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "type": format!("urn:ietf:params:acme:error:{}", self.kind),
            "detail": self.detail,
        });
        if self.kind == "badSignatureAlgorithm" {
            v["algorithms"] = json!(jws::ALGORITHMS);
        }
        v
    }

    fn reply(&self) -> Reply {
        let mut r = Reply {
            status: self.status,
            content_type: "application/problem+json".into(),
            body: serde_json::to_vec(&self.to_json()).unwrap_or_default(),
            headers: vec![],
        };
        if let Some(l) = &self.location {
            r = r.header("Location", l);
        }
        r
    }
}

/// An ACME answer before the common headers are added.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: vec![],
        }
    }
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: String::new(),
            body: vec![],
            headers: vec![],
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub fn location(self, url: impl Into<String>) -> Reply {
        self.header("Location", url)
    }
}

/// Where a request landed: the mount's ACME settings and the directory's URLs.
pub struct Ctx {
    pub cfg: config::AcmeConfig,
    /// `config/cluster`'s `path`: the mount's URL.
    pub cluster: String,
    /// The directory, mount-relative (`acme`, `roles/web/acme`, ...).
    pub dir: String,
    /// Its absolute URL: `<cluster>/<dir>`.
    pub base: String,
    /// The role and issuer of a scoped directory (empty otherwise).
    pub role: String,
    pub issuer: String,
}

impl Ctx {
    async fn load(c: &Call) -> std::result::Result<Ctx, Problem> {
        let cfg = config::acme_config(&c.storage)
            .await
            .map_err(Problem::internal)?;
        if !cfg.enabled {
            return Err(Problem::not_found("ACME is disabled in configuration"));
        }
        let cluster = config::cluster_config(&c.storage)
            .await
            .map_err(Problem::internal)?
            .path;
        if cluster.is_empty() {
            return Err(Problem::server_internal(
                "ACME feature requires local cluster 'path' field configuration to be set",
            ));
        }
        let dir = c.fields.str("acme_dir").to_string();
        Ok(Ctx {
            base: format!("{cluster}/{dir}"),
            cluster,
            dir,
            role: c.fields.str("acme_role").to_string(),
            issuer: c.fields.str("acme_issuer").to_string(),
            cfg,
        })
    }

    /// The absolute URL of a mount-relative path.
    pub fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.cluster)
    }
}

/// Adds the headers every ACME answer carries and wraps it for the core; `nonce` answers carry
/// a fresh anti-replay nonce (issued from the mount's storage).
async fn respond(
    c: &Call,
    base: Option<&str>,
    reply: std::result::Result<Reply, Problem>,
    nonce: bool,
) -> Result<Response> {
    let mut r = reply.unwrap_or_else(|p| p.reply());
    if nonce {
        r.headers
            .push(("Replay-Nonce".into(), nonce::issue(&c.storage).await?));
        r.headers.push(("Cache-Control".into(), "no-store".into()));
    }
    if let Some(b) = base {
        r.headers
            .push(("Link".into(), format!("<{b}/directory>;rel=\"index\"")));
    }
    Ok(Response {
        raw: Some(Box::new(RawResponse {
            status: r.status,
            content_type: r.content_type,
            body: r.body,
            headers: r.headers,
        })),
        ..Default::default()
    })
}

/// The POST endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    NewAccount,
    Account,
    AccountOrders,
    Orders,
    NewOrder,
    Order,
    Finalize,
    Cert,
    Authorization,
    Challenge,
    RevokeCert,
    KeyChange,
}

pub fn paths() -> Vec<Path<Pki>> {
    let post = |suffix: &str, ep: Endpoint, help: &'static str| {
        Path::new(&format!("{DIR}/{suffix}"))
            .op(Update, move |b: Arc<Pki>, c: Call| post(b, c, ep))
            .help(help)
    };
    let mut out = config::paths();
    out.extend([
        Path::new(&format!("{DIR}/directory"))
            .op(Read, directory)
            .help("The ACME directory (RFC 8555 §7.1.1)."),
        Path::new(&format!("{DIR}/new-nonce"))
            .op(Read, new_nonce)
            .help("A fresh anti-replay nonce (RFC 8555 §7.2)."),
        post(
            "new-account",
            Endpoint::NewAccount,
            "Create or find an ACME account.",
        ),
        post(
            r"account/(?P<acme_id>[\w\-]+)/orders",
            Endpoint::AccountOrders,
            "The account's orders.",
        ),
        post(
            r"account/(?P<acme_id>[\w\-]+)",
            Endpoint::Account,
            "Read, update or deactivate an ACME account.",
        ),
        post("orders", Endpoint::Orders, "The signing account's orders."),
        post("new-order", Endpoint::NewOrder, "Create an ACME order."),
        post(
            r"order/(?P<acme_id>[\w\-]+)/finalize",
            Endpoint::Finalize,
            "Finalize an ACME order with a CSR.",
        ),
        post(
            r"order/(?P<acme_id>[\w\-]+)/cert",
            Endpoint::Cert,
            "Download an order's certificate chain.",
        ),
        post(
            r"order/(?P<acme_id>[\w\-]+)",
            Endpoint::Order,
            "Read an ACME order.",
        ),
        post(
            r"authorization/(?P<acme_id>[\w\-]+)",
            Endpoint::Authorization,
            "Read or deactivate an ACME authorization.",
        ),
        post(
            r"challenge/(?P<acme_id>[\w\-]+)/(?P<acme_type>[\w\-]+)",
            Endpoint::Challenge,
            "Start or read an ACME challenge.",
        ),
        post(
            "revoke-cert",
            Endpoint::RevokeCert,
            "Revoke a certificate issued over ACME.",
        ),
        post(
            "key-change",
            Endpoint::KeyChange,
            "Change an ACME account's key.",
        ),
    ]);
    out
}

async fn directory(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let ctx = match Ctx::load(&c).await {
        Ok(x) => x,
        Err(p) => return respond(&c, None, Err(p), false).await,
    };
    if let Err(p) = policy::resolve(&c, &ctx.cfg, &ctx.role, &ctx.issuer).await {
        return respond(&c, None, Err(p), false).await;
    }
    let b = &ctx.base;
    let body = json!({
        "keyChange": format!("{b}/key-change"),
        "meta": { "externalAccountRequired": false },
        "newAccount": format!("{b}/new-account"),
        "newNonce": format!("{b}/new-nonce"),
        "newOrder": format!("{b}/new-order"),
        "revokeCert": format!("{b}/revoke-cert"),
    });
    respond(&c, None, Ok(Reply::json(200, &body)), false).await
}

async fn new_nonce(_b: Arc<Pki>, c: Call) -> Result<Response> {
    // HEAD and GET both arrive as reads; 200 suits HEAD (what clients use) and is harmless
    // for GET (RFC 8555 suggests 204 there).
    match Ctx::load(&c).await {
        Ok(ctx) => respond(&c, Some(&ctx.base), Ok(Reply::empty(200)), true).await,
        Err(p) => respond(&c, None, Err(p), false).await,
    }
}

async fn post(b: Arc<Pki>, c: Call, ep: Endpoint) -> Result<Response> {
    let ctx = match Ctx::load(&c).await {
        Ok(x) => x,
        Err(p) => return respond(&c, None, Err(p), true).await,
    };
    let reply = handlers::handle(&b, &c, &ctx, ep).await;
    respond(&c, Some(&ctx.base), reply, true).await
}

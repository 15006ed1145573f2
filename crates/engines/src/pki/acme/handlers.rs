//! The POST endpoints: JWS checks shared by all of them ([`handle`]), then accounts, orders,
//! authorizations, challenges, finalization, certificate download, revocation and key
//! rollover (RFC 8555 §7.3–§7.6).

use super::super::revoke::{get_revoked, revoke_cert};
use super::super::x509::{cert_pem, now_unix, serial_key, CertInfo};
use super::super::Pki;
use super::jws::{b64u, unb64u, Jwk, Jws, Signer};
use super::store::{self, Account, Authz, Challenge, Order, LOCK, ORDER_LIFETIME};
use super::{nonce, policy, validate, Ctx, Endpoint, Problem, Reply};
use serde_json::{json, Map, Value};
use tresor_core::framework::Call;

type Res<T> = std::result::Result<T, Problem>;
type Payload = Option<Map<String, Value>>;

/// Who signed: a key without an account yet (new-account, revoke-cert by certificate key), or
/// an account.
enum Auth {
    Key(Jwk),
    Account(Account),
}

trait OrInternal<T> {
    fn or_500(self) -> Res<T>;
}

impl<T> OrInternal<T> for tresor_core::error::Result<T> {
    fn or_500(self) -> Res<T> {
        self.map_err(Problem::internal)
    }
}

/// Checks the JWS (url, signer, signature, nonce) and runs the endpoint.
pub async fn handle(b: &Pki, c: &Call, ctx: &Ctx, ep: Endpoint) -> Res<Reply> {
    let jws = Jws::parse(&c.data)?;
    let expected = ctx.url(&c.path);
    if jws.url != expected {
        return Err(Problem::unauthorized(format!(
            "invalid value for 'url' in 'protected': got '{}' expected '{expected}'",
            jws.url
        )));
    }
    let Some(nonce) = jws.nonce.clone() else {
        return Err(Problem::bad_nonce("the protected header has no 'nonce'"));
    };
    let auth = match (&jws.signer, ep) {
        (Signer::Jwk(k), Endpoint::NewAccount | Endpoint::RevokeCert) => Auth::Key(k.clone()),
        (Signer::Jwk(_), _) => {
            return Err(Problem::malformed(
                "this request must be signed with the account URL as 'kid', not a 'jwk'",
            ))
        }
        (Signer::Kid(_), Endpoint::NewAccount) => {
            return Err(Problem::malformed(
                "new-account requests must carry the account key as 'jwk'",
            ))
        }
        (Signer::Kid(kid), _) => Auth::Account(account_for_kid(c, ctx, kid).await?),
    };
    let key = match &auth {
        Auth::Key(k) => k.clone(),
        Auth::Account(a) => Jwk::from_json(&a.jwk)?,
    };
    jws.verify(&key)?;
    if !nonce::consume(&c.storage, &nonce)
        .await
        .map_err(Problem::internal)?
    {
        return Err(Problem::bad_nonce(
            "invalid or reused nonce: the client sent an unacceptable anti-replay nonce",
        ));
    }
    let payload = jws.payload()?;
    let id = c.fields.str("acme_id");
    match (ep, auth) {
        (Endpoint::NewAccount, Auth::Key(k)) => new_account(c, ctx, &k, payload).await,
        (Endpoint::RevokeCert, auth) => revoke(b, c, &auth, payload).await,
        (_, Auth::Key(_)) | (Endpoint::NewAccount, Auth::Account(_)) => Err(Problem::malformed(
            "the request is signed with the wrong kind of key",
        )),
        (Endpoint::Account, Auth::Account(a)) => account(c, ctx, a, id, payload).await,
        (Endpoint::AccountOrders, Auth::Account(a)) => {
            if id != a.id {
                return Err(Problem::unauthorized(
                    "the account URL is not the signing account's",
                ));
            }
            orders(c, ctx, &a).await
        }
        (Endpoint::Orders, Auth::Account(a)) => orders(c, ctx, &a).await,
        (Endpoint::NewOrder, Auth::Account(a)) => new_order(b, c, ctx, &a, payload).await,
        (Endpoint::Order, Auth::Account(a)) => order(c, ctx, &a, id).await,
        (Endpoint::Finalize, Auth::Account(a)) => finalize(b, c, ctx, &a, id, payload).await,
        (Endpoint::Cert, Auth::Account(a)) => certificate(b, c, ctx, &a, id).await,
        (Endpoint::Authorization, Auth::Account(a)) => authorization(c, ctx, &a, id, payload).await,
        (Endpoint::Challenge, Auth::Account(a)) => {
            challenge(c, ctx, &a, id, c.fields.str("acme_type"), payload).await
        }
        (Endpoint::KeyChange, Auth::Account(a)) => key_change(c, ctx, a, &jws, payload).await,
    }
}

/// The account a `kid` names; it must be this directory's account URL and the account valid.
async fn account_for_kid(c: &Call, ctx: &Ctx, kid: &str) -> Res<Account> {
    let prefix = format!("{}/account/", ctx.base);
    let Some(id) = kid.strip_prefix(&prefix) else {
        return Err(Problem::account_does_not_exist(format!(
            "'kid' {kid} is not an account URL of this directory"
        )));
    };
    let account = store::get_account(&c.storage, id)
        .await
        .or_500()?
        .ok_or_else(|| Problem::account_does_not_exist("account not found"))?;
    if account.status != "valid" {
        return Err(Problem::unauthorized(format!(
            "account in status: {}",
            account.status
        )));
    }
    Ok(account)
}

fn account_url(ctx: &Ctx, id: &str) -> String {
    format!("{}/account/{id}", ctx.base)
}

fn account_json(ctx: &Ctx, a: &Account) -> Value {
    let mut v = json!({});
    if !a.contact.is_empty() {
        v["contact"] = json!(a.contact);
    }
    v["orders"] = json!(format!("{}/orders", account_url(ctx, &a.id)));
    v["status"] = json!(a.status);
    v
}

fn contacts(v: Option<&Value>) -> Res<Vec<String>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Problem::malformed("'contact' must be an array of URLs")),
    };
    let mut out = Vec::new();
    for c in list {
        let s = c
            .as_str()
            .ok_or_else(|| Problem::malformed("'contact' must be an array of URLs"))?;
        let Some(addr) = s.strip_prefix("mailto:") else {
            return Err(Problem::unsupported_contact(format!(
                "only mailto: contacts are supported, not {s}"
            )));
        };
        if addr.is_empty() || addr.contains(',') || !addr.contains('@') {
            return Err(Problem::invalid_contact(format!(
                "{s} is not a single e-mail address"
            )));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

async fn new_account(c: &Call, ctx: &Ctx, key: &Jwk, payload: Payload) -> Res<Reply> {
    let p = payload.unwrap_or_default();
    let thumbprint = key.thumbprint();
    let _guard = LOCK.lock().await;
    if let Some(a) = store::account_by_thumbprint(&c.storage, &thumbprint)
        .await
        .or_500()?
    {
        if a.status != "valid" {
            return Err(Problem::unauthorized(format!(
                "account in status: {}",
                a.status
            )));
        }
        return Ok(Reply::json(200, &account_json(ctx, &a)).location(account_url(ctx, &a.id)));
    }
    if p.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
        return Err(Problem::account_does_not_exist(
            "an account with this key does not exist",
        ));
    }
    let account = Account {
        id: tresor_core::util::uuid(),
        status: "valid".into(),
        contact: contacts(p.get("contact"))?,
        jwk: key.to_json(),
        thumbprint: thumbprint.clone(),
        terms_of_service_agreed: p
            .get("termsOfServiceAgreed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        created: now_unix(),
    };
    store::put_account(&c.storage, &account).await.or_500()?;
    store::put_thumbprint(&c.storage, &thumbprint, &account.id)
        .await
        .or_500()?;
    Ok(Reply::json(201, &account_json(ctx, &account)).location(account_url(ctx, &account.id)))
}

async fn account(c: &Call, ctx: &Ctx, mut a: Account, id: &str, payload: Payload) -> Res<Reply> {
    if id != a.id {
        return Err(Problem::unauthorized(
            "the account URL is not the signing account's",
        ));
    }
    if let Some(p) = payload {
        let _guard = LOCK.lock().await;
        if let Some(status) = p.get("status") {
            if status.as_str() != Some("deactivated") {
                return Err(Problem::malformed(
                    "an account's status can only be changed to deactivated",
                ));
            }
            a.status = "deactivated".into();
        }
        if p.contains_key("contact") {
            a.contact = contacts(p.get("contact"))?;
        }
        store::put_account(&c.storage, &a).await.or_500()?;
    }
    Ok(Reply::json(200, &account_json(ctx, &a)).location(account_url(ctx, &a.id)))
}

async fn orders(c: &Call, ctx: &Ctx, a: &Account) -> Res<Reply> {
    let mut urls = Vec::new();
    for id in store::account_orders(&c.storage, &a.id).await.or_500()? {
        if let Some(o) = store::get_order(&c.storage, &id).await.or_500()? {
            if o.status != "invalid" {
                urls.push(format!("{}/order/{}", ctx.url(&o.directory), o.id));
            }
        }
    }
    Ok(Reply::json(200, &json!({ "orders": urls })))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system random number generator");
    b64u(&bytes)
}

async fn new_order(b: &Pki, c: &Call, ctx: &Ctx, a: &Account, payload: Payload) -> Res<Reply> {
    let p = payload.ok_or_else(|| Problem::malformed("missing required identifiers argument"))?;
    if p.contains_key("notBefore") || p.contains_key("notAfter") {
        return Err(Problem::malformed(
            "NotBefore and NotAfter are not supported",
        ));
    }
    let requested = match p.get("identifiers") {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(Problem::malformed("'identifiers' must be an array")),
        None => return Err(Problem::malformed("missing required identifiers argument")),
    };
    let resolved = policy::resolve(c, &ctx.cfg, &ctx.role, &ctx.issuer).await?;
    policy::issuer(b, c, &ctx.cfg, &resolved).await?;
    let identifiers = policy::check_identifiers(&resolved, &requested)?;
    let now = now_unix();
    let expires = now + ORDER_LIFETIME;
    let mut authz_ids = Vec::new();
    for ident in &identifiers {
        let authz = Authz {
            id: tresor_core::util::uuid(),
            account: a.id.clone(),
            directory: ctx.dir.clone(),
            identifier: ident.clone(),
            status: "pending".into(),
            expires,
            challenges: vec![Challenge {
                kind: "http-01".into(),
                token: random_token(),
                status: "pending".into(),
                validated: None,
                error: None,
            }],
        };
        store::put_authz(&c.storage, &authz).await.or_500()?;
        authz_ids.push(authz.id);
    }
    let order = Order {
        id: tresor_core::util::uuid(),
        account: a.id.clone(),
        directory: ctx.dir.clone(),
        status: "pending".into(),
        identifiers,
        authorizations: authz_ids,
        expires,
        created: now,
        certificate: String::new(),
        issuer_id: String::new(),
        serial_number: String::new(),
        error: None,
    };
    store::put_order(&c.storage, &order).await.or_500()?;
    Ok(Reply::json(201, &order.to_json(&ctx.base))
        .location(format!("{}/order/{}", ctx.base, order.id)))
}

/// Loads an order of this account and directory, its status brought up to date.
async fn load_order(c: &Call, ctx: &Ctx, a: &Account, id: &str) -> Res<Order> {
    let mut o = store::get_order(&c.storage, id)
        .await
        .or_500()?
        .filter(|o| o.directory == ctx.dir)
        .ok_or_else(|| Problem::not_found("order not found"))?;
    if o.account != a.id {
        return Err(Problem::unauthorized(
            "the order belongs to another account",
        ));
    }
    if store::refresh_order(&c.storage, &mut o).await.or_500()? {
        store::put_order(&c.storage, &o).await.or_500()?;
    }
    Ok(o)
}

async fn order(c: &Call, ctx: &Ctx, a: &Account, id: &str) -> Res<Reply> {
    let _guard = LOCK.lock().await;
    let o = load_order(c, ctx, a, id).await?;
    Ok(Reply::json(200, &o.to_json(&ctx.base)).location(format!("{}/order/{}", ctx.base, o.id)))
}

async fn finalize(
    b: &Pki,
    c: &Call,
    ctx: &Ctx,
    a: &Account,
    id: &str,
    payload: Payload,
) -> Res<Reply> {
    let _guard = LOCK.lock().await;
    let mut o = load_order(c, ctx, a, id).await?;
    if o.status != "ready" {
        return Err(Problem::order_not_ready(format!(
            "order is status {}, needs to be in ready state",
            o.status
        )));
    }
    let csr_b64 = payload
        .as_ref()
        .and_then(|p| p.get("csr"))
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed("missing required field 'csr'"))?;
    let der = unb64u(csr_b64).ok_or_else(|| Problem::bad_csr("'csr' is not base64url"))?;
    let resolved = policy::resolve(c, &ctx.cfg, &ctx.role, &ctx.issuer).await?;
    let issuer = policy::issuer(b, c, &ctx.cfg, &resolved).await?;
    let csr = policy::check_csr(&der, &o, &resolved)?;
    let cert = policy::issue(c, &ctx.cfg, &resolved, &issuer, &o, &csr).await?;
    o.status = "valid".into();
    o.certificate = super::super::x509::b64(&cert.der);
    o.issuer_id = issuer.entry.id.clone();
    o.serial_number = cert.serial.clone();
    store::put_order(&c.storage, &o).await.or_500()?;
    store::put_cert_owner(&c.storage, &serial_key(&cert.serial), &a.id)
        .await
        .or_500()?;
    Ok(Reply::json(200, &o.to_json(&ctx.base)).location(format!("{}/order/{}", ctx.base, o.id)))
}

async fn certificate(b: &Pki, c: &Call, ctx: &Ctx, a: &Account, id: &str) -> Res<Reply> {
    let o = {
        let _guard = LOCK.lock().await;
        load_order(c, ctx, a, id).await?
    };
    if o.status != "valid" {
        return Err(Problem::order_not_ready(format!(
            "order is status {}, needs to be in valid state",
            o.status
        )));
    }
    let der = super::super::x509::unb64(&o.certificate)
        .ok_or_else(|| Problem::server_internal("corrupt stored certificate"))?;
    let mut pem = cert_pem(&der);
    pem.push('\n');
    if let Ok(issuer) = b.issuer(&c.storage, &o.issuer_id).await {
        for p in issuer.chain() {
            pem.push_str(p.trim_end());
            pem.push('\n');
        }
    }
    Ok(Reply {
        status: 200,
        content_type: "application/pem-certificate-chain".into(),
        body: pem.into_bytes(),
        headers: vec![],
    })
}

/// Loads an authorization of this account and directory.
async fn load_authz(c: &Call, ctx: &Ctx, a: &Account, id: &str) -> Res<Authz> {
    let mut authz = store::get_authz(&c.storage, id)
        .await
        .or_500()?
        .filter(|z| z.directory == ctx.dir)
        .ok_or_else(|| Problem::not_found("authorization not found"))?;
    if authz.account != a.id {
        return Err(Problem::unauthorized(
            "the authorization belongs to another account",
        ));
    }
    if authz.expire() {
        store::put_authz(&c.storage, &authz).await.or_500()?;
    }
    Ok(authz)
}

async fn authorization(c: &Call, ctx: &Ctx, a: &Account, id: &str, payload: Payload) -> Res<Reply> {
    let _guard = LOCK.lock().await;
    let mut authz = load_authz(c, ctx, a, id).await?;
    if let Some(p) = payload {
        if let Some(status) = p.get("status") {
            if status.as_str() != Some("deactivated") {
                return Err(Problem::malformed(
                    "an authorization's status can only be changed to deactivated",
                ));
            }
            if !matches!(authz.status.as_str(), "pending" | "valid") {
                return Err(Problem::malformed(format!(
                    "an authorization in status {} cannot be deactivated",
                    authz.status
                )));
            }
            authz.status = "deactivated".into();
            store::put_authz(&c.storage, &authz).await.or_500()?;
        }
    }
    Ok(Reply::json(200, &authz.to_json(&ctx.base)))
}

async fn challenge(
    c: &Call,
    ctx: &Ctx,
    a: &Account,
    id: &str,
    kind: &str,
    payload: Payload,
) -> Res<Reply> {
    let _guard = LOCK.lock().await;
    let mut authz = load_authz(c, ctx, a, id).await?;
    let Some(idx) = authz.challenges.iter().position(|ch| ch.kind == kind) else {
        return Err(Problem::not_found(format!(
            "the authorization has no {kind} challenge"
        )));
    };
    // A payload (`{}`) says "validate now"; POST-as-GET only reads.
    if payload.is_some() && authz.status == "pending" && authz.challenges[idx].status == "pending" {
        authz.challenges[idx].status = "processing".into();
        store::put_authz(&c.storage, &authz).await.or_500()?;
        let ch = &authz.challenges[idx];
        validate::spawn(validate::Job {
            storage: c.storage.clone(),
            authz: authz.id.clone(),
            kind: ch.kind.clone(),
            identifier_kind: authz.identifier.kind.clone(),
            host: authz.identifier.value.clone(),
            port: ctx.cfg.http_01_port,
            token: ch.token.clone(),
            key_authorization: format!("{}.{}", ch.token, a.thumbprint),
        });
    }
    let body = authz.challenges[idx].to_json(&ctx.base, &authz.id);
    Ok(Reply::json(200, &body).header(
        "Link",
        format!("<{}/authorization/{}>;rel=\"up\"", ctx.base, authz.id),
    ))
}

async fn revoke(b: &Pki, c: &Call, auth: &Auth, payload: Payload) -> Res<Reply> {
    let p = payload.ok_or_else(|| Problem::malformed("missing required field 'certificate'"))?;
    let der = p
        .get("certificate")
        .and_then(Value::as_str)
        .and_then(unb64u)
        .ok_or_else(|| Problem::malformed("'certificate' must be base64url DER"))?;
    if let Some(reason) = p.get("reason") {
        let ok = reason.as_u64().is_some_and(|r| r <= 10 && r != 7);
        if !ok {
            return Err(Problem::bad_revocation_reason(format!(
                "unsupported revocation reason {reason}"
            )));
        }
    }
    let info = CertInfo::parse(&der).map_err(|e| Problem::malformed(e.to_string()))?;
    match auth {
        Auth::Account(a) => {
            let owner = store::cert_owner(&c.storage, &serial_key(&info.serial))
                .await
                .or_500()?;
            if owner.as_deref() != Some(a.id.as_str()) {
                return Err(Problem::unauthorized(
                    "the certificate was not issued to this account",
                ));
            }
        }
        Auth::Key(k) => {
            if k.public_key_bits() != info.public_key_bits {
                return Err(Problem::unauthorized(
                    "the request is signed neither by an account nor by the certificate's key",
                ));
            }
        }
    }
    if get_revoked(&c.storage, &info.serial)
        .await
        .or_500()?
        .is_some()
    {
        return Err(Problem::already_revoked(
            "the certificate has already been revoked",
        ));
    }
    revoke_cert(b, &c.storage, None, Some(&cert_pem(&der)))
        .await
        .map_err(|e| match e {
            tresor_core::error::Error::BadRequest(m) => Problem::malformed(m),
            e => Problem::internal(e),
        })?;
    Ok(Reply::empty(200))
}

async fn key_change(
    c: &Call,
    ctx: &Ctx,
    mut a: Account,
    outer: &Jws,
    payload: Payload,
) -> Res<Reply> {
    let p = payload.ok_or_else(|| Problem::malformed("key-change needs an inner JWS"))?;
    let inner = Jws::parse(&p)?;
    let Signer::Jwk(new_key) = &inner.signer else {
        return Err(Problem::malformed(
            "the inner JWS must carry the new key as 'jwk'",
        ));
    };
    if inner.nonce.is_some() {
        return Err(Problem::malformed("the inner JWS must not have a 'nonce'"));
    }
    if inner.url != outer.url {
        return Err(Problem::malformed(
            "the inner JWS's 'url' differs from the outer one's",
        ));
    }
    inner.verify(new_key)?;
    let body = inner
        .payload()?
        .ok_or_else(|| Problem::malformed("the inner JWS has no payload"))?;
    let url = account_url(ctx, &a.id);
    if body.get("account").and_then(Value::as_str) != Some(url.as_str()) {
        return Err(Problem::malformed(
            "the inner payload's 'account' is not the signing account",
        ));
    }
    let old = Jwk::from_json(body.get("oldKey").unwrap_or(&Value::Null))?;
    if old.thumbprint() != a.thumbprint {
        return Err(Problem::unauthorized(
            "'oldKey' is not the account's current key",
        ));
    }
    let thumbprint = new_key.thumbprint();
    let _guard = LOCK.lock().await;
    if let Some(other) = store::account_by_thumbprint(&c.storage, &thumbprint)
        .await
        .or_500()?
    {
        let mut p = Problem::conflict("the new key is already in use by an account");
        p.location = Some(account_url(ctx, &other.id));
        return Err(p);
    }
    store::delete_thumbprint(&c.storage, &a.thumbprint)
        .await
        .or_500()?;
    a.jwk = new_key.to_json();
    a.thumbprint = thumbprint.clone();
    store::put_account(&c.storage, &a).await.or_500()?;
    store::put_thumbprint(&c.storage, &thumbprint, &a.id)
        .await
        .or_500()?;
    Ok(Reply::json(200, &account_json(ctx, &a)).location(url))
}

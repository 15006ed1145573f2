//! The TokenReview call: `POST {host}/apis/authentication.k8s.io/v1/tokenreviews` with the
//! reviewer JWT (or the client's own) as bearer, over HTTPS trusting the configured CA, and
//! the checks of Vault's `tokenReviewAPI.Review` on the answer.
//!
//! Outcomes are kept apart: [`Outcome::Denied`] when the cluster says the token is not (or no
//! longer) valid for a service account (the login is refused with 403), and
//! [`Outcome::Failed`] when the cluster could not be asked (unreachable, TLS failure, the
//! reviewer lacks permission, an unexpected answer): a 500, since nothing was decided about
//! the client. Vault answers 403 "permission denied" for both and only logs the reason.

use crate::jwt::remote::{describe, http_client, read_body};
use serde_json::{json, Value};

/// Who the cluster says the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// Why a review did not confirm the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Denied(String),
    Failed(String),
}

/// The TokenReview endpoint of a `kubernetes_host`.
pub fn endpoint(host: &str) -> String {
    let host = host.trim_end_matches('/');
    let base = if host.starts_with("https://") || host.starts_with("http://") {
        host.to_string()
    } else {
        format!("https://{host}")
    };
    format!("{base}/apis/authentication.k8s.io/v1/tokenreviews")
}

/// Reviews `jwt`, asking for `audiences` (empty: the token's own).
pub async fn review(
    host: &str,
    ca_pem: &str,
    bearer: &str,
    jwt: &str,
    audiences: &[String],
) -> Result<Reviewed, Outcome> {
    let client =
        http_client(ca_pem).map_err(|e| Outcome::Failed(format!("kubernetes_ca_cert: {e}")))?;
    let url = endpoint(host);
    let body = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "spec": { "token": jwt, "audiences": audiences },
    });
    let resp = client
        .post(&url)
        .bearer_auth(bearer)
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            Outcome::Failed(format!(
                "error calling the TokenReview API at {url}: {}",
                describe(&e)
            ))
        })?;
    let status = resp.status();
    let bytes = read_body(resp)
        .await
        .map_err(|e| Outcome::Failed(format!("error reading the TokenReview answer: {e}")))?;
    if status.as_u16() == 401 {
        return Err(Outcome::Denied("lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token".into()));
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.trim().chars().take(300).collect();
        return Err(Outcome::Failed(format!(
            "the TokenReview API answered HTTP {status}: {text}"
        )));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Outcome::Failed(format!("invalid TokenReview answer: {e}")))?;
    if v.get("kind").and_then(Value::as_str) == Some("Status")
        && v.get("status").and_then(Value::as_str) != Some("Success")
    {
        let msg = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("failure");
        return Err(Outcome::Failed(format!(
            "the TokenReview API answered: {msg}"
        )));
    }
    let st = v.get("status").cloned().unwrap_or(Value::Null);
    let s = |p: &str| {
        st.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let err = s("/error");
    if !err.is_empty() {
        return Err(Outcome::Denied(format!("lookup failed: {err}")));
    }
    if st.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return Err(Outcome::Denied(
            "lookup failed: service account jwt not valid".into(),
        ));
    }
    if !audiences.is_empty() {
        let got: Vec<String> = st
            .get("audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !audiences.iter().any(|a| got.contains(a)) {
            return Err(Outcome::Denied(format!(
                "lookup failed: service account jwt valid for audience(s) {got:?}, but wanted {audiences:?}"
            )));
        }
    }
    let username = s("/user/username");
    let parts: Vec<&str> = username.split(':').collect();
    if parts.len() != 4 {
        return Err(Outcome::Denied(
            "lookup failed: unexpected username format".into(),
        ));
    }
    if parts[0] != "system" || parts[1] != "serviceaccount" {
        return Err(Outcome::Denied(
            "lookup failed: username returned is not a service account".into(),
        ));
    }
    Ok(Reviewed {
        namespace: parts[2].to_string(),
        name: parts[3].to_string(),
        uid: s("/user/uid"),
    })
}

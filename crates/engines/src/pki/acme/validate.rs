//! `http-01` validation (RFC 8555 §8.3), run in a spawned task once the client says it is
//! ready: GET `http://<identifier>:<port>/.well-known/acme-challenge/<token>` (port 80 unless
//! `config/acme` sets Tresor's `http_01_port`) and compare the body, less trailing whitespace,
//! with the key authorization `<token>.<account key thumbprint>`.
//!
//! A connection failure, timeout or non-2xx answer is retried ([`ATTEMPTS`] tries, a growing
//! pause between them) in case the client's responder is slow to come up; a wrong body fails
//! at once. The outcome is written to the challenge and its authorization; the order follows
//! when it is next read ([`super::store::refresh_order`]).

use super::super::x509::now_unix;
use super::store::{self, LOCK};
use serde_json::{json, Value};
use std::time::Duration;
use tresor_core::barrier::View;

/// Tries per validation.
pub const ATTEMPTS: u32 = 3;
/// Time limit of one fetch (connect included).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a response body that is read.
const MAX_BODY: usize = 8 * 1024;

/// What to validate.
pub struct Job {
    pub storage: View,
    pub authz: String,
    pub kind: String,
    /// `dns` or `ip`.
    pub identifier_kind: String,
    pub host: String,
    pub port: u16,
    pub token: String,
    pub key_authorization: String,
}

/// Starts validating in the background.
pub fn spawn(job: Job) {
    tokio::spawn(async move {
        let outcome = run(&job).await;
        if let Err(e) = record(&job, outcome).await {
            tracing::warn!(authz = %job.authz, error = %e, "could not record an ACME validation");
        }
    });
}

/// The URL the key authorization is fetched from.
pub fn challenge_url(identifier_kind: &str, host: &str, port: u16, token: &str) -> String {
    let host = if identifier_kind == "ip" && host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("http://{host}:{port}/.well-known/acme-challenge/{token}")
}

/// Ok, or the problem to record on the challenge.
async fn run(job: &Job) -> Result<(), Value> {
    let url = challenge_url(&job.identifier_kind, &job.host, job.port, &job.token);
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(10))
        .no_proxy()
        .user_agent("Tresor ACME validator")
        .build()
        .map_err(|e| problem("serverInternal", format!("http client: {e}")))?;
    let mut last = Value::Null;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        match fetch(&client, &url).await {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body);
                let got = text.trim_end_matches([' ', '\t', '\r', '\n']);
                if got == job.key_authorization {
                    return Ok(());
                }
                return Err(problem(
                    "incorrectResponse",
                    format!(
                        "the key authorization at {url} does not match: expected {:?}, got {:?}",
                        job.key_authorization,
                        got.chars().take(200).collect::<String>()
                    ),
                ));
            }
            Err(p) => last = p,
        }
    }
    Err(last)
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, Value> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| problem("connection", format!("fetching {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(problem(
            "unauthorized",
            format!("fetching {url}: HTTP status {}", resp.status()),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| problem("connection", format!("reading {url}: {e}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(problem(
                "incorrectResponse",
                format!("the answer from {url} is larger than {MAX_BODY} bytes"),
            ));
        }
    }
    Ok(body)
}

fn problem(kind: &str, detail: String) -> Value {
    json!({
        "type": format!("urn:ietf:params:acme:error:{kind}"),
        "detail": detail,
        "status": if kind == "serverInternal" { 500 } else { 400 },
    })
}

async fn record(job: &Job, outcome: Result<(), Value>) -> tresor_core::error::Result<()> {
    let _guard = LOCK.lock().await;
    let Some(mut authz) = store::get_authz(&job.storage, &job.authz).await? else {
        return Ok(());
    };
    let Some(ch) = authz
        .challenges
        .iter_mut()
        .find(|c| c.kind == job.kind && c.status == "processing")
    else {
        return Ok(());
    };
    match outcome {
        Ok(()) => {
            ch.status = "valid".into();
            ch.validated = Some(now_unix());
            ch.error = None;
            if authz.status == "pending" {
                authz.status = "valid".into();
            }
        }
        Err(p) => {
            tracing::info!(authz = %job.authz, problem = %p, "ACME http-01 validation failed");
            ch.status = "invalid".into();
            ch.error = Some(p);
            if authz.status == "pending" {
                authz.status = "invalid".into();
            }
        }
    }
    store::put_authz(&job.storage, &authz).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            challenge_url("dns", "example.com", 80, "t"),
            "http://example.com:80/.well-known/acme-challenge/t"
        );
        assert_eq!(
            challenge_url("ip", "::1", 5002, "t"),
            "http://[::1]:5002/.well-known/acme-challenge/t"
        );
    }
}

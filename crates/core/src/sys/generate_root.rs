//! Root token recovery: a threshold of unseal key holders make a new root token, encoded with a
//! one-time password (OTP) only the operator who started it holds, so nobody who sees the
//! answers (the key holders, a proxy, the audit log) learns the token.
//!
//! Served twice, as in OpenBao: Vault's unauthenticated `sys/generate-root/{attempt,update}`
//! (hvac; the answers are bare JSON) and OpenBao's authenticated
//! `sys/generate-root-token/{attempt,update}` (the `bao` CLI; answers under `data`), plus
//! `sys/decode-token`. The encoding is Vault's: base64 (no padding) of the token XOR the OTP,
//! which has the token's length (28: `hvs.` and 24 characters).

use super::Sys;
use crate::core::RootGeneration;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use crate::seal::{decode_key, Progress};
use crate::token::{TokenParams, SERVICE_TOKEN_PREFIX};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The length of a root token, and so of an OTP.
const OTP_LENGTH: usize = SERVICE_TOKEN_PREFIX.len() + 24;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// Vault's unauthenticated paths (bare JSON answers) and OpenBao's authenticated ones.
pub fn paths() -> Vec<Path<Sys>> {
    let mut out = Vec::new();
    for (prefix, enveloped) in [("generate-root", false), ("generate-root-token", true)] {
        out.push(
            Path::new(&format!("{prefix}/attempt"))
                .field("otp", Field::string("one-time password the new token is encoded with"))
                .field("pgp_key", Field::string("not supported"))
                .op(Read, move |s: Arc<Sys>, c| async move {
                    s.root_generation_status(c, None, enveloped).await
                })
                .op(Update, move |s: Arc<Sys>, c| async move {
                    s.root_generation_start(c, enveloped).await
                })
                .op(Delete, |s: Arc<Sys>, _c| async move {
                    *s.core()?.root_generation.lock().await = None;
                    Ok(Response::default())
                })
                .help("Start (with an OTP, or one is generated and returned), read or cancel a root token generation."),
        );
        out.push(
            Path::new(&format!("{prefix}/update"))
                .field("key", Field::string("an unseal key share"))
                .field("nonce", Field::string("the generation's nonce"))
                .op(Update, move |s: Arc<Sys>, c| async move {
                    s.root_generation_update(c, enveloped).await
                })
                .help("Give one unseal key share; at the threshold, the answer holds the new root token, encoded with the OTP."),
        );
    }
    out.push(
        Path::new("decode-token")
            .field(
                "encoded_token",
                Field::string("the encoded root token").required(),
            )
            .field(
                "otp",
                Field::string("the OTP it was encoded with").required(),
            )
            .op(Update, |_s: Arc<Sys>, c| async move {
                let token = decode(c.fields.str("encoded_token"), c.fields.str("otp"))?;
                Ok(Response::data(json!({ "token": token.as_str() })))
            })
            .help("Decode a root token encoded with an OTP."),
    );
    out
}

/// Vault's encoding: base64 (unpadded) of `token` XOR `otp`, which have the same length.
fn encode(token: &str, otp: &str) -> Result<String> {
    if token.len() != otp.len() {
        return Err(Error::internal("the OTP and the token differ in length"));
    }
    let xored: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(t, o)| t ^ o).collect();
    Ok(B64.encode(xored))
}

/// Decodes what [`encode`] made (`bao operator generate-root -decode`).
pub fn decode(encoded: &str, otp: &str) -> Result<Zeroizing<String>> {
    let bytes = B64
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| Error::bad("encoded_token is not valid base64"))?;
    if bytes.len() != otp.len() {
        return Err(Error::bad("the OTP's length is not the encoded token's"));
    }
    let token: Vec<u8> = bytes.iter().zip(otp.bytes()).map(|(b, o)| b ^ o).collect();
    String::from_utf8(token)
        .map(Zeroizing::new)
        .map_err(|_| Error::bad("the OTP does not decode this token"))
}

/// A random OTP of a root token's length (letters and digits, as Vault's base62).
pub fn new_otp() -> Zeroizing<String> {
    Zeroizing::new(crate::util::random_alnum(OTP_LENGTH))
}

impl Sys {
    fn generation_answer(body: Value, enveloped: bool) -> Response {
        if enveloped {
            Response::data(body)
        } else {
            Response::raw_json(200, &body)
        }
    }

    async fn root_generation_status(
        self: Arc<Self>,
        _c: Call,
        otp: Option<&str>,
        enveloped: bool,
    ) -> Result<Response> {
        let core = self.core()?;
        let seal = core.seal_store.required_config().await?;
        let generation = core.root_generation.lock().await;
        let body = json!({
            "started": generation.is_some(),
            "nonce": generation.as_ref().map(|g| g.nonce.as_str()).unwrap_or(""),
            "progress": generation.as_ref().map(|g| g.progress.shares.len()).unwrap_or(0),
            "required": seal.secret_threshold,
            "complete": false,
            "encoded_token": "",
            "encoded_root_token": "",
            "pgp_fingerprint": "",
            "otp": otp.unwrap_or(""),
            "otp_length": OTP_LENGTH,
        });
        Ok(Self::generation_answer(body, enveloped))
    }

    async fn root_generation_start(self: Arc<Self>, c: Call, enveloped: bool) -> Result<Response> {
        let core = self.core()?;
        core.active()?;
        if !c.fields.str("pgp_key").is_empty() {
            return Err(Error::bad(
                "PGP-encrypted root tokens are not supported: use an OTP",
            ));
        }
        let given = c.fields.str("otp");
        let generated = given.is_empty();
        let otp = if generated {
            new_otp()
        } else if given.len() != OTP_LENGTH {
            return Err(Error::bad("OTP string has incorrect length"));
        } else {
            Zeroizing::new(given.to_string())
        };
        {
            let mut generation = core.root_generation.lock().await;
            if generation.is_some() {
                return Err(Error::bad("root generation already in progress"));
            }
            *generation = Some(RootGeneration {
                nonce: crate::util::uuid(),
                otp: otp.clone(),
                progress: Progress::default(),
            });
        }
        tracing::info!("root token generation started");
        // The OTP is answered only when the server made it.
        self.root_generation_status(c, generated.then_some(otp.as_str()), enveloped)
            .await
    }

    async fn root_generation_update(self: Arc<Self>, c: Call, enveloped: bool) -> Result<Response> {
        let core = self.core()?;
        let active = core.active()?;
        let seal = core.seal_store.required_config().await?;
        let key = c.fields.str("key");
        if key.is_empty() {
            return Err(Error::bad(
                "'key' must be specified in request body as JSON",
            ));
        }
        let key = decode_key(key)?;
        let mut generation = core.root_generation.lock().await;
        let state = generation
            .as_mut()
            .ok_or_else(|| Error::bad("no root generation in progress"))?;
        if c.fields.str("nonce") != state.nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this root generation operation is {:?}",
                state.nonce
            )));
        }
        // Progress keeps each distinct share once: a share given again is refused.
        let before = state.progress.shares.len();
        state.progress.add(key);
        if state.progress.shares.len() == before {
            return Err(Error::bad(
                "given key has already been provided during this generation operation",
            ));
        }
        let progress = state.progress.shares.len();
        let nonce = state.nonce.clone();
        let mut body = json!({
            "started": true,
            "nonce": nonce,
            "progress": progress,
            "required": seal.secret_threshold,
            "complete": false,
            "encoded_token": "",
            "encoded_root_token": "",
            "pgp_fingerprint": "",
        });
        if progress < seal.secret_threshold as usize {
            return Ok(Self::generation_answer(body, enveloped));
        }
        // Enough shares: the attempt ends here, whatever the outcome.
        let finished = generation.take().expect("checked above");
        drop(generation);
        let shares = finished.progress.shares;
        core.seal_store
            .recover_root_key(&shares, &seal)
            .await
            .map_err(|_| {
                Error::bad(
                    "root generation aborted: the key shares do not reconstruct the unseal key",
                )
            })?;
        let (token, _) = active
            .tokens
            .create(TokenParams {
                policies: vec!["root".into()],
                path: "auth/token/root".into(),
                display_name: "root".into(),
                ..Default::default()
            })
            .await?;
        let token = Zeroizing::new(token);
        let encoded = encode(&token, &finished.otp)?;
        tracing::info!("root token generation finished");
        body["complete"] = json!(true);
        body["encoded_token"] = json!(encoded);
        body["encoded_root_token"] = json!(encoded);
        Ok(Self::generation_answer(body, enveloped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode_are_vaults_xor_base64() {
        let token = "hvs.abcdefghijklmnopqrstuvwx";
        let otp = "BMjzW3wAsEzINXCM05Wbas3u9zSl";
        assert_eq!(token.len(), OTP_LENGTH);
        let encoded = encode(token, otp).unwrap();
        assert!(!encoded.contains('='));
        assert_eq!(decode(&encoded, otp).unwrap().as_str(), token);
        assert!(decode(&encoded, "short").is_err());
        assert!(decode("***", otp).is_err());
        assert_eq!(new_otp().len(), OTP_LENGTH);
    }
}

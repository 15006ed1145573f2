//! `config`: the key source and issuer binding, with the checks and messages of Vault's
//! `pathConfigWrite` (a write replaces the whole configuration, as in Vault). A remote key
//! source is fetched once when written; `skip_jwks_validation` turns a failure into a warning.

use super::keys::{parse_supported, VerifyingKey};
use super::remote::{http_client, Location};
use super::{Config, Jwt};
use crate::sorted_data;
use serde_json::{json, Map};
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

pub(crate) fn paths() -> Vec<Path<Jwt>> {
    vec![Path::new("config")
        .field("oidc_discovery_url", Field::string("OIDC Discovery URL, without any .well-known component (base path). Cannot be used with \"jwks_url\" or \"jwt_validation_pubkeys\"."))
        .field("oidc_discovery_ca_pem", Field::string("The CA certificate or chain of certificates, in PEM format, to use to validate connections to the OIDC Discovery URL. If not set, system certificates are used."))
        .field("oidc_client_id", Field::string("The OAuth Client ID configured with your OIDC provider."))
        .field("oidc_client_secret", Field::string("The OAuth Client Secret configured with your OIDC provider."))
        .field("oidc_response_mode", Field::string("The response mode to be used in the OAuth2 request. Allowed values are 'query' and 'form_post'."))
        .field("oidc_response_types", Field::list("The response types to request. Allowed values are 'code' and 'id_token'. Defaults to 'code'."))
        .field("jwks_url", Field::string("JWKS URL to use to authenticate signatures. Cannot be used with \"oidc_discovery_url\" or \"jwt_validation_pubkeys\"."))
        .field("jwks_ca_pem", Field::string("The CA certificate or chain of certificates, in PEM format, to use to validate connections to the JWKS URL. If not set, system certificates are used."))
        .field("default_role", Field::string("The default role to use if none is provided during login. If not set, a role is required during login."))
        .field("jwt_validation_pubkeys", Field::list("A list of PEM-encoded public keys to use to authenticate signatures locally. Cannot be used with \"jwks_url\" or \"oidc_discovery_url\"."))
        .field("jwt_supported_algs", Field::list("A list of supported signing algorithms. Defaults to RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512, EdDSA."))
        .field("bound_issuer", Field::string("The value against which to match the 'iss' claim in a JWT. Optional."))
        .field("provider_config", Field::map("Provider-specific configuration. Optional (stored only)."))
        .field("override_allowed_server_names", Field::list("A list of hostnames to accept when performing TLS validation (stored only)."))
        .field("namespace_in_state", Field::bool("Pass namespace in the OIDC state parameter (stored only)."))
        .field("skip_jwks_validation", Field::bool("When true, a failure to fetch the JWKS or discovery document is a warning instead of an error."))
        .op(Read, read)
        .op(Update, write)
        .help("Configure the JWT authentication backend: the keys that verify tokens.")]
}

/// The key source a configuration names.
pub(crate) enum Source {
    Static(Vec<VerifyingKey>),
    Remote(Location),
}

impl Config {
    /// The key source, parsed (static keys) or located (JWKS, discovery).
    pub(crate) fn source(&self) -> std::result::Result<Source, String> {
        if !self.jwt_validation_pubkeys.is_empty() {
            let mut keys = Vec::new();
            for p in &self.jwt_validation_pubkeys {
                keys.extend(VerifyingKey::from_pem(p)?);
            }
            Ok(Source::Static(keys))
        } else if !self.jwks_url.is_empty() {
            Ok(Source::Remote(Location::Jwks {
                url: self.jwks_url.clone(),
                ca_pem: self.jwks_ca_pem.clone(),
            }))
        } else if !self.oidc_discovery_url.is_empty() {
            Ok(Source::Remote(Location::Discovery {
                url: self.oidc_discovery_url.clone(),
                ca_pem: self.oidc_discovery_ca_pem.clone(),
            }))
        } else {
            Err("no key source is configured".into())
        }
    }
}

async fn read(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let cfg = b.config(&c.storage).await?.ok_or(Error::NotFound)?;
    let mut m = Map::new();
    m.insert("oidc_discovery_url".into(), json!(cfg.oidc_discovery_url));
    m.insert(
        "oidc_discovery_ca_pem".into(),
        json!(cfg.oidc_discovery_ca_pem),
    );
    m.insert("oidc_client_id".into(), json!(cfg.oidc_client_id));
    m.insert("oidc_response_mode".into(), json!(cfg.oidc_response_mode));
    m.insert("oidc_response_types".into(), json!(cfg.oidc_response_types));
    m.insert("default_role".into(), json!(cfg.default_role));
    m.insert(
        "jwt_validation_pubkeys".into(),
        json!(cfg.jwt_validation_pubkeys),
    );
    m.insert("jwt_supported_algs".into(), json!(cfg.jwt_supported_algs));
    m.insert("jwks_url".into(), json!(cfg.jwks_url));
    m.insert("jwks_ca_pem".into(), json!(cfg.jwks_ca_pem));
    m.insert("bound_issuer".into(), json!(cfg.bound_issuer));
    m.insert("provider_config".into(), json!(cfg.provider_config));
    m.insert(
        "override_allowed_server_names".into(),
        json!(cfg.override_allowed_server_names),
    );
    m.insert("namespace_in_state".into(), json!(cfg.namespace_in_state));
    let mut warnings = vec![];
    let status = match cfg.source() {
        Ok(_) => "valid",
        Err(e) => {
            warnings.push(format!("failed to construct JWK validator: {e}"));
            "invalid"
        }
    };
    m.insert("status".into(), json!(status));
    let mut r = sorted_data(m);
    r.warnings = warnings;
    Ok(r)
}

async fn write(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let existing = b.config(&c.storage).await?;
    let mut cfg = Config {
        oidc_discovery_url: f.str("oidc_discovery_url").trim().to_string(),
        oidc_discovery_ca_pem: f.str("oidc_discovery_ca_pem").to_string(),
        oidc_client_id: f.str("oidc_client_id").to_string(),
        oidc_client_secret: f.str("oidc_client_secret").to_string(),
        oidc_response_mode: f.str("oidc_response_mode").to_string(),
        oidc_response_types: f.strings("oidc_response_types"),
        jwks_url: f.str("jwks_url").trim().to_string(),
        jwks_ca_pem: f.str("jwks_ca_pem").to_string(),
        jwt_validation_pubkeys: f.strings("jwt_validation_pubkeys"),
        jwt_supported_algs: f.strings("jwt_supported_algs"),
        bound_issuer: f.str("bound_issuer").to_string(),
        default_role: f.str("default_role").to_lowercase(),
        provider_config: f.map("provider_config"),
        override_allowed_server_names: f.strings("override_allowed_server_names"),
        namespace_in_state: if f.has("namespace_in_state") {
            f.bool("namespace_in_state")
        } else {
            existing.as_ref().is_none_or(|e| e.namespace_in_state)
        },
    };
    let skip = f.bool("skip_jwks_validation");
    let mut warnings = Vec::new();
    let methods = [
        !cfg.oidc_discovery_url.is_empty(),
        !cfg.jwt_validation_pubkeys.is_empty(),
        !cfg.jwks_url.is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if methods != 1 {
        return Err(Error::bad("exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set"));
    }
    if cfg.oidc_client_id.is_empty() != cfg.oidc_client_secret.is_empty() {
        return Err(Error::bad(
            "both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC",
        ));
    }
    if !cfg.oidc_discovery_url.is_empty() {
        if let Some((base, _)) = cfg
            .oidc_discovery_url
            .split_once(".well-known/openid-configuration")
        {
            cfg.oidc_discovery_url = base.to_string();
            warnings.push(format!(
                "modifying provided `OIDCDiscoveryURL` to {:?}",
                cfg.oidc_discovery_url
            ));
        }
        if let Err(e) = check_remote(&Location::Discovery {
            url: cfg.oidc_discovery_url.clone(),
            ca_pem: cfg.oidc_discovery_ca_pem.clone(),
        })
        .await
        {
            let msg = format!("error checking oidc discovery URL: {e}");
            if !skip {
                return Err(Error::bad(msg));
            }
            warnings.push(msg);
        }
    } else if !cfg.oidc_client_id.is_empty() {
        return Err(Error::bad("'oidc_discovery_url' must be set for OIDC"));
    } else if !cfg.jwks_url.is_empty() {
        if let Err(e) = http_client(&cfg.jwks_ca_pem) {
            return Err(Error::bad(format!("error checking jwks_ca_pem: {e}")));
        }
        if let Err(e) = check_remote(&Location::Jwks {
            url: cfg.jwks_url.clone(),
            ca_pem: cfg.jwks_ca_pem.clone(),
        })
        .await
        {
            let msg = format!("error checking jwks URL: {e}");
            if !skip {
                return Err(Error::bad(msg));
            }
            warnings.push(msg);
        }
    } else {
        for p in &cfg.jwt_validation_pubkeys {
            VerifyingKey::from_pem(p)
                .map_err(|e| Error::bad(format!("error parsing public key: {e}")))?;
        }
    }
    for a in &cfg.jwt_supported_algs {
        parse_supported(a).map_err(|e| Error::bad(format!("invalid jwt_supported_algs: {e}")))?;
    }
    for t in &cfg.oidc_response_types {
        if t != "code" && t != "id_token" {
            return Err(Error::bad(format!(
                "invalid response_types {:?}. 'code' and 'id_token' are allowed",
                cfg.oidc_response_types
            )));
        }
    }
    match cfg.oidc_response_mode.as_str() {
        "" | "query" => {
            if cfg.oidc_response_types.iter().any(|t| t == "id_token") {
                return Err(Error::bad(
                    "query response_mode may not be used with an id_token response_type",
                ));
            }
        }
        "form_post" => {}
        other => return Err(Error::bad(format!("invalid response_mode: {other:?}"))),
    }
    c.storage.put_json("config", &cfg).await?;
    b.keys.reset().await;
    b.flows.reset().await;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}

/// Fetches a remote key set once. An empty set is an error too: no token could be verified.
async fn check_remote(loc: &Location) -> std::result::Result<(), String> {
    let ca = match loc {
        Location::Jwks { ca_pem, .. } | Location::Discovery { ca_pem, .. } => ca_pem,
    };
    let client = http_client(ca)?;
    let keys = loc.fetch(&client).await?;
    if keys.is_empty() {
        return Err("the key set holds no usable signing key".into());
    }
    Ok(())
}

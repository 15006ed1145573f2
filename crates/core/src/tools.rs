//! Random bytes and hashes, as Vault serves them twice: at `sys/tools/random`, `sys/tools/hash`
//! and in the transit engine (`random`, `hash`). One implementation, mounted by both under
//! their own prefix.
//!
//! * `random(/:source)(/:bytes)`: 1 to 128 KiB (32 by default) as base64 or hex. `source`
//!   is accepted as Vault's (`platform`, `seal`, `all`); Tresor has no seal entropy source, so
//!   `seal` and `all` use the platform source (`seal` says so in a warning, as OpenBao does).
//! * `hash(/:algorithm)`: the digest of base64 input, as hex or base64: SHA-2 (224, 256, 384,
//!   512) and SHA-3 (256, 384, 512); SHA3-224 is not in aws-lc-rs and answers 400.
//!
//! Crypto: aws-lc-rs's CSPRNG and digests, as everywhere in Tresor.

use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::go_base64::{b64, b64_decode};
use crate::logical::{Operation::*, Response};
use aws_lc_rs::digest;
use serde_json::json;
use std::sync::Arc;

const MAX_BYTES: i64 = 128 * 1024;

/// `{prefix}random(/:source)(/:bytes)`.
pub fn random_paths<B: Send + Sync + 'static>(prefix: &str) -> Vec<Path<B>> {
    // One path segment is the byte count; two are the source and the byte count.
    vec![Path::new(&format!(
        r"{prefix}random(?:/(?P<source>[^/]+))??(?:/(?P<urlbytes>[^/]+))?"
    ))
    .field(
        "bytes",
        Field::int("The number of bytes (default 32)").default(32),
    )
    .field(
        "urlbytes",
        Field::string("The number of bytes, from the path"),
    )
    .field(
        "format",
        Field::string("base64 (default) or hex").default("base64"),
    )
    .field(
        "source",
        Field::string("platform (default), seal or all, from the path"),
    )
    .op(Update, random::<B>)
    .help("Generate random bytes.")]
}

/// `{prefix}hash(/:algorithm)`.
pub fn hash_paths<B: Send + Sync + 'static>(prefix: &str) -> Vec<Path<B>> {
    vec![Path::new(&format!(r"{prefix}hash(?:/(?P<urlalgorithm>[^/]+))?"))
        .field("input", Field::string("Base64 input"))
        .field(
            "algorithm",
            Field::string(
                "sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-256, sha3-384, sha3-512",
            )
            .default("sha2-256"),
        )
        .field(
            "urlalgorithm",
            Field::string("The algorithm, from the path"),
        )
        .field(
            "format",
            Field::string("hex (default) or base64").default("hex"),
        )
        .op(Update, hash::<B>)
        .help("Hash input data.")]
}

async fn random<B>(_b: Arc<B>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let mut bytes = f.int("bytes");
    let url_bytes = f.str("urlbytes");
    if !url_bytes.is_empty() {
        bytes = url_bytes.parse().map_err(|_| {
            Error::bad(format!(
                "error parsing url-set byte count: strconv.Atoi: parsing \"{url_bytes}\": invalid syntax"
            ))
        })?;
    }
    if bytes < 1 {
        return Err(Error::bad("'bytes' cannot be less than 1"));
    }
    if bytes > MAX_BYTES {
        return Err(Error::bad(format!(
            "'bytes' should be less than {MAX_BYTES}"
        )));
    }
    let format = f.str("format");
    if format != "base64" && format != "hex" {
        return Err(Error::bad(format!(
            "unsupported encoding format \"{format}\"; must be \"hex\" or \"base64\""
        )));
    }
    // The source comes from the path only (Vault replaces a body value with the path's).
    let source = c
        .path
        .split_once("random/")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(s, _)| s)
        .unwrap_or("platform");
    let mut warnings = vec![];
    match source {
        "platform" | "" | "all" => {}
        "seal" => warnings.push(
            "no seal/entropy augmentation available, using platform entropy source".to_string(),
        ),
        other => {
            return Err(Error::bad(format!(
            "unsupported entropy source \"{other}\"; must be \"platform\" or \"seal\", or \"all\""
        )))
        }
    }
    let mut data = zeroize::Zeroizing::new(vec![0u8; bytes as usize]);
    aws_lc_rs::rand::fill(&mut data)
        .map_err(|_| Error::internal("system randomness unavailable"))?;
    let encoded = if format == "hex" {
        hex::encode(&*data)
    } else {
        b64(&data)
    };
    let mut resp = Response::data(json!({ "random_bytes": encoded }));
    resp.warnings = warnings;
    Ok(resp)
}

async fn hash<B>(_b: Arc<B>, c: Call) -> Result<Response> {
    let f = &c.fields;
    if !f.has("input") {
        return Err(Error::bad("input missing"));
    }
    let algorithm = match f.str("urlalgorithm") {
        "" => f.str("algorithm"),
        a => a,
    };
    let input = b64_decode(f.str("input"))
        .map_err(|e| Error::bad(format!("unable to decode input as base64: {e}")))?;
    let format = f.str("format");
    if format != "hex" && format != "base64" {
        return Err(Error::bad(format!(
            "unsupported encoding format {format}; must be \"hex\" or \"base64\""
        )));
    }
    let alg = match algorithm {
        "sha2-224" => &digest::SHA224,
        "sha2-256" => &digest::SHA256,
        "sha2-384" => &digest::SHA384,
        "sha2-512" => &digest::SHA512,
        "sha3-256" => &digest::SHA3_256,
        "sha3-384" => &digest::SHA3_384,
        "sha3-512" => &digest::SHA3_512,
        // Vault's, but not in aws-lc-rs.
        "sha3-224" => {
            return Err(Error::bad(
                "unsupported hash algorithm sha3-224: not available in Tresor's crypto library (aws-lc-rs)",
            ))
        }
        _ => return Err(Error::bad(format!("unsupported algorithm {algorithm}"))),
    };
    let sum = digest::digest(alg, &input);
    let sum = if format == "hex" {
        hex::encode(sum.as_ref())
    } else {
        b64(sum.as_ref())
    };
    Ok(Response::data(json!({ "sum": sum })))
}

//! `hash(/:algorithm)`: the digest of base64 input, as hex or base64. Digests are aws-lc-rs's:
//! SHA-2 (224/256/384/512) and SHA-3 (256/384/512); SHA3-224 is not in aws-lc-rs and answers
//! 400 (see [`super::policy`] for why aws-lc-rs).

use super::encoding::{b64, b64_decode};
use super::policy::HashAlg;
use super::Transit;
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new(r"hash(?:/(?P<urlalgorithm>[^/]+))?")
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
        .op(Update, hash)
        .help("Hash input data.")]
}

async fn hash(_t: Arc<Transit>, c: Call) -> Result<Response> {
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
    let alg = match HashAlg::parse(algorithm) {
        Some(h) if algorithm.starts_with("sha2-") || algorithm.starts_with("sha3-") => h,
        _ => return Err(Error::bad(format!("unsupported algorithm {algorithm}"))),
    };
    let sum = alg.hash(&input)?;
    let sum = if format == "hex" {
        hex::encode(sum)
    } else {
        b64(&sum)
    };
    Ok(Response::data(json!({ "sum": sum })))
}

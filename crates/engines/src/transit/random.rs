//! `random(/:source)(/:bytes)`: random bytes (1 to 128 KiB, 32 by default) as base64 or hex.
//! `source` is accepted as Vault's (`platform`, `seal`, `all`); Tresor has no seal entropy
//! source, so `seal` and `all` use the platform source (`seal` says so in a warning, as
//! OpenBao does).
//!
//! Crypto: aws-lc-rs's CSPRNG (see [`super::policy`] for why aws-lc-rs).

use super::encoding::b64;
use super::policy::random;
use super::Transit;
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

const MAX_BYTES: i64 = 128 * 1024;

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![
        // One path segment is the byte count; two are the source and the byte count.
        Path::new(r"random(?:/(?P<source>[^/]+))??(?:/(?P<urlbytes>[^/]+))?")
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
            .op(Update, generate)
            .help("Generate random bytes."),
    ]
}

async fn generate(_t: Arc<Transit>, c: Call) -> Result<Response> {
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
        .strip_prefix("random/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(s, _)| s)
        .unwrap_or("platform");
    let mut warnings = vec![];
    match source {
        "platform" | "" => {}
        "all" => {}
        "seal" => warnings.push(
            "no seal/entropy augmentation available, using platform entropy source".to_string(),
        ),
        other => {
            return Err(Error::bad(format!(
            "unsupported entropy source \"{other}\"; must be \"platform\" or \"seal\", or \"all\""
        )))
        }
    }
    let data = random(bytes as usize)?;
    let encoded = if format == "hex" {
        hex::encode(&*data)
    } else {
        b64(&data)
    };
    let mut resp = Response::data(json!({ "random_bytes": encoded }));
    resp.warnings = warnings;
    Ok(resp)
}

//! Base64 as Go's `encoding/base64` speaks it (what Vault clients send and expect): standard
//! with padding required but non-zero trailing bits tolerated, newlines ignored, and Go's error
//! text (`illegal base64 data at input byte N`), which Vault passes through to clients.
//! Unpadded URL-safe for JWS. The base64 crate does the work.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine};

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits tolerated.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Go's `base64.RawURLEncoding` (JWS marshaling), lenient on trailing bits like Go.
const GO_RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Standard base64 with padding.
pub fn b64(data: &[u8]) -> String {
    GO_STD.encode(data)
}

/// Unpadded URL-safe base64 (JWS).
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes standard base64 as Go does (newlines ignored); the error is Go's text,
/// `illegal base64 data at input byte N`, which Vault passes through to clients.
pub fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    decode_with(&GO_STD, s)
}

/// Decodes unpadded URL-safe base64.
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, String> {
    decode_with(&GO_RAW_URL, s)
}

fn decode_with(engine: &GeneralPurpose, s: &str) -> Result<Vec<u8>, String> {
    let owned;
    let input = if s.contains(['\r', '\n']) {
        owned = s.replace(['\r', '\n'], "");
        owned.as_str()
    } else {
        s
    };
    engine.decode(input).map_err(|e| {
        let at = match e {
            DecodeError::InvalidByte(i, _) | DecodeError::InvalidLastSymbol(i, _) => i,
            DecodeError::InvalidLength(n) => n,
            DecodeError::InvalidPadding => input.find('=').unwrap_or(input.len()),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

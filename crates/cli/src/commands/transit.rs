//! `tresor transit import` and `tresor transit import-version`: bring your own key into a
//! transit mount, wrapped on this side as Vault's CLI wraps it.
//!
//! `import PATH KEY [K=V...]`: PATH is `<mount>/keys/<name>`, KEY the base64 key material
//! (or `@file` holding it): the raw key for symmetric and HMAC keys, PKCS#8 DER for private
//! asymmetric keys. The CLI reads the mount's RSA wrapping key (`<mount>/wrapping_key`),
//! makes an ephemeral AES-256 key, wraps the material with it (AES key wrap with padding,
//! RFC 5649), encrypts the ephemeral key with RSA-OAEP (SHA-256, empty label) and sends
//! `base64(oaep || kwp)` as `ciphertext` to `<PATH>/import` (or `/import_version`), with the
//! remaining `K=V` pairs (e.g. `type=rsa-2048`).
//!
//! Crypto is aws-lc-rs's, as in the server's transit engine (`engines/transit/import.rs`):
//! `rsa::OaepPublicEncryptingKey` and `key_wrap::KeyEncryptionKey::wrap_with_padding`.
//!
//! Output and exit codes are Vault's: progress lines on stdout, then `Success!`; 1 for a
//! usage error (arguments, key material), 2 for a local failure (client, crypto), 3 when
//! the server refuses (wrapping key or import call).

use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use clap::{Args, Subcommand};
use serde_json::Value;
use tresor_core::go_base64::{b64, b64_decode};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::commands::Ctx;
use crate::error::{CliError, CliResult};
use crate::input::parse_kv_args;
use crate::output::emit;

/// `tresor transit` subcommands.
#[derive(Subcommand, Debug)]
pub enum TransitCommand {
    /// Import a key into the Transit secrets engines.
    #[command(
        override_usage = "tresor transit import PATH KEY [options...]",
        long_about = "Using the Transit key wrapping system, imports key material from the \
        base64 encoded KEY (either directly on the CLI or via @path notation), into a new key \
        whose API path is PATH (<mount>/keys/<name>). To import a new version into an existing \
        key, use import-version. The remaining options after KEY (key=value style) are passed \
        on to the Transit create key endpoint (e.g. type=rsa-2048).\n\n  \
        $ tresor transit import transit/keys/newly-imported @path/to/key type=rsa-2048"
    )]
    Import(ImportArgs),
    /// Import key material into a new key version in the Transit secrets engines.
    #[command(
        name = "import-version",
        override_usage = "tresor transit import-version PATH KEY [...]",
        long_about = "Using the Transit key wrapping system, imports key material from the \
        base64 encoded KEY (either directly on the CLI or via @path notation), as a new version \
        of the existing key whose API path is PATH (<mount>/keys/<name>). To import a new \
        Transit key, use the import command instead. The remaining options after KEY \
        (key=value style) are passed on to the import_version endpoint (e.g. version=2 to \
        complete a public-key-only version with its private key)."
    )]
    ImportVersion(ImportArgs),
}

/// Arguments of `transit import` / `import-version`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// PATH (<mount>/keys/<name>), KEY (base64 or @file), then key=value options
    #[arg(value_name = "PATH KEY [K=V]")]
    pub args: Vec<String>,
}

/// `transit import`'s own exit codes (Vault's `command/transit_import_key.go`, which differ
/// from the CLI's usual 1/2): a local (computation) failure, and a refused API call.
const IMPORT_EXIT_LOCAL: i32 = 2;
const IMPORT_EXIT_REFUSED: i32 = 3;

fn fail(code: i32, message: String) -> CliError {
    CliError {
        code,
        message,
        status: None,
    }
}

/// Runs a `transit` subcommand.
pub fn run(ctx: &Ctx, cmd: TransitCommand) -> CliResult {
    match cmd {
        TransitCommand::Import(a) => import(ctx, "import", &a.args),
        TransitCommand::ImportVersion(a) => import(ctx, "import_version", &a.args),
    }
}

/// Splits `<mount>/keys/<name>` into the mount and the import endpoint.
pub fn import_paths(path: &str, operation: &str) -> Result<(String, String), String> {
    let bad = || "expected transit path and key name in the form :path:/keys/:name:".to_string();
    let (mount, name) = path.rsplit_once("/keys/").ok_or_else(bad)?;
    if name.contains('/') {
        return Err(bad());
    }
    Ok((
        mount.to_string(),
        format!("{mount}/keys/{name}/{operation}"),
    ))
}

fn import(ctx: &Ctx, operation: &str, args: &[String]) -> CliResult {
    if args.len() < 2 {
        return Err(CliError::other(format!(
            "Incorrect argument count (expected 2+, got {}). Wanted PATH to import into and KEY material.",
            args.len()
        )));
    }
    let client = ctx
        .client()
        .map_err(|e| fail(IMPORT_EXIT_LOCAL, e.message))?;
    let (mount, api_path) = import_paths(&args[0], operation).map_err(CliError::other)?;
    let mut material = args[1].clone();
    if let Some(file) = material.strip_prefix('@') {
        material = std::fs::read_to_string(file)
            .map_err(|e| CliError::other(format!("error reading key material file: {e}")))?;
    }
    let key =
        Zeroizing::new(b64_decode(&material).map_err(|e| {
            CliError::other(format!("error base64 decoding source key material: {e}"))
        })?);
    drop(Zeroizing::new(material));

    emit("Retrieving wrapping key.\n");
    let wrapping = fetch_wrapping_key(&client, &mount).map_err(|e| {
        fail(
            IMPORT_EXIT_REFUSED,
            format!("failed to fetch wrapping key: {e}"),
        )
    })?;
    emit("Wrapping source key with ephemeral key.\n");
    let ciphertext = wrap(&wrapping, &key).map_err(|e| fail(IMPORT_EXIT_LOCAL, e))?;
    emit("Encrypting ephemeral key with wrapping key.\n");

    let mut data = parse_kv_args(&args[2..], &mut std::io::stdin())
        .map_err(|e| CliError::other(format!("Failed to parse extra K=V data: {}", e.message)))?;
    data.insert("ciphertext".into(), Value::String(ciphertext));
    emit("Submitting wrapped key.\n");
    client.put(&api_path, &Value::Object(data)).map_err(|e| {
        fail(
            IMPORT_EXIT_REFUSED,
            format!("failed to call import:{}", e.message),
        )
    })?;
    emit("Success!\n");
    Ok(0)
}

/// Reads `<mount>/wrapping_key` and parses its PEM public key.
fn fetch_wrapping_key(client: &Client, mount: &str) -> Result<OaepPublicEncryptingKey, String> {
    let resp = client
        .read(&format!("{mount}/wrapping_key"), &[])
        .map_err(|e| format!("error fetching wrapping key: {}", e.message))?
        .ok_or_else(|| format!("no mount found at {mount}"))?;
    let pem = resp
        .get("data")
        .and_then(|d| d.get("public_key"))
        .and_then(Value::as_str)
        .ok_or("could not find wrapping key")?;
    let der = pem_body(pem).ok_or("error parsing wrapping key: no PEM block")?;
    let key = PublicEncryptingKey::from_der(&der)
        .map_err(|_| "error parsing wrapping key: not an RSA public key".to_string())?;
    OaepPublicEncryptingKey::new(key)
        .map_err(|_| "error parsing wrapping key: not an RSA public key".to_string())
}

/// The DER inside the first PEM block of `pem`.
/// The first PEM block's contents (x509-parser's reader, as the pki commands use).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .next()?
        .ok()
        .map(|p| p.contents)
}

/// `base64(RSA-OAEP-SHA256(ephemeral) || AES-KWP(ephemeral, key))`, as Vault's CLI sends it.
pub fn wrap(oaep: &OaepPublicEncryptingKey, key: &[u8]) -> Result<String, String> {
    let mut ephemeral = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut ephemeral[..])
        .map_err(|_| "failed to generate ephemeral key".to_string())?;
    let kek = KeyEncryptionKey::new(&AES_256, &ephemeral[..])
        .map_err(|_| "failure building key wrapping key".to_string())?;
    let mut wrapped_key = vec![0u8; key.len() + 16];
    let n = kek
        .wrap_with_padding(key, &mut wrapped_key)
        .map_err(|_| "failure wrapping source key".to_string())?
        .len();
    wrapped_key.truncate(n);
    let mut wrapped_ephemeral = vec![0u8; oaep.ciphertext_size()];
    let n = oaep
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            &ephemeral[..],
            &mut wrapped_ephemeral,
            None,
        )
        .map_err(|_| "failure encrypting wrapped key".to_string())?
        .len();
    wrapped_ephemeral.truncate(n);
    wrapped_ephemeral.extend_from_slice(&wrapped_key);
    Ok(b64(&wrapped_ephemeral))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            import_paths("transit/keys/k", "import").unwrap(),
            ("transit".into(), "transit/keys/k/import".into())
        );
        assert_eq!(
            import_paths("a/b/keys/k", "import_version").unwrap().1,
            "a/b/keys/k/import_version"
        );
        assert!(import_paths("transit/k", "import").is_err());
        assert!(import_paths("transit/keys/k/x", "import").is_err());
    }
}

//! `tresor pki ...`: OpenBao's PKI helper commands, run against the PKI engine's API.
//!
//! * `verify-sign ISSUER ISSUED`: five checks between two issuers (`<mount>/issuer/<ref>`):
//!   `subject_match`, `key_id_match`, `signature_match`, `path_match` (the issuer is in the
//!   issued one's `ca_chain`) and `trust_match` (trusting the issuer is enough to trust the
//!   issued certificate).
//! * `list-intermediates PARENT [CHILD...]`: which issuers (of the given issuer paths or
//!   mounts, else of every PKI mount) PARENT issued, under the selected match criteria.
//! * `issue PARENT CHILD_MOUNT K=V...`: a new intermediate on CHILD_MOUNT: a CSR generated
//!   there, signed by PARENT (`sign-intermediate`), imported back with its issuer (and
//!   named with `-issuer_name`); on a failure midway, what was done and how to go on or undo.
//! * `reissue PARENT TEMPLATE CHILD_MOUNT [K=V...]`: `issue` with the parameters read from
//!   the TEMPLATE issuer's certificate, overridden by the K=V pairs.
//! * `health-check MOUNT`: see [`super::pki_health`].
//!
//! Output, messages and exit codes are OpenBao's (`command/pki_*.go`): usage errors and
//! failed calls exit 1 (these commands do not use the exit code 2 of the others).
//!
//! Certificates are parsed by x509-parser; signatures are checked by its `verify-aws`
//! feature, i.e. aws-lc-rs, the crypto the rest of Tresor uses. Go's `x509.Verify`, behind
//! `trust_match`, is approximated: the issued certificate is the issuer itself, or it is
//! signed by it (a CA allowed to sign certificates), names the issuer's subject as its
//! issuer, both are within their validity period, and its extended key usage (if any)
//! allows server authentication (Go's default when verifying).

use std::collections::BTreeMap;

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Map, Value};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::client::Client;
use crate::commands::{pki_health, sanitize_path, Ctx};
use crate::error::{CliError, CliResult};
use crate::input::parse_kv_args;
use crate::output::{emit, table, Format};

/// `tresor pki` subcommands.
#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Check a PKI Secrets Engine mount's health and operational status
    #[command(
        name = "health-check",
        override_usage = "tresor pki health-check [options] MOUNT",
        long_about = "Reports status of the specified mount against best practices and pending \
        failures. This is an informative command and not all recommendations will apply to all \
        mounts; consider using a configuration file to tune the executed health checks.\n\n  \
        $ tresor pki health-check pki-root\n  \
        $ tresor pki health-check -health-config=mycorp-root.json /pki-root\n\n\
        Return codes indicate failure type:\n\n  \
        0 - Everything is good.\n  \
        1 - Usage error (check CLI parameters).\n  \
        2 - Informational message from a health check.\n  \
        3 - Warning message from a health check.\n  \
        4 - Critical message from a health check.\n  \
        5 - A version mismatch between health check and the server occurred,\n      \
        preventing one or more health checks from being run.\n  \
        6 - A permission denied message was returned from the server for\n      \
        one or more health checks.\n\n\
        Checks run: ca_validity_period, crl_validity_period, root_issued_leaves, \
        role_allows_localhost, role_allows_glob_wildcards, role_no_store_false, audit_visibility, \
        allow_if_modified_since, enable_auto_tidy, tidy_last_run, too_many_certs, \
        enable_acme_issuance, allow_acme_headers."
    )]
    HealthCheck(pki_health::HealthCheckArgs),
    /// Given a parent certificate and a list of generation parameters, creates an issuer on a
    /// specified mount
    #[command(
        override_usage = "tresor pki issue [options] PARENT CHILD_MOUNT K=V...",
        long_about = "PARENT is the fully qualified path of the Certificate Authority which will \
        issue the new intermediate certificate (<mount>/issuer/<ref>).\n\nCHILD_MOUNT is the path \
        of the mount where the new issuer is saved.\n\nThe K=V options are the superset of the \
        options passed to the generate/intermediate and sign-intermediate endpoints. At least \
        one option must be set.\n\nThis command creates an intermediate certificate authority \
        certificate signed by the parent in the CHILD_MOUNT."
    )]
    Issue(IssueArgs),
    /// Determine which of a list of certificates, were issued by a given parent certificate
    #[command(
        name = "list-intermediates",
        override_usage = "tresor pki list-intermediates [options] PARENT [CHILD] [CHILD] ...",
        long_about = "Lists the set of intermediate CAs issued by this parent issuer.\n\nPARENT is \
        the certificate that might be the issuer that everything should be verified against.\n\n\
        CHILD is an optional list of paths to certificates to be compared to the PARENT, or pki \
        mounts to look for certificates on. If CHILD is omitted entirely, the list will be \
        constructed from all accessible pki mounts.\n\nThis returns a list of issuing \
        certificates and whether they are a match. By default, the type of match required is \
        whether the PARENT has the expected subject, key_id, and could have (directly) signed \
        this issuer. The match criteria can be updated by changing the corresponding flag."
    )]
    ListIntermediates(ListIntermediatesArgs),
    /// Uses a parent certificate and a template certificate to create a new issuer on a child
    /// mount
    #[command(
        override_usage = "tresor pki reissue [options] PARENT TEMPLATE CHILD_MOUNT [K=V...]",
        long_about = "Creates a new issuer on CHILD_MOUNT signed by PARENT, with the parameters \
        (subject, names, key type and size, lifetime, ...) of the TEMPLATE issuer's certificate; \
        K=V options override them."
    )]
    Reissue(ReissueArgs),
    /// Check whether one certificate validates another specified certificate
    #[command(
        name = "verify-sign",
        override_usage = "tresor pki verify-sign POSSIBLE-ISSUER POSSIBLE-ISSUED",
        long_about = "Verifies whether the listed issuer has signed the listed issued \
        certificate.\n\nPOSSIBLE-ISSUER and POSSIBLE-ISSUED are the full paths of issuers, for \
        instance: 'mount1/issuer/issuerName'.\n\nReturns five fields of information:\n\n  \
        - signature_match: was the key of the issuer used to sign the issued.\n  \
        - path_match: the possible issuer appears in the valid certificate chain of the issued.\n  \
        - key_id_match: does the key-id of the issuer match the key_id of the subject.\n  \
        - subject_match: does the subject name of the issuer match the issuer subject of the issued.\n  \
        - trust_match: if someone trusted the parent issuer, is the chain provided sufficient \
        to trust the child issued."
    )]
    VerifySign(VerifySignArgs),
}

/// Flags of `pki issue`.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// "existing" to use an existing key, "internal" to generate a new key, or "kms" to link
    /// to an external key
    #[arg(long = "type", default_value = "internal", value_name = "TYPE",
          value_parser = ["internal", "existing", "kms"])]
    pub key_type: String,
    /// If present, the newly created issuer will be given this name
    #[arg(long = "issuer_name", default_value = "", value_name = "NAME")]
    pub issuer_name: String,
    /// PARENT CHILD_MOUNT K=V...
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Flags of `pki reissue`.
#[derive(Args, Debug)]
pub struct ReissueArgs {
    /// "existing" to reuse the template's key, "internal" to generate a new key, or "kms"
    #[arg(long = "type", default_value = "internal", value_name = "TYPE",
          value_parser = ["internal", "existing", "kms"])]
    pub key_type: String,
    /// If present, the newly created issuer will be given this name
    #[arg(long = "issuer_name", default_value = "", value_name = "NAME")]
    pub issuer_name: String,
    /// PARENT TEMPLATE CHILD_MOUNT [K=V...]
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Flags of `pki list-intermediates`.
#[derive(Args, Debug)]
pub struct ListIntermediatesArgs {
    /// Whether the subject name of the potential parent cert matches the issuer name of the
    /// child cert
    #[arg(long = "subject_match", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true", action = ArgAction::Set)]
    pub subject_match: bool,
    /// Whether the subject key id (SKID) of the potential parent cert matches the authority key
    /// id (AKID) of the child cert
    #[arg(long = "key_id_match", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true", action = ArgAction::Set)]
    pub key_id_match: bool,
    /// Whether the potential parent appears in the certificate chain field (ca_chain) of the
    /// issued cert
    #[arg(long = "path_match", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub path_match: bool,
    /// Whether the key of the potential parent directly signed this issued certificate
    #[arg(long = "direct_sign", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true", action = ArgAction::Set)]
    pub direct_sign: bool,
    /// Whether trusting the parent certificate is sufficient to trust the child certificate
    #[arg(long = "indirect_sign", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true", action = ArgAction::Set)]
    pub indirect_sign: bool,
    /// Whether the list of issuers returned is referred to by name (when it exists) rather
    /// than by uuid
    #[arg(long = "use_names", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub use_names: bool,
    /// PARENT [CHILD...]
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Arguments of `pki verify-sign`.
#[derive(Args, Debug)]
pub struct VerifySignArgs {
    /// POSSIBLE-ISSUER POSSIBLE-ISSUED
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Runs a `pki` subcommand.
pub fn run(ctx: &Ctx, cmd: PkiCommand) -> CliResult {
    match cmd {
        PkiCommand::HealthCheck(a) => pki_health::run(ctx, a),
        PkiCommand::Issue(a) => issue(ctx, a),
        PkiCommand::ListIntermediates(a) => list_intermediates(ctx, a),
        PkiCommand::Reissue(a) => reissue(ctx, a),
        PkiCommand::VerifySign(a) => verify_sign(ctx, a),
    }
}

/// A failure of these commands: exit code 1, as OpenBao's.
fn err(message: impl Into<String>) -> CliError {
    CliError::other(message)
}

/// Prints `Options (-x) must be specified before positional arguments (first)` on stderr,
/// as OpenBao warns when a flag follows the positional arguments.
fn warn_late_flags(args: &[String]) {
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        eprintln!(
            "Options ({flag}) must be specified before positional arguments ({})",
            args[0]
        );
    }
}

/// An issuer read from `<mount>/issuer/<ref>`.
pub struct IssuerBundle {
    pub key_id: String,
    pub certificate: Vec<u8>,
    pub ca_chain: Vec<Vec<u8>>,
}

/// The DER of every certificate in a PEM text.
pub fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for item in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let item = item.map_err(|e| format!("unable to parse PEM: {e}"))?;
        if item.label == "CERTIFICATE" {
            out.push(item.contents);
        }
    }
    Ok(out)
}

/// The first certificate of a PEM text (Go's `ParsePEMCert`).
pub fn pem_cert(pem: &str) -> Result<Vec<u8>, String> {
    let der = pem_certs(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| "unable to parse PEM block: no certificate".to_string())?;
    X509Certificate::from_der(&der).map_err(|e| format!("unable to parse certificate: {e}"))?;
    Ok(der)
}

/// Parses DER known to be a certificate.
pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).expect("checked when read").1
}

/// A string field of a response's data, required non-empty.
fn require_str(resp: Option<&Value>, field: &str) -> Result<String, String> {
    let data = resp
        .and_then(|r| r.get("data"))
        .filter(|d| d.is_object())
        .ok_or_else(|| format!("nil response received, {field} field unavailable"))?;
    match data.get(field) {
        None => Err(format!("response did not contain field: {field}")),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(v) => Err(format!(
            "field {field} value was blank or not a string: {}",
            crate::output::format_value(v)
        )),
    }
}

/// Reads an issuer and parses its certificate and chain (OpenBao's `readIssuer`).
pub fn read_issuer(client: &Client, path: &str) -> Result<IssuerBundle, String> {
    let resp = client.read(path, &[]).map_err(|e| e.message)?;
    let pem = require_str(resp.as_ref(), "certificate")?;
    let certificate =
        pem_cert(&pem).map_err(|e| format!("unable to parse issuer {path}'s certificate: {e}"))?;
    let chain = resp
        .as_ref()
        .and_then(|r| r.get("data"))
        .and_then(|d| d.get("ca_chain"))
        .ok_or_else(|| {
            format!("unable to parse issuer {path}'s CA chain: response did not contain field: ca_chain")
        })?;
    let mut ca_chain = Vec::new();
    for item in chain.as_array().into_iter().flatten() {
        let pem = item.as_str().unwrap_or("").trim();
        if pem.is_empty() {
            continue;
        }
        ca_chain.push(pem_cert(pem)?);
    }
    let key_id = resp
        .as_ref()
        .and_then(|r| r.get("data"))
        .and_then(|d| d.get("key_id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(IssuerBundle {
        key_id,
        certificate,
        ca_chain,
    })
}

fn subject_key_id<'a>(c: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
}

fn authority_key_id<'a>(c: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
}

/// Go's `CheckSignatureFrom`: the parent may sign certificates (a CA, if it states basic
/// constraints or is v3; key usage allowing certificate signing, if stated) and its key
/// verifies the child's signature.
pub fn signed_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    let bc = parent.basic_constraints().ok().flatten();
    let is_v3 = parent.version().0 >= 2;
    match bc {
        Some(b) if !b.value.ca => return false,
        None if is_v3 => return false,
        _ => {}
    }
    if let Ok(Some(ku)) = parent.key_usage() {
        if !ku.value.key_cert_sign() {
            return false;
        }
    }
    child.verify_signature(Some(parent.public_key())).is_ok()
}

/// The five checks between an issuer and the issuer at `issued_path` (OpenBao's
/// `verifySignBetween`), by name.
pub fn verify_sign_between(
    client: &Client,
    issuer: &IssuerBundle,
    issued_path: &str,
) -> Result<BTreeMap<&'static str, bool>, String> {
    let issued = read_issuer(client, issued_path)
        .map_err(|e| format!("error: unable to fetch issuer {issued_path}: {e}"))?;
    Ok(compare(issuer, &issued))
}

/// The five checks between two issuers.
pub fn compare(issuer: &IssuerBundle, issued: &IssuerBundle) -> BTreeMap<&'static str, bool> {
    let parent = parse(&issuer.certificate);
    let child = parse(&issued.certificate);
    let subject_match = parent.subject().as_raw() == child.issuer().as_raw();
    let signature_match = signed_by(&child, &parent);
    let path_match = issued.ca_chain.iter().any(|c| c == &issuer.certificate);
    let key_id_match = subject_key_id(&parent) == authority_key_id(&child);
    let eku_ok = match child.extended_key_usage() {
        Ok(Some(e)) => e.value.any || e.value.server_auth,
        _ => true,
    };
    let trust_match = issued.certificate == issuer.certificate
        || (subject_match
            && signature_match
            && child.validity().is_valid()
            && parent.validity().is_valid()
            && eku_ok);
    BTreeMap::from([
        ("key_id_match", key_id_match),
        ("path_match", path_match),
        ("signature_match", signature_match),
        ("subject_match", subject_match),
        ("trust_match", trust_match),
    ])
}

/// Prints a map of results as these commands do: a two-column table, or the map as JSON or
/// YAML (`yaml.Marshal` then a line break, so YAML ends with a blank line).
fn output_results(ctx: &Ctx, header: [&str; 2], results: &BTreeMap<String, bool>, preamble: &str) {
    match ctx.out.format {
        Format::Json | Format::Yaml => {
            let m: Map<String, Value> = results
                .iter()
                .map(|(k, v)| (k.clone(), Value::Bool(*v)))
                .collect();
            ctx.out.structured_pki(&Value::Object(m));
        }
        Format::Table | Format::Raw => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect();
            emit(&format!("{preamble}{}\n\n", table(&header, &rows)));
        }
    }
}

fn verify_sign(ctx: &Ctx, a: VerifySignArgs) -> CliResult {
    let args = &a.args;
    match args.len() {
        0 => {
            return Err(err(
                "Not enough arguments (expected potential issuer and issued, got nothing)",
            ))
        }
        1 => {
            return Err(err(
                "Not enough arguments (expected both potential issuer and issued, got only one)",
            ))
        }
        2 => {}
        n => {
            eprintln!(
                "Too many arguments (expected only potential issuer and issued, got {n} arguments)"
            );
            warn_late_flags(args);
            return Ok(1);
        }
    }
    let issuer_path = sanitize_path(&args[0]);
    let issued_path = sanitize_path(&args[1]);
    let client = ctx
        .client()
        .map_err(|e| err(format!("Failed to obtain client: {}", e.message)))?;
    let issuer = read_issuer(&client, &issuer_path)
        .map_err(|e| err(format!("Failed to read issuer: {issuer_path}: {e}")))?;
    let results = verify_sign_between(&client, &issuer, &issued_path)
        .map_err(|e| err(format!("Failed to run verification: {e}")))?;
    let results: BTreeMap<String, bool> = results
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    output_results(
        ctx,
        ["field", "value"],
        &results,
        &format!("issuer:{issuer_path}\nissued:{issued_path}\n\n"),
    );
    Ok(0)
}

/// The issuer paths of a mount (`<mount>/issuer/<id or name>`).
fn issuers_of_mount(client: &Client, mount: &str, use_names: bool) -> Result<Vec<String>, String> {
    let mount = sanitize_path(mount);
    let resp = client.list(&format!("{mount}/issuers")).map_err(|e| {
        format!(
            "failed to read list of issuers within mount {mount}: {}",
            e.message
        )
    })?;
    let mut out = Vec::new();
    for id in crate::output::list_keys(&resp.unwrap_or(Value::Null)) {
        let mut identifier = id.clone();
        if use_names {
            let path = format!("{mount}/issuer/{id}");
            match client.read(&path, &[]) {
                Ok(Some(r)) => {
                    let name = r["data"]["issuer_name"].as_str().unwrap_or("");
                    if !name.is_empty() {
                        identifier = name.to_string();
                    }
                }
                _ => eprintln!("Unable to Fetch Issuer to Recover Name at: {path}"),
            }
        }
        out.push(format!("{mount}/issuer/{identifier}"));
    }
    Ok(out)
}

fn list_intermediates(ctx: &Ctx, a: ListIntermediatesArgs) -> CliResult {
    let args = &a.args;
    if args.is_empty() {
        return Err(err(
            "Not enough arguments (expected potential parent, got nothing)",
        ));
    }
    if args.len() > 2 {
        warn_late_flags(args);
    }
    let client = ctx
        .client()
        .map_err(|e| err(format!("Failed to obtain client: {}", e.message)))?;
    let issuer_path = sanitize_path(&args[0]);
    let mut issued = Vec::new();
    if args.len() > 1 {
        for arg in &args[1..] {
            let clean = sanitize_path(arg);
            if clean.contains("/issuer/")
                || clean.contains("/certs/")
                || clean.contains("/revoked/")
            {
                issued.push(clean);
            } else {
                issued.extend(issuers_of_mount(&client, arg, a.use_names).map_err(err)?);
            }
        }
    } else {
        let mounts = client.read("sys/mounts", &[]).map_err(|e| {
            err(format!(
                "Failed to Read List of Mounts With Potential Issuers: {}",
                e.message
            ))
        })?;
        let data = mounts
            .as_ref()
            .and_then(|m| m.get("data"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (path, entry) in data {
            if entry.get("type").and_then(Value::as_str) == Some("pki") {
                issued.extend(
                    issuers_of_mount(&client, &sanitize_path(&path), a.use_names).map_err(err)?,
                );
            }
        }
    }
    let constraints = [
        ("subject_match", a.subject_match),
        ("path_match", a.path_match),
        ("trust_match", a.indirect_sign),
        ("key_id_match", a.key_id_match),
        ("signature_match", a.direct_sign),
    ];
    let issuer = read_issuer(&client, &issuer_path).map_err(|e| {
        err(format!(
            "Failed to read parent issuer on path {issuer_path}: {e}"
        ))
    })?;
    let mut matches = BTreeMap::new();
    for child in issued {
        let path = sanitize_path(&child);
        if path.is_empty() {
            continue;
        }
        let results = verify_sign_between(&client, &issuer, &path)
            .map_err(|e| err(format!("Failed to run verification on path {path}: {e}")))?;
        let ok = constraints
            .iter()
            .all(|(k, required)| !required || results.get(k).copied().unwrap_or(false));
        matches.insert(path, ok);
    }
    output_results(ctx, ["intermediate", "match?"], &matches, "");
    Ok(0)
}

fn issue(ctx: &Ctx, a: IssueArgs) -> CliResult {
    if a.args.len() < 3 {
        return Err(err(
            "Not enough arguments expected parent issuer and child-mount location and some key_value argument",
        ));
    }
    let data = parse_kv_args(&a.args[2..], &mut std::io::stdin())
        .map_err(|e| err(format!("Failed to parse K=V data: {}", e.message)))?;
    let parent = sanitize_path(&a.args[0]);
    let child_mount = sanitize_path(&a.args[1]);
    pki_issue(
        ctx,
        &parent,
        &child_mount,
        &a.issuer_name,
        &a.key_type,
        data,
    )
}

fn reissue(ctx: &Ctx, a: ReissueArgs) -> CliResult {
    if a.args.len() < 3 {
        return Err(err(
            "Not enough arguments: expected parent issuer and child-mount location and some key_value argument",
        ));
    }
    let user_data = parse_kv_args(&a.args[3..], &mut std::io::stdin())
        .map_err(|e| err(format!("Failed to parse K=V data: {}", e.message)))?;
    let client = ctx
        .client()
        .map_err(|e| err(format!("Failed to obtain client: {}", e.message)))?;
    let parent = sanitize_path(&a.args[0]);
    let template_path = sanitize_path(&a.args[1]);
    let child_mount = sanitize_path(&a.args[2]);
    let template = read_issuer(&client, &template_path).map_err(|e| {
        err(format!(
            "Error fetching template certificate {template_path} : {e}"
        ))
    })?;
    let existing = a.key_type == "existing";
    if existing && template.key_id.is_empty() {
        return Err(err(format!(
            "Template issuer {template_path} did not have a key id field set in response which is required"
        )));
    }
    let key_ref = if existing {
        template.key_id.as_str()
    } else {
        ""
    };
    let template_data = template_parameters(&template.certificate, existing, key_ref);
    let data = update_template_with_data(template_data, user_data);
    pki_issue(
        ctx,
        &parent,
        &child_mount,
        &a.issuer_name,
        &a.key_type,
        data,
    )
}

/// OpenBao's `updateTemplateWithData`: the user's values over the template's; `not_after`
/// replaces the template's `ttl`, and a different `key_type` drops its `key_bits`.
pub fn update_template_with_data(
    mut template: Map<String, Value>,
    changes: Map<String, Value>,
) -> Map<String, Value> {
    if changes.contains_key("not_after") {
        template.remove("ttl");
    }
    if let Some(kt) = changes.get("key_type") {
        if template.get("key_type") != Some(kt) {
            template.remove("key_bits");
        }
    }
    template.extend(changes);
    template
}

/// Go's `time.Duration.String()` for whole seconds (`8760h0m0s`, `5m0s`, `30s`).
pub use tresor_core::util::go_duration_signed as go_duration;

/// The issuance parameters of a template certificate (OpenBao's `parseTemplateCertificate`).
pub fn template_parameters(der: &[u8], existing_key: bool, key_ref: &str) -> Map<String, Value> {
    let c = parse(der);
    let subject = c.subject();
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let by_oid = |arcs: &[u64]| {
        let oid = x509_parser::der_parser::oid::Oid::from(arcs).expect("valid OID");
        strings(&mut subject.iter_by_oid(&oid))
    };
    let cn = strings(&mut subject.iter_common_name())
        .pop()
        .unwrap_or_default();
    let (mut dns, mut emails, mut ips, mut uris) = (vec![], vec![], vec![], vec![]);
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::RFC822Name(e) => emails.push(e.to_string()),
                GeneralName::URI(u) => uris.push(u.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        ips.push(std::net::IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        ips.push(std::net::IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let exclude_cn = !cn.is_empty() && !emails.contains(&cn) && !dns.contains(&cn);
    let (sig_bits, pss) = signature_bits(&c);
    let max_path = match c.basic_constraints() {
        Ok(Some(b)) => b.value.path_len_constraint.map_or(-1, i64::from),
        _ => 0,
    };
    let permitted: Vec<String> = match c.name_constraints() {
        Ok(Some(nc)) => nc
            .value
            .permitted_subtrees
            .iter()
            .flatten()
            .filter_map(|s| match &s.base {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let validity = c.validity();
    let ttl = validity.not_after.timestamp() - validity.not_before.timestamp();
    let mut m = Map::new();
    m.insert("common_name".into(), json!(cn));
    m.insert(
        "alt_names".into(),
        json!(format!("{},{}", dns.join(","), emails.join(","))),
    );
    m.insert("ip_sans".into(), json!(ips.join(",")));
    m.insert("uri_sans".into(), json!(uris.join(",")));
    m.insert("signature_bits".into(), json!(sig_bits));
    m.insert("exclude_cn_from_sans".into(), json!(exclude_cn));
    m.insert(
        "ou".into(),
        json!(strings(&mut subject.iter_organizational_unit())),
    );
    m.insert(
        "organization".into(),
        json!(strings(&mut subject.iter_organization())),
    );
    m.insert(
        "country".into(),
        json!(strings(&mut subject.iter_country())),
    );
    m.insert(
        "locality".into(),
        json!(strings(&mut subject.iter_locality())),
    );
    m.insert(
        "province".into(),
        json!(strings(&mut subject.iter_state_or_province())),
    );
    m.insert("street_address".into(), json!(by_oid(&[2, 5, 4, 9])));
    m.insert("postal_code".into(), json!(by_oid(&[2, 5, 4, 17])));
    m.insert(
        "serial_number".into(),
        json!(by_oid(&[2, 5, 4, 5]).join("")),
    );
    m.insert("ttl".into(), json!(go_duration(ttl)));
    m.insert("max_path_length".into(), json!(max_path));
    m.insert("permitted_dns_domains".into(), json!(permitted.join(",")));
    m.insert("use_pss".into(), json!(pss));
    if existing_key {
        let skid = subject_key_id(&c).map(hex).unwrap_or_default();
        m.insert("skid".into(), json!(skid));
        m.insert("key_ref".into(), json!(key_ref));
    } else {
        let (kt, bits) = key_type_and_bits(&c);
        m.insert("key_type".into(), json!(kt));
        m.insert("key_bits".into(), json!(bits));
    }
    m
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// OpenBao's `findSignatureBits` and `isPSS` for a certificate's signature algorithm.
fn signature_bits(c: &X509Certificate<'_>) -> (i64, bool) {
    let oid = c.signature_algorithm.algorithm.to_id_string();
    let hash_bits = |hash: &str| match hash {
        "2.16.840.1.101.3.4.2.1" => 256,
        "2.16.840.1.101.3.4.2.2" => 384,
        "2.16.840.1.101.3.4.2.3" => 512,
        _ => -1,
    };
    match oid.as_str() {
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" | "2.16.840.1.101.3.4.3.2" => (256, false),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => (384, false),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => (512, false),
        "1.3.101.112" => (0, false),
        "1.2.840.113549.1.1.10" => {
            use x509_parser::signature_algorithm::SignatureAlgorithm;
            match SignatureAlgorithm::try_from(&c.signature_algorithm) {
                Ok(SignatureAlgorithm::RSASSA_PSS(p)) => {
                    let bits = hash_bits(&p.hash_algorithm_oid().to_id_string());
                    (bits, bits > 0)
                }
                _ => (-1, false),
            }
        }
        _ => (-1, false),
    }
}

/// OpenBao's `getKeyType` and `findBitLength` for a certificate's public key.
fn key_type_and_bits(c: &X509Certificate<'_>) -> (&'static str, i64) {
    let spki = c.public_key();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(r)) => r.key_size() as i64,
                _ => 0,
            };
            ("rsa", bits)
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let bits = match curve.as_str() {
                "1.3.132.0.33" => 224,
                "1.2.840.10045.3.1.7" => 256,
                "1.3.132.0.34" => 384,
                "1.3.132.0.35" => 521,
                _ => 0,
            };
            ("ec", bits)
        }
        "1.3.101.112" => ("ed25519", 0),
        _ => ("", 0),
    }
}

/// What `pki issue` did before a failure, to tell the user how to go on or undo it
/// (OpenBao's `inCaseOfFailure`).
#[derive(Default)]
struct Progress {
    csr_generated: bool,
    csr_signed: bool,
    cert_imported: bool,
    intermediate_mount: String,
    created_key_id: String,
    csr: String,
    ca_chain: String,
    parent_mount: String,
    parent_issuer: String,
    cert_serial_number: String,
    cert_issuer_id: String,
    new_name: String,
}

impl Progress {
    fn failure_message(&self) -> String {
        let mut m = String::from("A failure has occurred");
        if self.csr_generated {
            m += &format!(
                " after \n a Certificate Signing Request was successfully generated on mount {}",
                self.intermediate_mount
            );
        }
        if self.csr_signed {
            m += &format!(
                " and after \n that Certificate Signing Request was successfully signed by mount {}",
                self.parent_mount
            );
        }
        if self.cert_imported {
            m += &format!(
                " and after \n the signed certificate was reimported into mount {} , with issuerID {}",
                self.intermediate_mount, self.cert_issuer_id
            );
        }
        if self.csr_generated {
            m += &format!("\n\nTO CONTINUE: \n{}", self.to_continue());
        }
        if self.csr_generated && !self.cert_imported {
            m += &format!("\n\nTO ABORT: \n{}", self.to_abort());
        }
        m.push('\n');
        m
    }

    fn to_continue(&self) -> String {
        let mut m = String::new();
        if !self.csr_signed {
            m += &format!(
                "You can continue to work with this Certificate Signing Request CSR PEM, by saving \
                 it as `pki_int.csr`: {} \n Then call `tresor write {}/sign-intermediate \
                 csr=@pki_int.csr ...` adding the same key-value arguments as to `pki issue` \
                 (except key_type and issuer_name) to generate the certificate and ca_chain",
                self.csr, self.parent_issuer
            );
        }
        if !self.cert_imported {
            if !self.ca_chain.is_empty() {
                m += &format!(
                    "The certificate chain, signed by {}, for this new certificate is: {}",
                    self.parent_issuer, self.ca_chain
                );
            }
            m += &format!(
                "You can continue to work with this Certificate (and chain) by saving it as \
                 chain.pem and importing it as `tresor write {}/issuers/import/cert \
                 pem_bundle=@chain.pem`",
                self.intermediate_mount
            );
        }
        let mut issuer_id = self.cert_issuer_id.clone();
        if issuer_id.is_empty() {
            m += "The issuer_id is returned as the key in a key_value map from importing the \
                  certificate chain.";
            issuer_id = "<issuer-uuid>".into();
        }
        m += &format!(
            "You can name the newly imported issuer by calling `tresor patch {}/issuer/{} \
             issuer_name={}`",
            self.intermediate_mount, issuer_id, self.new_name
        );
        m
    }

    fn to_abort(&self) -> String {
        if !self.csr_generated || (!self.csr_signed && self.created_key_id.is_empty()) {
            return "No state was created by running this command.  Try rerunning this command \
                    after resolving the error."
                .into();
        }
        let mut m = String::new();
        if !self.created_key_id.is_empty() {
            m += &format!(
                " A key, with key ID {} was created on mount {} as part of this command.  If you \
                 do not with to use this key and corresponding CSR/cert, you can delete that \
                 information by calling `tresor delete {}/key/{}`",
                self.created_key_id,
                self.intermediate_mount,
                self.intermediate_mount,
                self.created_key_id
            );
        }
        if self.csr_signed {
            m += &format!(
                "A certificate with serial number {} was signed by mount {} as part of this \
                 command. If you do not want to use this certificate, consider revoking it by \
                 calling `tresor write {}/revoke/{}`",
                self.cert_serial_number,
                self.parent_mount,
                self.parent_mount,
                self.cert_serial_number
            );
        }
        m
    }
}

/// Imports a PEM bundle into a mount, naming the one new issuer (OpenBao's
/// `importIssuerWithName`).
fn import_issuer_with_name(
    client: &Client,
    mount: &str,
    bundle: &str,
    name: &str,
) -> Result<String, (String, bool)> {
    let resp = client
        .put(
            &format!("{mount}/issuers/import/cert"),
            &json!({ "pem_bundle": bundle }),
        )
        .map_err(|e| (e.message, false))?;
    let mapping = resp
        .as_ref()
        .and_then(|r| r.get("data"))
        .and_then(|d| d.get("mapping"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if mapping.len() > 1 {
        return Err((
            format!(
                "multiple issuers returned, while expected one, got {}",
                resp.unwrap_or(Value::Null)
            ),
            false,
        ));
    }
    let id = mapping.keys().next().cloned().unwrap_or_default();
    if !name.is_empty() && name != "default" {
        client
            .patch(
                &format!("{mount}/issuer/{id}"),
                &json!({ "issuer_name": name }),
            )
            .map_err(|e| {
                (
                    format!("error naming issuer {id} to {name}: {}", e.message),
                    true,
                )
            })?;
    }
    Ok(id)
}

/// The steps of `pki issue` (OpenBao's `pkiIssue`).
fn pki_issue(
    ctx: &Ctx,
    parent: &str,
    child_mount: &str,
    new_name: &str,
    key_source: &str,
    mut data: Map<String, Value>,
) -> CliResult {
    let client = ctx
        .client()
        .map_err(|e| err(format!("Failed to obtain client: {}", e.message)))?;
    if !parent.contains("/issuer/") {
        return Err(err(format!(
            "Parent Issuer {parent} is Not a PKI Issuer Path of the format /mount/issuer/issuer-ref"
        )));
    }
    read_issuer(&client, parent)
        .map_err(|e| err(format!("Unable to access parent issuer {parent}: {e}")))?;
    let mut state = Progress {
        intermediate_mount: child_mount.to_string(),
        parent_mount: parent.split("/issuer/").next().unwrap_or("").to_string(),
        parent_issuer: parent.to_string(),
        new_name: new_name.to_string(),
        ..Default::default()
    };
    let fail =
        |state: &Progress, detail: String| err(format!("{}\n{detail}", state.failure_message()));

    let csr_resp = client
        .put(
            &format!("{child_mount}/intermediate/generate/{key_source}"),
            &Value::Object(data.clone()),
        )
        .map_err(|e| {
            let m = e.message;
            err(if m.contains("no handler for route") {
                format!("Given Intermediate Mount {child_mount} Does Not Exist: {m}")
            } else if m.contains("unsupported path") {
                format!("Given Intermeidate Mount {child_mount} Is Not a PKI Mount: {m}")
            } else {
                format!("Failled to Generate Intermediate CSR on {child_mount}: {m}")
            })
        })?
        .unwrap_or(Value::Null);
    let csr_data = &csr_resp["data"];
    let Some(csr) = csr_data.get("csr").and_then(Value::as_str) else {
        return Err(err(format!(
            "Failed to Generate Intermediate CSR on {child_mount}, got response: {csr_resp}"
        )));
    };
    let key_id = csr_data.get("key_id").and_then(Value::as_str);
    if key_id.is_none() && key_source == "internal" {
        return Err(err(format!(
            "Failed to Generate Key on {child_mount}, got response: {csr_resp}"
        )));
    }
    state.csr_generated = true;
    if key_source == "internal" {
        state.created_key_id = key_id.unwrap_or("").to_string();
    }
    state.csr = csr.to_string();
    data.insert("csr".into(), json!(csr));

    let signed = client
        .put(
            &format!("{parent}/sign-intermediate"),
            &Value::Object(data.clone()),
        )
        .map_err(|e| fail(&state, format!("Error Signing Intermiate On {}", e.message)))?
        .unwrap_or(Value::Null);
    state.csr_signed = true;
    let sd = &signed["data"];
    let serial = sd["serial_number"].as_str().unwrap_or("").to_string();
    state.cert_serial_number = serial.clone();
    let ca_chain: Vec<String> = sd["ca_chain"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let bundle: String = ca_chain.iter().map(|c| format!("{c}\n")).collect();
    state.ca_chain = bundle.clone();

    let certificate = sd["certificate"].as_str().unwrap_or("").to_string();
    let issuer_id = match import_issuer_with_name(&client, child_mount, &certificate, new_name) {
        Ok(id) => id,
        Err((e, naming)) => {
            if naming {
                state.cert_imported = true;
                return Err(fail(
                    &state,
                    format!("Error Naming Newly Imported Issuer: {e}"),
                ));
            }
            return Err(fail(
                &state,
                format!(
                    "Error Importing Into {child_mount} Newly Created Issuer {certificate}: {e}"
                ),
            ));
        }
    };
    state.cert_issuer_id = issuer_id.clone();
    state.cert_imported = true;

    let issuing_ca = sd["issuing_ca"].as_str().unwrap_or("").to_string();
    let parent_name = parent.rsplit('/').next().unwrap_or("");
    if let Err((e, naming)) =
        import_issuer_with_name(&client, child_mount, &issuing_ca, parent_name)
    {
        if naming {
            eprintln!(
                "Unable to Set Name on Parent Cert from {parent_name} Imported Into {child_mount} with serial {serial}, err: {e}"
            );
        } else {
            return Err(fail(
                &state,
                format!(
                    "Error Importing Into {child_mount} Newly Created Issuer {certificate}: {e}"
                ),
            ));
        }
    }
    if ca_chain.len() > 2 {
        client
            .put(
                &format!("{child_mount}/issuers/import/cert"),
                &json!({ "pem_bundle": bundle }),
            )
            .map_err(|e| {
                fail(
                    &state,
                    format!("Error Importing CaChain into {child_mount}: {}", e.message),
                )
            })?;
    }

    let path = sanitize_path(&format!("{child_mount}/issuer/{issuer_id}"));
    match client.read(&path, &[]) {
        Ok(Some(resp)) => {
            ctx.out.secret(&resp)?;
        }
        Ok(None) => eprintln!("Error Reading Fully Imported Certificate from {path} : <nil>"),
        Err(e) => eprintln!(
            "Error Reading Fully Imported Certificate from {path} : {}",
            e.message
        ),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(31_536_000), "8760h0m0s");
        assert_eq!(go_duration(300), "5m0s");
        assert_eq!(go_duration(30), "30s");
        assert_eq!(go_duration(0), "0s");
    }

    #[test]
    fn template_update() {
        let t: Map<String, Value> = serde_json::from_value(
            json!({"ttl": "1h0m0s", "key_type": "ec", "key_bits": 256, "common_name": "a"}),
        )
        .unwrap();
        let c: Map<String, Value> =
            serde_json::from_value(json!({"not_after": "2030-01-01T00:00:00Z", "key_type": "rsa"}))
                .unwrap();
        let d = update_template_with_data(t.clone(), c);
        assert_eq!(
            Value::Object(d),
            json!({"key_type": "rsa", "common_name": "a", "not_after": "2030-01-01T00:00:00Z"})
        );
        let same: Map<String, Value> = serde_json::from_value(json!({"key_type": "ec"})).unwrap();
        assert_eq!(update_template_with_data(t, same)["key_bits"], 256);
    }
}

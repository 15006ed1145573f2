//! `tresor kv ...`: the key/value engine, versions 1 and 2, like Vault's `vault kv`.
//!
//! The mount and its version are learned the way Vault's CLI does: `GET
//! sys/internal/ui/mounts/<path>` returns the mount path (`secret/`) and
//! `options.version`. For version 2 the API path gets the operation segment after the
//! mount (`secret/foo` -> `secret/data/foo`, `secret/metadata/foo`, `secret/delete/foo`,
//! ...); version 1 uses the path as-is. A 404 from that endpoint (older servers) means
//! version 1. The path is either `MOUNT/KEY` or `-mount=MOUNT KEY`.
//!
//! Subcommands: `put`, `get`, `patch`, `delete`, `undelete`, `destroy`, `list`, and
//! `metadata get|put|delete`.

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::commands::{data_of, sanitize_path, success, Ctx};
use crate::error::{CliError, CliResult, Context, EXIT_REMOTE};
use crate::input::{parse_kv_args, parse_pairs};
use crate::output::{
    data_rows, emit, header_for_map, kv_table, list_keys, no_value, pad_equal_signs, path_header,
    print_warnings,
};

/// `tresor kv` subcommands.
#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Write a secret (replaces all its data)
    Put(PutArgs),
    /// Read a secret
    Get(GetArgs),
    /// Update some keys of a secret (version 2 only)
    Patch(PatchArgs),
    /// Delete a secret's latest version, or -versions (soft delete on version 2)
    Delete(VersionsArgs),
    /// Restore soft-deleted versions (version 2 only)
    Undelete(VersionsArgs),
    /// Permanently remove versions (version 2 only)
    Destroy(VersionsArgs),
    /// List the keys under a path
    List(PathArgs),
    /// Work with a secret's metadata (version 2 only)
    #[command(subcommand)]
    Metadata(MetadataCommand),
    /// Make an earlier version the current one again, as a new version (version 2 only)
    Rollback(RollbackArgs),
}

/// Flags of `kv rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// The version whose data becomes the new version
    #[arg(long, value_name = "N")]
    pub version: u64,
    /// Secret path
    pub path: String,
}

/// `tresor kv metadata` subcommands.
#[derive(Subcommand, Debug)]
pub enum MetadataCommand {
    /// Read the metadata and versions of a secret
    Get(PathArgs),
    /// Create or update the metadata of a secret
    Put(MetadataPutArgs),
    /// Delete a secret's metadata and all its versions
    Delete(PathArgs),
}

/// Just a path (plus `-mount`).
#[derive(Args, Debug)]
pub struct PathArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Secret path, e.g. secret/foo (or foo with -mount=secret)
    pub path: String,
}

/// Flags of `kv put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Check-and-set: only write if the current version is N (0: only if absent)
    #[arg(long, value_name = "N")]
    pub cas: Option<i64>,
    /// Secret path
    pub path: String,
    /// key=value pairs (value @file or - for stdin), or - / @file.json for a JSON object
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

/// Flags of `kv get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Version to read (default: latest)
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
    /// Secret path
    pub path: String,
}

/// Flags of `kv patch`.
#[derive(Args, Debug)]
pub struct PatchArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Check-and-set: only write if the current version is N
    #[arg(long, value_name = "N")]
    pub cas: Option<i64>,
    /// "patch" (HTTP PATCH) or "rw" (read, merge, write); default: patch, then rw on 405
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Secret path
    pub path: String,
    /// key=value pairs to set
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

/// Flags of `kv delete|undelete|destroy`.
#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Versions to act on (comma-separated or repeated)
    #[arg(long, value_name = "N,...", action = ArgAction::Append, value_delimiter = ',')]
    pub versions: Vec<String>,
    /// Secret path
    pub path: String,
}

/// Flags of `kv metadata put`.
#[derive(Args, Debug)]
pub struct MetadataPutArgs {
    /// Mount of the kv engine; PATH is then relative to it
    #[arg(long, value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Number of versions to keep (0: the mount's default)
    #[arg(long = "max-versions", value_name = "N")]
    pub max_versions: Option<u64>,
    /// Require check-and-set on writes
    #[arg(long = "cas-required", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub cas_required: Option<bool>,
    /// Delete versions after this long (e.g. 3h25m19s; 0s: never)
    #[arg(long = "delete-version-after", value_name = "DURATION")]
    pub delete_version_after: Option<String>,
    /// Custom metadata key=value (repeatable)
    #[arg(long = "custom-metadata", value_name = "K=V", action = ArgAction::Append)]
    pub custom_metadata: Vec<String>,
    /// Secret path
    pub path: String,
}

/// Where a kv path lives: its mount, the engine version and the logical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTarget {
    /// Mount path as reported by the server (`secret/`), empty when unknown.
    pub mount: String,
    /// Engine version (1 or 2).
    pub version: u8,
    /// Logical path, e.g. `secret/foo`.
    pub path: String,
}

impl KvTarget {
    /// Whether the engine is version 2.
    pub fn v2(&self) -> bool {
        self.version == 2
    }

    /// The API path for an operation segment (`data`, `metadata`, ...) on version 2; the
    /// logical path on version 1.
    pub fn api_path(&self, segment: &str) -> String {
        if self.v2() {
            add_prefix_to_kv_path(&self.path, &self.mount, segment)
        } else {
            self.path.clone()
        }
    }

    fn require_v2(&self, what: &str) -> CliResult<()> {
        if self.v2() {
            Ok(())
        } else {
            Err(CliError::usage(format!(
                "{what} is only supported on KV version 2 (the mount of {} is version 1)",
                self.path
            )))
        }
    }
}

/// Inserts `prefix` after the mount (Vault's `addPrefixToKVPath`):
/// (`secret/foo`, `secret/`, `data`) -> `secret/data/foo`. When the mount path carries
/// a namespace prefix missing from `path`, the prefix is dropped segment by segment.
pub fn add_prefix_to_kv_path(path: &str, mount: &str, prefix: &str) -> String {
    let join = |parts: &[&str]| -> String {
        parts
            .iter()
            .flat_map(|p| p.split('/'))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut mount = mount.to_string();
    if path == mount || path == mount.trim_end_matches('/') {
        return join(&[&mount, prefix]);
    }
    let mut suffix = path
        .strip_prefix(mount.as_str())
        .unwrap_or(path)
        .to_string();
    while suffix == path {
        // Drop leading mount segments (e.g. a namespace) not present in the path.
        match mount.split_once('/') {
            Some((_, rest)) if !rest.is_empty() => {
                mount = rest.trim_end_matches('/').to_string();
                suffix = suffix
                    .strip_prefix(mount.as_str())
                    .unwrap_or(&suffix)
                    .to_string();
            }
            _ => break,
        }
    }
    join(&[&mount, prefix, &suffix])
}

/// Joins `-mount` and the path argument into a logical path.
pub fn logical_path(mount: Option<&str>, path: &str) -> CliResult<String> {
    let path = sanitize_path(path);
    let full = match mount {
        Some(m) => {
            let m = sanitize_path(m);
            if m.is_empty() {
                return Err(CliError::usage("-mount must not be empty"));
            }
            if path.is_empty() {
                m
            } else {
                format!("{m}/{path}")
            }
        }
        None => path,
    };
    if full.is_empty() {
        return Err(CliError::usage("A path is required (e.g. secret/foo)"));
    }
    Ok(full)
}

/// Mount path and version from a `sys/internal/ui/mounts/<path>` answer.
pub fn parse_preflight(resp: &Value) -> (String, u8) {
    let data = resp.get("data").unwrap_or(resp);
    let mount = data
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let version = match data.get("options").and_then(|o| o.get("version")) {
        Some(Value::String(s)) if s == "2" => 2,
        Some(Value::Number(n)) if n.as_u64() == Some(2) => 2,
        _ => 1,
    };
    (mount, version)
}

/// Resolves the mount and version of a path (see the module doc).
pub fn resolve(client: &Client, mount: Option<&str>, path: &str) -> CliResult<KvTarget> {
    let path = logical_path(mount, path)?;
    let (mount, version) = match client.read(&format!("sys/internal/ui/mounts/{path}"), &[]) {
        Ok(Some(resp)) => parse_preflight(&resp),
        Ok(None) => (String::new(), 1),
        Err(e) if e.status == Some(404) => (String::new(), 1),
        Err(e) => return Err(e.context("Error determining the KV engine version")),
    };
    Ok(KvTarget {
        mount,
        version,
        path,
    })
}

fn parse_versions(raw: &[String]) -> CliResult<Vec<u64>> {
    raw.iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                CliError::usage(format!(
                    "Invalid version {v:?} in -versions: expected numbers"
                ))
            })
        })
        .collect()
}

/// Runs a kv subcommand.
pub fn run(ctx: &Ctx, cmd: KvCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        KvCommand::Put(a) => put(ctx, &client, a),
        KvCommand::Get(a) => get(ctx, &client, a),
        KvCommand::Patch(a) => patch(ctx, &client, a),
        KvCommand::Delete(a) => delete(&client, a),
        KvCommand::Undelete(a) => versions_op(&client, a, "undelete"),
        KvCommand::Destroy(a) => versions_op(&client, a, "destroy"),
        KvCommand::List(a) => list(ctx, &client, a),
        KvCommand::Rollback(a) => rollback(ctx, &client, a),
        KvCommand::Metadata(MetadataCommand::Get(a)) => metadata_get(ctx, &client, a),
        KvCommand::Metadata(MetadataCommand::Put(a)) => metadata_put(&client, a),
        KvCommand::Metadata(MetadataCommand::Delete(a)) => {
            let t = resolve(&client, a.mount.as_deref(), &a.path)?;
            t.require_v2("Metadata")?;
            let p = t.api_path("metadata");
            client
                .delete(&p, &[])
                .context(format!("Error deleting {p}"))?;
            success(format!("Data deleted (if it existed) at: {p}"))
        }
    }
}

fn read_data(args: &[String]) -> CliResult<Map<String, Value>> {
    let data = parse_kv_args(args, &mut std::io::stdin())?;
    if data.is_empty() {
        return Err(CliError::usage(
            "Must supply data: key=value pairs, - for JSON on stdin, or @file.json",
        ));
    }
    Ok(data)
}

fn v2_body(data: Map<String, Value>, cas: Option<i64>) -> Value {
    let mut options = Map::new();
    if let Some(c) = cas {
        options.insert("cas".into(), json!(c));
    }
    json!({"data": data, "options": options})
}

/// Prints the answer to a v2 write (its metadata), like Vault.
fn print_v2_write(ctx: &Ctx, api_path: &str, resp: Option<Value>) -> CliResult {
    let Some(resp) = resp else {
        return success(format!("Data written to: {api_path}"));
    };
    if ctx.out.field.is_some() || ctx.out.is_structured() {
        return ctx.out.secret(&resp);
    }
    print_warnings(&resp);
    let data = data_of(&resp);
    let data = data.as_object().cloned().unwrap_or_default();
    let mut s = path_header("Secret Path", api_path);
    s.push_str(&header_for_map("Metadata", &data));
    s.push('\n');
    s.push_str(&kv_table(&data_rows(&data)));
    emit(&s);
    Ok(0)
}

fn put(ctx: &Ctx, client: &Client, a: PutArgs) -> CliResult {
    let data = read_data(&a.data)?;
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    let p = t.api_path("data");
    if !t.v2() {
        if a.cas.is_some() {
            return Err(CliError::usage("-cas is only supported on KV version 2"));
        }
        let resp = client
            .put(&p, &Value::Object(data))
            .context(format!("Error writing data to {p}"))?;
        return match resp {
            None => success(format!("Data written to: {p}")),
            Some(r) => ctx.out.secret(&r),
        };
    }
    let resp = client
        .put(&p, &v2_body(data, a.cas))
        .context(format!("Error writing data to {p}"))?;
    print_v2_write(ctx, &p, resp)
}

fn get(ctx: &Ctx, client: &Client, a: GetArgs) -> CliResult {
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    let p = t.api_path("data");
    if !t.v2() {
        if a.version.is_some() {
            return Err(CliError::usage(
                "-version is only supported on KV version 2",
            ));
        }
        return match client.read(&p, &[]).context(format!("Error reading {p}"))? {
            None => no_value(&p),
            Some(resp) => ctx.out.secret(&resp),
        };
    }
    let query: Vec<(String, String)> = a
        .version
        .map(|v| vec![("version".to_string(), v.to_string())])
        .unwrap_or_default();
    let Some(resp) = client
        .read(&p, &query)
        .context(format!("Error reading {p}"))?
    else {
        return match a.version {
            Some(v) => {
                eprintln!("No value found at {p} for version {v}");
                Ok(EXIT_REMOTE)
            }
            None => no_value(&p),
        };
    };
    let outer = data_of(&resp);
    let secret_data = outer.get("data").filter(|d| d.is_object());
    if let Some(field) = &ctx.out.field {
        return match secret_data {
            // `-field=data` on a secret without a `data` key: the whole data map, as Vault.
            Some(d) if field == "data" && d.get("data").is_none() => ctx
                .out
                .field_of_map(&serde_json::json!({ "data": d }), field),
            Some(d) => ctx.out.field_of_map(d, field),
            None => {
                eprintln!("No data found at {p}");
                Ok(EXIT_REMOTE)
            }
        };
    }
    if ctx.out.is_structured() {
        ctx.out.structured(&crate::output::vault_secret(&resp));
        return Ok(0);
    }
    print_warnings(&resp);
    let mut s = path_header("Secret Path", &p);
    if let Some(meta) = outer.get("metadata").and_then(Value::as_object) {
        s.push_str(&header_for_map("Metadata", meta));
        s.push('\n');
        s.push_str(&kv_table(&data_rows(meta)));
    }
    if let Some(d) = secret_data.and_then(Value::as_object) {
        s.push('\n');
        s.push_str(&header_for_map("Data", d));
        s.push('\n');
        s.push_str(&kv_table(&data_rows(d)));
    }
    emit(&s);
    Ok(0)
}

fn patch(ctx: &Ctx, client: &Client, a: PatchArgs) -> CliResult {
    let data = read_data(&a.data)?;
    let method = a.method.as_deref().unwrap_or("");
    if !matches!(method, "" | "patch" | "rw") {
        return Err(CliError::usage(format!(
            "Invalid -method {method:?}: use patch or rw"
        )));
    }
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    t.require_v2("Patch")?;
    let p = t.api_path("data");
    if method != "rw" {
        match client.patch(&p, &v2_body(data.clone(), a.cas)) {
            Ok(resp) => return print_v2_write(ctx, &p, resp),
            Err(e) if e.status == Some(405) && method.is_empty() => {}
            Err(e) if e.status == Some(404) => {
                eprintln!("No value found at {p}");
                return Ok(EXIT_REMOTE);
            }
            Err(e) => return Err(e.context(format!("Error writing data to {p}"))),
        }
    }
    // Read, merge, write back with check-and-set on the version read.
    let Some(current) = client.read(&p, &[]).context(format!("Error reading {p}"))? else {
        return no_value(&p);
    };
    let outer = data_of(&current);
    let mut merged = outer
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| CliError::other(format!("No data found at {p} (was it deleted?)")))?;
    merged.extend(data);
    let cas = a.cas.or_else(|| {
        outer
            .get("metadata")
            .and_then(|m| m.get("version"))
            .and_then(Value::as_i64)
    });
    let resp = client
        .put(&p, &v2_body(merged, cas))
        .context(format!("Error writing data to {p}"))?;
    print_v2_write(ctx, &p, resp)
}

/// `kv rollback -version=N`: version N's data written as a new version, with check-and-set
/// on the current version (a concurrent write makes it fail rather than be lost).
fn rollback(ctx: &Ctx, client: &Client, a: RollbackArgs) -> CliResult {
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    t.require_v2("Rollback")?;
    let meta_path = t.api_path("metadata");
    let Some(meta) = client
        .read(&meta_path, &[])
        .context(format!("Error reading {meta_path}"))?
    else {
        return no_value(&meta_path);
    };
    let meta = data_of(&meta);
    let n = a.version.to_string();
    let Some(version) = meta.get("versions").and_then(|v| v.get(&n)) else {
        return Err(CliError::other(format!(
            "Version {n} does not exist at {meta_path}"
        )));
    };
    let deleted = version
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if deleted || version.get("destroyed") == Some(&Value::Bool(true)) {
        return Err(CliError::other(format!(
            "Cannot roll back to version {n}: it was deleted or destroyed"
        )));
    }
    let current = meta.get("current_version").and_then(Value::as_i64);
    let p = t.api_path("data");
    let old = client
        .read(&p, &[("version".to_string(), n.clone())])
        .context(format!("Error reading version {n} of {p}"))?
        .ok_or_else(|| CliError::other(format!("No data at version {n} of {p}")))?;
    let data = data_of(&old)
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| CliError::other(format!("No data at version {n} of {p}")))?;
    let resp = client
        .put(&p, &v2_body(data, current))
        .context(format!("Error writing data to {p}"))?;
    print_v2_write(ctx, &p, resp)
}

fn delete(client: &Client, a: VersionsArgs) -> CliResult {
    let versions = parse_versions(&a.versions)?;
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    if !t.v2() {
        if !versions.is_empty() {
            return Err(CliError::usage(
                "-versions is only supported on KV version 2",
            ));
        }
        let p = t.api_path("");
        client
            .delete(&p, &[])
            .context(format!("Error deleting {p}"))?;
        return success(format!("Data deleted (if it existed) at: {p}"));
    }
    if versions.is_empty() {
        let p = t.api_path("data");
        client
            .delete(&p, &[])
            .context(format!("Error deleting {p}"))?;
        return success(format!("Data deleted (if it existed) at: {p}"));
    }
    let p = t.api_path("delete");
    client
        .put(&p, &json!({"versions": versions}))
        .context(format!("Error deleting {p}"))?;
    success(format!(
        "Data deleted (if it existed) at: {}",
        t.api_path("data")
    ))
}

fn versions_op(client: &Client, a: VersionsArgs, op: &str) -> CliResult {
    let versions = parse_versions(&a.versions)?;
    if versions.is_empty() {
        return Err(CliError::usage(format!(
            "No versions provided: use -versions=N[,M...] to choose the versions to {op}"
        )));
    }
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    let what = if op == "undelete" {
        "Undelete"
    } else {
        "Destroy"
    };
    t.require_v2(what)?;
    let p = t.api_path(op);
    client
        .put(&p, &json!({"versions": versions}))
        .context(format!("Error writing data to {p}"))?;
    success(format!("Data written to: {p}"))
}

fn list(ctx: &Ctx, client: &Client, a: PathArgs) -> CliResult {
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    let p = t.api_path("metadata");
    let resp = client.list(&p).context(format!("Error listing {p}"))?;
    match resp {
        Some(r) if !list_keys(&r).is_empty() => ctx.out.list(&r),
        _ => no_value(&format!("{}/", p.trim_end_matches('/'))),
    }
}

fn metadata_get(ctx: &Ctx, client: &Client, a: PathArgs) -> CliResult {
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    t.require_v2("Metadata")?;
    let p = t.api_path("metadata");
    let Some(resp) = client.read(&p, &[]).context(format!("Error reading {p}"))? else {
        return no_value(&p);
    };
    let data = data_of(&resp);
    if let Some(field) = &ctx.out.field {
        return ctx.out.field_of_map(&data, field);
    }
    if ctx.out.is_structured() {
        ctx.out.structured(&crate::output::vault_secret(&resp));
        return Ok(0);
    }
    emit(&format_metadata(&p, &data));
    Ok(0)
}

/// The table layout of `kv metadata get`: the metadata, then one table per version.
pub fn format_metadata(api_path: &str, data: &Value) -> String {
    let mut meta = data.as_object().cloned().unwrap_or_default();
    let versions = meta.remove("versions");
    let mut s = path_header("Metadata Path", api_path);
    s.push_str(&header_for_map("Metadata", &meta));
    s.push('\n');
    s.push_str(&kv_table(&data_rows(&meta)));
    if let Some(Value::Object(vs)) = versions {
        let mut list: Vec<(u64, &String, &Value)> = vs
            .iter()
            .map(|(k, v)| (k.parse().unwrap_or(u64::MAX), k, v))
            .collect();
        list.sort_by_key(|(n, _, _)| *n);
        for (_, k, v) in list {
            let vm = v.as_object().cloned().unwrap_or_default();
            s.push('\n');
            s.push_str(&pad_equal_signs(&format!("Version {k}"), 23));
            s.push('\n');
            s.push_str(&kv_table(&data_rows(&vm)));
        }
    }
    s
}

fn metadata_put(client: &Client, a: MetadataPutArgs) -> CliResult {
    let mut body = Map::new();
    if let Some(n) = a.max_versions {
        body.insert("max_versions".into(), json!(n));
    }
    if let Some(b) = a.cas_required {
        body.insert("cas_required".into(), json!(b));
    }
    if let Some(d) = &a.delete_version_after {
        body.insert("delete_version_after".into(), json!(d));
    }
    if !a.custom_metadata.is_empty() {
        body.insert(
            "custom_metadata".into(),
            Value::Object(parse_pairs(&a.custom_metadata, "custom-metadata")?),
        );
    }
    let t = resolve(client, a.mount.as_deref(), &a.path)?;
    t.require_v2("Metadata")?;
    let p = t.api_path("metadata");
    client
        .put(&p, &Value::Object(body))
        .context(format!("Error writing data to {p}"))?;
    success(format!("Data written to: {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_mapping() {
        assert_eq!(
            add_prefix_to_kv_path("secret/foo", "secret/", "data"),
            "secret/data/foo"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret/a/b/c", "secret/", "metadata"),
            "secret/metadata/a/b/c"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret/", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(
            add_prefix_to_kv_path("team/kv/app", "team/kv/", "data"),
            "team/kv/data/app"
        );
        // Namespaced mount path not present in the request path.
        assert_eq!(
            add_prefix_to_kv_path("secret/foo", "ns1/secret/", "data"),
            "secret/data/foo"
        );
    }

    #[test]
    fn target_paths() {
        let v2 = KvTarget {
            mount: "secret/".into(),
            version: 2,
            path: "secret/foo/bar".into(),
        };
        assert_eq!(v2.api_path("data"), "secret/data/foo/bar");
        assert_eq!(v2.api_path("destroy"), "secret/destroy/foo/bar");
        let v1 = KvTarget {
            version: 1,
            ..v2.clone()
        };
        assert_eq!(v1.api_path("data"), "secret/foo/bar");
        assert_eq!(v1.require_v2("Patch").unwrap_err().code, 1);
    }

    #[test]
    fn logical_paths() {
        assert_eq!(logical_path(None, "/secret/foo/").unwrap(), "secret/foo");
        assert_eq!(logical_path(Some("secret/"), "foo").unwrap(), "secret/foo");
        assert_eq!(logical_path(Some("secret"), "").unwrap(), "secret");
        assert_eq!(logical_path(None, "/").unwrap_err().code, 1);
        assert_eq!(logical_path(Some(""), "x").unwrap_err().code, 1);
    }

    #[test]
    fn preflight_parsing() {
        let r = json!({"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}});
        assert_eq!(parse_preflight(&r), ("secret/".into(), 2));
        let r = json!({"data": {"path": "kv1/", "type": "kv", "options": null}});
        assert_eq!(parse_preflight(&r), ("kv1/".into(), 1));
        let r = json!({"data": {"path": "old/", "options": {"version": "1"}}});
        assert_eq!(parse_preflight(&r), ("old/".into(), 1));
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_versions(&["1".into(), "2".into()]).unwrap(),
            vec![1, 2]
        );
        assert_eq!(parse_versions(&["x".into()]).unwrap_err().code, 1);
        assert!(parse_versions(&[]).unwrap().is_empty());
    }

    #[test]
    fn metadata_layout() {
        let d = json!({"current_version": 2, "max_versions": 0, "versions": {
            "10": {"created_time": "t10", "deletion_time": "", "destroyed": false},
            "2": {"created_time": "t2", "deletion_time": "", "destroyed": true}
        }});
        let s = format_metadata("secret/metadata/foo", &d);
        let i2 = s.find("Version 2 ").unwrap();
        let i10 = s.find("Version 10 ").unwrap();
        assert!(i2 < i10, "{s}");
        assert!(s.contains("current_version    2\n"), "{s}");
        assert!(
            s.starts_with("== Metadata Path ==\nsecret/metadata/foo\n\n"),
            "{s}"
        );
    }
}

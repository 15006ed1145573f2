//! `tresor status`: the seal status table (`sys/seal-status`, plus HA details from
//! `sys/leader`). Exits 2 when the server is sealed, 1 on errors, as Vault does.

use serde_json::Value;

use crate::client::Client;
use crate::commands::Ctx;
use crate::error::{CliError, CliResult, Context, EXIT_REMOTE};
use crate::output::format_value;

/// Runs `tresor status`.
pub fn run(ctx: &Ctx) -> CliResult {
    let client = ctx.client()?;
    // Any error is exit code 1 here, as in Vault (2 means sealed).
    let seal = seal_status(&client).map_err(|e| CliError::other(e.message))?;
    // HA details are best-effort: a sealed or old server may not answer.
    let leader = client.read("sys/leader", &[]).ok().flatten();
    let code = print_seal_status(ctx, &seal, leader.as_ref())?;
    if code != 0 {
        return Ok(code);
    }
    let sealed = seal.get("sealed").and_then(Value::as_bool).unwrap_or(true);
    Ok(if sealed { EXIT_REMOTE } else { 0 })
}

/// Reads `sys/seal-status`.
pub fn seal_status(client: &Client) -> CliResult<Value> {
    client
        .read("sys/seal-status", &[])
        .context("Error checking seal status")?
        .ok_or_else(|| crate::error::CliError::other("Error checking seal status: empty response"))
}

/// Seal status rows in Vault's order.
pub fn seal_status_rows(seal: &Value, leader: Option<&Value>) -> Vec<(String, String)> {
    let g = |k: &str| seal.get(k).map(format_value).unwrap_or_default();
    let num = |k: &str| seal.get(k).and_then(Value::as_i64).unwrap_or(0);
    let sealed = seal.get("sealed").and_then(Value::as_bool).unwrap_or(false);
    let mut rows = vec![
        ("Seal Type".to_string(), g("type")),
        ("Initialized".to_string(), g("initialized")),
        ("Sealed".to_string(), g("sealed")),
        ("Total Shares".to_string(), g("n")),
        ("Threshold".to_string(), g("t")),
    ];
    if sealed {
        rows.push((
            "Unseal Progress".into(),
            format!("{}/{}", num("progress"), num("t")),
        ));
        rows.push(("Unseal Nonce".into(), g("nonce")));
    }
    rows.push(("Version".into(), g("version")));
    if seal.get("build_date").is_some() {
        rows.push(("Build Date".into(), g("build_date")));
    } else if seal.get("commit_date").is_some() {
        // OpenBao's name for it.
        rows.push(("Commit Date".into(), g("commit_date")));
    }
    if seal.get("storage_type").is_some() {
        rows.push(("Storage Type".into(), g("storage_type")));
    }
    let cluster_name = g("cluster_name");
    let cluster_id = g("cluster_id");
    if !cluster_name.is_empty() && !cluster_id.is_empty() {
        rows.push(("Cluster Name".into(), cluster_name));
        rows.push(("Cluster ID".into(), cluster_id));
    }
    if let Some(l) = leader {
        let ha = l
            .get("ha_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        rows.push(("HA Enabled".into(), ha.to_string()));
        if ha && !sealed {
            let is_self = l.get("is_self").and_then(Value::as_bool).unwrap_or(false);
            rows.push((
                "HA Cluster".into(),
                l.get("leader_cluster_address")
                    .map(format_value)
                    .unwrap_or_default(),
            ));
            rows.push((
                "HA Mode".into(),
                if is_self { "active" } else { "standby" }.to_string(),
            ));
            if is_self {
                if let Some(t) = l.get("active_time").and_then(Value::as_str) {
                    if !t.starts_with("0001-01-01") {
                        rows.push(("Active Since".into(), t.to_string()));
                    }
                }
            }
        }
    }
    rows
}

/// Prints a seal status as a table or JSON (merging `ha_enabled` from `sys/leader`).
pub fn print_seal_status(ctx: &Ctx, seal: &Value, leader: Option<&Value>) -> CliResult {
    let mut json = seal.clone();
    if let (Some(obj), Some(l)) = (json.as_object_mut(), leader) {
        if let Some(ha) = l.get("ha_enabled") {
            obj.insert("ha_enabled".into(), ha.clone());
        }
        if l.get("ha_enabled").and_then(Value::as_bool) == Some(true) {
            for k in [
                "is_self",
                "active_time",
                "leader_address",
                "leader_cluster_address",
            ] {
                if let Some(v) = l.get(k) {
                    obj.insert(k.into(), v.clone());
                }
            }
        }
    }
    ctx.out.rows_or_json(&seal_status_rows(seal, leader), &json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_rows() {
        let s = json!({"type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5,
                       "progress": 1, "nonce": "abc", "version": "0.1.0"});
        let rows = seal_status_rows(&s, None);
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Seal Type",
                "Initialized",
                "Sealed",
                "Total Shares",
                "Threshold",
                "Unseal Progress",
                "Unseal Nonce",
                "Version"
            ]
        );
        assert_eq!(rows[5].1, "1/3");
    }

    #[test]
    fn unsealed_with_ha() {
        let s = json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1,
                       "version": "1", "storage_type": "inmem", "cluster_name": "c", "cluster_id": "id"});
        let l = json!({"ha_enabled": false});
        let rows = seal_status_rows(&s, Some(&l));
        assert!(rows.iter().any(|(k, v)| k == "HA Enabled" && v == "false"));
        assert!(rows.iter().any(|(k, v)| k == "Cluster Name" && v == "c"));
        assert!(!rows.iter().any(|(k, _)| k == "Unseal Progress"));
    }
}

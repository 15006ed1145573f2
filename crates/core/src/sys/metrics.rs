//! `sys/metrics`: the core's telemetry ([`crate::metrics`]) with the gauges read now, as
//! Vault's JSON or (`?format=prometheus`) the Prometheus text format. Needs `read` on
//! `sys/metrics`, unless a listener sets `unauthenticated_metrics_access` (the HTTP layer then
//! calls [`Core::metrics_report`] itself, sealed or not).

use super::Sys;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, RawResponse, Response};
use crate::metrics::Gauge;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lease counts are a scan of the lease index: done at most this often.
const LEASE_COUNT_EVERY: Duration = Duration::from_secs(60);

pub fn paths() -> Vec<Path<Sys>> {
    vec![Path::new("metrics")
        .field(
            "format",
            Field::string("prometheus for the Prometheus text format; else Vault's JSON"),
        )
        .op(Read, |s: Arc<Sys>, c: Call| async move {
            s.core()?.metrics_report(c.fields.str("format")).await
        })
        .help("Telemetry: request, barrier, audit, token and lease metrics and gauges.")]
}

impl Core {
    /// The metrics in `format` (`prometheus`, or empty for Vault's JSON).
    pub async fn metrics_report(&self, format: &str) -> Result<Response> {
        let gauges = self.gauges().await;
        let (content_type, body) = match format {
            "" | "json" => (
                "application/json",
                serde_json::to_vec(&self.metrics.to_vault_json(&gauges))?,
            ),
            "prometheus" if self.config.telemetry.prometheus_retention.is_zero() => {
                return Err(Error::bad("prometheus is not enabled"))
            }
            "prometheus" => (
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.to_prometheus(&gauges).into_bytes(),
            ),
            other => {
                return Err(Error::bad(format!(
                    "unknown format {other:?}: use prometheus, or none for JSON"
                )))
            }
        };
        Ok(Response {
            raw: Some(Box::new(RawResponse {
                status: 200,
                content_type: content_type.into(),
                body,
                headers: Vec::new(),
            })),
            ..Default::default()
        })
    }

    async fn gauges(&self) -> Vec<Gauge> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let mut g = vec![
            Gauge::new("vault.core.unsealed", flag(!self.is_sealed())),
            Gauge::new("vault.core.active", flag(self.active().is_ok())),
            Gauge::new("vault.core.standby", flag(self.is_standby())),
            Gauge::new(
                "tresor.core.uptime_seconds",
                self.started.elapsed().as_secs_f64(),
            ),
        ];
        g.extend(process_gauges());
        if let Some(c) = self.barrier.storage().commit_counts() {
            // Batches per commit: how many writes share an `fdatasync` (group commit).
            g.push(Gauge::new("tresor.storage.commits", c.commits as f64));
            g.push(Gauge::new(
                "tresor.storage.committed_batches",
                c.batches as f64,
            ));
        }
        if let Some(leases) = self.lease_counts().await {
            let total: u64 = leases.iter().map(|(_, n)| n).sum();
            g.push(Gauge::new("vault.expire.num_leases", total as f64));
            for (mount, n) in &leases {
                g.push(Gauge::labelled(
                    "tresor.expire.leases_by_mount",
                    &[("mount_point", mount)],
                    *n as f64,
                ));
            }
        }
        if !self.config.telemetry.disable_hostname {
            // As go-metrics with its hostname on: gauges carry the host in their names.
            for gauge in &mut g {
                if let Some(rest) = gauge.name.strip_prefix("vault.") {
                    gauge.name = format!("vault.{}.{rest}", self.node.hostname);
                }
            }
        }
        g
    }

    /// Leases by mount, counted at most once a minute; none on a node that cannot read them.
    async fn lease_counts(&self) -> Option<Vec<(String, u64)>> {
        let mut cached = self.lease_counts.lock().await;
        if let Some((at, counts)) = cached.as_ref() {
            if at.elapsed() < LEASE_COUNT_EVERY {
                return Some(counts.clone());
            }
        }
        let active = self.active_or_standby().ok()?;
        let mounts: Vec<String> = active
            .router
            .read()
            .routes()
            .iter()
            .map(|r| r.prefix.clone())
            .collect();
        match active.leases.count_by_mount(&mounts).await {
            Ok(counts) => {
                *cached = Some((Instant::now(), counts.clone()));
                Some(counts)
            }
            Err(e) => {
                tracing::debug!(error = %e, "counting leases for metrics failed");
                None
            }
        }
    }
}

/// The process: resident memory, open files, and the async runtime's live tasks.
fn process_gauges() -> Vec<Gauge> {
    let mut g = Vec::new();
    // VmRSS, in kB.
    if let Some(kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
    {
        g.push(Gauge::new("vault.runtime.sys_bytes", (kb * 1024) as f64));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        g.push(Gauge::new("tresor.process.open_fds", fds.count() as f64));
    }
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        g.push(Gauge::new(
            "vault.runtime.num_goroutines",
            rt.metrics().num_alive_tasks() as f64,
        ));
    }
    g
}

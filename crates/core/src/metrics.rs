//! Telemetry: what `sys/metrics` reports, as Vault's JSON (go-metrics' in-memory sink
//! layout) or in the Prometheus text format (`?format=prometheus`).
//!
//! * Timers (latency histograms in milliseconds, Vault's unit) and counters are updated on the
//!   request path with relaxed atomics only: a route's timers hang off its [`Route`] entry, so a
//!   request looks nothing up. Rare events (token and lease creation) take a mutex on a map of
//!   labelled counters.
//! * Gauges (seal state, leases, process) are read when scraped (see `Core::metrics_report`).
//! * Names are Vault's where Vault has the metric (`vault.core.handle_request`,
//!   `vault.barrier.get`, `vault.audit.log_request_failure`, `vault.token.creation`,
//!   `vault.expire.num_leases` ...); Tresor's own start with `tresor.` (per-mount request
//!   latency: `tresor.route.request{mount, operation}`). Values are cumulative since start.
//!
//! Why not the `prometheus-client` crate: its histograms take a lock per observation, and
//! their values cannot be read back for Vault's JSON format. The text format written here is
//! parsed by Python's `prometheus_client` in the tests.
//!
//! [`Route`]: crate::mount::Route

use crate::logical::Operation;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in milliseconds.
const BUCKETS_MS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0,
];

/// A latency histogram.
pub struct Timer {
    /// Observations per bucket (not cumulative); past the last bound only `count` grows.
    buckets: [AtomicU64; BUCKETS_MS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Timer {
    fn default() -> Self {
        Timer {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl Timer {
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.min_ns.fetch_min(ns, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
        let ms = ns as f64 / 1e6;
        if let Some(i) = BUCKETS_MS.iter().position(|b| ms <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }

    /// Its values as of now (milliseconds), for a report.
    fn read(&self) -> TimerValues {
        let count = self.count.load(Relaxed);
        TimerValues {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            count,
            sum_ms: self.sum_ns.load(Relaxed) as f64 / 1e6,
            min_ms: if count > 0 {
                self.min_ns.load(Relaxed) as f64 / 1e6
            } else {
                0.0
            },
            max_ms: self.max_ns.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// A [`Timer`] read for a report.
struct TimerValues {
    buckets: [u64; BUCKETS_MS.len()],
    count: u64,
    sum_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// One mount's request latency, by operation.
#[derive(Default)]
pub struct RouteMetrics {
    by_operation: [Timer; 7],
}

const OPERATIONS: [Operation; 7] = [
    Operation::Read,
    Operation::List,
    Operation::Create,
    Operation::Update,
    Operation::Delete,
    Operation::Patch,
    Operation::Help,
];

impl RouteMetrics {
    pub fn observe(&self, op: Operation, took: Duration) {
        let i = OPERATIONS.iter().position(|o| *o == op).unwrap_or(0);
        self.by_operation[i].observe(took);
    }
}

/// What a storage operation through the barrier was, for `vault.barrier.*`.
#[derive(Clone, Copy)]
pub enum BarrierOp {
    Get,
    Put,
    Delete,
    List,
}

type Labels = Vec<(String, String)>;

/// Every metric a core keeps.
#[derive(Default)]
pub struct Metrics {
    pub handle_request: Timer,
    pub handle_login_request: Timer,
    barrier: [Timer; 4],
    pub audit_log_request: Timer,
    pub audit_log_request_failure: Counter,
    pub audit_log_response: Timer,
    pub audit_log_response_failure: Counter,
    pub expire_revoke: Counter,
    /// Per mount (route prefix), kept across remounts and tunes of the same path.
    routes: Mutex<BTreeMap<String, std::sync::Arc<RouteMetrics>>>,
    /// Labelled counters of rare events: (name, labels) -> count.
    events: Mutex<BTreeMap<(&'static str, Labels), u64>>,
}

/// Vault's `creation_ttl` label: the TTL rounded up to a coarse bucket.
pub fn ttl_bucket(ttl_secs: u64) -> &'static str {
    match ttl_secs {
        0 => "+Inf",
        1..=60 => "1m",
        61..=600 => "10m",
        601..=3600 => "1h",
        3601..=86400 => "1d",
        86401..=172800 => "2d",
        172801..=604800 => "7d",
        604801..=2592000 => "30d",
        _ => "+Inf",
    }
}

/// One gauge read at scrape time.
pub struct Gauge {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Gauge {
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Gauge {
            name: name.into(),
            labels: Vec::new(),
            value,
        }
    }
    pub fn labelled(name: impl Into<String>, labels: &[(&str, &str)], value: f64) -> Self {
        Gauge {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }
}

impl Metrics {
    pub fn barrier(&self, op: BarrierOp) -> &Timer {
        &self.barrier[op as usize]
    }

    /// The latency metrics of the mount at `prefix` (created on first use).
    pub fn route(&self, prefix: &str) -> std::sync::Arc<RouteMetrics> {
        self.routes
            .lock()
            .entry(prefix.to_string())
            .or_default()
            .clone()
    }

    /// Counts one event of `name` with `labels`.
    pub fn count_event(&self, name: &'static str, labels: &[(&str, &str)]) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *self.events.lock().entry((name, labels)).or_default() += 1;
    }

    /// Every timer that has observed something, read now: the fixed ones, then each
    /// mount's by operation (`tresor.route.request{mount, operation}`).
    fn timers(&self) -> Vec<(String, Labels, TimerValues)> {
        let fixed: [(&str, &Timer); 8] = [
            ("vault.core.handle_request", &self.handle_request),
            (
                "vault.core.handle_login_request",
                &self.handle_login_request,
            ),
            ("vault.barrier.get", self.barrier(BarrierOp::Get)),
            ("vault.barrier.put", self.barrier(BarrierOp::Put)),
            ("vault.barrier.delete", self.barrier(BarrierOp::Delete)),
            ("vault.barrier.list", self.barrier(BarrierOp::List)),
            ("vault.audit.log_request", &self.audit_log_request),
            ("vault.audit.log_response", &self.audit_log_response),
        ];
        let mut out: Vec<(String, Labels, TimerValues)> = fixed
            .into_iter()
            .map(|(name, t)| (name.to_string(), Vec::new(), t.read()))
            .collect();
        for (prefix, route) in self.routes.lock().iter() {
            for (op, t) in OPERATIONS.iter().zip(&route.by_operation) {
                let labels = vec![
                    ("mount".to_string(), prefix.clone()),
                    ("operation".to_string(), op.as_str().to_string()),
                ];
                out.push(("tresor.route.request".to_string(), labels, t.read()));
            }
        }
        out.retain(|(_, _, t)| t.count > 0);
        out
    }

    fn counters(&self) -> Vec<(String, Labels, u64)> {
        let mut out = vec![
            (
                "vault.audit.log_request_failure".to_string(),
                vec![],
                self.audit_log_request_failure.get(),
            ),
            (
                "vault.audit.log_response_failure".to_string(),
                vec![],
                self.audit_log_response_failure.get(),
            ),
            (
                "vault.expire.revoke".to_string(),
                vec![],
                self.expire_revoke.get(),
            ),
        ];
        out.extend(
            self.events
                .lock()
                .iter()
                .map(|((name, labels), n)| (name.to_string(), labels.clone(), *n)),
        );
        out
    }

    /// Vault's JSON layout (go-metrics' `DisplayMetrics`), with `gauges` read just now.
    pub fn to_vault_json(&self, gauges: &[Gauge]) -> Value {
        let labels = |l: &Labels| -> Value {
            Value::Object(l.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
        };
        let samples: Vec<Value> = self
            .timers()
            .into_iter()
            .map(|(name, l, t)| timer_json(&name, labels(&l), &t))
            .collect();
        json!({
            "Timestamp": time::OffsetDateTime::now_utc()
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
                ))
                .unwrap_or_default(),
            "Gauges": gauges.iter().map(|g| json!({
                "Name": g.name, "Value": g.value, "Labels": labels(&g.labels),
            })).collect::<Vec<_>>(),
            "Points": [],
            "Counters": self.counters().into_iter().map(|(name, l, n)| json!({
                "Name": name, "Count": n, "Rate": 0.0, "Sum": n, "Min": 1, "Max": 1,
                "Mean": 1, "Stddev": 0, "Labels": labels(&l),
            })).collect::<Vec<_>>(),
            "Samples": samples,
        })
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let mut families: BTreeMap<String, (&'static str, Vec<String>)> = BTreeMap::new();
        let mut add = |name: &str, kind: &'static str, lines: Vec<String>| {
            families
                .entry(prom_name(name))
                .or_insert_with(|| (kind, Vec::new()))
                .1
                .extend(lines);
        };
        for g in gauges {
            let n = prom_name(&g.name);
            add(
                &g.name,
                "gauge",
                vec![format!("{n}{} {}", prom_labels(&g.labels, None), g.value)],
            );
        }
        for (name, l, v) in self.counters() {
            let n = prom_name(&name);
            add(
                &name,
                "counter",
                vec![format!("{n}{} {v}", prom_labels(&l, None))],
            );
        }
        for (name, l, t) in self.timers() {
            add(
                &name,
                "histogram",
                histogram_lines(&prom_name(&name), &l, &t),
            );
        }
        for (name, (kind, lines)) in families {
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    }
}

fn timer_json(name: &str, labels: Value, t: &TimerValues) -> Value {
    let mean = if t.count > 0 {
        t.sum_ms / t.count as f64
    } else {
        0.0
    };
    json!({
        "Name": name,
        "Count": t.count,
        "Rate": 0.0,
        "Sum": t.sum_ms,
        "Min": t.min_ms,
        "Max": t.max_ms,
        "Mean": mean,
        "Stddev": 0.0,
        "Labels": labels,
    })
}

fn histogram_lines(name: &str, labels: &Labels, t: &TimerValues) -> Vec<String> {
    let mut lines = Vec::with_capacity(BUCKETS_MS.len() + 3);
    let mut cumulative = 0;
    for (bound, n) in BUCKETS_MS.iter().zip(&t.buckets) {
        cumulative += n;
        lines.push(format!(
            "{name}_bucket{} {cumulative}",
            prom_labels(labels, Some(&bound.to_string()))
        ));
    }
    lines.push(format!(
        "{name}_bucket{} {}",
        prom_labels(labels, Some("+Inf")),
        t.count
    ));
    lines.push(format!(
        "{name}_sum{} {}",
        prom_labels(labels, None),
        t.sum_ms
    ));
    lines.push(format!(
        "{name}_count{} {}",
        prom_labels(labels, None),
        t.count
    ));
    lines
}

/// `vault.core.handle_request` -> `vault_core_handle_request` (Prometheus names: letters,
/// digits, `_` and `:`).
fn prom_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn prom_labels(labels: &Labels, le: Option<&str>) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", prom_name(k), escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_bucket_and_report_in_milliseconds() {
        let m = Metrics::default();
        m.handle_request.observe(Duration::from_micros(300));
        m.handle_request.observe(Duration::from_millis(3));
        m.handle_request.observe(Duration::from_secs(20));
        m.route("secret/")
            .observe(Operation::Read, Duration::from_micros(80));
        m.count_event(
            "vault.token.creation",
            &[
                ("mount_point", "auth/token/"),
                ("creation_ttl", ttl_bucket(3600)),
            ],
        );
        let text = m.to_prometheus(&[Gauge::labelled(
            "vault.core.unsealed",
            &[("a", "x\"y")],
            1.0,
        )]);
        assert!(
            text.contains("# TYPE vault_core_handle_request histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("vault_core_handle_request_bucket{le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("vault_core_handle_request_bucket{le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("vault_core_handle_request_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("vault_core_handle_request_count 3\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "tresor_route_request_bucket{mount=\"secret/\",operation=\"read\",le=\"0.1\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "vault_token_creation{mount_point=\"auth/token/\",creation_ttl=\"1h\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("vault_core_unsealed{a=\"x\\\"y\"} 1"),
            "{text}"
        );
        let j = m.to_vault_json(&[]);
        let s = &j["Samples"][0];
        assert_eq!(
            (s["Name"].as_str(), s["Count"].as_u64()),
            (Some("vault.core.handle_request"), Some(3))
        );
        assert!(
            (s["Min"].as_f64().unwrap() - 0.3).abs() < 1e-9
                && s["Max"].as_f64().unwrap() == 20000.0
        );
    }
}

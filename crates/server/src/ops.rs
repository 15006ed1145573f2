//! The server's side of the operator endpoints (`tresor_core::sys::operator`): the core asks
//! it for loggers, requests in flight, the sanitized configuration and host information, and
//! checks tokens and policies itself.

use crate::logging::Logging;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use tresor_core::sys::operator::{LogLevel, ServerOps};

/// What the operator endpoints and the listeners share.
#[derive(Debug)]
pub struct Operations {
    pub logging: Arc<Logging>,
    pub in_flight: Arc<InFlight>,
    /// Cancelled at shutdown: ends the log streams of `sys/monitor`.
    pub stop: CancellationToken,
    config: Map<String, Value>,
}

impl Operations {
    pub fn new(
        logging: Arc<Logging>,
        config: &crate::config::ServerConfig,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Operations {
            logging,
            in_flight: Arc::default(),
            stop,
            config: config.sanitized(),
        })
    }
}

impl ServerOps for Operations {
    fn loggers(&self) -> Vec<(String, String)> {
        self.logging.loggers()
    }
    fn set_log_level(&self, logger: Option<&str>, level: LogLevel) -> Result<(), String> {
        self.logging.set_level(logger, level)
    }
    fn reset_log_level(&self, logger: Option<&str>) -> Result<(), String> {
        self.logging.reset_level(logger)
    }
    fn in_flight_requests(&self) -> Map<String, Value> {
        self.in_flight.describe()
    }
    fn sanitized_config(&self) -> Map<String, Value> {
        self.config.clone()
    }
    fn host_info(&self) -> (Map<String, Value>, Vec<String>) {
        crate::host_info::collect()
    }
}

/// The requests the HTTP layer is serving.
#[derive(Debug, Default)]
pub struct InFlight {
    requests: Mutex<HashMap<u64, Started>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Started {
    id: String,
    at: SystemTime,
    remote: SocketAddr,
    method: hyper::Method,
    /// The URL path only: never the query string or anything else of the request.
    path: String,
}

impl InFlight {
    /// Records a request until the returned guard is dropped.
    pub fn track(
        self: &Arc<Self>,
        id: &str,
        remote: SocketAddr,
        method: &hyper::Method,
        path: &str,
    ) -> Tracked {
        let key = self.next.fetch_add(1, Relaxed);
        let started = Started {
            id: id.to_string(),
            at: SystemTime::now(),
            remote,
            method: method.clone(),
            path: reportable_path(path),
        };
        self.requests.lock().insert(key, started);
        Tracked {
            table: self.clone(),
            key,
        }
    }

    /// Vault's shape: request id -> `start_time`, `client_remote_address`, `request_path`,
    /// `request_method`, `client_id` (empty: Tresor does not count clients).
    fn describe(&self) -> Map<String, Value> {
        self.requests
            .lock()
            .values()
            .map(|r| {
                (
                    r.id.clone(),
                    json!({
                        "start_time": humantime::format_rfc3339_nanos(r.at).to_string(),
                        "client_remote_address": r.remote.to_string(),
                        "request_path": r.path,
                        "request_method": r.method.as_str(),
                        "client_id": "",
                    }),
                )
            })
            .collect()
    }
}

/// A request's URL path as the core routes it (percent-decoded, no leading slashes), with
/// a legacy token endpoint's token cut off, as in the request log: `/v1//auth/token/lookup/t`
/// and `/v1/auth/token/renew%2Ft` name a token too.
fn reportable_path(path: &str) -> String {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return path.to_string();
    };
    let decoded = crate::http::percent_decode(rest).unwrap_or_else(|| rest.to_string());
    format!(
        "/v1/{}",
        tresor_core::core::loggable_path(decoded.trim_start_matches('/'))
    )
}

/// A request in flight; dropping it ends the record.
pub struct Tracked {
    table: Arc<InFlight>,
    key: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.table.requests.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_records_end_with_their_guard_and_never_hold_a_token() {
        let table = Arc::new(InFlight::default());
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let get = hyper::Method::GET;
        let lookup = table.track("r1", peer, &get, "/v1/auth/token/lookup/hvs.secret-token");
        let sneaky = table.track("r3", peer, &get, "/v1//auth/token/renew%2Fhvs.secret-token");
        let read = table.track("r2", peer, &get, "/v1/secret/data/app");
        let now = Value::Object(table.describe());
        assert_eq!(
            now["r1"]["request_path"],
            "/v1/auth/token/lookup/<redacted>"
        );
        assert_eq!(now["r2"]["request_path"], "/v1/secret/data/app");
        assert_eq!(now["r3"]["request_path"], "/v1/auth/token/renew/<redacted>");
        assert!(!now.to_string().contains("hvs.secret-token"));
        drop((lookup, read, sneaky));
        assert!(table.describe().is_empty());
    }
}

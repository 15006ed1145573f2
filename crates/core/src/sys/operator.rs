//! Operator endpoints about the running server rather than the stored state: `sys/loggers`
//! (log levels at run time), `sys/monitor` (streamed logs), `sys/host-info`,
//! `sys/in-flight-req` and `sys/config/state/sanitized` (what `bao debug` collects).
//!
//! The facts and controls belong to the process that runs the core (the HTTP server): it
//! hands the core a [`ServerOps`] in `CoreConfig::server`. Authentication, ACLs (as in Vault,
//! the path's capabilities, no `sudo`) and auditing stay in the core, as for every other path. `sys/monitor`
//! is only validated and authorized here: the server streams the log once the core said yes.

use super::Sys;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A log level as Vault names them (hclog's `LevelFromString`): case-insensitive, `warning`
/// for `warn` and `err` for `error` accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            // Vault's ParseLogLevel takes `notice` for info.
            "info" | "notice" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "err" => LogLevel::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// What the server running the core knows and controls about itself.
pub trait ServerOps: Send + Sync + std::fmt::Debug {
    /// Every named logger with its current level (a [`LogLevel`] name, or `off`), in a
    /// stable order.
    fn loggers(&self) -> Vec<(String, String)>;
    /// Sets one logger's level, or every logger's (`None`); `Err` names an unknown logger.
    fn set_log_level(
        &self,
        logger: Option<&str>,
        level: LogLevel,
    ) -> std::result::Result<(), String>;
    /// Back to the configured level: one logger, or all (`None`).
    fn reset_log_level(&self, logger: Option<&str>) -> std::result::Result<(), String>;
    /// Requests in flight in the HTTP layer: request id -> Vault's description of it.
    fn in_flight_requests(&self) -> Map<String, Value>;
    /// The running configuration without anything secret, in Vault's shape.
    fn sanitized_config(&self) -> Map<String, Value>;
    /// Vault's host information (cpu, cpu_times, disk, host, memory, timestamp) and warnings
    /// for the parts that could not be read.
    fn host_info(&self) -> (Map<String, Value>, Vec<String>);
}

pub fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("loggers")
            .field("level", Field::string("trace, debug, info, warn or error"))
            .op(Read, Sys::loggers_read)
            .op(Update, Sys::loggers_write)
            .op(Delete, Sys::loggers_delete)
            .help("Read, set or revert the level of every logger."),
        Path::new("loggers/(?P<name>.+)")
            .field("level", Field::string("trace, debug, info, warn or error"))
            .op(Read, Sys::loggers_read)
            .op(Update, Sys::loggers_write)
            .op(Delete, Sys::loggers_delete)
            .help("Read, set or revert the level of one logger."),
        Path::new("monitor")
            .field(
                "log_level",
                Field::string("the least severe level streamed (info)"),
            )
            .field("log_format", Field::string("standard or json"))
            .op(Read, Sys::monitor)
            .help("Stream the server's log."),
        Path::new("host-info/?")
            .op(Read, Sys::host_info)
            .help("CPU, CPU times, disks, host and memory of the machine the server runs on."),
        Path::new("in-flight-req")
            .op(Read, Sys::in_flight_requests)
            .help("The requests the server is serving now."),
        Path::new("config/state/sanitized")
            .op(Read, Sys::sanitized_config)
            .help("The running configuration, without secrets."),
    ]
}

fn level_field(c: &Call) -> Result<LogLevel> {
    let level = c.fields.str("level");
    if level.is_empty() {
        return Err(Error::bad("level is required"));
    }
    LogLevel::parse(level).ok_or_else(|| {
        Error::bad(format!(
            "invalid level provided: unknown log level: {level}"
        ))
    })
}

fn logger_name(c: &Call) -> Option<&str> {
    Some(c.fields.str("name")).filter(|n| !n.is_empty())
}

impl Sys {
    fn server_ops(&self) -> Result<Arc<dyn ServerOps>> {
        self.core()?
            .config
            .server
            .clone()
            .ok_or_else(|| Error::UnsupportedPath("no server runs this core".into()))
    }

    async fn loggers_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = logger_name(&c);
        let data: Map<String, Value> = self
            .server_ops()?
            .loggers()
            .into_iter()
            .filter(|(n, _)| name.is_none_or(|want| want == n))
            .map(|(n, l)| (n, json!(l)))
            .collect();
        Ok(Response {
            data: Some(data),
            ..Default::default()
        })
    }

    async fn loggers_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let level = level_field(&c)?;
        self.server_ops()?
            .set_log_level(logger_name(&c), level)
            .map_err(Error::bad)?;
        Ok(Response::default())
    }

    async fn loggers_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        self.server_ops()?
            .reset_log_level(logger_name(&c))
            .map_err(Error::bad)?;
        Ok(Response::default())
    }

    /// Checks the parameters; the server streams (see the module comment).
    async fn monitor(self: Arc<Self>, c: Call) -> Result<Response> {
        self.server_ops()?;
        let level = match c.fields.str("log_level") {
            "" => LogLevel::Info,
            l => LogLevel::parse(l).ok_or_else(|| Error::bad("unknown log level"))?,
        };
        let format = match c.fields.str("log_format").to_ascii_lowercase().as_str() {
            "" | "standard" => "standard",
            "json" => "json",
            _ => return Err(Error::bad("unknown log format")),
        };
        Ok(Response::data(
            json!({ "log_level": level.as_str(), "log_format": format }),
        ))
    }

    async fn host_info(self: Arc<Self>, _c: Call) -> Result<Response> {
        let ops = self.server_ops()?;
        // /proc reads and statvfs on every mount: blocking work, off the async workers.
        let (data, warnings) = tokio::task::spawn_blocking(move || ops.host_info())
            .await
            .map_err(|e| Error::internal(format!("host information: {e}")))?;
        Ok(Response {
            data: Some(data),
            warnings,
            ..Default::default()
        })
    }

    /// Vault answers with the bare map, not its envelope.
    async fn in_flight_requests(self: Arc<Self>, _c: Call) -> Result<Response> {
        let requests = self.server_ops()?.in_flight_requests();
        Ok(Response::raw_json(200, &Value::Object(requests)))
    }

    async fn sanitized_config(self: Arc<Self>, _c: Call) -> Result<Response> {
        Ok(Response {
            data: Some(self.server_ops()?.sanitized_config()),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_as_vault_names_them() {
        for (s, l) in [
            ("trace", LogLevel::Trace),
            ("DEBUG", LogLevel::Debug),
            ("Info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("warning", LogLevel::Warn),
            ("err", LogLevel::Error),
            ("error", LogLevel::Error),
        ] {
            assert_eq!(LogLevel::parse(s), Some(l), "{s}");
        }
        for bad in ["", "off", "verbose", "5"] {
            assert_eq!(LogLevel::parse(bad), None, "{bad}");
        }
    }
}

//! One module per command group, plus what they share: the [`Ctx`] handed to every
//! command (resolved output settings and a way to get an API client), path helpers, and
//! the clap attribute conventions.
//!
//! Boolean flags are declared as
//!
//! ```ignore
//! #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
//!       default_value = "false", action = ArgAction::Set)]
//! ```
//!
//! so that `-flag`, `-flag=true` and `-flag=false` work as with Go's `flag` package; flags
//! whose "unset" state matters use `Option<bool>` without `default_value`.

pub mod audit;
pub mod generic;
pub mod kv;
pub mod lease;
pub mod login;
pub mod operator;
pub mod pki;
pub mod pki_health;
pub mod policy;
pub mod secrets;
pub mod server;
pub mod status;
pub mod token;
pub mod transit;

use serde_json::Value;

use crate::client::{Client, ClientConfig, ConnectionFlags};
use crate::error::{CliError, CliResult};
use crate::output::{Output, OutputFlags};

/// What every command gets: output settings and the connection flags.
pub struct Ctx {
    pub out: Output,
    conn: ConnectionFlags,
}

impl Ctx {
    /// Resolves the output settings; the client is built on demand.
    pub fn new(conn: ConnectionFlags, out: &OutputFlags) -> CliResult<Self> {
        Ok(Ctx {
            out: Output::resolve(out)?,
            conn,
        })
    }

    /// The connection flags as given.
    pub fn conn(&self) -> &ConnectionFlags {
        &self.conn
    }

    /// Builds an API client from flags, environment and the token file.
    pub fn client(&self) -> CliResult<Client> {
        Client::new(ClientConfig::resolve(&self.conn)?)
    }
}

/// Trims whitespace and leading/trailing slashes from a path (Vault's `sanitizePath`).
pub fn sanitize_path(p: &str) -> String {
    p.trim().trim_matches('/').to_string()
}

/// `path` with exactly one trailing slash.
pub fn with_trailing_slash(p: &str) -> String {
    format!("{}/", p.trim_end_matches('/'))
}

/// Fails with a usage error unless `args` has between `min` and `max` items.
pub fn expect_args(args: &[String], min: usize, max: usize) -> CliResult<()> {
    if args.len() < min {
        return Err(CliError::usage(format!(
            "Not enough arguments (expected {}, got {})",
            if min == max {
                min.to_string()
            } else {
                format!("{min}-{max}")
            },
            args.len()
        )));
    }
    if args.len() > max {
        return Err(CliError::usage(format!(
            "Too many arguments (expected {}, got {})",
            if min == max {
                max.to_string()
            } else {
                format!("{min}-{max}")
            },
            args.len()
        )));
    }
    Ok(())
}

/// The `data` object of a response (empty object when absent).
pub fn data_of(resp: &Value) -> Value {
    match resp.get("data") {
        Some(d) if d.is_object() => d.clone(),
        _ => Value::Object(Default::default()),
    }
}

/// Prints `Success! ...` on stdout.
pub fn success(msg: impl AsRef<str>) -> CliResult {
    crate::output::emit(&format!("Success! {}\n", msg.as_ref()));
    Ok(0)
}

/// Interprets a duration flag: plain integers are seconds and sent as numbers, anything
/// else (`1h`, `30m`) is sent as a string for the server to parse.
pub fn duration_value(s: &str) -> Value {
    match s.trim().parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(s.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(sanitize_path(" /secret/foo/ "), "secret/foo");
        assert_eq!(with_trailing_slash("kv"), "kv/");
        assert_eq!(with_trailing_slash("kv/"), "kv/");
    }

    #[test]
    fn arg_counts() {
        let a = vec!["x".to_string()];
        assert!(expect_args(&a, 1, 1).is_ok());
        assert_eq!(expect_args(&a, 2, 2).unwrap_err().code, 1);
        assert!(expect_args(&a, 0, 0)
            .unwrap_err()
            .message
            .contains("Too many"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_value("30"), Value::from(30));
        assert_eq!(duration_value("1h"), Value::from("1h"));
    }
}

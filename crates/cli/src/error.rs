//! The CLI's error type and its mapping to process exit codes.
//!
//! Exit codes follow Vault's CLI: `1` for local errors (bad flags or arguments, a file that
//! cannot be read, ...), `2` for remote ones (the server refused, could not be reached, or has
//! no value at a path; a sealed server for `status`).

use std::fmt;

/// Exit code for local errors: usage (bad flags or arguments), local I/O, as in Vault.
pub const EXIT_LOCAL: i32 = 1;
/// Exit code for remote errors: an API error, an unreachable server, no value at a path, a
/// sealed server (`status`), as in Vault.
pub const EXIT_REMOTE: i32 = 2;

/// An error ready to be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Process exit code.
    pub code: i32,
    /// Human readable message (may span several lines).
    pub message: String,
    /// HTTP status code when the error came from the API.
    pub status: Option<u16>,
}

impl CliError {
    /// A usage error (exit code 1).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_LOCAL,
            message: message.into(),
            status: None,
        }
    }

    /// A local runtime error (exit code 1).
    pub fn other(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_LOCAL,
            message: message.into(),
            status: None,
        }
    }

    /// A remote error without an HTTP status, such as an unreachable server (exit code 2).
    pub fn remote(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_REMOTE,
            message: message.into(),
            status: None,
        }
    }

    /// An error returned by the API (exit code 2), remembering the HTTP status.
    pub fn api(status: u16, message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_REMOTE,
            message: message.into(),
            status: Some(status),
        }
    }

    /// Prefixes the message, e.g. `Error reading secret/foo: <message>`.
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Result type used throughout the CLI; `Ok` carries the exit code.
pub type CliResult<T = i32> = Result<T, CliError>;

/// Adds context to the error of a [`CliResult`].
pub trait Context<T> {
    /// Prefixes the error message with `prefix`.
    fn context(self, prefix: impl fmt::Display) -> CliResult<T>;
}

impl<T> Context<T> for CliResult<T> {
    fn context(self, prefix: impl fmt::Display) -> CliResult<T> {
        self.map_err(|e| e.context(prefix))
    }
}

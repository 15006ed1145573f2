//! The core's one error type. The HTTP server maps each variant to a status code in exactly one
//! place; messages never contain secret values.

use tresor_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the input is malformed or violates a constraint.
    #[error("{0}")]
    BadRequest(String),
    /// 403: no token, an invalid token, or the policy denies the request.
    #[error("permission denied")]
    PermissionDenied,
    /// 403 with a specific reason (e.g. an invalid token, where Vault adds detail).
    #[error("{0}")]
    Forbidden(String),
    /// 404 with no body message (Vault answers `{"errors":[]}` for a missing secret).
    #[error("not found")]
    NotFound,
    /// 404 with a message.
    #[error("{0}")]
    NotFoundMsg(String),
    /// 405: the path exists but does not support this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 404: no backend path matches.
    #[error("{0}")]
    UnsupportedPath(String),
    /// 412: a check-and-set or precondition failed.
    #[error("{0}")]
    Precondition(String),
    /// 503: the barrier is sealed.
    #[error("Vault is sealed")]
    Sealed,
    /// This node is a standby (HA): the active node when known. The HTTP layer forwards the
    /// request to it (or redirects, 307); without one, 503.
    #[error("{}", match .0 { Some(a) => format!("this node is a standby; the active node is {}", a.api_addr), None => "this node is a standby and no active node is known".to_string() })]
    Standby(Option<Box<tresor_storage::NodeInfo>>),
    /// 400: the server has not been initialized.
    #[error("Vault is not initialized")]
    NotInitialized,
    /// 500: an internal failure (storage, crypto). The message names no secret.
    #[error("{0}")]
    Internal(String),
    /// 429: a rate-limit quota refused the request; the client may retry after this many
    /// seconds (`Retry-After`).
    #[error("request path {path:?}: rate limit quota exceeded")]
    RateLimited { path: String, retry_after: u64 },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }
    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) | Error::NotInitialized => 400,
            Error::PermissionDenied | Error::Forbidden(_) => 403,
            Error::NotFound | Error::NotFoundMsg(_) | Error::UnsupportedPath(_) => 404,
            Error::UnsupportedOperation => 405,
            Error::Precondition(_) => 412,
            Error::Sealed | Error::Standby(_) => 503,
            Error::Internal(_) => 500,
            Error::RateLimited { .. } => 429,
        }
    }
    /// The `errors` array of Vault's error body.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::NotFound => vec![],
            e => vec![e.to_string()],
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            // A write on a node that lost the HA lease: it is a standby now.
            StorageError::NotActive => Error::Standby(None),
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("encoding error: {e}"))
    }
}

//! Parse → respond (Postgres): why a client session ended or a request
//! failed, with the SQLSTATE the client is told.

use attache_postgres_protocol::frame::FrameError;
use attache_postgres_protocol::sqlstate;

use crate::core::error::ErrorSource;
use crate::core::pg::pool::CheckoutError;
use crate::core::pg::BackendError;
use crate::net::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("client connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("client TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("client sent a bad message: {0}")]
    Frame(#[from] FrameError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("timed out waiting for the client")]
    ClientTimeout,
    #[error("client idle in a transaction past idle_transaction_timeout")]
    IdleTransactionTimeout,
}

impl FrontendError {
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(message.into())
    }

    /// The SQLSTATE a client is told for this failure.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Self::Frame(FrameError::TooLarge { .. }) => sqlstate::PROGRAM_LIMIT_EXCEEDED,
            Self::Frame(_) | Self::Protocol(_) | Self::Tls(_) => sqlstate::PROTOCOL_VIOLATION,
            Self::Refused { code, .. } => code,
            Self::Checkout(CheckoutError::Timeout { .. }) => sqlstate::TOO_MANY_CONNECTIONS,
            Self::Checkout(CheckoutError::Backend(e)) | Self::Backend(e) => backend_sqlstate(e),
            Self::Io(_) => sqlstate::CONNECTION_FAILURE,
            Self::ClientTimeout => sqlstate::IDLE_SESSION_TIMEOUT,
            Self::IdleTransactionTimeout => sqlstate::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        }
    }

    pub fn source_kind(&self) -> ErrorSource {
        match self {
            Self::Io(_)
            | Self::Tls(_)
            | Self::Frame(_)
            | Self::Protocol(_)
            | Self::ClientTimeout
            | Self::IdleTransactionTimeout => ErrorSource::Client,
            Self::Refused { .. } => ErrorSource::Internal,
            Self::Checkout(_) | Self::Backend(_) => ErrorSource::Upstream,
        }
    }
}

fn backend_sqlstate(e: &BackendError) -> &'static str {
    match e {
        BackendError::Refused { fields, .. } => match fields.code.as_str() {
            "28P01" => sqlstate::INVALID_PASSWORD,
            "28000" => sqlstate::INVALID_AUTHORIZATION,
            "3D000" => sqlstate::INVALID_CATALOG_NAME,
            "53300" => sqlstate::TOO_MANY_CONNECTIONS,
            "57P03" => sqlstate::CANNOT_CONNECT_NOW,
            _ => sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH,
        },
        BackendError::PasswordRequired => sqlstate::INVALID_PASSWORD,
        BackendError::Io(_) | BackendError::Closed => sqlstate::CONNECTION_FAILURE,
        _ => sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH,
    }
}

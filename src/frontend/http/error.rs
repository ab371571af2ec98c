//! Respond (HTTP): the answers Attaché gives itself, when no upstream
//! answer can be relayed. Each carries `x-attache-error: <cause>` and a
//! one-line body naming the cause, so an app (or a person with curl) can
//! tell a proxy-side failure from the service's own 503.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::core::http::Body;

/// Why Attaché answered instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    #[error("no route matched {0}")]
    NoRoute(String),
    #[error("the request could not be read: {0}")]
    BadRequest(String),
    /// The app stopped sending its request body: its delay, answered as
    /// such (408, which clients and their proxies know to be theirs).
    #[error("the request body sent nothing for {0:?} (http.stream_idle_timeout)")]
    RequestTimeout(std::time::Duration),
    /// The app's body was not complete within `request_body_timeout` of
    /// its head (a trickle never quiet long enough to be idle).
    #[error("the request body was not complete within {0:?} (http.request_body_timeout)")]
    RequestBodyTimeout(std::time::Duration),
    /// Circuit breaking: too many requests, pending requests or
    /// connections for the cluster.
    #[error("cluster {0:?} is at its limit")]
    Overflow(String),
    #[error("every endpoint of cluster {0:?} is ejected after failing")]
    Ejected(String),
    #[error("no endpoint of cluster {0:?} passes its health checks")]
    Unhealthy(String),
    #[error("cluster {0:?} has no endpoints (DNS gave no address)")]
    NoEndpoints(String),
    #[error("could not connect to {0}: {1}")]
    ConnectFailure(String, String),
    #[error("the TLS certificate of {0} failed verification: {1}")]
    TlsVerify(String, String),
    /// The server ended TLS with an alert after the handshake (TLS 1.3
    /// reports a refused client certificate that way).
    #[error("{0} refused the TLS session (alert {1}): check tls.client_cert and tls.client_key")]
    TlsRejected(String, String),
    #[error("the connection to {0} broke before a response: {1}")]
    Reset(String, String),
    /// The upstream's body has transfer codings (besides chunked) that
    /// the app's protocol cannot carry (HTTP/2, HTTP/1.0), or that cannot
    /// be re-chunked: relayed without them it would be garbage.
    #[error("the upstream's response has transfer codings {0:?}, which cannot be relayed to this client")]
    TransferCoding(String),
    /// The app's body has transfer codings besides chunked (gzip, say):
    /// relayed, they would need a coding Attaché cannot name upstream on
    /// every path, so, as nginx does, it is refused (501).
    #[error("the request has transfer codings {0:?}; only chunked is supported")]
    RequestTransferCoding(String),
    #[error("no response within the timeout of {0:?}")]
    Timeout(std::time::Duration),
    #[error("retries of cluster {0:?} are over budget; the last try failed: {1}")]
    BudgetExhausted(String, Box<LocalError>),
    #[error("shutting down")]
    ShuttingDown,
}

impl LocalError {
    /// The `x-attache-error` value.
    pub fn cause(&self) -> &'static str {
        match self {
            LocalError::NoRoute(_) => "no-route",
            LocalError::BadRequest(_) => "bad-request",
            LocalError::RequestTimeout(_) | LocalError::RequestBodyTimeout(_) => "request-timeout",
            LocalError::Overflow(_) => "overflow",
            LocalError::Ejected(_) => "ejected",
            LocalError::Unhealthy(_) => "unhealthy",
            LocalError::NoEndpoints(_) => "no-endpoints",
            LocalError::ConnectFailure(..) => "connect-failure",
            LocalError::TlsVerify(..) => "tls-verify-failed",
            LocalError::TlsRejected(..) => "tls-rejected",
            LocalError::Reset(..) => "upstream-reset",
            LocalError::TransferCoding(_) | LocalError::RequestTransferCoding(_) => {
                "transfer-coding"
            }
            LocalError::Timeout(_) => "timeout",
            LocalError::BudgetExhausted(_, last) => last.cause(),
            LocalError::ShuttingDown => "shutting-down",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            LocalError::NoRoute(_) => StatusCode::NOT_FOUND,
            LocalError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LocalError::RequestTimeout(_) | LocalError::RequestBodyTimeout(_) => {
                StatusCode::REQUEST_TIMEOUT
            }
            LocalError::Overflow(_)
            | LocalError::Ejected(_)
            | LocalError::Unhealthy(_)
            | LocalError::NoEndpoints(_)
            | LocalError::ConnectFailure(..)
            | LocalError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            LocalError::TlsVerify(..)
            | LocalError::TlsRejected(..)
            | LocalError::Reset(..)
            | LocalError::TransferCoding(_) => StatusCode::BAD_GATEWAY,
            LocalError::RequestTransferCoding(_) => StatusCode::NOT_IMPLEMENTED,
            LocalError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            LocalError::BudgetExhausted(_, last) => last.status(),
        }
    }

    /// The one-line text body of the answer.
    pub fn body(&self) -> String {
        format!("attaché: {self}\n")
    }

    /// The response: status, `x-attache-error`, a short text body.
    pub fn response(&self, request_id: Option<&HeaderValue>) -> Response<Body> {
        let body = self.body();
        let mut resp = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        );
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert("x-attache-error", HeaderValue::from_static(self.cause()));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(id) = request_id {
            h.insert("x-request-id", id.clone());
        }
        resp
    }
}

#[cfg(test)]
mod tests;

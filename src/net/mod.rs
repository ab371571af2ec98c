//! Net: the byte pipes under every layer. Accept and backend connect both end
//! up here: [`tls`] turns config into rustls configs and runs handshakes, and
//! [`Stream`] lets the parse/respond layers treat plain and TLS sockets alike.

pub mod peer_closed;
pub mod prefixed;
pub mod stream;
pub mod tls;
pub mod write_idle;

pub use peer_closed::peer_closed;
pub use prefixed::Prefixed;
pub use stream::Stream;
pub use write_idle::WriteIdle;

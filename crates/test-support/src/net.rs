//! Addresses for tests that need a server to be absent.

/// A loopback port nothing listens on (bound, then released): a client is
/// refused there, and a server may take it.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

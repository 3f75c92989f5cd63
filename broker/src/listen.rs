//! Opening a listening socket with an error a person can act on: the address, what it was for,
//! why it failed (with the usual cause), and the setting that changes it.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Listens on `addr` for `what` (e.g. "the admin API (HTTP)"); `setting` names what changes
/// the address (a flag or a config key).
pub async fn bind(addr: SocketAddr, what: &str, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!(bind_error(addr, what, setting, &e)))
}

/// The message for a failed bind.
pub fn bind_error(addr: SocketAddr, what: &str, setting: &str, e: &io::Error) -> String {
    let cause = match e.kind() {
        io::ErrorKind::AddrInUse => " (another process listens there; `ss -ltnp` shows which)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        io::ErrorKind::AddrNotAvailable => " (no interface of this machine has that address)",
        _ => "",
    };
    format!("cannot listen on {addr} for {what}: {e}{cause}; choose another address with {setting}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_names_the_address_the_use_and_the_setting() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let error = bind(addr, "the admin API (HTTP)", "--http-addr")
            .await
            .expect_err("the port is taken");
        let message = error.to_string();
        for part in [
            &addr.to_string(),
            "the admin API (HTTP)",
            "--http-addr",
            "ss -ltnp",
        ] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }
}

//! systemd's readiness protocol (`sd_notify`, `Type=notify` units): one datagram per state
//! change to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). `READY=1` once the listeners accept, `RELOADING=1` then `READY=1` around SIGHUP,
//! `STOPPING=1` when shutdown starts. Without `$NOTIFY_SOCKET` nothing is sent.
//! Why no crate: the protocol is one `sendto` on std's `UnixDatagram`.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;

/// Tells systemd (if it asked) about a state change, e.g. `"READY=1"`.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        tracing::warn!(error = %e, state, "could not notify systemd");
    }
}

fn send(socket: &OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    match socket.as_bytes().strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        _ => {
            sock.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_state_is_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}

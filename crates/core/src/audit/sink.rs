//! Where audit lines go: a file (or stdout), a TCP/UDP socket, or the local syslog.
//! A sink writes complete lines (one, or a batch from the device's writer); a failed write is
//! reported, never swallowed, because the broker fails the request when no device could record
//! it.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

pub trait Sink: Send + Sync {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()>;
    /// Writes several lines; all of them, as far as the sink can tell, or an error.
    fn write_lines(&mut self, lines: &[Vec<u8>]) -> std::io::Result<()> {
        lines.iter().try_for_each(|l| self.write_line(l))
    }
    /// Whether a write may wait on a network peer (or a name lookup), not only a local disk.
    fn may_block(&self) -> bool {
        false
    }
    /// Reopens the underlying file (log rotation, `SIGHUP`). Other sinks do nothing.
    fn reopen(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends to a file, created with the given mode; `-` or `stdout` writes to standard output.
pub struct FileSink {
    path: PathBuf,
    mode: u32,
    file: Option<std::fs::File>,
    /// A batch's lines, joined for one write (kept between writes).
    joined: Vec<u8>,
}

impl FileSink {
    pub fn open(path: PathBuf, mode: u32) -> std::io::Result<Self> {
        let mut s = FileSink {
            path,
            mode,
            file: None,
            joined: Vec::new(),
        };
        s.reopen()?;
        Ok(s)
    }
    fn is_stdout(&self) -> bool {
        matches!(self.path.to_str(), Some("-") | Some("stdout"))
    }
    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

impl Sink for FileSink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.is_stdout() {
            let mut out = std::io::stdout().lock();
            out.write_all(line)?;
            return out.flush();
        }
        match &mut self.file {
            Some(f) => append_whole_line(f, line),
            None => Err(std::io::Error::other("audit file is not open")),
        }
    }

    /// One write for all of them: a file gets the whole batch or, after a failure, none of it.
    fn write_lines(&mut self, lines: &[Vec<u8>]) -> std::io::Result<()> {
        match lines {
            [line] => self.write_line(line),
            _ => {
                let mut joined = std::mem::take(&mut self.joined);
                joined.clear();
                lines.iter().for_each(|l| joined.extend_from_slice(l));
                let written = self.write_line(&joined);
                if joined.capacity() <= 1 << 20 {
                    self.joined = joined;
                }
                written
            }
        }
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if self.is_stdout() {
            return Ok(());
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NOFOLLOW: a symlink planted at the path is refused, not followed.
            opts.mode(self.mode).custom_flags(libc_o_nofollow());
        }
        self.file = Some(opts.open(&self.path)?);
        Ok(())
    }
}

/// Appends a line or nothing: a write that fails part way (a full disk) is cut back by the
/// bytes it wrote, so the next line does not continue a fragment and the chain stays readable.
/// (Counting what was written, rather than asking where the file ended before every line,
/// spares a system call per entry; the file is opened for appending, so a fragment is at its
/// end.)
fn append_whole_line(f: &mut std::fs::File, line: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    while written < line.len() {
        let e = match f.write(&line[written..]) {
            Ok(0) => std::io::Error::from(std::io::ErrorKind::WriteZero),
            Ok(n) => {
                written += n;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        if written > 0 {
            let cut = f
                .metadata()
                .and_then(|m| f.set_len(m.len().saturating_sub(written as u64)));
            if let Err(cut) = cut {
                tracing::error!(error = %cut, "audit file: could not remove a partly written line");
            }
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
fn libc_o_nofollow() -> i32 {
    // O_NOFOLLOW is 0o400000 on Linux (x86, arm); 0x100 on the BSDs and macOS.
    if cfg!(target_os = "linux") {
        0o400000
    } else {
        0x100
    }
}

/// Sends each line over TCP (reconnecting after a failure) or as one UDP datagram.
pub struct SocketSink {
    address: String,
    udp: bool,
    tcp: Option<TcpStream>,
}

impl SocketSink {
    pub fn new(address: String, socket_type: &str) -> std::io::Result<Self> {
        let udp = match socket_type {
            "udp" => true,
            "tcp" | "" => false,
            other => {
                return Err(std::io::Error::other(format!(
                    "unsupported socket_type {other:?}"
                )))
            }
        };
        let mut s = SocketSink {
            address,
            udp,
            tcp: None,
        };
        if !s.udp {
            // Dial now, so a device that cannot work is refused when enabled, not after.
            s.connect()?;
        }
        Ok(s)
    }

    fn connect(&mut self) -> std::io::Result<()> {
        let addr = self
            .address
            .parse()
            .map_err(|_| std::io::Error::other("invalid socket address"))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        self.tcp = Some(s);
        Ok(())
    }
}

impl Sink for SocketSink {
    fn may_block(&self) -> bool {
        true
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.udp {
            let sock = UdpSocket::bind("0.0.0.0:0")?;
            sock.send_to(line, &self.address)?;
            return Ok(());
        }
        for attempt in 0..2 {
            if self.tcp.is_none() {
                self.connect()?;
            }
            let result = self
                .tcp
                .as_mut()
                .map(|s| s.write_all(line))
                .unwrap_or(Ok(()));
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.tcp = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes RFC 3164 messages to the local syslog socket (`/dev/log`).
pub struct SyslogSink {
    facility: u8,
    tag: String,
    #[cfg(unix)]
    socket: std::os::unix::net::UnixDatagram,
}

impl SyslogSink {
    pub fn new(facility: &str, tag: &str) -> std::io::Result<Self> {
        let facility = match facility.to_ascii_uppercase().as_str() {
            "" | "AUTH" => 4,
            "AUTHPRIV" => 10,
            "DAEMON" => 3,
            "USER" => 1,
            f if f.starts_with("LOCAL") => {
                16 + f[5..]
                    .parse::<u8>()
                    .map_err(|_| std::io::Error::other("invalid syslog facility"))?
                    .min(7)
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "invalid syslog facility {other:?}"
                )))
            }
        };
        #[cfg(unix)]
        {
            let socket = std::os::unix::net::UnixDatagram::unbound()?;
            socket.connect("/dev/log")?;
            Ok(SyslogSink {
                facility,
                tag: if tag.is_empty() {
                    "tresor".into()
                } else {
                    tag.into()
                },
                socket,
            })
        }
        #[cfg(not(unix))]
        Err(std::io::Error::other("syslog is only supported on unix"))
    }
}

impl Sink for SyslogSink {
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        // Severity 6 (informational).
        let mut msg = format!("<{}>{}: ", self.facility * 8 + 6, self.tag).into_bytes();
        msg.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
        #[cfg(unix)]
        self.socket.send(&msg)?;
        Ok(())
    }
}

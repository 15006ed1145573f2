//! The connections of one listener: how many may be open, how long one may sit without
//! sending a complete request header or anything at all, and which one gives way when the
//! listener is full.
//!
//! Every accepted connection registers a [`Conn`]: requests in flight, a count of reads (its
//! I/O is wrapped by [`Metered`]), and when it last went quiet. A reaper task looks at all of
//! them a few times a second and closes those past a deadline:
//!
//! * no request in flight, and bytes arrived since the last answer (a request header on its
//!   way, or a TLS handshake): `http_read_header_timeout` after the reaper first saw them,
//!   or after the connection opened for its first request;
//! * no request in flight and nothing arrived since the last answer: `http_idle_timeout`;
//! * a request in flight: no deadline here (its body read is bounded by `http_read_timeout`
//!   in the HTTP handler).
//!
//! At `max_connections`, a new connection makes the connection that has been quiet longest
//! (no request in flight) give way, so slow or idle clients can never lock out a new one;
//! if every connection is busy, the new one is closed. A closed connection with a request
//! in flight is never chosen, by the reaper or by eviction.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Vault's `http_read_header_timeout` default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Vault's `http_read_timeout` default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Vault's `http_idle_timeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// File descriptors kept free of connections (storage, audit files, database pools).
const RESERVED_FDS: u64 = 256;

/// A listener's connection limits (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// The open-files limit less a reserve, so connections cannot starve storage of descriptors.
pub fn default_max_connections() -> usize {
    let files = crate::hardening::open_files_limit().unwrap_or(1024);
    files.saturating_sub(RESERVED_FDS).max(64) as usize
}

/// One open connection.
pub struct Conn {
    in_flight: AtomicU32,
    /// Successful reads so far.
    reads: AtomicU64,
    /// `reads` when the connection last went quiet (its last answer, or its opening).
    quiet_reads: AtomicU64,
    /// When it last went quiet, in ms since the registry's epoch.
    quiet_since: AtomicU64,
    /// When the reaper first saw bytes after `quiet_since` (0: not yet); reaper-owned.
    reading_since: AtomicU64,
    /// Whether a request has been answered (the first request's header deadline counts from
    /// the opening).
    served: std::sync::atomic::AtomicBool,
    /// Asked to close by eviction (no longer counted against the limit).
    evicted: std::sync::atomic::AtomicBool,
    close: Notify,
}

impl Conn {
    /// Marks a request in flight until the guard drops.
    pub fn request(self: &Arc<Self>, registry: &Registry) -> RequestGuard {
        self.in_flight.fetch_add(1, Relaxed);
        RequestGuard {
            conn: self.clone(),
            epoch: registry.epoch,
        }
    }

    /// Resolves when the registry wants this connection closed.
    pub async fn closing(&self) {
        self.close.notified().await
    }

    /// A request arrived after the connection was asked to close: it stays, and counts again.
    pub fn reprieve(&self) {
        self.evicted.store(false, Relaxed);
    }

    /// Whether no request is in flight (the connection may be dropped without losing one).
    pub fn is_quiet(&self) -> bool {
        self.in_flight.load(Relaxed) == 0
    }
}

/// A request in flight on a connection.
pub struct RequestGuard {
    conn: Arc<Conn>,
    epoch: Instant,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let c = &self.conn;
        c.quiet_reads.store(c.reads.load(Relaxed), Relaxed);
        c.quiet_since.store(ms_since(self.epoch), Relaxed);
        c.served.store(true, Relaxed);
        c.in_flight.fetch_sub(1, Relaxed);
    }
}

fn ms_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// The connections of one listener.
pub struct Registry {
    limits: Limits,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    refused: RateLimitedLog,
}

/// Unregisters its connection when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
    pub conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.conns.lock().remove(&self.id);
    }
}

impl Registry {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Registry {
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            refused: RateLimitedLog::new(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a new connection. At the limit, the connection quiet for longest gives way;
    /// `None` (close the new one) when every connection has a request in flight.
    pub fn open(self: &Arc<Self>) -> Option<Registration> {
        let now = ms_since(self.epoch);
        let conn = Arc::new(Conn {
            in_flight: AtomicU32::new(0),
            reads: AtomicU64::new(0),
            quiet_reads: AtomicU64::new(0),
            quiet_since: AtomicU64::new(now),
            reading_since: AtomicU64::new(0),
            served: std::sync::atomic::AtomicBool::new(false),
            evicted: std::sync::atomic::AtomicBool::new(false),
            close: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Relaxed);
        let mut conns = self.conns.lock();
        // Evicted connections may linger a moment before their task drops them.
        let full = conns.len() >= self.limits.max_connections
            && conns.values().filter(|c| !c.evicted.load(Relaxed)).count()
                >= self.limits.max_connections;
        if full && !self.evict_one(&conns) {
            drop(conns);
            self.refused
                .warn("connection refused: max_connections reached and every connection is busy");
            return None;
        }
        conns.insert(id, conn.clone());
        Some(Registration {
            registry: self.clone(),
            id,
            conn,
        })
    }

    /// Asks the longest-quiet connection to close; false if none is quiet.
    fn evict_one(&self, conns: &HashMap<u64, Arc<Conn>>) -> bool {
        let victim = conns
            .values()
            .filter(|c| c.is_quiet() && !c.evicted.load(Relaxed))
            .min_by_key(|c| c.quiet_since.load(Relaxed));
        match victim {
            Some(c) => {
                c.evicted.store(true, Relaxed);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Makes room after the process ran out of file descriptors (accept failed with EMFILE).
    pub fn shed_one(&self) {
        let conns = self.conns.lock();
        self.evict_one(&conns);
    }

    /// Closes every connection past its deadline; returns how many.
    fn reap(&self) -> usize {
        let now = ms_since(self.epoch);
        let header = self.limits.header_read_timeout.as_millis() as u64;
        let idle = self.limits.idle_timeout.as_millis() as u64;
        let mut closed = 0;
        for c in self.conns.lock().values() {
            if !c.is_quiet() {
                c.reading_since.store(0, Relaxed);
                continue;
            }
            let quiet_since = c.quiet_since.load(Relaxed);
            let expired = if !c.served.load(Relaxed) {
                // The first request: its header is due within the timeout of the opening.
                now.saturating_sub(quiet_since) >= header
            } else if c.reads.load(Relaxed) != c.quiet_reads.load(Relaxed) {
                let since = match c.reading_since.load(Relaxed) {
                    0 => {
                        c.reading_since.store(now.max(1), Relaxed);
                        now
                    }
                    t => t,
                };
                now.saturating_sub(since) >= header
            } else {
                now.saturating_sub(quiet_since) >= idle
            };
            if expired {
                c.close.notify_one();
                closed += 1;
            }
        }
        closed
    }

    /// Runs the reaper until `stop` is cancelled.
    pub fn spawn_reaper(self: &Arc<Self>, stop: CancellationToken) {
        let every = (self
            .limits
            .header_read_timeout
            .min(self.limits.idle_timeout)
            / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(registry) = me.upgrade() else { return };
                let n = registry.reap();
                if n > 0 {
                    tracing::debug!(closed = n, "closed connections past their deadline");
                }
            }
        });
    }
}

/// A connection's I/O, counting reads for the reaper.
pub struct Metered<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T> Metered<T> {
    pub fn new(inner: T, conn: Arc<Conn>) -> Self {
        Metered { inner, conn }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.reads.fetch_add(1, Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A warning logged at most every few seconds, with the count of those it held back.
pub struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl RateLimitedLog {
    const EVERY: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        RateLimitedLog {
            last: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    pub fn warn(&self, msg: &str) {
        self.warn_with(msg, "");
    }

    /// Logs `msg` (with `detail`) unless one was logged within the last few seconds.
    pub fn warn_with(&self, msg: &str, detail: &str) {
        let mut last = self.last.lock();
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.held_back.fetch_add(1, Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let held_back = self.held_back.swap(0, Relaxed);
        tracing::warn!(error = %detail, suppressed = held_back, "{msg}");
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(100),
            read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_millis(300),
            max_connections: max,
        }
    }

    #[tokio::test]
    async fn the_longest_quiet_connection_gives_way_and_busy_ones_never_do() {
        let r = Registry::new(limits(2));
        let a = r.open().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = r.open().unwrap();
        let busy = b.conn.request(&r);
        // Full: `a` (quiet) is asked to close, `b` (busy) is not.
        let c = r.open().unwrap();
        tokio::time::timeout(Duration::from_secs(1), a.conn.closing())
            .await
            .expect("the quiet connection is evicted");
        drop(a);
        // Full again, and both are busy now: the newcomer is refused.
        let _busy_c = c.conn.request(&r);
        assert!(r.open().is_none());
        drop(busy);
        assert!(r.open().is_some());
    }

    #[tokio::test]
    async fn deadlines_follow_what_the_connection_is_doing() {
        let r = Registry::new(limits(10));
        let silent = r.open().unwrap();
        let served = r.open().unwrap();
        drop(served.conn.request(&r));
        // Nothing within the header timeout of the opening: closed; a served, idle one stays.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(r.reap(), 1);
        tokio::time::timeout(Duration::from_millis(100), silent.conn.closing())
            .await
            .unwrap();
        drop(silent);
        // Bytes of a next request arrive but no header completes: header deadline applies.
        served.conn.reads.fetch_add(1, Relaxed);
        assert_eq!(r.reap(), 0, "first sight starts the clock");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(r.reap(), 1);
        // A request in flight is never reaped, whatever its age.
        let long = r.open().unwrap();
        let _req = long.conn.request(&r);
        tokio::time::sleep(Duration::from_millis(350)).await;
        drop(served);
        assert_eq!(r.reap(), 0);
    }
}

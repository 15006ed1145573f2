//! The server's log: format, levels that change at run time, and streaming to monitors.
//!
//! * Format: `standard` (tracing-subscriber's human format) or `json` (one JSON object per
//!   line, tracing-subscriber's `json` formatter with the event's fields at the top level),
//!   chosen once at start (`-log-format`, `VAULT_LOG_FORMAT`, `log_format`).
//! * Levels: the configured level (`-log-level`, `VAULT_LOG_LEVEL`, `log_level`; `TRESOR_LOG`
//!   takes a raw tracing filter instead) applies to everything; `sys/loggers` overrides it
//!   for all or for one named logger (a group of tracing targets, [`LOGGERS`]) through a
//!   reloadable filter. SIGHUP sets the configured level again and drops the overrides.
//! * Monitors (`sys/monitor`): every event is also formatted for the open monitors, at their
//!   own level whatever the server's, and broadcast to them; a monitor that cannot keep up
//!   loses lines (and is told how many), the server never waits for it.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};
use tresor_core::sys::operator::LogLevel;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Standard,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standard" => Some(LogFormat::Standard),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Standard => "standard",
            LogFormat::Json => "json",
        }
    }
}

/// A level setting as `-log-level` and `log_level` take it: Vault's names, or `off`.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Some(LevelFilter::OFF);
    }
    LogLevel::parse(s).map(level_filter)
}

fn level_filter(l: LogLevel) -> LevelFilter {
    match l {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// The loggers `sys/loggers` names, and the tracing targets (module paths) each covers. A
/// more specific logger (`audit`) is separate from the one containing it (`core`).
pub const LOGGERS: &[(&str, &[&str])] = &[
    ("audit", &["tresor_core::audit"]),
    ("auth", &["tresor_auth"]),
    ("core", &["tresor_core"]),
    ("expiration", &["tresor_core::expiration"]),
    (
        "ha",
        &[
            "tresor_core::ha",
            "tresor_core::standby",
            "tresor_server::cluster",
        ],
    ),
    ("identity", &["tresor_core::identity"]),
    ("listener", &["tresor_server"]),
    (
        "policy",
        &["tresor_core::policy", "tresor_core::policy_store"],
    ),
    ("request", &["tresor::request"]),
    ("secrets", &["tresor_engines"]),
    ("storage", &["tresor_storage"]),
    ("token", &["tresor_core::token"]),
];

/// The levels in force: configured, and what `sys/loggers` set on top.
struct Levels {
    configured: LevelFilter,
    /// `TRESOR_LOG`, a raw filter that replaces the configured level while nothing is
    /// overridden.
    raw: Option<String>,
    /// `POST sys/loggers`: every logger, and every target no logger names.
    all: Option<LevelFilter>,
    /// `POST sys/loggers/:name`.
    by_logger: BTreeMap<&'static str, LevelFilter>,
}

impl Levels {
    fn of(&self, logger: &str) -> LevelFilter {
        self.by_logger
            .get(logger)
            .copied()
            .or(self.all)
            .unwrap_or(self.configured)
    }

    /// The filter: the configured level (or `TRESOR_LOG`) while nothing is overridden;
    /// otherwise every logger at its level, so one logger's override does not leak into the
    /// loggers inside it (`core` into `audit`).
    fn directives(&self) -> String {
        if self.all.is_none() && self.by_logger.is_empty() {
            return self
                .raw
                .clone()
                .unwrap_or_else(|| self.configured.to_string());
        }
        let mut d = vec![self.all.unwrap_or(self.configured).to_string()];
        for (name, targets) in LOGGERS {
            let level = self.of(name);
            d.extend(targets.iter().map(|t| format!("{t}={level}")));
        }
        d.join(",")
    }
}

/// The running log: its format, reloadable levels and the monitors.
pub struct Logging {
    pub format: LogFormat,
    filter: reload::Handle<EnvFilter, Registry>,
    levels: Mutex<Levels>,
    monitors: Arc<Monitors>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Installs the process's log (stderr) at `level` in `format`. A second server in one process
/// keeps the first one's log (the handle then changes nothing).
pub fn init(level: LevelFilter, format: LogFormat) -> Result<Arc<Logging>, crate::BoxError> {
    let raw = std::env::var("TRESOR_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let levels = Levels {
        configured: level,
        raw,
        all: None,
        by_logger: BTreeMap::new(),
    };
    let env_filter = EnvFilter::try_new(levels.directives())
        .map_err(|e| format!("invalid TRESOR_LOG filter: {e}"))?;
    let (filter, handle) = reload::Layer::new(env_filter);
    let ansi =
        format == LogFormat::Standard && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let monitors = Arc::new(Monitors::new());
    let mut layers: Vec<BoxedLayer> = vec![Box::new(
        fmt_layer(format, ansi, std::io::stderr).with_filter(filter),
    )];
    for f in [LogFormat::Standard, LogFormat::Json] {
        let writer = MonitorWriter {
            monitors: monitors.clone(),
            format: f,
        };
        let filter = MonitorFilter {
            monitors: monitors.clone(),
            format: f,
        };
        layers.push(Box::new(fmt_layer(f, false, writer).with_filter(filter)));
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(Arc::new(Logging {
        format,
        filter: handle,
        levels: Mutex::new(levels),
        monitors,
    }))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn fmt_layer<W>(format: LogFormat, ansi: bool, writer: W) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Standard => Box::new(layer),
        LogFormat::Json => Box::new(layer.json().flatten_event(true)),
    }
}

impl Logging {
    fn apply(&self, levels: &Levels) {
        match EnvFilter::try_new(levels.directives()) {
            Ok(f) => {
                if let Err(e) = self.filter.reload(f) {
                    tracing::error!(error = %e, "could not change the log levels");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not change the log levels"),
        }
    }

    /// Every logger and its level (`sys/loggers`).
    pub fn loggers(&self) -> Vec<(String, String)> {
        let levels = self.levels.lock();
        LOGGERS
            .iter()
            .map(|(name, _)| (name.to_string(), levels.of(name).to_string().to_lowercase()))
            .collect()
    }

    /// Sets one logger's level, or all loggers' (`None`).
    pub fn set_level(&self, logger: Option<&str>, level: LogLevel) -> Result<(), String> {
        let mut levels = self.levels.lock();
        let level = level_filter(level);
        match logger {
            None => {
                levels.all = Some(level);
                levels.by_logger.clear();
            }
            Some(name) => {
                let name = known_logger(name)?;
                levels.by_logger.insert(name, level);
            }
        }
        self.apply(&levels);
        Ok(())
    }

    /// Back to the configured level: one logger, or all (`None`).
    pub fn reset_level(&self, logger: Option<&str>) -> Result<(), String> {
        let mut levels = self.levels.lock();
        match logger {
            None => {
                levels.all = None;
                levels.by_logger.clear();
            }
            Some(name) => {
                let name = known_logger(name)?;
                if levels.all.is_some() {
                    let configured = levels.configured;
                    levels.by_logger.insert(name, configured);
                } else {
                    levels.by_logger.remove(name);
                }
            }
        }
        self.apply(&levels);
        Ok(())
    }

    /// A new configured level (SIGHUP): overrides are dropped, as a restart would.
    pub fn set_configured(&self, level: LevelFilter) {
        let mut levels = self.levels.lock();
        levels.configured = level;
        levels.all = None;
        levels.by_logger.clear();
        self.apply(&levels);
    }

    /// Streams the log at `level` in `format` (JSON too when the server logs JSON, as Vault)
    /// until the body is dropped (the client left), `stop` is cancelled (shutdown) or `ended`
    /// says so (asked every second: the node sealed).
    pub fn monitor(
        &self,
        level: LogLevel,
        format: LogFormat,
        stop: CancellationToken,
        ended: impl Fn() -> bool + Send + 'static,
    ) -> MonitorBody {
        let format = if self.format == LogFormat::Json {
            LogFormat::Json
        } else {
            format
        };
        let level = level_filter(level);
        let registration = Registration::new(self.monitors.clone(), format, level);
        let mut lines = self.monitors.lines.subscribe();
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            let _registration = registration;
            let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                // However busy the log, shutdown is seen at every line; what was logged
                // before it still goes out, if the client takes it at once.
                if stop.is_cancelled() {
                    while let Ok(l) = lines.try_recv() {
                        if l.format == format && l.level <= level && tx.try_send(l.text).is_err() {
                            break;
                        }
                    }
                    return;
                }
                // Lines first: what was logged before shutdown still goes out.
                let line = tokio::select! {
                    biased;
                    line = lines.recv() => line,
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = every_second.tick() => {
                        if ended() {
                            return;
                        }
                        continue;
                    }
                };
                let text = match line {
                    Ok(l) if l.format == format && l.level <= level => l.text,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Bytes::from(format!("Monitor dropped {n} logs during monitor request\n"))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // A client that does not read holds up neither the log nor shutdown.
                tokio::select! {
                    biased;
                    sent = tx.send(text) => if sent.is_err() { return },
                    _ = stop.cancelled() => return,
                }
            }
        });
        MonitorBody {
            rx,
            hold: Vec::new(),
        }
    }
}

fn known_logger(name: &str) -> Result<&'static str, String> {
    LOGGERS
        .iter()
        .map(|(n, _)| *n)
        .find(|n| *n == name)
        .ok_or_else(|| format!("logger {name:?} not found"))
}

/// One formatted event, for the monitors of its format.
#[derive(Clone)]
struct Line {
    format: LogFormat,
    level: Level,
    text: Bytes,
}

/// The open monitors: the broadcast they read, and per format the most verbose level one of
/// them wants (nothing is formatted for monitors while none is open).
struct Monitors {
    lines: broadcast::Sender<Line>,
    open: Mutex<Vec<(u64, LogFormat, LevelFilter)>>,
    next: std::sync::atomic::AtomicU64,
    standard: AtomicU8,
    json: AtomicU8,
}

impl Monitors {
    fn new() -> Self {
        Monitors {
            lines: broadcast::channel(512).0,
            open: Mutex::new(Vec::new()),
            next: Default::default(),
            standard: AtomicU8::new(0),
            json: AtomicU8::new(0),
        }
    }

    fn max(&self, format: LogFormat) -> &AtomicU8 {
        match format {
            LogFormat::Standard => &self.standard,
            LogFormat::Json => &self.json,
        }
    }

    /// Recomputes the levels wanted after a monitor came or went, and has tracing re-ask
    /// every filter (the most verbose level anyone wants gates the log macros).
    fn update(&self) {
        let open = self.open.lock();
        for format in [LogFormat::Standard, LogFormat::Json] {
            let max = open
                .iter()
                .filter(|(_, f, _)| *f == format)
                .map(|(_, _, l)| *l)
                .max()
                .unwrap_or(LevelFilter::OFF);
            self.max(format).store(encode(max), Relaxed);
        }
        drop(open);
        tracing::callsite::rebuild_interest_cache();
    }
}

fn encode(l: LevelFilter) -> u8 {
    match l.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(Level::TRACE) => 5,
    }
}

fn decode(n: u8) -> LevelFilter {
    match n {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// An open monitor, counted while it lives.
struct Registration {
    monitors: Arc<Monitors>,
    id: u64,
}

impl Registration {
    fn new(monitors: Arc<Monitors>, format: LogFormat, level: LevelFilter) -> Self {
        let id = monitors.next.fetch_add(1, Relaxed);
        monitors.open.lock().push((id, format, level));
        monitors.update();
        Registration { monitors, id }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.monitors
            .open
            .lock()
            .retain(|(id, _, _)| *id != self.id);
        self.monitors.update();
    }
}

/// Lets through what the monitors of one format want.
struct MonitorFilter {
    monitors: Arc<Monitors>,
    format: LogFormat,
}

/// Whether an event is Tresor's own (what `sys/monitor` streams, as Vault's monitor sees only
/// Vault's logger). Other crates' events stay out: at debug, the HTTP/2 library logs every
/// frame it sends, and a monitor over HTTP/2 would stream its own frames forever.
fn tresor_target(target: &str) -> bool {
    target == "tresor" || target.starts_with("tresor::") || target.starts_with("tresor_")
}

impl<S> tracing_subscriber::layer::Filter<S> for MonitorFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        tresor_target(meta.target())
            && *meta.level() <= decode(self.monitors.max(self.format).load(Relaxed))
    }
    /// Asked per event for Tresor's own callsites (monitors come and go); never for others.
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if tresor_target(meta.target()) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(decode(self.monitors.max(self.format).load(Relaxed)))
    }
}

/// Where the monitor layers write: each formatted event becomes one broadcast [`Line`].
struct MonitorWriter {
    monitors: Arc<Monitors>,
    format: LogFormat,
}

struct LineWriter<'a> {
    to: &'a MonitorWriter,
    level: Level,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MonitorWriter {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            to: self,
            level: Level::INFO,
        }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            to: self,
            level: *meta.level(),
        }
    }
}

/// The formatter hands over a whole event in one write.
impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // No receiver: nobody monitors this instant; nothing to do.
        let _ = self.to.monitors.lines.send(Line {
            format: self.to.format,
            level: self.level,
            text: Bytes::copy_from_slice(buf),
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body of a `sys/monitor` answer: log lines as they come. It ends when the stream ends
/// (shutdown); dropping it (the client left) ends the stream. It holds what must live as
/// long as the answer (the request's in-flight registrations).
pub struct MonitorBody {
    rx: mpsc::Receiver<Bytes>,
    hold: Vec<Box<dyn Send + Sync>>,
}

impl MonitorBody {
    /// Keeps `guard` until the body is done.
    pub fn hold(&mut self, guard: impl Send + Sync + 'static) {
        self.hold.push(Box::new(guard));
    }
}

impl hyper::body::Body for MonitorBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(hyper::body::Frame::data(l))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Levels {
        Levels {
            configured: LevelFilter::INFO,
            raw: None,
            all: None,
            by_logger: BTreeMap::new(),
        }
    }

    #[test]
    fn one_logger_does_not_leak_into_the_loggers_inside_it() {
        let mut l = levels();
        assert_eq!(l.directives(), "info");
        l.by_logger.insert("core", LevelFilter::DEBUG);
        let d = l.directives();
        assert!(d.starts_with("info,"), "{d}");
        assert!(d.contains("tresor_core=debug"), "{d}");
        assert!(d.contains("tresor_core::audit=info"), "{d}");
        assert_eq!(l.of("audit"), LevelFilter::INFO);
        // Every directive parses.
        EnvFilter::try_new(&d).unwrap();
    }

    #[test]
    fn raw_filter_applies_while_nothing_is_overridden() {
        let mut l = levels();
        l.raw = Some("tresor_storage=trace,warn".into());
        assert_eq!(l.directives(), "tresor_storage=trace,warn");
        l.all = Some(LevelFilter::ERROR);
        assert!(l.directives().starts_with("error,"));
        assert_eq!(l.of("storage"), LevelFilter::ERROR);
    }

    #[test]
    fn every_logger_is_named_once() {
        let mut names: Vec<&str> = LOGGERS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), LOGGERS.len());
        assert!(known_logger("nope").unwrap_err().contains("not found"));
    }

    #[test]
    fn levels_and_formats_parse() {
        assert_eq!(parse_level("OFF"), Some(LevelFilter::OFF));
        assert_eq!(parse_level("warning"), Some(LevelFilter::WARN));
        assert_eq!(parse_level("notice"), Some(LevelFilter::INFO));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("xml"), None);
        for n in 0..=5 {
            assert_eq!(encode(decode(n)), n);
        }
    }
}

//! Slow and idle clients cannot take the server down: the real binary holds thousands of
//! connections that never finish a request header or never send anything, and still serves
//! a normal client; it closes them at their deadlines; at `max_connections` the longest-quiet
//! connection gives way; bodies that are too large or never arrive are refused.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Lets this test process hold thousands of sockets.
fn raise_open_files() {
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.addr.trim_start_matches("http://")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Whether the server has closed the connection (EOF, or reset).
fn closed_by_server(c: &mut TcpStream) -> bool {
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 512];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A normal client's request on a fresh connection: (status, how long it took).
fn normal_request(s: &Server) -> (u16, Duration) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = client
        .get(format!("{}/v1/sys/health", s.addr))
        .send()
        .unwrap();
    (r.status().as_u16(), started.elapsed())
}

#[test]
fn thousands_of_slow_and_idle_connections_do_not_lock_out_a_client() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let s = configured_server(
        dir.path(),
        free_port(),
        "  http_read_header_timeout = \"2s\"\n  http_idle_timeout = \"4s\"",
        "",
        &[],
    );
    s.init_and_unseal();
    // 1,500 that never finish their header, 1,500 that never send anything.
    let mut partial = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..1500 {
        let mut c = connect(&s);
        c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        partial.push(c);
        silent.push(connect(&s));
    }
    // And one that finished a request and went idle (keep-alive).
    let mut idle = connect(&s);
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).unwrap() > 0);

    let (status, took) = normal_request(&s);
    eprintln!("normal request with 3,001 slow/idle connections open: {status} in {took:?}");
    assert_eq!(status, 200);

    // Past the header deadline the slow ones are gone; the idle one lives to its own.
    std::thread::sleep(Duration::from_millis(3000));
    for c in partial.iter_mut().step_by(50) {
        assert!(
            closed_by_server(c),
            "a partial header outlived its deadline"
        );
    }
    for c in silent.iter_mut().step_by(50) {
        assert!(
            closed_by_server(c),
            "a silent connection outlived its deadline"
        );
    }
    assert!(
        !closed_by_server(&mut idle),
        "idle keep-alive closed too early"
    );
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        closed_by_server(&mut idle),
        "idle keep-alive outlived http_idle_timeout"
    );
    assert_eq!(normal_request(&s).0, 200);
}

#[test]
fn at_max_connections_the_longest_quiet_connection_gives_way() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let s = configured_server(dir.path(), free_port(), "  max_connections = 50", "", &[]);
    s.init_and_unseal();
    let mut held: Vec<TcpStream> = (0..200).map(|_| connect(&s)).collect();
    for _ in 0..3 {
        assert_eq!(normal_request(&s).0, 200);
    }
    // The oldest have been closed to make room; the newest are still open.
    std::thread::sleep(Duration::from_millis(300));
    assert!(closed_by_server(&mut held[0]));
    let open = held
        .iter_mut()
        .map(|c| !closed_by_server(c))
        .filter(|o| *o)
        .count();
    assert!(
        open <= 50,
        "{open} connections open past max_connections = 50"
    );
}

/// The defect report's case: a server whose open-files limit is 1,024 (soft and hard), 1,100
/// idle connections. Its default `max_connections` stays below the limit, so accepting never
/// fails for lack of descriptors, and the idle connections make room for a client.
#[test]
fn a_low_open_files_limit_still_serves_clients() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let s = durable_server_with_rlimit(dir.path(), free_port(), libc::RLIMIT_NOFILE as i32, 1024);
    s.init_and_unseal();
    let _idle: Vec<TcpStream> = (0..1100).map(|_| connect(&s)).collect();
    for _ in 0..3 {
        assert_eq!(normal_request(&s).0, 200);
    }
}

#[test]
fn bodies_too_large_or_too_slow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = configured_server(
        dir.path(),
        free_port(),
        "  http_read_timeout = \"1s\"\n  max_request_size = 1024",
        "",
        &[],
    );
    let (_, root) = s.init_and_unseal();
    let response = |c: &mut TcpStream| {
        let mut text = Vec::new();
        let _ = c.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    };

    // Announced far beyond the limit: refused at once, nothing read.
    let mut c = connect(&s);
    write!(
        c,
        "POST /v1/secret/data/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {root}\r\nContent-Length: 999999999999\r\n\r\n{{}}"
    )
    .unwrap();
    let r = response(&mut c);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("request body too large"), "{r}");

    // A body that stops arriving: 408 after http_read_timeout, connection closed.
    let mut c = connect(&s);
    write!(
        c,
        "POST /v1/sys/mounts/kv HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {root}\r\nContent-Length: 100\r\n\r\n{{\"type\""
    )
    .unwrap();
    let r = response(&mut c);
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.contains("http_read_timeout"), "{r}");
    // Nothing of it was applied.
    let (st, mounts) = s.call("GET", "sys/mounts", Some(&root), None);
    assert_eq!(st, 200);
    assert!(mounts["data"].get("kv/").is_none(), "{mounts}");
}

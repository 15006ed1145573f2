//! SIGTERM under load: requests in flight finish and are answered, new connections are
//! refused, the process exits 0 and the store opens again with every acknowledged write.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn signal(s: &Server, sig: i32) {
    assert_eq!(unsafe { libc::kill(s.child.id() as i32, sig) }, 0);
}

#[test]
fn sigterm_finishes_requests_in_flight_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s = durable_server(dir.path(), port);
    let (key, root) = s.init_and_unseal();
    for (path, kind) in [
        ("transit", json!({"type": "transit"})),
        ("secret", json!({"type": "kv", "options": {"version": "2"}})),
    ] {
        let (st, _) = s.call(
            "POST",
            &format!("sys/mounts/{path}"),
            Some(&root),
            Some(kind),
        );
        assert_eq!(st, 204);
    }

    // Six slow key creations, as the defect report did.
    let creations: Vec<_> = (0..6)
        .map(|i| {
            let (addr, root) = (s.addr.clone(), root.clone());
            std::thread::spawn(move || {
                let r = client()
                    .post(format!("{addr}/v1/transit/keys/rsa-{i}"))
                    .header("X-Vault-Token", root)
                    .json(&json!({"type": "rsa-4096"}))
                    .send();
                r.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
            })
        })
        .collect();
    // And a request whose body is still arriving when the signal comes.
    let mut slow = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let body = json!({"data": {"answer": "42"}}).to_string();
    write!(
        slow,
        "POST /v1/secret/data/slow HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {root}\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..5]
    )
    .unwrap();
    // Time for the six to connect on a loaded machine; six RSA-4096 keys on two cores take
    // longer to make (a key finished before the signal is answered 200 all the same).
    std::thread::sleep(Duration::from_secs(1));
    signal(&s, libc::SIGTERM);

    // New connections are refused once the listener has stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(format!("127.0.0.1:{port}")) {
            Err(_) => break,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => panic!("still accepting connections 5s after SIGTERM"),
        }
    }
    // The slow request finishes and is answered.
    slow.write_all(&body.as_bytes()[5..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    for (i, c) in creations.into_iter().enumerate() {
        let status = c.join().unwrap();
        assert!(
            matches!(status, Ok(200) | Ok(204)),
            "key creation {i} was dropped: {status:?}"
        );
    }
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");

    // Every acknowledged key is there after a restart.
    let s = durable_server(dir.path(), free_port());
    s.unseal(&key);
    let (st, keys) = s.call("LIST", "transit/keys", Some(&root), None);
    assert_eq!(st, 200, "{keys}");
    assert_eq!(keys["data"]["keys"].as_array().unwrap().len(), 6, "{keys}");
    let (st, slow) = s.call("GET", "secret/data/slow", Some(&root), None);
    assert_eq!(st, 200, "{slow}");
    assert_eq!(slow["data"]["data"]["answer"], "42");
}

#[test]
fn sigint_on_an_idle_server_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = configured_server(
        dir.path(),
        free_port(),
        "",
        "graceful_shutdown_timeout = \"1h\"",
        &[],
    );
    s.init_and_unseal();
    // An idle keep-alive connection does not hold shutdown up.
    let mut idle = TcpStream::connect(s.addr.trim_start_matches("http://")).unwrap();
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).unwrap() > 0);
    signal(&s, libc::SIGINT);
    let started = Instant::now();
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // Nothing was in flight, so the hour of grace is not waited for.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

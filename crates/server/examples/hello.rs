//! The hello-world ceiling for `bench/run.sh`: a minimal HTTP server on exactly the stack that
//! Tresor's listener uses (tokio multi-thread runtime, hyper-util's `server::conn::auto::Builder`
//! serving HTTP/1.1 and HTTP/2, `set_nodelay(true)`, one spawned task per connection, the mimalloc allocator; see
//! `src/listener.rs`), answering every request with a fixed ~300-byte JSON body shaped like a
//! KV v2 read answer. Whatever it serves per second is the most Tresor's HTTP layer could serve
//! on this machine; Tresor's KV read rate divided by this rate is how much of the budget the
//! core (routing, token lookup, ACL, barrier, JSON) costs.
//!
//! Usage: `hello [ADDR]` (default 127.0.0.1:0); prints `listening on ADDR` once bound.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::io::Write;
use tokio::net::TcpListener;

/// The same process allocator as the `tresor` binary (see `crates/cli/src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The shape and size of a KV v2 read answer (`GET /v1/secret/data/bench`).
const BODY: &str = concat!(
    r#"{"request_id":"0d2c1b6e-5a1f-4c3e-9d7a-2b8f6e4a1c90","lease_id":"","renewable":false,"#,
    r#""lease_duration":0,"data":{"data":{"password":"correct-horse-battery-staple","username":"bench"},"#,
    r#""metadata":{"created_time":"2025-01-01T00:00:00.000000000Z","custom_metadata":null,"#,
    r#""deletion_time":"","destroyed":false,"version":1}},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}"#,
    "\n"
);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                let mut r = hyper::Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok::<_, std::convert::Infallible>(r)
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

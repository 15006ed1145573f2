//! The tamper-evident chain of a file audit device, and JSONx output.
//!
//! Line n carries `"chain": {"seq": n, "prev": mac(n-1), "mac": mac(n)}` with
//! `mac(n) = HMAC-SHA256(chain key, prev ‖ "\n" ‖ seq ‖ "\n" ‖ entry-without-chain)`. Altering a
//! line breaks its mac; removing or reordering lines breaks `seq`/`prev` continuity; rewriting
//! the chain needs the key, which stays in the barrier (`sys/audit/:path/chain-key`, sudo).

use aws_lc_rs::hmac;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub struct Chain {
    key: hmac::Key,
    seq: u64,
    prev: String,
}

fn mac(key: &hmac::Key, prev: &str, seq: u64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(itoa_u64(seq).as_bytes());
    ctx.update(b"\n");
    ctx.update(body);
    crate::util::hex_lower(ctx.sign().as_ref())
}

/// A number's decimal digits (what `format!("{seq}")` gives, without the formatter).
fn itoa_u64(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    String::from_utf8_lossy(&digits[i..]).into_owned()
}

/// The last complete line of a file (reads at most the final 1 MiB).
fn last_line(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    // Only regular files have a last line (a device like /dev/zero would never end).
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    let start = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(1 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
}

impl Chain {
    /// Continues the chain of an existing file, or starts a new one.
    pub fn resume(key: &[u8], path: &Path) -> Self {
        let mut c = Chain {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            seq: 0,
            prev: String::new(),
        };
        if let Some(line) = last_line(path) {
            let json_part = line.find('{').map(|i| &line[i..]).unwrap_or("");
            if let Ok(v) = serde_json::from_str::<Value>(json_part) {
                c.seq = v["chain"]["seq"].as_u64().unwrap_or(0);
                c.prev = v["chain"]["mac"].as_str().unwrap_or("").to_string();
            }
        }
        c
    }

    /// Adds the chain fields of the next link to an entry. The chain moves on only when the
    /// line is written ([`Chain::commit`]): a failed write leaves no gap in the sequence.
    pub fn seal(&self, entry: &mut Value) -> Link {
        let body = serde_json::to_vec(entry).unwrap_or_default();
        let seq = self.seq + 1;
        let m = mac(&self.key, &self.prev, seq, &body);
        entry["chain"] = json!({ "seq": seq, "prev": self.prev, "mac": m });
        Link { seq, mac: m }
    }

    /// [`Chain::seal`] of an entry already serialized (`line[start..]`, a JSON object as
    /// serde_json writes it): appends the chain fields to it, giving the bytes `seal` then
    /// `to_vec` would, without serializing the entry a second time.
    pub fn seal_serialized(&self, line: &mut Vec<u8>, start: usize) -> Link {
        let seq = self.seq + 1;
        let m = mac(&self.key, &self.prev, seq, &line[start..]);
        debug_assert_eq!(line.last(), Some(&b'}'));
        line.pop();
        if line.len() > start + 1 {
            line.push(b',');
        }
        // What serde_json writes for `{"seq", "prev", "mac"}`. `mac` is hex; `prev` came from
        // the file when the chain resumed, so serde_json escapes it.
        line.extend_from_slice(b"\"chain\":{\"seq\":");
        line.extend_from_slice(itoa_u64(seq).as_bytes());
        line.extend_from_slice(b",\"prev\":");
        serde_json::to_writer(&mut *line, &self.prev).expect("writing to a Vec cannot fail");
        line.extend_from_slice(b",\"mac\":\"");
        line.extend_from_slice(m.as_bytes());
        line.extend_from_slice(b"\"}}");
        Link { seq, mac: m }
    }

    /// The chain's last link (to go back to with [`Chain::commit`] when lines linked after it
    /// could not be written).
    pub fn last_link(&self) -> Link {
        Link {
            seq: self.seq,
            mac: self.prev.clone(),
        }
    }

    /// Makes a written link the chain's last.
    pub fn commit(&mut self, link: Link) {
        self.seq = link.seq;
        self.prev = link.mac;
    }
}

/// A sealed link not yet known to be written.
pub struct Link {
    seq: u64,
    mac: String,
}

/// The first problem found by [`verify`].
#[derive(Debug, PartialEq)]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: usize,
    pub reason: String,
}

/// Checks every line of a file device's output; returns how many entries were verified.
/// Lines may carry the device's `prefix` before the JSON.
pub fn verify(key: &[u8], text: &str) -> Result<usize, Broken> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut expect: Option<(u64, String)> = None;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let broken = |reason: &str| Broken {
            line: i + 1,
            reason: reason.to_string(),
        };
        let json_part = line
            .find('{')
            .map(|i| &line[i..])
            .ok_or_else(|| broken("not an audit entry"))?;
        let mut v: Value = serde_json::from_str(json_part)
            .map_err(|_| broken("not valid JSON: the line was altered"))?;
        let chain = v
            .as_object_mut()
            .and_then(|o| o.remove("chain"))
            .ok_or_else(|| broken("entry has no chain fields"))?;
        let seq = chain["seq"]
            .as_u64()
            .ok_or_else(|| broken("chain.seq missing"))?;
        let prev = chain["prev"].as_str().unwrap_or("");
        let got = chain["mac"].as_str().unwrap_or("");
        let body = serde_json::to_vec(&v).unwrap_or_default();
        let want = mac(&key, prev, seq, &body);
        if !crate::util::ct_eq(want.as_bytes(), got.as_bytes()) {
            return Err(broken("entry was altered (mac mismatch)"));
        }
        if let Some((last_seq, last_mac)) = &expect {
            if seq != last_seq + 1 {
                return Err(broken(&format!(
                    "sequence jumps from {last_seq} to {seq}: entries removed or reordered"
                )));
            }
            if prev != last_mac {
                return Err(broken(
                    "chain link to the previous entry is broken: entries removed or reordered",
                ));
            }
        }
        expect = Some((seq, got.to_string()));
        n += 1;
    }
    Ok(n)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn jsonx_value(name: Option<&str>, v: &Value, out: &mut String) {
    let attr = name
        .map(|n| format!(" name=\"{}\"", esc(n)))
        .unwrap_or_default();
    match v {
        Value::Null => out.push_str(&format!("<json:null{attr}/>")),
        Value::Bool(b) => out.push_str(&format!("<json:boolean{attr}>{b}</json:boolean>")),
        Value::Number(n) => out.push_str(&format!("<json:number{attr}>{n}</json:number>")),
        Value::String(s) => out.push_str(&format!("<json:string{attr}>{}</json:string>", esc(s))),
        Value::Array(a) => {
            out.push_str(&format!("<json:array{attr}>"));
            a.iter().for_each(|x| jsonx_value(None, x, out));
            out.push_str("</json:array>");
        }
        Value::Object(m) => {
            out.push_str(&format!("<json:object{attr}>"));
            m.iter().for_each(|(k, x)| jsonx_value(Some(k), x, out));
            out.push_str("</json:object>");
        }
    }
}

/// Vault's `format = "jsonx"`: the entry as IBM JSONx XML.
pub fn to_jsonx(v: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let mut inner = String::new();
    jsonx_value(None, v, &mut inner);
    out.push_str(&inner.replacen(
        "<json:object>",
        "<json:object xmlns:json=\"http://www.ibm.com/xmlns/prod/2009/jsonx\">",
        1,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> (Vec<u8>, String) {
        let key = vec![9u8; 32];
        let mut c = Chain {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            seq: 0,
            prev: String::new(),
        };
        let mut text = String::new();
        for i in 0..n {
            let mut e = json!({ "type": "request", "i": i });
            let link = c.seal(&mut e);
            c.commit(link);
            text.push_str(&serde_json::to_string(&e).unwrap());
            text.push('\n');
        }
        (key, text)
    }

    #[test]
    fn sealing_serialized_bytes_writes_what_sealing_the_value_writes() {
        let key = vec![7u8; 32];
        let chain = || Chain {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            seq: 41,
            // Read back from a file: escaped like any string.
            prev: "ab\"c".into(),
        };
        let entry =
            json!({ "type": "response", "s": "quote \" and \u{e9}", "n": [1, 2.5], "o": {} });
        let mut by_value = entry.clone();
        let link_a = chain().seal(&mut by_value);
        let expected = serde_json::to_vec(&by_value).unwrap();
        let mut line = b"prefix:".to_vec();
        serde_json::to_writer(&mut line, &entry).unwrap();
        let link_b = chain().seal_serialized(&mut line, 7);
        assert_eq!(&line[7..], &expected[..]);
        assert_eq!((link_a.seq, link_a.mac), (link_b.seq, link_b.mac));
        // And the verifier accepts it, prefix and all; an empty object too.
        let mut empty = Vec::new();
        serde_json::to_writer(&mut empty, &json!({})).unwrap();
        chain().seal_serialized(&mut empty, 0);
        let sealed: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(sealed["chain"]["seq"], 42);
        let mut fresh = Chain {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            seq: 0,
            prev: String::new(),
        };
        let mut text = String::new();
        for i in 0..3 {
            let mut l = b"p> ".to_vec();
            serde_json::to_writer(&mut l, &json!({ "i": i })).unwrap();
            let link = fresh.seal_serialized(&mut l, 3);
            fresh.commit(link);
            text.push_str(std::str::from_utf8(&l).unwrap());
            text.push('\n');
        }
        assert_eq!(verify(&key, &text), Ok(3));
    }

    #[test]
    fn intact_chain_verifies() {
        let (key, text) = lines(5);
        assert_eq!(verify(&key, &text), Ok(5));
        assert!(
            verify(&[1u8; 32], &text).is_err(),
            "a wrong key must not verify"
        );
    }

    #[test]
    fn altered_removed_and_reordered_lines_are_found() {
        let (key, text) = lines(5);
        let ls: Vec<&str> = text.lines().collect();
        let altered = text.replacen("\"i\":2", "\"i\":7", 1);
        assert_eq!(verify(&key, &altered).unwrap_err().line, 3);
        let removed = [ls[0], ls[1], ls[3], ls[4]].join("\n");
        assert_eq!(verify(&key, &removed).unwrap_err().line, 3);
        let reordered = [ls[0], ls[2], ls[1], ls[3]].join("\n");
        assert_eq!(verify(&key, &reordered).unwrap_err().line, 2);
        let garbage = format!("{}\nnot json\n", ls[0]);
        assert_eq!(verify(&key, &garbage).unwrap_err().line, 2);
    }

    #[test]
    fn a_link_not_committed_leaves_no_gap() {
        let key = vec![9u8; 32];
        let mut c = Chain {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            seq: 0,
            prev: String::new(),
        };
        let mut text = String::new();
        for i in 0..6 {
            let mut e = json!({ "i": i });
            let link = c.seal(&mut e);
            // Every other write "fails": its line is not kept and its link not committed.
            if i % 2 == 0 {
                text.push_str(&serde_json::to_string(&e).unwrap());
                text.push('\n');
                c.commit(link);
            }
        }
        assert_eq!(verify(&key, &text), Ok(3));
    }

    #[test]
    fn jsonx_shape() {
        let x = to_jsonx(&json!({ "type": "request", "n": 1, "a": [true, null], "s": "<&>" }));
        assert!(x.starts_with("<?xml"));
        assert!(x.contains("<json:object xmlns:json=\"http://www.ibm.com/xmlns/prod/2009/jsonx\"><json:string name=\"type\">request</json:string>"));
        assert!(x.contains(
            "<json:array name=\"a\"><json:boolean>true</json:boolean><json:null/></json:array>"
        ));
        assert!(x.contains("&lt;&amp;&gt;"));
    }
}

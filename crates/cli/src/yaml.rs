//! `-format=yaml`: YAML laid out as Vault's CLI prints it.
//!
//! Vault renders YAML with `sigs.k8s.io/yaml`: the value is marshalled to JSON, read back as
//! YAML (so every map loses its order) and written by go-yaml v2, which sorts map keys in its
//! own "natural" order (digit runs compared as numbers, a non-letter before a letter), quotes
//! with double quotes every string that would otherwise read back as another type (`"1"`,
//! `"true"`, `""`, `"2024-01-02T03:04:05Z"`), writes multi-line strings as literal blocks
//! (`|-`), and does not indent a list under its key. This module reproduces that on top of
//! the serializer:
//!
//! * maps are rebuilt in go-yaml's key order ([`go_yaml_key_order`]);
//! * a string go-yaml would double-quote is swapped for a placeholder token that the
//!   serializer writes plain, and the token is replaced by the double-quoted string after
//!   serialization. (The serializer single-quotes such strings, and does not know YAML 1.1's
//!   extra booleans (`yes`, `on`, `y`), timestamps or sexagesimal numbers, all of which
//!   go-yaml v2 quotes.)
//!
//! * a scalar value running past 80 columns is folded at a space onto a continuation line,
//!   as go-yaml's emitter does (the serializer's emitter is set to never fold), see [`fold`].
//!
//! The serializer is `yaml_serde`, the YAML organization's maintained continuation of
//! dtolnay's archived `serde_yaml` (same API; libyaml's emitter ported to Rust, the emitter
//! go-yaml also derives from). Not `serde_yml` (flagged unsound and unmaintained,
//! RUSTSEC-2025-0067/0068) nor the archived `serde_yaml`; chosen over the `serde_norway` and
//! `serde_yaml_ng` forks for the organization's ongoing releases.

use serde_json::Value;
use yaml_serde::{Mapping, Value as Yaml};

/// Characters around a placeholder: private-use code points, printable and plain-safe for
/// the emitter, and never produced by the escaping below.
const MARK: char = '\u{E000}';

/// Renders `v` as Vault's CLI does (`yaml.Marshal`), with a trailing newline.
pub fn to_yaml(v: &Value) -> String {
    let mut quoted = Vec::new();
    let y = convert(v, &mut quoted);
    let mut out = match yaml_serde::to_string(&y) {
        Ok(s) => s,
        // Values built from JSON always serialize; keep a readable fallback regardless.
        Err(_) => return format!("{v}\n"),
    };
    // Replace the longest indexes first so `…1…` never matches inside `…10…`.
    for (i, s) in quoted.iter().enumerate().rev() {
        out = out.replace(&token(i), &double_quoted(s));
    }
    let mut out = fold(&out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// go-yaml's (libyaml's) best width: a scalar is folded at a space once a line is past it.
const BEST_WIDTH: usize = 80;

/// Folds long scalar values as go-yaml's emitter does: at a single space (not the first or
/// last character of a quoted scalar, not followed by another space) reached when the line is
/// already past 80 columns, the space becomes a line break and the continuation indentation
/// (the key's column plus two, or a list item's content column). Keys, block literals (`|`)
/// and their bodies are left alone. Folding a plain or quoted scalar at a space does not
/// change its value.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    // The column of the key (or dash) that opened a block literal still going on.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let indent = body.len() - body.trim_start_matches(' ').len();
        if let Some(parent) = block {
            if body.trim().is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            block = None;
        }
        match value_start(body, indent) {
            Some((start, cont, owner)) => {
                let value = &body[start..];
                if value.starts_with('|') || value.starts_with('>') {
                    block = Some(owner);
                    out.push_str(line);
                } else {
                    out.push_str(&body[..start]);
                    fold_value(&mut out, value, body[..start].chars().count(), cont);
                    out.push_str(nl);
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Where a line's scalar value starts (byte offset), its continuation indentation, and the
/// column owning a block literal started there; `None` for a line without a value.
fn value_start(body: &str, indent: usize) -> Option<(usize, usize, usize)> {
    let mut pos = indent;
    let mut dash = None;
    while body[pos..].starts_with("- ") {
        dash = Some(pos);
        pos += 2;
    }
    if body[pos..].starts_with("? ") {
        return None;
    }
    let rest = &body[pos..];
    let key_end = match rest.chars().next()? {
        '\'' => quoted_end(rest, '\''),
        '"' => quoted_end(rest, '"'),
        _ => rest
            .find(": ")
            .or_else(|| rest.ends_with(':').then(|| rest.len() - 1)),
    };
    match key_end {
        Some(k) if rest[k..].starts_with(": ") => Some((pos + k + 2, pos + 2, pos)),
        Some(k) if rest[k..] == *":" => None,
        // A list item's scalar.
        _ => dash.map(|d| (pos, d + 2, d)),
    }
}

/// The byte offset just past a quoted scalar opening `s`.
fn quoted_end(s: &str, q: char) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if q == '"' && c == '\\' {
            chars.next();
        } else if c == q {
            if q == '\'' && s[i + 1..].starts_with('\'') {
                chars.next();
                continue;
            }
            return Some(i + 1);
        }
    }
    None
}

/// Writes `value` (starting at `column`), folding it as go-yaml would.
fn fold_value(out: &mut String, value: &str, mut column: usize, cont: usize) {
    let chars: Vec<char> = value.chars().collect();
    let quoted = matches!(chars.first(), Some('\'' | '"'));
    let double = chars.first() == Some(&'"');
    let mut prev_space = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let inner = !quoted || (i != 1 && i + 2 != chars.len());
            let next_space = chars.get(i + 1) == Some(&' ');
            if inner && !prev_space && column > BEST_WIDTH && (double || !next_space) {
                out.push('\n');
                out.push_str(&" ".repeat(cont));
                column = cont;
                if double && next_space {
                    out.push('\\');
                    column += 1;
                }
                prev_space = true;
                continue;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
        out.push(c);
        column += 1;
    }
}

fn token(i: usize) -> String {
    format!("{MARK}q{i}{MARK}")
}

fn convert(v: &Value, quoted: &mut Vec<String>) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Yaml::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Yaml::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                // go-yaml writes a float with no fraction as an integer (`1`, not `1.0`).
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    Yaml::Number((f as i64).into())
                } else {
                    Yaml::Number(f.into())
                }
            }
        }
        Value::String(s) => string(s, quoted),
        Value::Array(a) => Yaml::Sequence(a.iter().map(|x| convert(x, quoted)).collect()),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| go_yaml_key_order(a, b));
            let mut out = Mapping::new();
            for k in keys {
                let key = string(k, quoted);
                out.insert(key, convert(&m[k.as_str()], quoted));
            }
            Yaml::Mapping(out)
        }
    }
}

fn string(s: &str, quoted: &mut Vec<String>) -> Yaml {
    if !s.contains('\n') && needs_double_quotes(s) {
        quoted.push(s.to_string());
        Yaml::String(token(quoted.len() - 1))
    } else {
        Yaml::String(s.to_string())
    }
}

/// A double-quoted YAML scalar, escaped as libyaml (and go-yaml) escape one.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether go-yaml v2 would write `s` double-quoted: it reads back as something other than a
/// string (YAML 1.1 booleans, null, numbers, timestamps, base-60 floats, `<<`).
pub fn needs_double_quotes(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || b"+-.".contains(&first)) {
        return false;
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    is_go_int(&plain) || is_yaml_float(&plain) || is_timestamp(s) || is_base60_float(s)
}

/// `strconv.ParseInt(s, 0, 64)` / `ParseUint`, plus go-yaml's `0b` binary form.
fn is_go_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (b, 2)
    } else if let Some(o) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (o, 8)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    !digits.is_empty() && u128::from_str_radix(digits, radix).is_ok_and(|n| n <= u64::MAX as u128)
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml v2's timestamps: `2006-1-2`, optionally followed by `T`/`t`/space and
/// `15:4:5[.fraction]` with an optional `Z` or `±07:00` zone.
fn is_timestamp(s: &str) -> bool {
    fn num(s: &str, min: usize, max: usize) -> Option<(&str, &str)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n >= min && n <= max).then(|| s.split_at(n))
    }
    let Some((_, rest)) = num(s, 4, 4) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let Some((_, rest)) = num(rest, 1, 2) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let Some((_, rest)) = num(rest, 1, 2) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(['T', 't', ' ']) else {
        return false;
    };
    let time = |rest: &str| -> Option<String> {
        let (_, r) = num(rest, 1, 2)?;
        let r = r.strip_prefix(':')?;
        let (_, r) = num(r, 1, 2)?;
        let r = r.strip_prefix(':')?;
        let (_, r) = num(r, 1, 2)?;
        let r = match r.strip_prefix('.') {
            Some(f) => num(f, 1, 9)?.1,
            None => r,
        };
        Some(r.to_string())
    };
    let Some(zone) = time(rest) else {
        return false;
    };
    if zone.is_empty() || zone == "Z" {
        return true;
    }
    // `Z07:00`: a sign, two digits, a colon, two digits.
    let z = zone.as_bytes();
    z.len() == 6
        && matches!(z[0], b'+' | b'-')
        && z[1].is_ascii_digit()
        && z[2].is_ascii_digit()
        && z[3] == b':'
        && z[4].is_ascii_digit()
        && z[5].is_ascii_digit()
}

/// go-yaml's `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if !f.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
            return false;
        }
    }
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        return false;
    }
    let mut n = 0;
    for p in parts {
        n += 1;
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    n > 0
}

/// go-yaml v2's map key order (`keyList.Less`): rune by rune; two letters compare as runes,
/// a non-letter sorts before a letter, and runs of digits compare by value.
pub fn go_yaml_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let less = |x: bool| if x { Ordering::Less } else { Ordering::Greater };
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return less(bl);
        }
        let (mut an, mut bn): (i128, i128) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(ar[ai] as i128 - '0' as i128);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(br[bi] as i128 - '0' as i128);
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_go_yaml() {
        let v = json!({
            "request_id": "88590f05-6831-00c7-814a-0b90512daee9",
            "lease_id": "",
            "lease_duration": 0,
            "renewable": false,
            "warnings": null,
            "data": {
                "data": {"e": "123", "d": "true", "c": "", "b": "multi\nline", "a": "1"},
                "metadata": {"created_time": "2026-12-07T10:30:06.72200382Z", "version": 1,
                             "custom_metadata": null, "destroyed": false},
                "policies": ["root", "x"],
                "empty": {},
                "none": []
            }
        });
        assert_eq!(
            to_yaml(&v),
            "data:\n  data:\n    a: \"1\"\n    b: |-\n      multi\n      line\n    c: \"\"\n    \
             d: \"true\"\n    e: \"123\"\n  empty: {}\n  metadata:\n    \
             created_time: \"2026-12-07T10:30:06.72200382Z\"\n    custom_metadata: null\n    \
             destroyed: false\n    version: 1\n  none: []\n  policies:\n  - root\n  - x\n\
             lease_duration: 0\nlease_id: \"\"\nrenewable: false\n\
             request_id: 88590f05-6831-00c7-814a-0b90512daee9\nwarnings: null\n"
        );
    }

    #[test]
    fn quoting_like_go_yaml() {
        let v = json!({"colon": "a: b", "dq": "say \"hi\"", "hash": "#x", "lead": " x",
                       "nl": "x\n", "q": "it's", "star": "*x", "tab": "a\tb", "uni": "é∞",
                       "yes": "yes", "hex": "0x1F", "f": "1.5e3", "t": "1:20", "d": "2024-01-02"});
        assert_eq!(
            to_yaml(&v),
            "colon: 'a: b'\nd: \"2024-01-02\"\ndq: say \"hi\"\nf: \"1.5e3\"\nhash: '#x'\n\
             hex: \"0x1F\"\nlead: ' x'\nnl: |\n  x\nq: it's\nstar: '*x'\nt: \"1:20\"\n\
             tab: \"a\\tb\"\nuni: é∞\n\"yes\": \"yes\"\n"
        );
    }

    #[test]
    fn folds_long_values_like_go_yaml() {
        // `bao kv get -format=yaml -field=data` of this secret, as OpenBao printed it.
        let v: Value = serde_json::from_str(include_str!("testdata/yaml_fold.json")).unwrap();
        assert_eq!(to_yaml(&v), include_str!("testdata/yaml_fold.bao.yaml"));
        let short = json!({"k": "a b", "l": ["x y"], "m": "|x"});
        assert_eq!(to_yaml(&short), "k: a b\nl:\n- x y\nm: '|x'\n");
    }

    #[test]
    fn key_order() {
        let mut keys = vec!["a10", "a9", "a_b", "aB", "Zed", "_x", "b", "a"];
        keys.sort_by(|a, b| go_yaml_key_order(a, b));
        assert_eq!(keys, vec!["_x", "Zed", "a", "a_b", "a9", "a10", "aB", "b"]);
        for s in ["abc", "ttl", "1.2.3", "v1", "-x", "+", "."] {
            assert!(!needs_double_quotes(s), "{s}");
        }
        for s in [
            "1",
            "-1",
            "1_000",
            "0o17",
            "017",
            "0b101",
            ".5",
            "1e9",
            "2024-1-2 3:04:05",
        ] {
            assert!(needs_double_quotes(s), "{s}");
        }
    }
}

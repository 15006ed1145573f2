//! User input: `key=value` arguments, files, stdin and hidden prompts.
//!
//! `key=value` arguments follow Vault's rules:
//! * `key=@path` reads the value from a file (raw contents);
//! * `key=-` reads the value from stdin (stdin can be consumed only once);
//! * `key=\@x` is the literal value `@x`;
//! * a lone `-` reads a JSON object from stdin and merges it;
//! * a lone `@path` (no `=`) reads a JSON object from a file and merges it;
//! * a repeated key turns its value into a list.
//!
//! Values from `key=value` are strings; JSON objects keep their types.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{CliError, CliResult};

/// Parses `key=value` arguments, reading stdin from `stdin` when asked to.
pub fn parse_kv_args(args: &[String], stdin: &mut dyn Read) -> CliResult<Map<String, Value>> {
    let mut out = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |what: &str| -> CliResult<String> {
        if stdin_used {
            return Err(CliError::usage(format!(
                "Cannot read {what} from stdin: stdin was already consumed by another argument"
            )));
        }
        stdin_used = true;
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .map_err(|e| CliError::other(format!("Error reading stdin: {e}")))?;
        Ok(s)
    };
    for raw in args {
        if raw.is_empty() {
            continue;
        }
        let Some((key, value)) = raw.split_once('=') else {
            if raw == "-" {
                let s = take_stdin("JSON data")?;
                merge_json_object(&mut out, &s, "stdin")?;
                continue;
            }
            if let Some(path) = raw.strip_prefix('@') {
                let s = read_file_string(Path::new(path))?;
                merge_json_object(&mut out, &s, path)?;
                continue;
            }
            return Err(CliError::usage(format!(
                "Invalid key/value pair {raw:?}: format must be key=value"
            )));
        };
        if key.is_empty() {
            return Err(CliError::usage(format!(
                "Invalid key/value pair {raw:?}: the key is empty"
            )));
        }
        let value = if let Some(path) = value.strip_prefix('@') {
            read_file_string(Path::new(path))?
        } else if let Some(rest) = value.strip_prefix("\\@") {
            format!("@{rest}")
        } else if value == "-" {
            take_stdin(&format!("the value of {key:?}"))?
        } else {
            value.to_string()
        };
        let value = Value::String(value);
        match out.get_mut(key) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                out.insert(key.to_string(), value);
            }
        }
    }
    Ok(out)
}

fn merge_json_object(out: &mut Map<String, Value>, text: &str, source: &str) -> CliResult<()> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| CliError::usage(format!("Error parsing JSON from {source}: {e}")))?;
    match v {
        Value::Object(m) => {
            out.extend(m);
            Ok(())
        }
        _ => Err(CliError::usage(format!(
            "The JSON read from {source} must be an object"
        ))),
    }
}

/// Reads a whole file as UTF-8 text.
pub fn read_file_string(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("Error reading file {}: {e}", path.display())))
}

/// Reads a file, or stdin when `path` is `-`.
pub fn read_file_or_stdin(path: &str) -> CliResult<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::other(format!("Error reading stdin: {e}")))?;
        Ok(s)
    } else {
        read_file_string(Path::new(path))
    }
}

/// Flattens a data map into query parameters (lists become repeated parameters).
pub fn to_query(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut q = Vec::new();
    for (k, v) in data {
        match v {
            Value::Array(items) => {
                for i in items {
                    q.push((k.clone(), crate::output::format_value(i)));
                }
            }
            other => q.push((k.clone(), crate::output::format_value(other))),
        }
    }
    q
}

/// Prompts on stderr and reads one line from stdin. Echo is turned off while typing when
/// stdin is a terminal (via `stty`).
pub fn prompt_hidden(prompt: &str) -> CliResult<String> {
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let echo_off = tty && stty(&["-echo"]);
    let mut line = String::new();
    let res = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        stty(&["echo"]);
        eprintln!();
    }
    res.map_err(|e| CliError::other(format!("Error reading input: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).trim().to_string())
}

fn stty(args: &[&str]) -> bool {
    std::process::Command::new("stty")
        .args(args)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Splits `k=v` flag values (e.g. `-metadata=a=b`) into a JSON object of strings.
pub fn parse_pairs(values: &[String], flag: &str) -> CliResult<Map<String, Value>> {
    let mut m = Map::new();
    for v in values {
        let (k, val) = v.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "Invalid -{flag} value {v:?}: format must be key=value"
            ))
        })?;
        if k.is_empty() {
            return Err(CliError::usage(format!(
                "Invalid -{flag} value {v:?}: the key is empty"
            )));
        }
        m.insert(k.to_string(), Value::String(val.to_string()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn plain_pairs() {
        let m = parse_kv_args(&s(&["a=1", "b=x=y", "c="]), &mut std::io::empty()).unwrap();
        assert_eq!(Value::Object(m), json!({"a": "1", "b": "x=y", "c": ""}));
    }

    #[test]
    fn repeated_keys_become_lists() {
        let m = parse_kv_args(&s(&["a=1", "a=2", "a=3"]), &mut std::io::empty()).unwrap();
        assert_eq!(Value::Object(m), json!({"a": ["1", "2", "3"]}));
    }

    #[test]
    fn files_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.txt");
        std::fs::write(&f, "from file\n").unwrap();
        let j = dir.path().join("d.json");
        std::fs::write(&j, r#"{"n": 1, "t": true}"#).unwrap();
        let args = vec![
            format!("a=@{}", f.display()),
            "b=\\@literal".to_string(),
            format!("@{}", j.display()),
        ];
        let m = parse_kv_args(&args, &mut std::io::empty()).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"a": "from file\n", "b": "@literal", "n": 1, "t": true})
        );
        let e = parse_kv_args(&s(&["a=@/nonexistent/x"]), &mut std::io::empty()).unwrap_err();
        assert!(e.message.contains("/nonexistent/x"), "{}", e.message);
    }

    #[test]
    fn stdin_value_and_object() {
        let m = parse_kv_args(&s(&["pw=-"]), &mut "s3cret".as_bytes()).unwrap();
        assert_eq!(Value::Object(m), json!({"pw": "s3cret"}));
        let m = parse_kv_args(&s(&["-", "x=y"]), &mut r#"{"a": [1]}"#.as_bytes()).unwrap();
        assert_eq!(Value::Object(m), json!({"a": [1], "x": "y"}));
        let e = parse_kv_args(&s(&["a=-", "b=-"]), &mut "v".as_bytes()).unwrap_err();
        assert_eq!(e.code, 1);
        let e = parse_kv_args(&s(&["-"]), &mut "[1]".as_bytes()).unwrap_err();
        assert!(e.message.contains("must be an object"));
    }

    #[test]
    fn bad_pairs() {
        let e = parse_kv_args(&s(&["novalue"]), &mut std::io::empty()).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.message.contains("key=value"));
        let e = parse_kv_args(&s(&["=v"]), &mut std::io::empty()).unwrap_err();
        assert!(e.message.contains("key is empty"));
    }

    #[test]
    fn query_and_pairs() {
        let m = parse_kv_args(&s(&["a=1", "b=2", "b=3"]), &mut std::io::empty()).unwrap();
        assert_eq!(
            to_query(&m),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
                ("b".to_string(), "3".to_string())
            ]
        );
        let p = parse_pairs(&s(&["k=v", "x=a=b"]), "metadata").unwrap();
        assert_eq!(Value::Object(p), json!({"k": "v", "x": "a=b"}));
        assert_eq!(parse_pairs(&s(&["nope"]), "metadata").unwrap_err().code, 1);
    }
}

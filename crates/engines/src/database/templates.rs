//! `username_template`: the subset of Go's `text/template` that Vault's username templates use.
//!
//! Supported: literal text; actions `{{ ... }}` (with `{{-` / `-}}` trimming); pipelines
//! `a | f x` (the piped value is the last argument); parenthesized sub-pipelines; string
//! (`"..."`, `` `...` ``) and integer literals; the fields `.RoleName` and `.DisplayName`; and
//! Vault's functions: `random N`, `truncate N s`, `truncate_sha256 N s`, `uppercase`,
//! `lowercase`, `replace old new s`, `sha256`, `base64`, `unix_time`, `unix_time_millis`,
//! `timestamp LAYOUT` (Go layout), `uuid`, `printf FORMAT args...` (`%s`, `%d`, `%v`, `%q`,
//! `%%`). Anything else (`if`, `range`, variables, other functions) is refused with an error
//! that names it, at config-write time.

use base64::Engine;
use std::fmt::Write as _;
use tresor_core::util::{random_alnum, sha256_hex, unix_now, uuid};

/// What a template can refer to.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub role_name: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Int(i) => i.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Arg {
    Field(String),
    Str(String),
    Int(i64),
    Ident(String),
    Pipe(Vec<Vec<Arg>>),
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<Vec<Arg>>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

const FUNCTIONS: &[&str] = &[
    "random",
    "truncate",
    "truncate_sha256",
    "uppercase",
    "lowercase",
    "replace",
    "sha256",
    "base64",
    "unix_time",
    "unix_time_millis",
    "timestamp",
    "uuid",
    "printf",
];

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        let mut nodes = Vec::new();
        let mut rest = src;
        let mut trim_next = false;
        while !rest.is_empty() {
            match rest.find("{{") {
                None => {
                    let t = if trim_next { rest.trim_start() } else { rest };
                    nodes.push(Node::Text(t.to_string()));
                    break;
                }
                Some(i) => {
                    let mut text = &rest[..i];
                    if trim_next {
                        text = text.trim_start();
                    }
                    let mut body_start = i + 2;
                    if rest[body_start..].starts_with("- ") || rest[body_start..].starts_with("-\t")
                    {
                        text = text.trim_end();
                        body_start += 1;
                    }
                    if !text.is_empty() {
                        nodes.push(Node::Text(text.to_string()));
                    }
                    let end = find_close(&rest[body_start..])
                        .ok_or("unclosed action: missing \"}}\"")?
                        + body_start;
                    let mut body = &rest[body_start..end];
                    trim_next = false;
                    if body.ends_with(" -") || body.ends_with("\t-") {
                        body = &body[..body.len() - 1];
                        trim_next = true;
                    }
                    let tokens = lex(body)?;
                    let mut pos = 0;
                    let pipe = parse_pipeline(&tokens, &mut pos)?;
                    if pos != tokens.len() {
                        return Err(format!("unexpected {:?} in action", tokens[pos]));
                    }
                    if pipe.is_empty() {
                        return Err("empty action".into());
                    }
                    nodes.push(Node::Action(pipe));
                    rest = &rest[end + 2..];
                }
            }
        }
        Ok(Template { nodes })
    }

    pub fn render(&self, ctx: &Context) -> Result<String, String> {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => out.push_str(&eval_pipe(p, ctx)?.text()),
            }
        }
        Ok(out)
    }
}

/// Position of the `}}` closing an action, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if i + 1 < b.len() && b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Int(i64),
    Ident(String),
    Pipe,
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => v.push('\n'),
                                Some('t') => v.push('\t'),
                                Some(o) => v.push(*o),
                                None => return Err("unterminated string".into()),
                            }
                        }
                        Some(o) => v.push(*o),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(v));
            }
            '`' => {
                let mut v = String::new();
                i += 1;
                while let Some(&o) = chars.get(i) {
                    if o == '`' {
                        break;
                    }
                    v.push(o);
                    i += 1;
                }
                if chars.get(i) != Some(&'`') {
                    return Err("unterminated raw string".into());
                }
                i += 1;
                out.push(Tok::Str(v));
            }
            '.' => {
                let mut v = String::new();
                i += 1;
                while let Some(&o) = chars.get(i) {
                    if !(o.is_alphanumeric() || o == '_') {
                        break;
                    }
                    v.push(o);
                    i += 1;
                }
                out.push(Tok::Field(v));
            }
            '$' => return Err("template variables are not supported".into()),
            c if c.is_ascii_digit() || c == '-' => {
                let mut v = String::from(c);
                i += 1;
                while let Some(&o) = chars.get(i) {
                    if !o.is_ascii_digit() {
                        break;
                    }
                    v.push(o);
                    i += 1;
                }
                out.push(Tok::Int(
                    v.parse().map_err(|_| format!("invalid number {v:?}"))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut v = String::new();
                while let Some(&o) = chars.get(i) {
                    if !(o.is_alphanumeric() || o == '_') {
                        break;
                    }
                    v.push(o);
                    i += 1;
                }
                out.push(Tok::Ident(v));
            }
            other => return Err(format!("unexpected character {other:?} in action")),
        }
    }
    Ok(out)
}

fn parse_pipeline(t: &[Tok], pos: &mut usize) -> Result<Vec<Vec<Arg>>, String> {
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    while *pos < t.len() {
        match &t[*pos] {
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err("missing command before \"|\"".into());
                }
                cmds.push(std::mem::take(&mut cur));
                *pos += 1;
            }
            Tok::Close => break,
            Tok::Open => {
                *pos += 1;
                let inner = parse_pipeline(t, pos)?;
                if t.get(*pos) != Some(&Tok::Close) {
                    return Err("unclosed \"(\"".into());
                }
                *pos += 1;
                cur.push(Arg::Pipe(inner));
            }
            Tok::Field(f) => {
                cur.push(Arg::Field(f.clone()));
                *pos += 1;
            }
            Tok::Str(s) => {
                cur.push(Arg::Str(s.clone()));
                *pos += 1;
            }
            Tok::Int(i) => {
                cur.push(Arg::Int(*i));
                *pos += 1;
            }
            Tok::Ident(id) => {
                if !FUNCTIONS.contains(&id.as_str()) {
                    return Err(format!(
                        "function {id:?} not defined (supported: {})",
                        FUNCTIONS.join(", ")
                    ));
                }
                cur.push(Arg::Ident(id.clone()));
                *pos += 1;
            }
        }
    }
    if !cur.is_empty() {
        cmds.push(cur);
    } else if !cmds.is_empty() {
        return Err("missing command after \"|\"".into());
    }
    Ok(cmds)
}

fn eval_arg(a: &Arg, ctx: &Context) -> Result<Val, String> {
    Ok(match a {
        Arg::Str(s) => Val::Str(s.clone()),
        Arg::Int(i) => Val::Int(*i),
        Arg::Field(f) => match f.as_str() {
            "RoleName" => Val::Str(ctx.role_name.clone()),
            "DisplayName" => Val::Str(ctx.display_name.clone()),
            other => {
                return Err(format!(
                    "can't evaluate field {other} (available: .RoleName, .DisplayName)"
                ))
            }
        },
        Arg::Ident(f) => call(f, vec![])?,
        Arg::Pipe(p) => eval_pipe(p, ctx)?,
    })
}

fn eval_pipe(p: &[Vec<Arg>], ctx: &Context) -> Result<Val, String> {
    let mut piped: Option<Val> = None;
    for cmd in p {
        let v = match &cmd[0] {
            Arg::Ident(f) => {
                let mut args = cmd[1..]
                    .iter()
                    .map(|a| eval_arg(a, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(v) = piped.take() {
                    args.push(v);
                }
                call(f, args)?
            }
            other => {
                if cmd.len() > 1 || piped.is_some() {
                    return Err("can't give arguments to a non-function".into());
                }
                eval_arg(other, ctx)?
            }
        };
        piped = Some(v);
    }
    piped.ok_or_else(|| "empty pipeline".to_string())
}

fn int(v: &Val, f: &str) -> Result<i64, String> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Str(s) => s
            .parse()
            .map_err(|_| format!("{f}: expected an integer, got {s:?}")),
    }
}

fn arity(f: &str, args: &[Val], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {f}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn call(f: &str, args: Vec<Val>) -> Result<Val, String> {
    Ok(match f {
        "random" => {
            arity(f, &args, 1)?;
            let n = int(&args[0], f)?;
            if !(1..=4096).contains(&n) {
                return Err("random: length must be between 1 and 4096".into());
            }
            Val::Str(random_alnum(n as usize))
        }
        "truncate" => {
            arity(f, &args, 2)?;
            let n = int(&args[0], f)?;
            if n < 0 {
                return Err("truncate: length must not be negative".into());
            }
            Val::Str(args[1].text().chars().take(n as usize).collect())
        }
        "truncate_sha256" => {
            arity(f, &args, 2)?;
            let n = int(&args[0], f)?;
            if n <= 8 {
                return Err("truncate_sha256: length must be greater than 8".into());
            }
            let s = args[1].text();
            if s.chars().count() <= n as usize {
                Val::Str(s)
            } else {
                let head: String = s.chars().take(n as usize - 8).collect();
                Val::Str(format!("{head}{}", &sha256_hex(s.as_bytes())[..8]))
            }
        }
        "uppercase" => {
            arity(f, &args, 1)?;
            Val::Str(args[0].text().to_uppercase())
        }
        "lowercase" => {
            arity(f, &args, 1)?;
            Val::Str(args[0].text().to_lowercase())
        }
        "replace" => {
            arity(f, &args, 3)?;
            Val::Str(args[2].text().replace(&args[0].text(), &args[1].text()))
        }
        "sha256" => {
            arity(f, &args, 1)?;
            Val::Str(sha256_hex(args[0].text().as_bytes()))
        }
        "base64" => {
            arity(f, &args, 1)?;
            Val::Str(base64::engine::general_purpose::STANDARD.encode(args[0].text()))
        }
        "unix_time" => {
            arity(f, &args, 0)?;
            Val::Int(unix_now())
        }
        "unix_time_millis" => {
            arity(f, &args, 0)?;
            Val::Int((time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        }
        "timestamp" => {
            arity(f, &args, 1)?;
            Val::Str(go_time_format(
                &args[0].text(),
                time::OffsetDateTime::now_utc(),
            ))
        }
        "uuid" => {
            arity(f, &args, 0)?;
            Val::Str(uuid())
        }
        "printf" => {
            if args.is_empty() {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            }
            Val::Str(sprintf(&args[0].text(), &args[1..]))
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// Go's `fmt.Sprintf` for the verbs templates use.
fn sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut next = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        match (verb, a) {
            ('s' | 'v', v) => out.push_str(&v.text()),
            ('d', Val::Int(i)) => out.push_str(&i.to_string()),
            ('d', Val::Str(s)) => {
                let _ = write!(out, "%!d(string={s})");
            }
            ('q', v) => {
                let _ = write!(out, "{:?}", v.text());
            }
            (other, v) => {
                let _ = write!(out, "%!{other}({})", v.text());
            }
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        out.push_str(
            &args[next..]
                .iter()
                .map(|a| a.text())
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push(')');
    }
    out
}

/// Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`), the common tokens.
fn go_time_format(layout: &str, t: time::OffsetDateTime) -> String {
    const TOKENS: &[&str] = &[
        "2006", "Z07:00", "-07:00", "-0700", "January", "Monday", "Jan", "Mon", "MST", "01", "02",
        "15", "03", "04", "05", "PM", "06", "1", "2", "3", "4", "5",
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for tok in TOKENS {
            if let Some(r) = rest.strip_prefix(tok) {
                let s = match *tok {
                    "2006" => format!("{:04}", t.year()),
                    "06" => format!("{:02}", t.year() % 100),
                    "01" => format!("{:02}", t.month() as u8),
                    "1" => format!("{}", t.month() as u8),
                    "Jan" => format!("{}", t.month()).chars().take(3).collect(),
                    "January" => format!("{}", t.month()),
                    "02" => format!("{:02}", t.day()),
                    "2" => format!("{}", t.day()),
                    "15" => format!("{:02}", t.hour()),
                    "03" => format!("{:02}", (t.hour() + 11) % 12 + 1),
                    "3" => format!("{}", (t.hour() + 11) % 12 + 1),
                    "04" => format!("{:02}", t.minute()),
                    "4" => format!("{}", t.minute()),
                    "05" => format!("{:02}", t.second()),
                    "5" => format!("{}", t.second()),
                    "PM" => (if t.hour() >= 12 { "PM" } else { "AM" }).to_string(),
                    "Mon" => format!("{}", t.weekday()).chars().take(3).collect(),
                    "Monday" => format!("{}", t.weekday()),
                    "MST" => "UTC".to_string(),
                    "Z07:00" => "Z".to_string(),
                    "-07:00" => "+00:00".to_string(),
                    "-0700" => "+0000".to_string(),
                    _ => String::new(),
                };
                out.push_str(&s);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            role_name: "readonly-role".into(),
            display_name: "token-with-long-name".into(),
        }
    }

    #[test]
    fn vault_default_templates() {
        let t = Template::parse(r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#).unwrap();
        let s = t.render(&ctx()).unwrap();
        assert!(s.starts_with("v-token-wi-readonly-"), "{s}");
        let parts: Vec<&str> = s.split('-').collect();
        assert_eq!(parts.len(), 6, "{s}");
        let legacy = Template::parse(
            r#"{{ printf "v-%s-%s" (.RoleName | truncate 4) (random 20) | truncate 16 }}"#,
        )
        .unwrap();
        let s = legacy.render(&ctx()).unwrap();
        assert_eq!(s.len(), 16);
        assert!(s.starts_with("v-read-"));
    }

    #[test]
    fn functions_and_text() {
        let t = Template::parse(
            r#"app_{{.RoleName | replace "-" "_" | uppercase}}_{{ random 4 | lowercase }}"#,
        )
        .unwrap();
        let s = t.render(&ctx()).unwrap();
        assert!(s.starts_with("app_READONLY_ROLE_"), "{s}");
        assert_eq!(s.len(), "app_READONLY_ROLE_".len() + 4);
        let t = Template::parse(r#"{{ truncate_sha256 12 .DisplayName }}"#).unwrap();
        assert_eq!(t.render(&ctx()).unwrap().len(), 12);
        let t = Template::parse("x {{- \" y \" -}} z").unwrap();
        assert_eq!(t.render(&ctx()).unwrap(), "x y z");
        let t = Template::parse(r#"{{ timestamp "2006-01-02" }}"#).unwrap();
        assert_eq!(t.render(&ctx()).unwrap().len(), 10);
        let t = Template::parse(r#"{{ printf "%s-%d" .RoleName 5 }}"#).unwrap();
        assert_eq!(t.render(&ctx()).unwrap(), "readonly-role-5");
    }

    #[test]
    fn clear_errors() {
        assert!(Template::parse("{{ .RoleName")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("{{ env \"HOME\" }}")
            .unwrap_err()
            .contains("\"env\" not defined"));
        assert!(Template::parse("{{ $x := 1 }}")
            .unwrap_err()
            .contains("variables"));
        let t = Template::parse("{{ .Nope }}").unwrap();
        assert!(t
            .render(&ctx())
            .unwrap_err()
            .contains("can't evaluate field Nope"));
        let t = Template::parse("{{ random }}").unwrap();
        assert!(t
            .render(&ctx())
            .unwrap_err()
            .contains("wrong number of args"));
    }
}

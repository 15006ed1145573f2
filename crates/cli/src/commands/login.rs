//! `tresor login`: authenticates and stores the token in `~/.vault-token`.
//!
//! * `-method=token` (default): `login [TOKEN|-]` verifies the token with
//!   `auth/token/lookup-self` (prompting for it when omitted).
//! * any other method: `login -method=userpass [-path=P] username=X password=Y` writes
//!   the `key=value` arguments to `auth/<path>/login`. For username-based methods
//!   (userpass, ldap, okta, radius) the username goes into the path
//!   (`auth/<path>/login/<username>`) and a missing password is prompted for, as in Vault.
//!
//! `-no-store` skips writing the token file, `-token-only` prints just the token and
//! `-no-print` prints nothing on success.

use clap::{ArgAction, Args};
use serde_json::{json, Map, Value};

use crate::client::{store_token, token_file, Client};
use crate::commands::{sanitize_path, Ctx};
use crate::error::{CliError, CliResult, Context};
use crate::input::{parse_kv_args, prompt_hidden};
use crate::output::{emit, format_value, kv_table, print_raw, secret_rows};

/// Methods whose login endpoint takes the username in the path.
const USERNAME_METHODS: &[&str] = &["userpass", "ldap", "okta", "radius"];

/// Flags of `tresor login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Auth method type: token, userpass, approle, ...
    #[arg(long, default_value = "token", value_name = "TYPE")]
    pub method: String,
    /// Mount path of the auth method (defaults to the method type)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Do not store the token in ~/.vault-token
    #[arg(long = "no-store", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub no_store: bool,
    /// Print only the token
    #[arg(long = "token-only", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub token_only: bool,
    /// Print nothing on success
    #[arg(long = "no-print", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub no_print: bool,
    /// TOKEN (or `-` for stdin) for the token method; key=value pairs for others
    pub args: Vec<String>,
}

/// The request a login turns into: the API path and its body.
#[derive(Debug, PartialEq)]
pub struct LoginRequest {
    pub path: String,
    pub body: Value,
}

/// Builds the login request for a non-token method (no prompting; see [`run`]).
pub fn login_request(
    method: &str,
    mount: Option<&str>,
    mut data: Map<String, Value>,
) -> CliResult<LoginRequest> {
    let mount = sanitize_path(mount.unwrap_or(method));
    if mount.is_empty() {
        return Err(CliError::usage("-path must not be empty"));
    }
    if USERNAME_METHODS.contains(&method) {
        let username = match data.remove("username") {
            Some(Value::String(u)) if !u.is_empty() => u,
            Some(_) => return Err(CliError::usage("username must be a single non-empty value")),
            None => {
                return Err(CliError::usage(format!(
                    "Missing username: use `tresor login -method={method} username=NAME`"
                )))
            }
        };
        return Ok(LoginRequest {
            path: format!("auth/{mount}/login/{username}"),
            body: Value::Object(data),
        });
    }
    Ok(LoginRequest {
        path: format!("auth/{mount}/login"),
        body: Value::Object(data),
    })
}

/// Turns a `lookup-self` answer into an `auth` block, as Vault's token login does.
pub fn auth_from_lookup(token: &str, lookup: &Value) -> Value {
    let d = lookup.get("data").cloned().unwrap_or(Value::Null);
    let policies = d.get("policies").cloned().unwrap_or_else(|| json!([]));
    json!({
        "auth": {
            "client_token": token,
            "accessor": d.get("accessor").cloned().unwrap_or_else(|| json!("")),
            "policies": policies,
            "token_policies": policies,
            "identity_policies": d.get("identity_policies").cloned().unwrap_or_else(|| json!([])),
            "metadata": d.get("meta").cloned().unwrap_or(Value::Null),
            "lease_duration": d.get("ttl").cloned().unwrap_or_else(|| json!(0)),
            "renewable": d.get("renewable").cloned().unwrap_or_else(|| json!(false)),
        }
    })
}

/// Runs `tresor login`.
pub fn run(ctx: &Ctx, a: LoginArgs) -> CliResult {
    let client = ctx.client()?;
    let method = a.method.trim().to_ascii_lowercase();
    let (token, secret) = if method == "token" {
        token_login(&client, &a)?
    } else {
        method_login(&client, &method, &a)?
    };

    if !a.no_store {
        let path = token_file().ok_or_else(|| {
            CliError::other("Cannot store the token: the home directory is unknown (use -no-store)")
        })?;
        store_token(&path, &token)?;
    }
    for var in ["TRESOR_TOKEN", "VAULT_TOKEN"] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            eprintln!(
                "WARNING! The {var} environment variable is set! It takes precedence over the\n\
                 token stored by this command; unset it to use the new token.\n"
            );
            break;
        }
    }
    if a.no_print {
        return Ok(0);
    }
    if a.token_only {
        print_raw(&token);
        return Ok(0);
    }
    if ctx.out.field.is_some() || ctx.out.is_structured() {
        return ctx.out.secret(&secret);
    }
    let intro = if a.no_store {
        "Success! You are now authenticated. The token information displayed below is\n\
         not stored anywhere: pass it with -token or TRESOR_TOKEN on future requests.\n\n"
    } else {
        "Success! You are now authenticated. The token information displayed below\n\
         is already stored in ~/.vault-token. You do NOT need to run \"tresor login\"\n\
         again. Future requests will automatically use this token.\n\n"
    };
    emit(intro);
    emit(&kv_table(&secret_rows(&secret)));
    Ok(0)
}

fn token_login(client: &Client, a: &LoginArgs) -> CliResult<(String, Value)> {
    if a.path.is_some() {
        return Err(CliError::usage("-path is not used with -method=token"));
    }
    let token = match a.args.as_slice() {
        [] => prompt_hidden("Token (will be hidden): ")?,
        [t] if t == "-" => crate::input::read_file_or_stdin("-")?.trim().to_string(),
        [t] => match t.strip_prefix("token=") {
            Some(v) => v.to_string(),
            None => t.clone(),
        },
        _ => {
            return Err(CliError::usage(
                "Too many arguments: -method=token takes at most one TOKEN",
            ))
        }
    };
    if token.is_empty() {
        return Err(CliError::usage("A token must be given"));
    }
    let lookup = client
        .with_token(Some(token.clone()))
        .read("auth/token/lookup-self", &[])
        .context("Error authenticating")?
        .ok_or_else(|| CliError::other("Error authenticating: token lookup returned nothing"))?;
    let secret = auth_from_lookup(&token, &lookup);
    Ok((token, secret))
}

fn method_login(client: &Client, method: &str, a: &LoginArgs) -> CliResult<(String, Value)> {
    let mut data = parse_kv_args(&a.args, &mut std::io::stdin())?;
    // Credentials read from a file or stdin (`password=-`) usually end with a newline
    // that is not part of the secret.
    for v in data.values_mut() {
        if let Value::String(s) = v {
            let trimmed = s.trim_end_matches(['\r', '\n']).len();
            s.truncate(trimmed);
        }
    }
    if USERNAME_METHODS.contains(&method) && !data.contains_key("password") {
        let pw = prompt_hidden("Password (will be hidden): ")?;
        data.insert("password".into(), Value::String(pw));
    }
    let req = login_request(method, a.path.as_deref(), data)?;
    // Log in without any existing token.
    let resp = client
        .with_token(None)
        .post(&req.path, &req.body)
        .context("Error authenticating")?
        .ok_or_else(|| CliError::other("Error authenticating: empty response"))?;
    let token = resp
        .get("auth")
        .and_then(|x| x.get("client_token"))
        .map(format_value)
        .filter(|t| !t.is_empty() && t != "<nil>")
        .ok_or_else(|| {
            CliError::other("Error authenticating: the response has no auth information")
        })?;
    Ok((token, resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn userpass_puts_username_in_path() {
        let r = login_request(
            "userpass",
            None,
            map(json!({"username": "bob", "password": "pw"})),
        )
        .unwrap();
        assert_eq!(r.path, "auth/userpass/login/bob");
        assert_eq!(r.body, json!({"password": "pw"}));
        let r = login_request("userpass", Some("/people/"), map(json!({"username": "a"}))).unwrap();
        assert_eq!(r.path, "auth/people/login/a");
        assert_eq!(
            login_request("userpass", None, Map::new())
                .unwrap_err()
                .code,
            1
        );
    }

    #[test]
    fn generic_method() {
        let r = login_request(
            "approle",
            None,
            map(json!({"role_id": "r", "secret_id": "s"})),
        )
        .unwrap();
        assert_eq!(r.path, "auth/approle/login");
        assert_eq!(r.body, json!({"role_id": "r", "secret_id": "s"}));
    }

    #[test]
    fn lookup_to_auth() {
        let l = json!({"data": {"accessor": "acc", "policies": ["root"], "ttl": 0, "renewable": false}});
        let s = auth_from_lookup("tok", &l);
        assert_eq!(s["auth"]["client_token"], "tok");
        assert_eq!(s["auth"]["token_policies"], json!(["root"]));
        assert_eq!(s["auth"]["identity_policies"], json!([]));
    }
}

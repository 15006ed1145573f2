//! `tresor`: the server and a thin command-line client over Tresor's Vault-compatible HTTP API.
//!
//! This file owns argument pre-processing, the top-level command tree and dispatch; the
//! commands themselves live in [`commands`], the HTTP client in [`client`], output in
//! [`output`] and `key=value`/stdin handling in [`input`].
//!
//! # Go-style flags
//!
//! Vault's CLI uses Go's `flag` package, so its flags are single-dash long names
//! (`-format=json`, `-dev`, `-mount=secret`). clap expects `--` for long flags, so before
//! parsing, [`preprocess_args`] rewrites every argument that matches
//! `^-[A-Za-z][A-Za-z0-9_-]+(=.*)?$` to start with `--` (`-format=json` becomes
//! `--format=json`). Left alone: single-letter flags (`-h`, `-f`), a lone `-` (stdin),
//! negative numbers, `--long` flags, and everything after a bare `--`.
//!
//! Boolean flags take an optional value like Go's: `-dev`, `-dev=true` and `-dev=false`
//! all work (`-dev false` does not, as in Go). Flags may appear anywhere after the
//! command; connection and output flags (`-address`, `-token`, `-format`, `-field`, ...)
//! are accepted by every command.
//!
//! Exit codes match Vault's: 0 success, 1 local errors (usage: bad flags or arguments; I/O),
//! 2 remote errors (the server refused or could not be reached, "no value found"), 127 an
//! unknown command; `tresor status` exits 2 when the server is sealed, 1 on any error.

mod client;
mod commands;
mod error;
mod input;
mod output;
mod tls;
mod yaml;

use std::ffi::OsString;

/// The process allocator: mimalloc (Microsoft's, via the `mimalloc` crate). A server request
/// makes a few dozen short-lived allocations (JSON values, strings, the request and response),
/// spread over tokio's worker threads; glibc's malloc spent ~13% of a transit request's CPU on
/// them (its arena locking and consolidation), mimalloc's thread-local free lists a fraction
/// of that. Chosen over jemalloc for a smaller, self-contained C build and lower per-call cost
/// on small objects; `default-features = false` keeps its secure mode's guard pages off, as
/// key material is zeroized by its owners, not by the allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

use crate::client::ConnectionFlags;
use crate::commands::{
    audit, generic, kv, lease, login, operator, pki, policy, secrets, server, status, token,
    transit, Ctx,
};
use crate::error::CliResult;
use crate::output::OutputFlags;

/// Tresor: a secrets manager speaking Vault's HTTP API.
#[derive(Parser, Debug)]
#[command(
    name = "tresor",
    version,
    about = "Tresor: a secrets manager speaking Vault's HTTP API",
    after_help = "Flags use Vault's single-dash style (-format=json); --format=json works too.",
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    conn: ConnectionFlags,
    #[command(flatten)]
    out: OutputFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a Tresor server
    Server(server::ServerArgs),
    /// Print seal and HA status (exit code 2 when sealed)
    Status,
    /// Operator commands: init, unseal, seal, rotate, key-status, rekey
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Authenticate and store the token in ~/.vault-token
    Login(login::LoginArgs),
    /// Create, look up, renew and revoke tokens
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage ACL policies
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Enable, disable, list and tune secrets engines
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Enable, disable, list and tune auth methods
    #[command(subcommand)]
    Auth(secrets::AuthCommand),
    /// Enable, disable, list and verify audit devices
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Work with the key/value secrets engine (versions 1 and 2)
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Interact with the Transit secrets engine (import keys)
    #[command(subcommand)]
    Transit(transit::TransitCommand),
    /// Interact with the PKI secrets engine (issue, reissue, verify-sign, health-check, ...)
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Read data at a path
    Read(generic::ReadArgs),
    /// Write data to a path
    Write(generic::WriteArgs),
    /// List the keys under a path
    List(generic::ListArgs),
    /// Delete data at a path
    Delete(generic::DeleteArgs),
    /// Look up, renew and revoke leases
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Unwrap a response-wrapping token (once)
    Unwrap(lease::UnwrapArgs),
    /// Show what an API path does and its fields
    PathHelp(lease::PathHelpArgs),
    /// Print the CLI version
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `tresor completion bash > /etc/bash_completion.d/tresor`
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Whether `arg` is a Go-style single-dash long flag:
/// `^-[A-Za-z][A-Za-z0-9_-]+(=.*)?$`.
fn is_go_style_flag(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    let tail: Vec<char> = chars.collect();
    !tail.is_empty()
        && tail
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
}

/// Rewrites Go-style `-flag[=value]` arguments to `--flag[=value]` (see the module doc).
/// The first item (the program name) is kept as-is.
pub fn preprocess_args<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        let arg: OsString = arg.into();
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        match arg.to_str() {
            Some("--") => {
                passthrough = true;
                out.push(arg);
            }
            Some(s) if is_go_style_flag(s) => out.push(OsString::from(format!("-{s}"))),
            _ => out.push(arg),
        }
    }
    out
}

fn dispatch(cli: Cli) -> CliResult {
    if let Command::Server(args) = cli.command {
        return server::run(args);
    }
    if let Command::Version = cli.command {
        println!("Tresor v{}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    if let Command::Completion { shell } = cli.command {
        use clap::CommandFactory;
        // Into a buffer first: the generator panics on a closed stdout (`| head`).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "tresor", &mut script);
        crate::output::emit(&String::from_utf8_lossy(&script));
        return Ok(0);
    }
    let ctx = Ctx::new(cli.conn, &cli.out)?;
    if ctx.out.format == crate::output::Format::Raw && !matches!(cli.command, Command::Read(_)) {
        return Err(crate::error::CliError::other(
            "This command does not support the -format=raw option.",
        ));
    }
    match cli.command {
        Command::Server(_) | Command::Version | Command::Completion { .. } => {
            unreachable!("handled above")
        }
        Command::Status => status::run(&ctx),
        Command::Operator(c) => operator::run(&ctx, c),
        Command::Login(a) => login::run(&ctx, a),
        Command::Token(c) => token::run(&ctx, c),
        Command::Policy(c) => policy::run(&ctx, c),
        Command::Audit(c) => audit::run(&ctx, c),
        Command::Secrets(c) => secrets::run_secrets(&ctx, c),
        Command::Auth(c) => secrets::run_auth(&ctx, c),
        Command::Kv(c) => kv::run(&ctx, c),
        Command::Transit(c) => transit::run(&ctx, c),
        Command::Pki(c) => pki::run(&ctx, c),
        Command::Read(a) => generic::read(&ctx, a),
        Command::Write(a) => generic::write(&ctx, a),
        Command::List(a) => generic::list(&ctx, a),
        Command::Delete(a) => generic::delete(&ctx, a),
        Command::Lease(c) => lease::run(&ctx, c),
        Command::Unwrap(a) => lease::unwrap(&ctx, a),
        Command::PathHelp(a) => lease::path_help(&ctx, a),
    }
}

/// Heading of the connection flags (`client::ConnectionFlags`).
const CONNECTION_HEADING: &str = "Connection options";

/// Where a subcommand's help points for the flags it does not list.
const CONNECTION_POINTER: &str = "Connection and TLS options (-address, -token, -namespace, \
    -tls-skip-verify, -ca-cert, -client-cert, -client-key, -wrap-ttl; VAULT_* environment \
    variables) work with every command: see `tresor --help`.";

/// The command tree as parsed: the connection flags are global (accepted by every command
/// and its subcommands) but listed only in `tresor --help`; each subcommand's help lists its
/// own flags and the output flags, and points there for the rest.
///
/// Each subcommand gets a hidden copy of every connection flag before clap builds the tree:
/// clap does not propagate a global flag into a subcommand that has one of the same id, and
/// the copy, itself global, hands its value up to the top level like the original would.
/// (Hiding the propagated flags after `build()` is not possible: clap's argument index is
/// fixed then.)
fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let conn: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.get_help_heading() == Some(CONNECTION_HEADING))
        .cloned()
        .collect();
    with_hidden_copies(cmd, &conn)
}

fn with_hidden_copies(mut cmd: clap::Command, conn: &[clap::Arg]) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |mut sc| {
            for a in conn {
                // A subcommand's own argument of that name (`unwrap TOKEN`) wins, as it does
                // over the propagated global.
                let taken = sc
                    .get_arguments()
                    .any(|x| x.get_id() == a.get_id() || x.get_long() == a.get_long());
                if !taken {
                    sc = sc.arg(a.clone().hide(true));
                }
            }
            let after = match sc.get_after_help() {
                Some(h) => format!("{h}\n\n{CONNECTION_POINTER}"),
                None => CONNECTION_POINTER.to_string(),
            };
            with_hidden_copies(sc.after_help(after), conn)
        });
    }
    cmd
}

fn main() {
    use clap::FromArgMatches;
    let args = preprocess_args(std::env::args_os());
    // Help and version go to stdout with exit code 0; a usage error exits 1 as Vault's flag
    // errors do (clap would say 2, Vault's code for a remote error), an unknown command 127.
    let matches = command().try_get_matches_from(args).unwrap_or_else(|e| {
        if !e.use_stderr() {
            e.exit()
        }
        let _ = e.print();
        let code = match e.kind() {
            clap::error::ErrorKind::InvalidSubcommand => 127,
            _ => crate::error::EXIT_LOCAL,
        };
        std::process::exit(code)
    });
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.message);
            e.code
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn pre(args: &[&str]) -> Vec<String> {
        preprocess_args(args.iter().copied())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn connection_flags_listed_once() {
        let mut top = command();
        let help = top.render_long_help().to_string();
        assert!(help.contains("Connection options:"), "{help}");
        assert!(help.contains("--tls-skip-verify"), "{help}");
        let mut cmd = command();
        cmd.build();
        let kv = cmd.find_subcommand_mut("kv").unwrap();
        let get = kv.find_subcommand_mut("get").unwrap();
        let help = get.render_long_help().to_string();
        assert!(!help.contains("--tls-skip-verify"), "{help}");
        assert!(!help.contains("Connection options:"), "{help}");
        assert!(help.contains("--format"), "{help}");
        assert!(help.contains("see `tresor --help`"), "{help}");
        // Still accepted there.
        let m = command()
            .try_get_matches_from(pre(&[
                "tresor",
                "kv",
                "get",
                "-tls-skip-verify",
                "-address=http://h:1",
                "a/b",
            ]))
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert_eq!(cli.conn.address.as_deref(), Some("http://h:1"));
        assert_eq!(cli.conn.tls_skip_verify, Some(true));
    }

    #[test]
    fn rewrites_go_style_flags() {
        assert_eq!(
            pre(&[
                "tresor",
                "kv",
                "get",
                "-format=json",
                "-mount=secret",
                "foo"
            ]),
            vec![
                "tresor",
                "kv",
                "get",
                "--format=json",
                "--mount=secret",
                "foo"
            ]
        );
        assert_eq!(
            pre(&["tresor", "server", "-dev", "-dev-root-token-id=root"]),
            vec!["tresor", "server", "--dev", "--dev-root-token-id=root"]
        );
        assert_eq!(
            pre(&[
                "tresor",
                "token",
                "create",
                "-metadata=a=b",
                "-ttl=",
                "-no_default_policy"
            ]),
            vec![
                "tresor",
                "token",
                "create",
                "--metadata=a=b",
                "--ttl=",
                "--no_default_policy"
            ]
        );
    }

    #[test]
    fn leaves_other_arguments_alone() {
        assert_eq!(
            pre(&[
                "-dev",
                "-h",
                "-f",
                "-",
                "-1",
                "-1x",
                "--format=json",
                "a=-b",
                "x",
                "-a"
            ]),
            vec![
                "-dev",
                "-h",
                "-f",
                "-",
                "-1",
                "-1x",
                "--format=json",
                "a=-b",
                "x",
                "-a"
            ]
        );
        // Not a flag name: bad characters before '='.
        assert_eq!(pre(&["t", "-a.b", "-a b"]), vec!["t", "-a.b", "-a b"]);
        // Everything after `--` passes through.
        assert_eq!(
            pre(&["t", "write", "--", "-value=x"]),
            vec!["t", "write", "--", "-value=x"]
        );
    }

    #[test]
    fn go_style_flags_parse() {
        let cli = Cli::try_parse_from(pre(&[
            "tresor",
            "-address=http://h:1",
            "kv",
            "get",
            "-format=json",
            "-version=3",
            "-mount=secret",
            "foo",
        ]))
        .unwrap();
        assert_eq!(cli.conn.address.as_deref(), Some("http://h:1"));
        assert_eq!(cli.out.format.as_deref(), Some("json"));
        assert!(matches!(cli.command, Command::Kv(_)));

        let cli = Cli::try_parse_from(pre(&[
            "tresor",
            "server",
            "-dev",
            "-config=a.hcl",
            "-config=b.hcl",
        ]))
        .unwrap();
        match cli.command {
            Command::Server(a) => {
                assert!(a.dev);
                assert_eq!(a.config.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Boolean flags accept =false like Go's.
        let cli = Cli::try_parse_from(pre(&["tresor", "server", "-dev=false"])).unwrap();
        match cli.command {
            Command::Server(a) => assert!(!a.dev),
            other => panic!("unexpected {other:?}"),
        }
        // A positional TOKEN does not leak into the global -token flag.
        let cli = Cli::try_parse_from(pre(&["tresor", "token", "lookup", "s.abc"])).unwrap();
        assert_eq!(cli.conn.token, None);
        match cli.command {
            Command::Token(token::TokenCommand::Lookup(a)) => {
                assert_eq!(a.token.as_deref(), Some("s.abc"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli =
            Cli::try_parse_from(pre(&["tresor", "-token=root", "token", "revoke", "s.x"])).unwrap();
        assert_eq!(cli.conn.token.as_deref(), Some("root"));
        // Unknown flags are usage errors (clap's kind; main() exits 1 for them).
        let e = Cli::try_parse_from(pre(&["tresor", "status", "-bogus"])).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}

#!/usr/bin/env bash
# Run all of Tresor's tests: formatting, lints, the Rust test suite, ACME with real clients,
# the API fuzzing run (schemathesis over the served OpenAPI document), then the hvac
# conformance suite (hvac 2.4.0's own integration tests against a real tresor server).
#
#   ./test.sh                              everything (what CI runs)
#   TRESOR_SKIP_CONFORMANCE=1 ./test.sh    skip the Python conformance part (quick local run)
#   TRESOR_PROFILE=release ./test.sh       run conformance against a release build (default: debug)
#
# Conformance options (CONFORMANCE_TARGET=bao, CONFORMANCE_PYTEST_ARGS, ...) are described
# in .ci/conformance.sh and .ci/conformance/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

section() { printf '\n=== %s ===\n' "$*"; }

section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test --workspace"
# In CI the independent cross-checks (Python `cryptography`, openssl) must run, not skip.
if [[ "${CI:-}" == true ]]; then
    export TRESOR_CROSSCHECK_REQUIRED=1
fi
cargo test --workspace

if [[ "${TRESOR_SKIP_CONFORMANCE:-0}" == 1 ]]; then
    section "hvac conformance suite: skipped (TRESOR_SKIP_CONFORMANCE=1)"
    exit 0
fi

# Debug build by default: `cargo test` has already compiled every dependency for the dev
# profile, so this only builds the tresor crates once more (seconds), whereas a release
# build (thin LTO) recompiles the whole dependency tree (minutes on 2 cores). The suite
# itself is short (~10 s of pytest against OpenBao), and dependencies are built with
# opt-level 1 in dev (Cargo.toml), so crypto-heavy code is not at debug speed.
profile="${TRESOR_PROFILE:-debug}"
case "$profile" in
    debug)
        section "cargo build --bin tresor"
        cargo build --bin tresor
        ;;
    release)
        section "cargo build --release --bin tresor"
        cargo build --release --bin tresor
        ;;
    *)
        echo "test.sh: TRESOR_PROFILE must be debug or release, not '$profile'" >&2
        exit 2
        ;;
esac
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export TRESOR_BIN="$target_dir/$profile/tresor"

section "ACME with real clients (lego, certbot): crates/engines/tests/acme_client.sh"
crates/engines/tests/acme_client.sh

section "API fuzzing: served OpenAPI validated, schemathesis finds no 5xx (.ci/api_fuzz.sh)"
API_FUZZ_TIME="${API_FUZZ_TIME:-180}" .ci/api_fuzz.sh

section "OpenBao's CLI against Tresor, step by step against bao server -dev (.ci/bao_cli.sh)"
BAO_BIN="${TRESOR_BAO:-$(command -v bao || true)}" .ci/bao_cli.sh

section "OpenBao's agent against Tresor: templates, cache, api_proxy, wrap_ttl (.ci/bao_agent.sh)"
BAO_BIN="${TRESOR_BAO:-$(command -v bao || true)}" .ci/bao_agent.sh

section "hvac conformance suite (.ci/conformance.sh, TRESOR_BIN=$TRESOR_BIN)"
.ci/conformance.sh

# hvac has no integration tests for the database engine: ours drive hvac's database calls
# against the real PostgreSQL and MariaDB and check the claims inside the databases.
section "hvac database engine checks (crates/engines/tests/hvac_database.py)"
PYTHONPATH="$PWD/.ci/work/hvac-2.4.0" .ci/work/venv/bin/python crates/engines/tests/hvac_database.py

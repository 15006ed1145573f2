#!/usr/bin/env bash
# The served OpenAPI document, checked and fuzzed: a dev server with every engine and auth
# method mounted serves `sys/internal/specs/openapi`; openapi-spec-validator must accept it as
# OpenAPI 3.0, then schemathesis sends generated valid and invalid requests to every operation
# for a bounded time. Any 5xx answer, or a crash of the server, fails the run.
#
# The fuzzing token may do everything except what would stop the run itself (seal, step down,
# revoke its own token or policy, enable an audit device that every request would then need),
# or that would not answer or flood the log (`sys/monitor` streams until the client leaves;
# `sys/loggers` may be read and reset, not set to trace); those paths are denied by its policy
# (403, not skipped).
#
# Environment:
#   TRESOR_BIN         tresor binary (default: target/debug/tresor)
#   API_FUZZ_TIME      schemathesis time budget in seconds (default 240)
#   API_FUZZ_EXAMPLES  max examples per operation (default 25)
#   API_FUZZ_SEED      random seed (default: a fixed one, so CI runs are reproducible)
#   API_FUZZ_WORK      work dir (default .ci/work)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${API_FUZZ_WORK:-$ROOT/.ci/work}"
mkdir -p "$WORK"
VENV="$WORK/fuzz-venv"
BIN="${TRESOR_BIN:-$ROOT/target/debug/tresor}"
TIME_BUDGET="${API_FUZZ_TIME:-240}"
EXAMPLES="${API_FUZZ_EXAMPLES:-25}"
SEED="${API_FUZZ_SEED:-20261207}"
PYTHON="${PYTHON:-python3}"
# Pinned: a newer schemathesis may generate differently; upgrade on purpose.
SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0

log() { echo "api-fuzz: $*"; }
die() { echo "api-fuzz: error: $*" >&2; exit 1; }

[[ -x "$BIN" ]] || die "tresor binary not found: $BIN"
if ! "$VENV/bin/python" -c "import schemathesis, openapi_spec_validator" 2>/dev/null; then
    log "installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $VALIDATOR_VERSION"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

port="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
addr="http://127.0.0.1:$port"
server_log="$WORK/api-fuzz-server.log"
"$BIN" server -dev -dev-root-token-id=root "-dev-listen-address=127.0.0.1:$port" >"$server_log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fsS "$addr/v1/sys/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$addr/v1/sys/health" >/dev/null || die "server did not come up (log: $server_log)"

req() { # method path [json]: fails unless 2xx
    local code
    code="$(curl -sS -o "$WORK/api-fuzz-last.json" -w '%{http_code}' -X "$1" -H "X-Vault-Token: root" \
        ${3:+-H "Content-Type: application/json" -d "$3"} "$addr/v1/$2")"
    [[ "$code" == 2* ]] || die "$1 $2 answered $code: $(cat "$WORK/api-fuzz-last.json")"
}

# Every engine and auth method, so the document covers them all.
for engine in transit pki database; do req POST "sys/mounts/$engine" "{\"type\":\"$engine\"}"; done
req POST sys/mounts/kv1 '{"type":"kv","options":{"version":"1"}}'
for method in approle userpass jwt kubernetes cert; do req POST "sys/auth/$method" "{\"type\":\"$method\"}"; done
req POST pki/root/generate/internal '{"common_name":"fuzz.example","ttl":"24h"}'
req POST transit/keys/fuzz '{}'
req POST auth/userpass/users/fuzz '{"password":"fuzz-password"}'
req POST auth/approle/role/fuzz '{}'

policy='path "*" { capabilities = ["create", "read", "update", "delete", "list", "patch", "sudo"] }
path "sys/seal" { capabilities = ["deny"] }
path "sys/step-down" { capabilities = ["deny"] }
path "sys/policies/acl/fuzz" { capabilities = ["deny"] }
path "sys/policy/fuzz" { capabilities = ["deny"] }
path "auth/token/revoke-self" { capabilities = ["deny"] }
path "auth/token/revoke*" { capabilities = ["deny"] }
path "sys/leases/revoke-prefix/auth/token*" { capabilities = ["deny"] }
path "sys/auth/token*" { capabilities = ["deny"] }
path "sys/audit/*" { capabilities = ["read", "list"] }
path "sys/monitor" { capabilities = ["deny"] }
path "sys/loggers" { capabilities = ["read", "delete", "sudo"] }
path "sys/loggers/*" { capabilities = ["read", "delete", "sudo"] }
path "sys/quotas/*" { capabilities = ["read", "list"] }'
req POST sys/policies/acl/fuzz "$("$PYTHON" -c 'import json,sys; print(json.dumps({"policy": sys.argv[1]}))' "$policy")"
req POST auth/token/create '{"policies":["fuzz"],"no_default_policy":true,"ttl":"2h"}'
token="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["auth"]["client_token"])' "$WORK/api-fuzz-last.json")"

spec="$WORK/openapi.json"
curl -fsS -H "X-Vault-Token: root" "$addr/v1/sys/internal/specs/openapi" -o "$spec"
log "document: $("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["paths"]), "paths,", sum(len(v) for v in d["paths"].values()), "operations")' "$spec")"
"$VENV/bin/python" -c 'import json,sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))' "$spec" \
    || die "the served document is not valid OpenAPI"
log "the document is valid OpenAPI 3.0"

log "fuzzing for at most ${TIME_BUDGET}s (seed $SEED, $EXAMPLES examples per operation)"
rc=0
"$VENV/bin/schemathesis" run "$spec" --url "$addr/v1" \
    -H "X-Vault-Token: $token" \
    --checks not_a_server_error \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" --max-time "$TIME_BUDGET" --seed "$SEED" \
    --workers 2 --request-timeout 30 --no-color \
    --suppress-health-check all --warnings off \
    --report junit --report-dir "$WORK/api-fuzz-report" || rc=$?
kill -0 "$server" 2>/dev/null || die "the server died during the run (log: $server_log)"
if grep -q "panicked" "$server_log"; then
    grep -n "panicked" "$server_log" | head -n 5
    die "the server panicked during the run (log: $server_log)"
fi
[[ $rc -eq 0 ]] || die "schemathesis found server errors (exit $rc)"
log "no server errors, no crash"

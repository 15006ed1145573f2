#!/usr/bin/env bash
# How cost grows with the data (issue #16, target 5): two Tresor servers on the durable store
# (storage "file"), set up alike; one is then loaded with SCALE_SECRETS KV v2 secrets and
# SCALE_TOKENS live tokens, the other stays empty. Each row is measured on the empty server and
# right after on the loaded one, so the two see the same machine (it is shared: a build starting
# between an "empty phase" and a "loaded phase" minutes apart would decide the ratio). A load
# command, not a test: it prints a table and the loaded / empty ratios of this run, with the
# targets next to them. See bench/README.md ("Scale").
#
# Rows (each on the empty server, then on the loaded one):
#   read     KV v2 read, wrk over SCALE_READ_KEYS keys spread evenly over the whole key space
#   login    AppRole login (service tokens: each login stores a token)
#   unseal   PUT sys/seal, then PUT sys/unseal: time until the first KV read answers 200; and the
#            same after a restart of the process (SIGTERM, start, unseal) and after a crash
#            (kill -9, start, unseal); for both, also how long the process took to listen
#   list     LIST of a folder of SCALE_LIST_SMALL keys (both phases) and, loaded, of a folder of
#            SCALE_FOLDER keys (whole, and with ?limit=100) and of the folder holding those
#            folders: time and the server's RSS growth
#   RSS      VmRSS after each phase's rows, and VmHWM over each phase (always printed)
#
# Env:
#   SCALE_SECRETS      secrets loaded (default 1000000), in folders of SCALE_FOLDER keys:
#                      secret/scale/f<n / SCALE_FOLDER>/k<n>
#   SCALE_TOKENS       tokens loaded (default 1000000): auth/token/create-orphan, ttl SCALE_TOKEN_TTL
#   SCALE_FOLDER       keys per folder, and the size of the large LIST (default 100000)
#   SCALE_LIST_SMALL   keys of the small LIST folder secret/small/ (default 1000)
#   SCALE_READ_KEYS    distinct keys the read rows cycle over (default 10000)
#   SCALE_TOKEN_TTL    (default 24h)
#   SCALE_LOAD_CONNECTIONS  wrk connections of the load (default 128)
#   SCALE_CACHE_SIZE   both servers' storage "file" cache_size, in bytes (default: the server's, 64 MiB)
#   BENCH_ONLY         a subset of: read login unseal list (default: all; the load always runs)
#   BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
#   BENCH_PIN (1), BENCH_QUIET_WAIT (20), BENCH_TIME_BOUND, TRESOR_BIN, TMPDIR: as run.sh
#   BENCH_KEEP=1       keep the work dir: both data dirs, their configs, and NAME.keys (unseal key,
#                      root token, AppRole login body) to start a kept server again
# shellcheck disable=SC2059 # FMT and RFMT are this script's own printf formats
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}
SECRETS=${SCALE_SECRETS:-1000000}
TOKENS=${SCALE_TOKENS:-1000000}
FOLDER=${SCALE_FOLDER:-100000}
LIST_SMALL=${SCALE_LIST_SMALL:-1000}
READ_KEYS=${SCALE_READ_KEYS:-10000}
TOKEN_TTL=${SCALE_TOKEN_TTL:-24h}
LOAD_CONNS=${SCALE_LOAD_CONNECTIONS:-128}
CACHE_SIZE=${SCALE_CACHE_SIZE:-}
export BENCH_THREADS=$THREADS

log() { printf '[scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n[scale] FATAL: %s\n' "$*" >&2; exit 1; }

for v in SECRETS TOKENS FOLDER LIST_SMALL READ_KEYS LOAD_CONNS ${CACHE_SIZE:+CACHE_SIZE}; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "SCALE_$v=${!v}: a whole number"
done
[[ $FOLDER -gt 0 && $READ_KEYS -gt 0 ]] || die "SCALE_FOLDER and SCALE_READ_KEYS must be > 0"
[[ $READ_KEYS -le $SECRETS || $SECRETS == 0 ]] || die "SCALE_READ_KEYS ($READ_KEYS) > SCALE_SECRETS ($SECRETS)"
# The read keys: n = j * STRIDE, spread over the whole key space of the load.
STRIDE=1
[[ $SECRETS -gt 0 ]] && STRIDE=$((SECRETS / READ_KEYS))

ALL_ROWS="read login unseal list"
ROWS=" "
ONLY=${BENCH_ONLY:-$ALL_ROWS}
for n in ${ONLY//,/ }; do
    case $n in
        read | login | unseal | list) ROWS+="$n " ;;
        *) die "BENCH_ONLY: unknown name '$n' (known: $ALL_ROWS)" ;;
    esac
done
want() { [[ $ROWS == *" $1 "* ]]; }

PIN=${BENCH_PIN:-1}
NCPU=$(nproc)
CLIENT_PIN=() SERVER_CORES=
if [[ $PIN == 1 && $NCPU -ge 2 ]] && command -v taskset >/dev/null 2>&1; then
    CLIENT_PIN=(taskset -c 0) SERVER_CORES="1-$((NCPU - 1))"
else
    PIN=0
fi

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

if ! command -v wrk >/dev/null 2>&1; then
    log "wrk missing: apt-get install -y wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
        || die "could not install wrk (apt-get install -y wrk)"
fi
for t in curl python3; do command -v "$t" >/dev/null 2>&1 || die "$t is required"; done
if [[ -z ${TRESOR_BIN:-} ]]; then
    log "building tresor (cargo build --release --bin tresor)"
    (cd "$ROOT" && cargo build --release --bin tresor) || die "cargo build --release --bin tresor failed"
    TRESOR_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tresor
fi
[[ -x $TRESOR_BIN ]] || die "TRESOR_BIN=$TRESOR_BIN is not executable"

# ---------------------------------------------------------------------------------------------
# Work dir, cleanup, time bound
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tresor-scale.XXXXXX")
mkdir -p "$WORK/home"
PID_SERVER='' WATCHDOG='' LOADER='' CUR=''
# Per server (empty, loaded): pid, port, root token, unseal key, AppRole login body.
declare -A S_PID S_PORT S_TOKEN S_KEY S_LOGIN
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    [[ -n $WATCHDOG ]] && { kill "$WATCHDOG" 2>/dev/null || true; }
    [[ -n $LOADER ]] && { kill -INT "$LOADER" 2>/dev/null || true; }
    for p in "${S_PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for p in "${S_PID[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for p in "${S_PID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept work dir $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Rows: 2 servers x (read + login) wrk runs; the load at no less than 300 requests/s.
BUDGET=${BENCH_TIME_BOUND:-$(( 300 + 4 * (DUR_S + WARM_S + QUIET_WAIT + 20) + (SECRETS + TOKENS + READ_KEYS + LIST_SMALL) / 300 ))}
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$BUDGET" & sp=$!
    wait "$sp"
    echo "[scale] FATAL: exceeded the ${BUDGET}s time bound" >&2
    kill -TERM $$
) &
WATCHDOG=$!

# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# use NAME: server NAME becomes the one every helper below talks to.
use() {
    CUR=$1
    PID_SERVER=${S_PID[$1]:-} PORT=${S_PORT[$1]} TOKEN=${S_TOKEN[$1]:-} UNSEAL_KEY=${S_KEY[$1]:-}
    LOGIN_BODY=${S_LOGIN[$1]:-}
    URL=http://127.0.0.1:$PORT
}
for name in empty loaded; do
    S_PORT[$name]=$(free_port)
    mkdir -p "$WORK/$name-data"
    cat >"$WORK/$name.hcl" <<EOF
storage "file" {
  path = "$WORK/$name-data"
  ${CACHE_SIZE:+cache_size = $CACHE_SIZE}
}
listener "tcp" {
  address     = "127.0.0.1:${S_PORT[$name]}"
  tls_disable = true
}
disable_mlock = true
EOF
done

http() { # METHOD PATH TOKEN [JSON] -> status; body in $WORK/body
    : >"$WORK/body"
    local args=(-s -o "$WORK/body" -w '%{http_code}' --max-time 60 -X "$1" "$URL$2")
    [[ -n $3 ]] && args+=(-H "X-Vault-Token: $3")
    [[ $# -ge 4 ]] && args+=(-H 'Content-Type: application/json' --data "$4")
    curl "${args[@]}" || true
}
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$WORK/body" "$1"; }
must() { # what METHOD PATH TOKEN [JSON]: a setup call that must answer 2xx
    local what=$1 code
    shift
    code=$(http "$@")
    [[ $code =~ ^2 ]] || die "$what: $1 $2 -> $code: $(head -c 300 "$WORK/body")"
}

# Pinned: the server on cores 1.., wrk on core 0 (as run.sh); the load phase lets both use
# every core (taskset -a on the live server: all its threads).
pin_server() { # cores
    [[ $PIN == 1 ]] || return 0
    taskset -a -p -c "$1" "$PID_SERVER" >/dev/null 2>&1 || true
}
START_MS=
start_server() {
    local t0
    t0=$(date +%s%N)
    local pin=()
    [[ $PIN == 1 ]] && pin=(taskset -c "$SERVER_CORES")
    HOME=$WORK/home "${pin[@]}" "$TRESOR_BIN" server "-config=$WORK/$CUR.hcl" -log-level=warn >>"$WORK/$CUR.log" 2>&1 &
    PID_SERVER=$!
    S_PID[$CUR]=$PID_SERVER
    # Up to ~5 minutes: after a crash the store may have to be repaired before it opens.
    for _ in $(seq 3000); do
        kill -0 "$PID_SERVER" 2>/dev/null || { tail -n 30 "$WORK/$CUR.log" >&2; die "$CUR: the server exited during startup"; }
        [[ $(http GET /v1/sys/health "") =~ ^[1-5][0-9][0-9]$ ]] && { START_MS=$(( ($(date +%s%N) - t0) / 1000000 )); return 0; }
        sleep 0.05
    done
    die "$CUR: the server did not come up at $URL"
}
stop_server() { # [SIGNAL] (default TERM)
    kill "-${1:-TERM}" "$PID_SERVER" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$PID_SERVER" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID_SERVER" 2>/dev/null && die "the server did not stop within 30 s of SIGTERM"
    { wait "$PID_SERVER"; } 2>/dev/null || true
    PID_SERVER='' S_PID[$CUR]=
}

# setup_server NAME: start, init, unseal, kv-v2 at secret/, AppRole role bench, the read keys and
# the small LIST folder.
setup_server() {
    use "$1"
    log "$1: starting tresor (storage \"file\" at $WORK/$1-data) on $URL"
    start_server
    must init PUT /v1/sys/init "" '{"secret_shares":1,"secret_threshold":1}'
    S_TOKEN[$1]=$(json_field '["root_token"]')
    S_KEY[$1]=$(json_field '["keys_base64"][0]')
    use "$1"
    must unseal PUT /v1/sys/unseal "" "{\"key\":\"$UNSEAL_KEY\"}"
    must mount POST /v1/sys/mounts/secret "$TOKEN" '{"type":"kv-v2"}'
    for _ in $(seq 50); do
        [[ $(http POST /v1/secret/data/bench "$TOKEN" '{"data":{"username":"bench","password":"correct-horse-battery-staple"}}') =~ ^2 ]] && break
        sleep 0.2
    done
    must seed GET /v1/secret/data/bench "$TOKEN"
    must approle POST /v1/sys/auth/approle "$TOKEN" '{"type":"approle"}'
    must role POST /v1/auth/approle/role/bench "$TOKEN" '{"bind_secret_id":true,"secret_id_num_uses":0,"token_policies":"default","token_type":"service"}'
    must role-id GET /v1/auth/approle/role/bench/role-id "$TOKEN"
    local role_id secret_id
    role_id=$(json_field '["data"]["role_id"]')
    must secret-id POST /v1/auth/approle/role/bench/secret-id "$TOKEN" '{}'
    secret_id=$(json_field '["data"]["secret_id"]')
    S_LOGIN[$1]="{\"role_id\":\"$role_id\",\"secret_id\":\"$secret_id\"}"
    # With BENCH_KEEP, what it takes to start the kept server again (a benchmark's throwaway
    # keys, never a real server's): tresor server -config=NAME.hcl, unseal, log in.
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        printf "UNSEAL_KEY=%s\nROOT_TOKEN=%s\nLOGIN='%s'\n" "${S_KEY[$1]}" "${S_TOKEN[$1]}" "${S_LOGIN[$1]}" >"$WORK/$1.keys"
    fi
    use "$1"
    # The keys the read rows use exist on both servers (the load rewrites them on one).
    load readset "$READ_KEYS" 32 BENCH_LOAD_KIND=kv BENCH_LOAD_PREFIX=/v1/secret/data/scale/ \
        BENCH_LOAD_FOLDER="$FOLDER" BENCH_LOAD_STRIDE="$STRIDE"
    load small "$LIST_SMALL" 32 BENCH_LOAD_KIND=flat BENCH_LOAD_PREFIX=/v1/secret/data/small/k
    log "$1: initialized, unsealed; kv-v2 at secret/, approle role bench, $READ_KEYS read keys, $LIST_SMALL keys in small/"
}

# ---------------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------------
declare -A RPS P50 P99 NON2XX SOCKERR REQS CPU_US OTHER
FAILED=()
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
sys_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
task_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $9; exit}' /proc/stat; }
child_secs() {
    times >"$WORK/times"
    CHILD_SECS=$(awk 'NR==2{ split($1,u,/[ms]/); split($2,s,/[ms]/); printf "%.3f", u[1]*60+u[2]+s[1]*60+s[2] }' "$WORK/times")
}
status_kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$PID_SERVER/status"; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
# The kernel's peak-RSS mark (VmHWM) starts over from the current RSS (Linux >= 4.0).
reset_hwm() { echo 5 >"/proc/$PID_SERVER/clear_refs" 2>/dev/null || log "cannot reset VmHWM (clear_refs); peaks below include earlier phases"; }

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
wait_drained() {
    local a b
    for _ in $(seq 30); do
        a=$(cpu_ticks "$PID_SERVER"); sleep 0.5; b=$(cpu_ticks "$PID_SERVER")
        [[ -n $a && -n $b ]] || return 0
        awk -v d=$((b - a)) -v hz="$CLK_TCK" 'BEGIN{exit !(d / hz / 0.5 < 0.1)}' && return 0
    done
    log "still busy 15 s after the warm-up; measuring anyway"
}

# run_load ID TOKEN LUA [ENV=VALUE...]: warm-up, drain, measured wrk run against $URL.
run_load() {
    local id=$1 token=$2 lua=$3
    shift 3
    local env=(env "$@") wrk_args=(-t "$THREADS" -c "$CONNS" --timeout 5s -s "$HERE/$lua")
    [[ -n $token ]] && wrk_args+=(-H "X-Vault-Token: $token")
    local path=/v1/secret/data/bench
    [[ $lua == post.lua ]] && path=/v1/auth/approle/login
    wait_quiet
    if [[ $WARM_S -gt 0 ]]; then
        "${env[@]}" "${CLIENT_PIN[@]}" timeout $((WARM_S + 20)) wrk "${wrk_args[@]}" -d "$WARM_S" "$URL$path" >"$WORK/wrk-$id.warmup" 2>&1 || true
        wait_drained
    fi
    log "$id: wrk -t $THREADS -c $CONNS -d $DURATION ($lua)"
    local out=$WORK/wrk-$id.txt c0 c1 s0 s1 w0 w1 line
    child_secs; w0=$CHILD_SECS; c0=$(cpu_ticks "$PID_SERVER"); s0=$(task_ticks)
    if ! "${env[@]}" "${CLIENT_PIN[@]}" timeout $((DUR_S + 20)) wrk "${wrk_args[@]}" -d "$DURATION" --latency "$URL$path" >"$out" 2>&1; then
        cat "$out" >&2
        FAILED+=("$id (wrk failed)")
        return 0
    fi
    c1=$(cpu_ticks "$PID_SERVER"); s1=$(task_ticks); child_secs; w1=$CHILD_SECS
    line=$(grep '^BENCH_RESULT ' "$out" | tail -n1) || { cat "$out" >&2; FAILED+=("$id (no result line)"); return 0; }
    val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    RPS[$id]=$(val rps) REQS[$id]=$(val requests) P50[$id]=$(val p50_us) P99[$id]=$(val p99_us)
    NON2XX[$id]=$(val status_errors)
    SOCKERR[$id]=$(( $(val connect_errors) + $(val read_errors) + $(val write_errors) + $(val timeouts) ))
    CPU_US[$id]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="${REQS[$id]}" 'BEGIN{ if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "-" }')
    OTHER[$id]=$(awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" -v us="$(val duration_us)" \
        'BEGIN{ o = ((s - c) / hz - (b - a)) / (us / 1e6); if (o < 0) o = 0; printf "%.2f", o }')
    if [[ ${NON2XX[$id]} != 0 || ${SOCKERR[$id]} != 0 ]]; then
        sed -n '1,40p' "$out" >&2
        FAILED+=("$id (${NON2XX[$id]} non-2xx, ${SOCKERR[$id]} socket errors)")
    fi
    log "$id: $(printf '%.0f' "${RPS[$id]}") req/s, p50 ${P50[$id]}us, p99 ${P99[$id]}us, ${CPU_US[$id]} CPU-us/req, other ${OTHER[$id]}"
}

# load WHAT COUNT CONNS ENV=VALUE...: bench/load.lua, as fast as the server takes it (both
# cores for the server and wrk); sets LOAD_RATE. Any error response or socket error is fatal:
# a half-loaded store measures nothing.
LOAD_RATE=
load() {
    local what=$1 count=$2 conns=$3
    shift 3
    [[ $count -gt 0 ]] || { LOAD_RATE=-; return 0; }
    local done_prefix=$WORK/load-done-$CUR-$what out=$WORK/load-$CUR-$what.txt t0 t1 nd
    rm -f "$done_prefix".*
    pin_server "0-$((NCPU - 1))"
    t0=$(date +%s%N)
    env BENCH_LOAD_COUNT="$count" BENCH_LOAD_DONE="$done_prefix" "$@" \
        wrk -t "$THREADS" -c "$conns" --timeout 30s -d $((count / 100 + 120)) -H "X-Vault-Token: $TOKEN" \
        -s "$HERE/load.lua" "$URL" >"$out" 2>&1 &
    LOADER=$!
    local last=0
    while kill -0 "$LOADER" 2>/dev/null; do
        nd=$(find "$WORK" -maxdepth 1 -name "load-done-$CUR-$what.*" | wc -l)
        [[ $nd -ge $THREADS ]] && break
        if [[ $((SECONDS - last)) -ge 30 ]]; then
            last=$SECONDS
            log "$CUR: load $what: running for $(( ($(date +%s%N) - t0) / 1000000000 )) s, server RSS $(mib "$(status_kib VmRSS)") MiB"
        fi
        sleep 0.2
    done
    t1=$(date +%s%N)
    kill -INT "$LOADER" 2>/dev/null || true
    wait "$LOADER" || true
    LOADER=
    pin_server "${SERVER_CORES:-0}"
    local line
    line=$(grep '^BENCH_RESULT ' "$out" | tail -n1) || { cat "$out" >&2; die "load $what: no result line from wrk"; }
    local errs sock
    errs=$(sed -n 's/.* status_errors=\([0-9]*\).*/\1/p' <<<"$line")
    sock=$(sed -n 's/.* connect_errors=\([0-9]*\) read_errors=\([0-9]*\) write_errors=\([0-9]*\) timeouts=\([0-9]*\).*/\1+\2+\3+\4/p' <<<"$line")
    [[ $nd -ge $THREADS ]] || { cat "$out" >&2; die "load $what: wrk ended before every thread finished its share"; }
    [[ $errs == 0 && $((sock)) == 0 ]] || { cat "$out" >&2; die "load $what: $errs error responses, $((sock)) socket errors"; }
    LOAD_RATE=$(awk -v n="$count" -v ns=$((t1 - t0)) 'BEGIN{printf "%.0f", n / (ns / 1e9)}')
    log "$CUR: load $what: $count requests in $(awk -v ns=$((t1 - t0)) 'BEGIN{printf "%.1f", ns / 1e9}') s ($LOAD_RATE/s)"
}

# unseal_first TAG [started]: PUT sys/seal (not with "started": the server just started sealed),
# then PUT sys/unseal and GET secret/data/bench in a loop until 200; ms from sending the unseal
# to that first 200 (UNSEAL_MS[TAG]), and the unseal call's own answer time.
declare -A UNSEAL_MS UNSEAL_CALL_MS START_TO_UP_MS
unseal_first() {
    local tag=$1 r
    if [[ ${2:-} != started ]]; then
        must seal PUT /v1/sys/seal "$TOKEN"
    fi
    r=$(python3 - "$PORT" "$UNSEAL_KEY" "$TOKEN" <<'EOF'
import http.client, json, sys, time
port, key, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
t0 = time.monotonic()
c.request("PUT", "/v1/sys/unseal", json.dumps({"key": key}), {"Content-Type": "application/json"})
r = c.getresponse(); body = r.read()
t1 = time.monotonic()
if r.status != 200 or json.loads(body).get("sealed") is not False:
    print("ERR unseal", r.status, body[:200]); sys.exit(0)
while True:
    c.request("GET", "/v1/secret/data/bench", headers={"X-Vault-Token": token})
    r = c.getresponse(); r.read()
    if r.status == 200:
        break
    if time.monotonic() - t0 > 60:
        print("ERR no 200 within 60 s, last", r.status); sys.exit(0)
    time.sleep(0.001)
t2 = time.monotonic()
print(f"{(t2 - t0) * 1000:.1f} {(t1 - t0) * 1000:.1f}")
EOF
)
    [[ $r == ERR* ]] && die "unseal ($tag): $r"
    UNSEAL_MS[$tag]=${r% *}
    UNSEAL_CALL_MS[$tag]=${r#* }
    log "unseal ($tag): first KV read answered ${UNSEAL_MS[$tag]} ms after the unseal was sent (unseal call ${UNSEAL_CALL_MS[$tag]} ms)"
}
restart_first() { # TAG SIGNAL: stop (SIGTERM, or KILL: a crash), start, unseal, first read
    log "stopping the server with SIG$2, starting it again"
    stop_server "$2"
    start_server
    START_TO_UP_MS[$1]=$START_MS
    unseal_first "$1" started
}

# list_row TAG PATH: LIST PATH three times; for each, VmHWM reset before, then the peak RSS
# growth over what the server held just before (VmHWM - VmRSS), the time and the answer. The
# largest growth of the three is kept (the first: later ones reuse what the allocator kept).
declare -A LIST_MS LIST_GROW LIST_KEYS LIST_BYTES
list_row() {
    local tag=$1 path=$2 r times=() grows=() rss0 hwm
    for _ in 1 2 3; do
        reset_hwm
        rss0=$(status_kib VmRSS)
        r=$(python3 - "$PORT" "$TOKEN" "$path" <<'EOF'
import http.client, json, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=120)
t0 = time.monotonic()
c.request("LIST", sys.argv[3], headers={"X-Vault-Token": sys.argv[2]})
r = c.getresponse(); body = r.read()
t1 = time.monotonic()
if r.status != 200:
    print("ERR", r.status, body[:200]); sys.exit(0)
print(f"{(t1 - t0) * 1000:.1f} {len(json.loads(body)['data']['keys'])} {len(body)}")
EOF
)
        [[ $r == ERR* ]] && { FAILED+=("list $tag ($r)"); return 0; }
        hwm=$(status_kib VmHWM)
        read -r ms nkeys nbytes <<<"$r"
        times+=("$ms")
        grows+=("$((hwm - rss0))")
    done
    LIST_MS[$tag]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
    LIST_GROW[$tag]=$(printf '%s\n' "${grows[@]}" | sort -n | tail -n1)
    LIST_KEYS[$tag]=$nkeys LIST_BYTES[$tag]=$nbytes
    log "LIST $path ($tag): $nkeys keys, $nbytes bytes, median ${LIST_MS[$tag]} ms, peak RSS growth $(mib "${LIST_GROW[$tag]}") MiB"
}

declare -A RSS HWM

# ---------------------------------------------------------------------------------------------
# Two servers, one loaded; every row on the empty one, then on the loaded one
# ---------------------------------------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
setup_server empty
setup_server loaded
use loaded
load secrets "$SECRETS" "$LOAD_CONNS" BENCH_LOAD_KIND=kv BENCH_LOAD_PREFIX=/v1/secret/data/scale/ BENCH_LOAD_FOLDER="$FOLDER"
SECRETS_RATE=$LOAD_RATE
load tokens "$TOKENS" "$LOAD_CONNS" BENCH_LOAD_KIND=token BENCH_LOAD_PREFIX=/v1/auth/token/create-orphan \
    BENCH_BODY="{\"ttl\":\"$TOKEN_TTL\",\"policies\":[\"default\"]}"
TOKENS_RATE=$LOAD_RATE
LOAD_HWM=$(status_kib VmHWM)
DATA_MIB=$(du -sm "$WORK/loaded-data" | cut -f1)
log "loaded: data dir $DATA_MIB MiB; server VmHWM during the load $(mib "$LOAD_HWM") MiB"
# Let the store settle (the load's last commits) before measuring.
wait_drained

for tag in empty loaded; do use "$tag"; reset_hwm; done
if want read; then
    for tag in empty loaded; do
        use "$tag"
        run_load "read-$tag" "$TOKEN" readkeys.lua BENCH_READ_PREFIX=/v1/secret/data/scale/ \
            BENCH_READ_KEYS="$READ_KEYS" BENCH_READ_STRIDE="$STRIDE" BENCH_LOAD_FOLDER="$FOLDER"
    done
fi
if want login; then
    for tag in empty loaded; do
        use "$tag"
        run_load "login-$tag" "" post.lua BENCH_BODY="$LOGIN_BODY"
    done
fi
if want list; then
    use empty
    list_row small-empty /v1/secret/metadata/small/
    use loaded
    list_row small-loaded /v1/secret/metadata/small/
    if [[ $SECRETS -gt 0 ]]; then
        # The page first: the storage reads only its 100 keys (Storage::list_page), so it must
        # not grow with the folder. The whole folder after: its answer holds every key.
        list_row large-limit "/v1/secret/metadata/scale/f0/?limit=100"
        list_row large /v1/secret/metadata/scale/f0/
        # The folder above: one sub-folder per SCALE_FOLDER keys; its contents are skipped.
        list_row parent /v1/secret/metadata/scale/
    fi
fi
for tag in empty loaded; do
    use "$tag"
    RSS[$tag]=$(status_kib VmRSS)
    HWM[$tag]=$(status_kib VmHWM)
    log "$tag: VmRSS $(mib "${RSS[$tag]}") MiB, VmHWM over the rows $(mib "${HWM[$tag]}") MiB"
done
if want unseal; then
    for tag in empty loaded; do use "$tag"; unseal_first "$tag"; done
    for tag in empty loaded; do
        use "$tag"
        restart_first "$tag-restart" TERM
        RSS[$tag-restarted]=$(status_kib VmRSS)
    done
    for tag in empty loaded; do use "$tag"; restart_first "$tag-crash" KILL; done
fi

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
ms() { [[ -n ${1:-} ]] && awk -v u="$1" 'BEGIN{printf "%.2f", u/1000}' || echo -; }
num() { [[ -n ${1:-} ]] && printf '%.0f' "$1" || echo -; }
clean() { [[ -n ${RPS[$1]:-} && ${NON2XX[$1]:-x} == 0 && ${SOCKERR[$1]:-x} == 0 ]]; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else printf "-" }'; }
# verdict VALUE OP TARGET
verdict() { [[ $1 == - || -z $1 ]] && { echo -; return 0; }; awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN{ ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "met" : "MISSED" }'; }

echo
echo "== Tresor at scale: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, two durable servers (storage \"file\", redb), one empty, one loaded; wrk -t $THREADS -c $CONNS -d $DURATION (warm-up $WARMUP)"
[[ $PIN == 1 ]] && echo "   pinned: wrk on core 0, the server on cores $SERVER_CORES (during the load: every core)"
echo "   loaded: $SECRETS KV v2 secrets (folders of $FOLDER keys, ${SECRETS_RATE}/s), $TOKENS tokens (create-orphan, ttl $TOKEN_TTL, ${TOKENS_RATE}/s); data dir $DATA_MIB MiB"
echo "   storage \"file\" cache_size: ${CACHE_SIZE:-default, 64 MiB}"
echo "   reads cycle over $READ_KEYS keys spread over the key space (stride $STRIDE); load average before: $LOAD0, now: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${BENCH_ONLY:-} ]] && echo "   BENCH_ONLY=$BENCH_ONLY"
echo
FMT='%-34s %9s %8s %8s %8s %8s %8s %6s\n'
printf "$FMT" "row" "req/s" "p50 ms" "p99 ms" "non-2xx" "sockerr" "us/req" "other"
printf "$FMT" "----------------------------------" "---------" "--------" "--------" "--------" "--------" "--------" "------"
for tag in empty loaded; do
    for row in read login; do
        id=$row-$tag
        [[ -n ${RPS[$id]:-} ]] || continue
        what="KV v2 read ($READ_KEYS keys)"
        [[ $row == login ]] && what="AppRole login"
        printf "$FMT" "$what, $tag" "$(num "${RPS[$id]}")" "$(ms "${P50[$id]}")" "$(ms "${P99[$id]}")" "${NON2XX[$id]}" "${SOCKERR[$id]}" "${CPU_US[$id]}" "${OTHER[$id]}"
    done
done
echo
RFMT='  %-58s %12s   %-9s %s\n'
printf "$RFMT" "loaded vs empty (this run)" "value" "target" ""
for row in read login; do
    want "$row" || continue
    name="KV v2 read"
    [[ $row == login ]] && name="AppRole login"
    if clean "$row-empty" && clean "$row-loaded"; then
        r=$(ratio "${RPS[$row-loaded]}" "${RPS[$row-empty]}")
        printf "$RFMT" "$name req/s: loaded / empty" "$r" ">= 0.80" "$(verdict "$r" ">=" 0.8)"
        r=$(ratio "${P99[$row-loaded]}" "${P99[$row-empty]}")
        printf "$RFMT" "$name p99: loaded / empty" "$r" "<= 1.20" "$(verdict "$r" "<=" 1.2)"
        r=$(ratio "${CPU_US[$row-loaded]}" "${CPU_US[$row-empty]}")
        printf "$RFMT" "$name CPU us/req: loaded / empty" "$r" "-" ""
    else
        printf "$RFMT" "$name: loaded / empty" "-" "" "- (a row did not run clean)"
    fi
done
if want unseal; then
    for tag in empty loaded; do
        [[ -n ${UNSEAL_MS[$tag]:-} ]] || continue
        s=$(awk -v m="${UNSEAL_MS[$tag]}" 'BEGIN{printf "%.3f", m / 1000}')
        printf "$RFMT" "$tag: seal, unseal -> first KV read (unseal call ${UNSEAL_CALL_MS[$tag]} ms)" "$s s" "< 1 s" "$(awk -v m="${UNSEAL_MS[$tag]}" 'BEGIN{print (m < 1000) ? "met" : "MISSED"}')"
        s=$(awk -v m="${UNSEAL_MS[$tag-restart]}" 'BEGIN{printf "%.3f", m / 1000}')
        printf "$RFMT" "$tag: restart, unseal -> first KV read (up in ${START_TO_UP_MS[$tag-restart]} ms)" "$s s" "< 1 s" "$(awk -v m="${UNSEAL_MS[$tag-restart]}" 'BEGIN{print (m < 1000) ? "met" : "MISSED"}')"
        s=$(awk -v m="${UNSEAL_MS[$tag-crash]}" 'BEGIN{printf "%.3f", m / 1000}')
        printf "$RFMT" "$tag: kill -9, start (up in ${START_TO_UP_MS[$tag-crash]} ms), unseal -> read" "$s s" "< 1 s" "$(awk -v m="${UNSEAL_MS[$tag-crash]}" 'BEGIN{print (m < 1000) ? "met" : "MISSED"}')"
    done
fi
r=$(ratio "${RSS[loaded]}" "${RSS[empty]}")
printf "$RFMT" "VmRSS after the rows: empty $(mib "${RSS[empty]}") MiB, loaded $(mib "${RSS[loaded]}") MiB" "${r}x" "<= 1.20x" "$(verdict "$r" "<=" 1.2)"
printf "$RFMT" "  VmHWM over the rows: empty $(mib "${HWM[empty]}"), loaded $(mib "${HWM[loaded]}") MiB" "" "" ""
printf "$RFMT" "  VmHWM over the load: $(mib "$LOAD_HWM") MiB" "" "" ""
if [[ -n ${RSS[loaded-restarted]:-} ]]; then
    printf "$RFMT" "  VmRSS after restart, unseal, 1 read: empty $(mib "${RSS[empty-restarted]}"), loaded $(mib "${RSS[loaded-restarted]}") MiB" "" "" ""
fi
if want list; then
    declare -A LIST_WHAT=([small-empty]="small/, empty" [small-loaded]="small/, loaded" [large]="scale/f0/, loaded"
        [large-limit]="scale/f0/?limit=100" [parent]="scale/ (sub-folders of every key)")
    for tag in small-empty small-loaded large-limit large parent; do
        [[ -n ${LIST_MS[$tag]:-} ]] || continue
        printf "$RFMT" "LIST ${LIST_WHAT[$tag]}: ${LIST_KEYS[$tag]} keys, $((LIST_BYTES[$tag] / 1024)) KiB, ${LIST_MS[$tag]} ms; peak RSS" "+$(mib "${LIST_GROW[$tag]}") MiB" "" ""
    done
    if [[ -n ${LIST_GROW[large-limit]:-} && -n ${LIST_GROW[small-loaded]:-} ]]; then
        # Bounded: a page of a 100,000-key folder (?limit=100, OpenBao's pagination) costs no
        # more memory than a LIST of a 1,000-key folder (8 MiB of slack for allocator noise).
        # A LIST of the whole folder answers with every key: its memory follows its answer
        # (printed per key below), not the store.
        bound=$((LIST_GROW[small-loaded] + 8192))
        g=${LIST_GROW[large-limit]}
        printf "$RFMT" "LIST ?limit=100 of $FOLDER keys: peak RSS growth" "+$(mib "$g") MiB" "<= $(mib "$bound")" \
            "$( [[ $g -le $bound ]] && echo met || echo MISSED)"
    fi
    if [[ -n ${LIST_GROW[large]:-} && ${LIST_KEYS[large]:-0} -gt 0 ]]; then
        printf "$RFMT" "LIST of all $FOLDER keys: peak RSS growth per key" \
            "$(( LIST_GROW[large] * 1024 / LIST_KEYS[large] )) B" "" "(answer: $(( LIST_BYTES[large] / LIST_KEYS[large] )) B/key)"
    fi
fi
echo
noisy=$(for id in "${!OTHER[@]}"; do echo "${OTHER[$id]}"; done | awk '$1 > m {m = $1} END {printf "%.2f", m + 0}')
if awk -v m="$noisy" 'BEGIN{exit !(m > 0.2)}'; then
    echo "NOTE: up to $noisy cores went to other processes during a row (column 'other'): rerun on a quiet machine."
    echo
fi
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "FAILED: these rows did not run clean:" >&2
    printf '  %s\n' "${FAILED[@]}" >&2
    exit 1
fi
echo "All rows: 0 non-2xx responses, 0 socket errors."

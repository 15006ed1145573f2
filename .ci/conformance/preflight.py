"""Preflight for the hvac conformance suite, run by .ci/conformance.sh from the hvac sdist root.

Does exactly what every hvac integration test class does in setUpClass (via hvac's own
tests.utils.server_manager.ServerManager): `vault server -config=<generated json>` through
the shim, sys/init with 5 shares / threshold 3, unseal, then stops the server. It makes
one attempt only, so a server that cannot even start fails the run in seconds with a
clear message instead of after hvac's 3x3 retries per test class.
"""

import os
import sys
import time

sys.path.insert(0, os.getcwd())

from tests.utils.server_manager import ServerManager  # noqa: E402
from tests.utils import get_config_file_path  # noqa: E402


def main():
    started = time.monotonic()
    manager = ServerManager(config_paths=[get_config_file_path("vault-tls.hcl")])
    step = "start (vault server -config=...; waiting for GET /v1/sys/init)"
    try:
        manager.start_vault(max_attempts=1)
        step = "initialize (PUT /v1/sys/init, 5 shares / threshold 3)"
        manager.initialize()
        step = "unseal (PUT /v1/sys/unseal with 3 of the 5 keys)"
        manager.unseal()
        step = "check (GET /v1/sys/seal-status, GET /v1/auth/token/lookup-self)"
        client = manager.client
        if client.sys.is_sealed():
            raise RuntimeError("still sealed after submitting 3 unseal keys")
        if not client.is_authenticated():
            raise RuntimeError("the root token from sys/init is not accepted")
    except BaseException as exc:  # noqa: BLE001 - report anything, including SkipTest
        print(f"preflight: FAILED at {step}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        manager.stop()
    print(f"preflight: server started, initialized and unsealed in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

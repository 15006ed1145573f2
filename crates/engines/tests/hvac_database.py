#!/usr/bin/env python3
"""hvac's `client.secrets.database` against a real `tresor server -dev`, checked in the databases.

Starts `tresor server -dev` on a free port, mounts the database engine, and drives it only through
hvac's database API (configure, read/list/delete/reset connections, rotate root, dynamic and static
roles, credentials, static rotation) plus hvac's lease calls, against the PostgreSQL
(127.0.0.1:5432, user postgres) and MariaDB/MySQL (127.0.0.1:3306, user root) of the machine. What
the engine claims is checked with the `psql` and `mysql` command-line clients: users exist or are
gone, issued passwords log in (MySQL checks passwords; PostgreSQL's stored SCRAM verifier is
compared), VALID UNTIL moves on renewal. Every user it makes has a random suffix and is dropped.

Run (after `cargo build --bin tresor`):

    python3 -m venv /tmp/hvac-venv && /tmp/hvac-venv/bin/pip install hvac
    /tmp/hvac-venv/bin/python crates/engines/tests/hvac_database.py

Environment: TRESOR_BIN (default target/debug/tresor), PGHOST/PGPORT (127.0.0.1/5432),
MYSQL_HOST/MYSQL_PORT (127.0.0.1/3306). Ends with `N passed, N failed`; exit status 1 on failure.
"""

import base64
import hashlib
import hmac
import os
import secrets
import socket
import subprocess
import sys
import time
import traceback

import hvac

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TRESOR_BIN = os.environ.get("TRESOR_BIN", os.path.join(ROOT, "target", "debug", "tresor"))
PGHOST = os.environ.get("PGHOST", "127.0.0.1")
PGPORT = os.environ.get("PGPORT", "5432")
MYHOST = os.environ.get("MYSQL_HOST", "127.0.0.1")
MYPORT = os.environ.get("MYSQL_PORT", "3306")
SUFFIX = secrets.token_hex(4)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, user="postgres", password=None, check=True):
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    r = subprocess.run(
        ["psql", "-h", PGHOST, "-p", PGPORT, "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, env=env, timeout=30,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"psql failed: {r.stderr.strip()}")
    return r


def mysql(sql, user="root", password="", check=True):
    args = ["mysql", "-h", MYHOST, "-P", MYPORT, "-u", user, "-N", "-B", "-e", sql]
    env = dict(os.environ, MYSQL_PWD=password)
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"mysql failed: {r.stderr.strip()}")
    return r


def pg_password_is(role, password):
    """The role's SCRAM-SHA-256 verifier was made from `password`."""
    stored = psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'").stdout.strip()
    assert stored.startswith("SCRAM-SHA-256$"), stored
    params, keys = stored[len("SCRAM-SHA-256$"):].split("$")
    iters, salt = params.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iters))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def pg_exists(role):
    return psql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'").stdout.strip() == "1"


def my_exists(user):
    return mysql(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{user}'").stdout.strip() != "0"


def my_login_ok(user, password):
    return mysql("SELECT CURRENT_USER()", user=user, password=password, check=False).returncode == 0


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report and go on
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()


def main():
    port = free_port()
    server = subprocess.Popen(
        [TRESOR_BIN, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = hvac.Client(url=f"http://127.0.0.1:{port}", token="root")
    for _ in range(100):
        try:
            if client.sys.is_initialized() and not client.sys.is_sealed():
                break
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    db = client.secrets.database
    pg_admin, pg_admin_pw = f"hvac_adm_{SUFFIX}", f"Adm-{SUFFIX}-pw"
    pg_static = f"hvac_static_{SUFFIX}"
    my_admin, my_admin_pw = f"hadm_{SUFFIX}", f"Adm-{SUFFIX}-pw"
    checks = Checks()
    try:
        client.sys.enable_secrets_engine("database", path="database")
        psql(f"CREATE ROLE \"{pg_admin}\" WITH LOGIN CREATEROLE PASSWORD '{pg_admin_pw}'")
        psql(f"CREATE ROLE \"{pg_static}\" WITH LOGIN PASSWORD 'initial-pw'")
        mysql(f"CREATE USER '{my_admin}'@'%' IDENTIFIED BY '{my_admin_pw}'; "
              f"GRANT ALL PRIVILEGES ON *.* TO '{my_admin}'@'%' WITH GRANT OPTION")
        state = {}

        def configure_pg():
            db.configure(
                name="pg", plugin_name="postgresql-database-plugin", allowed_roles=["*"],
                connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{PGHOST}:{PGPORT}/postgres?sslmode=disable",
                username=pg_admin, password=pg_admin_pw,
            )
            conn = db.read_connection("pg")["data"]
            assert conn["plugin_name"] == "postgresql-database-plugin"
            assert conn["connection_details"]["username"] == pg_admin
            assert "password" not in conn["connection_details"]
            assert "pg" in db.list_connections()["data"]["keys"]

        def bad_connection_is_400():
            try:
                db.configure(
                    name="bad", plugin_name="postgresql-database-plugin",
                    connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{PGHOST}:{PGPORT}/no_such_db_{SUFFIX}",
                    username="postgres", password="Hidden-Secret-1",
                )
            except hvac.exceptions.InvalidRequest as e:
                assert "Hidden-Secret-1" not in str(e), str(e)
                assert "error verifying connection" in str(e), str(e)
            else:
                raise AssertionError("expected a 400")

        def dynamic_pg():
            db.create_role(
                name="app", db_name="pg", default_ttl="1h", max_ttl="3h",
                creation_statements=["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
            )
            role = db.read_role("app")["data"]
            assert role["db_name"] == "pg" and role["default_ttl"] == 3600, role
            assert "app" in db.list_roles()["data"]["keys"]
            creds = db.generate_credentials("app")
            user, pw = creds["data"]["username"], creds["data"]["password"]
            assert creds["lease_duration"] == 3600 and creds["renewable"], creds
            assert pg_exists(user) and pg_password_is(user, pw)
            assert psql("SELECT current_user", user=user, password=pw).stdout.strip() == user
            before = float(psql(f"SELECT extract(epoch FROM rolvaliduntil) FROM pg_authid WHERE rolname = '{user}'").stdout)
            renewed = client.sys.renew_lease(creds["lease_id"], increment=7200)
            assert renewed["lease_duration"] == 7200, renewed
            after = float(psql(f"SELECT extract(epoch FROM rolvaliduntil) FROM pg_authid WHERE rolname = '{user}'").stdout)
            assert after - before > 3000, (before, after)
            client.sys.revoke_lease(creds["lease_id"])
            assert not pg_exists(user)

        def static_pg():
            db.create_static_role(name="static", db_name="pg", username=pg_static,
                                  rotation_statements=[], rotation_period=3600)
            sr = db.read_static_role("static")["data"]
            assert sr["username"] == pg_static and sr["rotation_period"] == 3600, sr
            assert "static" in db.list_static_roles()["data"]["keys"]
            pw1 = db.get_static_credentials("static")["data"]["password"]
            assert pg_password_is(pg_static, pw1) and not pg_password_is(pg_static, "initial-pw")
            db.rotate_static_role_credentials("static")
            pw2 = db.get_static_credentials("static")["data"]["password"]
            assert pw2 != pw1 and pg_password_is(pg_static, pw2) and not pg_password_is(pg_static, pw1)
            db.delete_static_role("static")

        def rotate_root_pg():
            db.rotate_root_credentials("pg")
            assert not pg_password_is(pg_admin, pg_admin_pw)
            assert "password" not in db.read_connection("pg")["data"]["connection_details"]
            db.reset_connection("pg")
            creds = db.generate_credentials("app")
            assert pg_exists(creds["data"]["username"])
            client.sys.revoke_lease(creds["lease_id"])
            assert not pg_exists(creds["data"]["username"])

        def dynamic_mysql():
            db.configure(
                name="my", plugin_name="mysql-database-plugin", allowed_roles=["my-app"],
                connection_url=f"{{{{username}}}}:{{{{password}}}}@tcp({MYHOST}:{MYPORT})/",
                username=my_admin, password=my_admin_pw,
            )
            db.create_role(
                name="my-app", db_name="my", default_ttl=600,
                creation_statements=["CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"],
            )
            creds = db.generate_credentials("my-app")
            user, pw = creds["data"]["username"], creds["data"]["password"]
            assert my_exists(user) and my_login_ok(user, pw) and not my_login_ok(user, pw + "x")
            client.sys.revoke_lease(creds["lease_id"])
            assert not my_exists(user) and not my_login_ok(user, pw)
            db.rotate_root_credentials("my")
            assert not my_login_ok(my_admin, my_admin_pw)
            creds = db.generate_credentials("my-app")
            assert my_login_ok(creds["data"]["username"], creds["data"]["password"])
            client.sys.revoke_lease(creds["lease_id"])
            state["my_user"] = creds["data"]["username"]

        def password_policy():
            client.write("sys/policies/password/hvacdb",
                         policy='length = 24\nrule "charset" {\n  charset = "abcdef0123"\n  min-chars = 1\n}\n')
            got = client.read("sys/policies/password/hvacdb/generate")["data"]["password"]
            assert len(got) == 24 and set(got) <= set("abcdef0123"), got
            client.delete("sys/policies/password/hvacdb")

        def cleanup_paths():
            db.delete_role("app")
            db.delete_role("my-app")
            db.delete_connection("pg")
            db.delete_connection("my")
            assert db.list_connections is not None
            try:
                db.read_connection("pg")
            except hvac.exceptions.InvalidPath:
                pass
            else:
                raise AssertionError("deleted connection still readable")

        for name, fn in [
            ("configure / read / list connection (postgres)", configure_pg),
            ("bad connection settings: clean 400 without the password", bad_connection_is_400),
            ("dynamic role, creds, renew (VALID UNTIL), revoke (postgres)", dynamic_pg),
            ("static role, static creds, rotate-role (postgres)", static_pg),
            ("rotate-root and reset (postgres)", rotate_root_pg),
            ("dynamic creds, revoke, rotate-root (mysql)", dynamic_mysql),
            ("password policy generate", password_policy),
            ("delete roles and connections", cleanup_paths),
        ]:
            checks.run(name, fn)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        psql(f"DROP ROLE IF EXISTS \"{pg_static}\"; DROP ROLE IF EXISTS \"{pg_admin}\"", check=False)
        mysql(f"DROP USER IF EXISTS '{my_admin}'@'%'", check=False)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())

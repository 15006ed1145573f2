#!/usr/bin/env python3
"""Independent implementation of transit's wire formats, for known-answer cross-checks.

Tresor's transit engine (crates/engines/src/transit) uses aws-lc-rs. This script re-does
each operation with Python's `cryptography` package (OpenSSL underneath, but a separate code
path and a separate team's API), so the Rust test `transit::tests::crosscheck` can check that
both sides agree byte for byte: Tresor's ciphertexts decrypt here with the exported key, and
this script's ciphertexts, signatures and BYOK blobs are accepted by Tresor.

Input (stdin): a JSON list of operations, each an object with "op" and its arguments (binary
values base64). Output (stdout): a JSON list of results, one per operation, in order. Any
failure is reported as {"error": "..."} for that operation; the script itself exits 0 unless
its input cannot be read. Exit code 3 means `cryptography` is not installed.
"""

import base64
import hashlib
import hmac
import json
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"python cryptography unavailable: {e}", file=sys.stderr)
    sys.exit(3)


def b(s):
    return base64.b64decode(s) if s else b""


def e(data):
    return base64.b64encode(data).decode()


def url_e(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def url_b(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


HASHES = {
    "sha1": hashes.SHA1,
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
    "sha3-256": hashes.SHA3_256,
    "sha3-384": hashes.SHA3_384,
    "sha3-512": hashes.SHA3_512,
}


def split_versioned(value):
    assert value.startswith("vault:v"), value
    version, body = value[len("vault:v"):].split(":", 1)
    return int(version), body


def aead(alg, key):
    return ChaCha20Poly1305(key) if alg == "chacha20-poly1305" else AESGCM(key)


def op_aead_decrypt(a):
    _, body = split_versioned(a["ciphertext"])
    raw = b(body)
    return {"plaintext": e(aead(a["alg"], b(a["key"])).decrypt(raw[:12], raw[12:], b(a.get("aad"))))}


def op_aead_encrypt(a):
    import os

    nonce = os.urandom(12)
    ct = aead(a["alg"], b(a["key"])).encrypt(nonce, b(a["plaintext"]), b(a.get("aad")) or None)
    return {"ciphertext": f"vault:v{a['version']}:{e(nonce + ct)}"}


def op_hkdf(a):
    # Vault's hkdf_sha256 KDF: HKDF-SHA256, no salt, the context as info.
    out = HKDF(algorithm=hashes.SHA256(), length=a["length"], salt=None, info=b(a["context"])).derive(b(a["key"]))
    return {"key": e(out)}


def op_convergent_nonce(a):
    return {"nonce": e(hmac.new(b(a["hmac_key"]), b(a["plaintext"]), hashlib.sha256).digest()[:12])}


def load_private(pem_text):
    return serialization.load_pem_private_key(pem_text.encode(), password=None)


def load_public(pem_text):
    return serialization.load_pem_public_key(pem_text.encode())


def op_rsa_oaep_decrypt(a):
    _, body = split_versioned(a["ciphertext"])
    key = load_private(a["private_pem"])
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return {"plaintext": e(key.decrypt(b(body), oaep))}


def op_rsa_oaep_encrypt(a):
    key = load_public(a["public_pem"])
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return {"ciphertext": f"vault:v{a['version']}:{e(key.encrypt(b(a['plaintext']), oaep))}"}


def digest_args(a):
    """What is signed: the input hashed with `hash`, or the input itself when prehashed."""
    h = HASHES[a["hash"]]()
    data = b(a["input"])
    if a.get("prehashed"):
        return data, utils.Prehashed(h)
    return data, h


def op_verify(a):
    _, body = split_versioned(a["signature"])
    sig = url_b(body) if a.get("marshaling") == "jws" else b(body)
    alg = a["alg"]
    try:
        if alg == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(b(a["public"])).verify(sig, b(a["input"]))
        elif alg == "ecdsa":
            key = load_public(a["public"])
            if a.get("marshaling") == "jws":
                n = len(sig) // 2
                sig = utils.encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
            data, h = digest_args(a)
            key.verify(sig, data, ec.ECDSA(h))
        else:
            key = load_public(a["public"])
            data, h = digest_args(a)
            if alg == "rsa-pss":
                salt = a.get("salt", "auto")
                salt_len = {"auto": padding.PSS.AUTO, "digest": padding.PSS.DIGEST_LENGTH}.get(salt, salt)
                pad = padding.PSS(mgf=padding.MGF1(HASHES[a["hash"]]()), salt_length=salt_len)
            else:
                pad = padding.PKCS1v15()
            key.verify(sig, data, pad, h)
        return {"valid": True}
    except InvalidSignature:
        return {"valid": False}


def op_sign(a):
    alg = a["alg"]
    if alg == "ed25519":
        sig = ed25519.Ed25519PrivateKey.from_private_bytes(b(a["private"])[:32]).sign(b(a["input"]))
    else:
        key = load_private(a["private"])
        data, h = digest_args(a)
        if alg == "ecdsa":
            sig = key.sign(data, ec.ECDSA(h))
            if a.get("marshaling") == "jws":
                r, s = utils.decode_dss_signature(sig)
                n = (key.curve.key_size + 7) // 8
                sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
        elif alg == "rsa-pss":
            sig = key.sign(data, padding.PSS(mgf=padding.MGF1(HASHES[a["hash"]]()), salt_length=padding.PSS.MAX_LENGTH), h)
        else:
            sig = key.sign(data, padding.PKCS1v15(), h)
    body = url_e(sig) if a.get("marshaling") == "jws" else e(sig)
    return {"signature": f"vault:v{a['version']}:{body}"}


def op_hmac(a):
    name = {"sha2-224": "sha224", "sha2-256": "sha256", "sha2-384": "sha384", "sha2-512": "sha512", "sha1": "sha1"}[a["hash"]]
    mac = hmac.new(b(a["key"]), b(a["input"]), name).digest()
    return {"hmac": f"vault:v{a['version']}:{e(mac)}"}


def op_hash(a):
    name = {"sha2-224": "sha224", "sha2-256": "sha256", "sha2-384": "sha384", "sha2-512": "sha512",
            "sha3-256": "sha3_256", "sha3-384": "sha3_384", "sha3-512": "sha3_512"}[a["hash"]]
    return {"sum": hashlib.new(name, b(a["input"])).hexdigest()}


def op_wrap_import(a):
    """Vault's BYOK format: RSA-OAEP(ephemeral AES-256 key) || AES-KWP(ephemeral, material)."""
    import os

    wrapping = load_public(a["wrapping_pem"])
    eph = os.urandom(32)
    h = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}[a.get("hash", "SHA256")]
    wrapped_eph = wrapping.encrypt(eph, padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None))
    return {"ciphertext": e(wrapped_eph + aes_key_wrap_with_padding(eph, b(a["material"])))}


def op_generate(a):
    """A private key (PKCS#8 DER) and its public key, for import tests."""
    kind = a["type"]
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind.startswith("ecdsa-"):
        curve = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1, "ecdsa-p521": ec.SECP521R1}[kind]()
        key = ec.generate_private_key(curve)
    else:
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind.split("-")[1]))
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if kind == "ed25519":
        public = e(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        private = e(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    else:
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        private = pem.decode()
    return {"pkcs8": e(der), "private": private, "public": public}


def op_public_of_private(a):
    """The SubjectPublicKeyInfo PEM of an exported private key (PKCS#1 / SEC1 PEM)."""
    key = load_private(a["private_pem"])
    return {"public_pem": key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}


OPS = {name[3:]: fn for name, fn in globals().items() if name.startswith("op_")}


def main():
    ops = json.load(sys.stdin)
    out = []
    for a in ops:
        try:
            out.append(OPS[a["op"]](a))
        except Exception as exc:  # reported per operation
            out.append({"error": f"{type(exc).__name__}: {exc}"})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

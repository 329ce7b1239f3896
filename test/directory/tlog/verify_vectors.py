#!/usr/bin/env python3
"""The verifier's own check against the vectors of the specifications: python3 verify_vectors.py."""
import base64
import sys

from ed25519 import _ed25519_verify_pure
from merkle import leaf_hash, mth, sha256, verify_consistency, verify_inclusion
from verify import Failure, entries_path, open_note, parse_vkey, tile_path


def _path(m, d):  # RFC 9162 §2.1.3.1 PATH(m, D[n]) over leaf hashes
    if len(d) <= 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    return _path(m, d[:k]) + [mth(d[k:])] if m < k else _path(m - k, d[k:]) + [mth(d[:k])]


def _subproof(m, d, b):  # RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    return _subproof(m, d[:k], b) + [mth(d[k:])] if m <= k else _subproof(m - k, d[k:], False) + [mth(d[:k])]


def self_test():
    """The RFC 9162 test tree (transparency-dev/merkle testonly), the signed-note example key
    and note (golang.org/x/mod/sumdb/note), and every proof of the trees of 1..40 leaves."""
    leaves = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                         "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
    hashes = [leaf_hash(x) for x in leaves]
    assert sha256(b"").hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hashes[0].hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert mth(hashes).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    sig = "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    assert open_note(text + "\n" + sig, vkey) == text
    pub, raw = parse_vkey(vkey)[2], base64.b64decode(sig.split(" ")[2])
    assert _ed25519_verify_pure(pub, text.encode(), raw[4:])
    assert not _ed25519_verify_pure(pub, text.encode() + b"!", raw[4:])
    try:
        open_note(text.replace("problem", "trouble", 1) + "\n" + sig, vkey)
        raise AssertionError("a changed note verified")
    except Failure as e:
        assert e.reason == "SIGNATURE"
    assert tile_path(0, 1234067, 3) == "tile/0/x001/x234/067.p/3" and entries_path(5, 256) == "tile/entries/005"
    d = [leaf_hash(bytes([i])) for i in range(40)]
    for n in range(1, 41):
        root = mth(d[:n])
        for m in range(n):
            assert verify_inclusion(m, n, d[m], _path(m, d[:n]), root), (m, n)
            assert not verify_inclusion(m, n, d[(m + 1) % n], _path(m, d[:n]), root) or n == 1
        for m in range(1, n + 1):
            p = _subproof(m, d[:n], True)
            assert verify_consistency(m, n, mth(d[:m]), root, p), (m, n)
            assert m == n or not verify_consistency(m, n, mth(d[1:m + 1]), root, p), (m, n)
    print("self-test passed")


if __name__ == "__main__":
    self_test()

"""RFC 9162 §2.1 for verify.py: the Merkle tree hash and the verification of inclusion and
consistency proofs, as the RFC's text gives them."""
import hashlib


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(entry):  # §2.1.1: MTH({d0}) = SHA-256(0x00 || d0)
    return sha256(b"\x00" + entry)


def node_hash(left, right):  # §2.1.1: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
    return sha256(b"\x01" + left + right)


def mth(hashes):
    """§2.1.1 MTH over already-hashed leaves: k is the largest power of two smaller than n."""
    n = len(hashes)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def _walk(fn, sn, path, on_left, on_right):
    """The loop of §2.1.3.2 step 4 and §2.1.4.2 step 6: `on_left(c)` when c is a left sibling
    (LSB(fn) set, or fn = sn), else `on_right(c)`; the final sn, or None when the path is too long."""
    for c in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            on_left(c)
            while fn & 1 == 0 and fn != 0:  # ii.: right-shift until LSB(fn) is set or fn is 0
                fn >>= 1
                sn >>= 1
        else:
            on_right(c)
        fn >>= 1
        sn >>= 1
    return sn


def verify_inclusion(index, size, leaf, proof, root):
    """§2.1.3.2: verifying an inclusion proof."""
    if index >= size:
        return False
    r = [leaf]

    def left(p):
        r[0] = node_hash(p, r[0])

    def right(p):
        r[0] = node_hash(r[0], p)
    return _walk(index, size - 1, proof, left, right) == 0 and r[0] == root


def verify_consistency(size1, size2, root1, root2, proof):
    """§2.1.4.2: verifying a consistency proof."""
    if size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
    if size1 & (size1 - 1) == 0:  # step 2: size1 a power of two: prepend first_hash
        proof = [root1] + list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    h = [proof[0], proof[0]]  # step 5: fr, sr

    def left(c):
        h[0], h[1] = node_hash(c, h[0]), node_hash(c, h[1])

    def right(c):
        h[1] = node_hash(h[1], c)
    return _walk(fn, sn, proof[1:], left, right) == 0 and h[0] == root1 and h[1] == root2

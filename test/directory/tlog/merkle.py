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


def verify_inclusion(index, size, leaf, proof, root):
    """§2.1.3.2: verifying an inclusion proof."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


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
    if size1 & (size1 - 1) == 0:  # step 1: size1 a power of two: prepend first_hash
        proof = [root1] + list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 3
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0

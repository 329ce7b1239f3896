"""Ed25519 signature verification (RFC 8032 §5.1.7) for verify.py: python3-cryptography when it is
installed, else the pure-Python verification below (slow, fine for a few signatures)."""
import hashlib


def ed25519_verify(public_key, message, signature):
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.exceptions import InvalidSignature
    except ImportError:
        return _ed25519_verify_pure(public_key, message, signature)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _edwards_add(a, b):  # RFC 8032 §5.1.4, extended coordinates
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A, B = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    C, D = t1 * 2 * _D * t2 % _P, z1 * 2 * z2 % _P
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % _P, G * H % _P, F * G % _P, E * H % _P)


def _scalar_mult(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _edwards_add(q, p)
        p = _edwards_add(p, p)
        s >>= 1
    return q


def _decompress(b):  # RFC 8032 §5.1.3
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0 or (x == 0 and sign == 1):
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


_BASE = _decompress((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


def _ed25519_verify_pure(public_key, message, signature):
    A = _decompress(public_key)
    if A is None or len(signature) != 64:
        return False
    R = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if R is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    # §5.1.7 step 3: [8][S]B = [8]R + [8][k]A'; the cofactorless check [S]B = R + [k]A implies it.
    return _point_equal(_scalar_mult(s, _BASE), _edwards_add(R, _scalar_mult(k, A)))



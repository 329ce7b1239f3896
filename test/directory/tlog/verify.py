#!/usr/bin/env python3
"""An independent verifier of a mailmesh directory's transparency log, written from the
specifications alone, never from the TypeScript: RFC 9162 §2.1 (Merkle tree hash, inclusion and
consistency proofs), C2SP signed-note, tlog-checkpoint and tlog-tiles (https://c2sp.org/…).
It reads the log over HTTP the way any client would:

  verify.py --url http://127.0.0.1:8080 --vkey <vkey> [--domain d ...] [--since old] [--save new]

Checks: the checkpoint's signature by --vkey; the root computed from the tiles a client needs
(partial tiles included) equals the checkpoint's; every level-0 tile hash is the leaf hash of its
entry in the entry bundles, every upper tile hash the hash of the tile below; for each --domain,
the inclusion proof /v1/domains/{d} carries; with --since, consistency from the saved checkpoint.
Exit 0 when everything verified; 1 with "verify.py: FAIL <REASON>: detail" on stderr otherwise.
"""
import argparse
import base64
import gzip
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ed25519 import ed25519_verify  # noqa: E402  (RFC 8032 §5.1.7, the sibling file)
from merkle import leaf_hash, mth, node_hash, sha256, verify_consistency, verify_inclusion  # noqa: E402  (RFC 9162 §2.1)

TILE_WIDTH = 256  # tlog-tiles: a full tile holds 256 hashes (tile height 8)


class Failure(Exception):
    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# --- C2SP signed-note and tlog-checkpoint ------------------------------------------------------

def parse_vkey(vkey):
    """signed-note: <name>+<hex key ID>+<base64(type byte || public key)>; Ed25519 is type 0x01."""
    parts = vkey.split("+", 2)  # the name has no "+"; base64 may
    if len(parts) != 3:
        raise Failure("VKEY", "a vkey is <name>+<key ID>+<key>")
    name, hexid, b64 = parts
    try:
        key = base64.b64decode(b64, validate=True)
        keyid = bytes.fromhex(hexid)
    except ValueError as e:
        raise Failure("VKEY", f"undecodable vkey: {e}")
    if len(keyid) != 4 or len(key) != 33 or key[0] != 0x01:
        raise Failure("VKEY", "not an Ed25519 vkey (4-byte key ID, 0x01 and 32 bytes)")
    # signed-note: key ID = SHA-256(name || 0x0A || type byte || public key)[:4]
    if sha256(name.encode() + b"\n" + key)[:4] != keyid:
        raise Failure("VKEY", "the key ID does not match the name and key")
    return name, keyid, key[1:]


def open_note(note, vkey):
    """signed-note: text, an empty line, then lines "— <name> <base64(key ID || signature)>".
    Returns the text once a signature by the vkey's key verifies over it."""
    name, keyid, pub = parse_vkey(vkey)
    sep = note.rfind("\n\n")
    if sep < 0 or not note.endswith("\n"):
        raise Failure("NOTE", "no signature block (text, blank line, signature lines)")
    text, sigs = note[: sep + 1], note[sep + 2:]
    found = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Failure("NOTE", f"malformed signature line {line!r}")
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise Failure("NOTE", f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except ValueError:
            raise Failure("NOTE", "signature is not base64")
        if fields[0] != name or raw[:4] != keyid:
            continue  # another signer (a witness): ignored
        found = True
        if len(raw) != 68 or not ed25519_verify(pub, text.encode(), raw[4:]):
            raise Failure("SIGNATURE", f"the signature of {name} does not verify")
    if not found:
        raise Failure("SIGNATURE", f"no signature by {name} (key ID {keyid.hex()})")
    return text


def parse_checkpoint(text, origin):
    """tlog-checkpoint: origin line, decimal size, base64 root hash, then optional extension lines."""
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise Failure("CHECKPOINT", "fewer than three lines")
    if lines[0] != origin:
        raise Failure("CHECKPOINT", f"origin {lines[0]!r} is not the key name {origin!r}")
    if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise Failure("CHECKPOINT", f"size {lines[1]!r} is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        root = b""
    if len(root) != 32:
        raise Failure("CHECKPOINT", "root hash is not 32 base64 bytes")
    return int(lines[1]), root


def read_checkpoint(note, vkey):
    name = parse_vkey(vkey)[0]
    return parse_checkpoint(open_note(note, vkey), name)


# --- C2SP tlog-tiles ---------------------------------------------------------------------------

def tile_index(n):
    """tlog-tiles: N in 3-digit groups, every group but the last prefixed with x (1234067 → x001/x234/067)."""
    groups = []
    while True:
        groups.insert(0, "%03d" % (n % 1000))
        n //= 1000
        if n == 0:
            break
    return "/".join(["x" + g for g in groups[:-1]] + groups[-1:])


def tile_path(level, n, width):
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{tile_index(n)}{suffix}"


def entries_path(n, width):
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/entries/{tile_index(n)}{suffix}"


class Log:
    """Reads the log over HTTP: tiles are fetched once and checked for their length."""

    def __init__(self, url, prefix):
        self.url = url.rstrip("/")
        self.prefix = prefix.strip("/")
        self.tiles = {}
        self.size = 0  # the current checkpoint's size, once verified

    def get(self, path, missing=False):
        """GET; with `missing`, None for a 404. tlog-tiles: bundles MAY come gzipped unasked."""
        full = f"{self.url}/{path}"
        req = urllib.request.Request(full, headers={"Accept-Encoding": "gzip, identity"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
                return gzip.decompress(body) if r.headers.get("Content-Encoding") == "gzip" else body
        except urllib.error.HTTPError as e:
            if missing and e.code == 404:
                return None
            raise Failure("HTTP", f"GET {full}: {e.code}")
        except OSError as e:
            raise Failure("HTTP", f"GET {full}: {e}")

    def log_get(self, path, missing=False):
        return self.get(f"{self.prefix}/{path}" if self.prefix else path, missing)

    def tile_data(self, path_of, width, widest):
        """A tile or bundle of `width`; tlog-tiles lets a log delete a partial tile of an older size
        once a wider one exists: then the full one (or the current partial one) and its prefix."""
        for w in dict.fromkeys([width, TILE_WIDTH, widest]):
            if w < width:
                continue
            data = self.log_get(path_of(w), missing=w != widest)
            if data is not None:
                return data, w
        raise Failure("HTTP", f"{path_of(width)}: not served")

    def tile(self, level, n, size):
        """The tile (level, n) of the tree of `size`: full, or partial with the width `size` gives."""
        width = min(TILE_WIDTH, (size >> (8 * level)) - n * TILE_WIDTH)
        key = (level, n, width)
        if key not in self.tiles:
            widest = min(TILE_WIDTH, (self.size >> (8 * level)) - n * TILE_WIDTH)
            data, w = self.tile_data(lambda w: tile_path(level, n, w), width, widest)
            if len(data) != 32 * w:
                raise Failure("TILE", f"{tile_path(level, n, w)} has {len(data)} bytes, not {32 * w}")
            self.tiles[key] = [data[i:i + 32] for i in range(0, 32 * width, 32)]
        return self.tiles[key]

    def hash_at(self, level, index, size):
        """The stored hash of Merkle level 8·level, index `index` (inside the tree of `size`)."""
        return self.tile(level, index // TILE_WIDTH, size)[index % TILE_WIDTH]

    def subtree(self, k, i, size):
        """The complete subtree at Merkle level k, index i: from the tile of level k//8 (tlog-tiles)."""
        L, r = k // 8, k % 8
        return mth([self.hash_at(L, j, size) for j in range(i << r, (i + 1) << r)])

    def root(self, size):
        """RFC 9162 MTH from the tiles: the complete subtrees of size's binary decomposition, left
        to right, folded from the right."""
        parts, start = [], 0
        for k in reversed(range(size.bit_length())):
            if size & (1 << k):
                parts.append(self.subtree(k, start >> k, size))
                start += 1 << k
        if not parts:
            return sha256(b"")
        h = parts[-1]
        for p in reversed(parts[:-1]):
            h = node_hash(p, h)
        return h

    def bundle(self, n, size):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        data, w = self.tile_data(lambda w: entries_path(n, w), width, min(TILE_WIDTH, self.size - n * TILE_WIDTH))
        entries, off = [], 0
        while off < len(data):  # tlog-tiles: each entry as a big-endian uint16 length and its bytes
            if off + 2 > len(data):
                raise Failure("BUNDLE", f"{entries_path(n, width)}: truncated length")
            ln = int.from_bytes(data[off:off + 2], "big")
            if off + 2 + ln > len(data):
                raise Failure("BUNDLE", f"{entries_path(n, width)}: truncated entry")
            entries.append(data[off + 2: off + 2 + ln])
            off += 2 + ln
        if len(entries) != w:
            raise Failure("BUNDLE", f"{entries_path(n, w)} holds {len(entries)} entries, not {w}")
        return entries[:width]


# --- the checks --------------------------------------------------------------------------------

def check_tree(log, size, root):
    if log.root(size) != root:
        raise Failure("ROOT_MISMATCH", f"the root computed from the tiles is not the checkpoint's (size {size})")
    # every level-0 hash is the leaf hash of its entry
    for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        entries = log.bundle(n, size)
        hashes = log.tile(0, n, size)
        for j, e in enumerate(entries):
            if leaf_hash(e) != hashes[j]:
                raise Failure("ENTRY_MISMATCH", f"entry {n * TILE_WIDTH + j}: its leaf hash is not the level-0 tile's")
    # every hash of an upper tile is the hash of the full tile below it
    level = 1
    while size >> (8 * level):
        count = size >> (8 * level)
        for i in range(count):
            if log.hash_at(level, i, size) != mth(log.tile(level - 1, i, size)):
                raise Failure("TILE_MISMATCH", f"tile level {level} hash {i} is not the hash of the tile below")
        level += 1


def entry_domain(entry):
    """The domain a log entry (a signed record, JSON) is about."""
    try:
        v = json.loads(entry)
    except ValueError:
        return None
    for _ in range(3):
        if isinstance(v, dict) and isinstance(v.get("domain"), str):
            return v["domain"]
        inner = v.get("payload", v.get("record")) if isinstance(v, dict) else None
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                return None
        v = inner
    return None


def check_domain(log, domain, vkey, current_size):
    body = json.loads(log.get(f"v1/domains/{urllib.parse.quote(domain)}"))
    t = body.get("transparency") if isinstance(body, dict) else None
    if not isinstance(t, dict):
        raise Failure("INCLUSION", f"{domain}: the answer carries no transparency member")
    size, root = read_checkpoint(t["checkpoint"], vkey)
    index = t["leafIndex"]
    proof = [base64.b64decode(p, validate=True) for p in t["inclusionProof"]]
    if not isinstance(index, int) or not 0 <= index < size:
        raise Failure("INCLUSION", f"{domain}: leaf {index} is outside the proof's tree of {size}")
    log.size = max(log.size, size)  # the log may have grown since its checkpoint was read
    entry = log.bundle(index // TILE_WIDTH, max(size, current_size))[index % TILE_WIDTH]
    if not verify_inclusion(index, size, leaf_hash(entry), proof, root):
        raise Failure("INCLUSION", f"{domain}: the inclusion proof of leaf {index} does not verify against the checkpoint of size {size}")
    if size <= current_size and log.root(size) != root:
        raise Failure("CONSISTENCY", f"{domain}: the proof's checkpoint of {size} is not a prefix of the current tree")
    if entry_domain(entry) != domain:
        raise Failure("DOMAIN_MISMATCH", f"leaf {index} is a record of {entry_domain(entry)!r}, not {domain!r}")
    return index, size


def check_since(log, old_note, vkey, size, root):
    old_size, old_root = read_checkpoint(old_note, vkey)
    if old_size > size:
        raise Failure("CONSISTENCY", f"the saved checkpoint ({old_size}) is larger than the current ({size}): a rollback")
    if old_size == 0:
        return 0  # the empty tree is a prefix of every tree
    q = urllib.parse.urlencode({"old": old_size, "new": size})
    body = json.loads(log.get(f"v1/log/consistency?{q}"))
    proof = [base64.b64decode(p, validate=True) for p in body["proof"]]
    if not verify_consistency(old_size, size, old_root, root, proof):
        raise Failure("CONSISTENCY", f"the tree of {old_size} is not a prefix of the tree of {size}")
    # independently of the server's proof: the old root from the current tiles
    if log.root(old_size) != old_root:
        raise Failure("CONSISTENCY", f"the tiles of the first {old_size} leaves do not hash to the saved root")
    return old_size



def main(argv):
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--url", required=True, help="the directory's base URL")
    a.add_argument("--vkey", required=True, help="the log's signed-note verifier key")
    a.add_argument("--prefix", default="log", help="the log's path below the URL (default log)")
    a.add_argument("--domain", action="append", default=[], help="check this domain's inclusion proof")
    a.add_argument("--since", help="a saved checkpoint: check consistency from it")
    a.add_argument("--save", help="write the verified current checkpoint here")
    o = a.parse_args(argv)
    try:
        log = Log(o.url, o.prefix)
        note = log.log_get("checkpoint").decode()
        size, root = read_checkpoint(note, o.vkey)
        log.size = size
        check_tree(log, size, root)
        print(f"checkpoint {size} {root.hex()} verified; tree rebuilt from {len(log.tiles)} tiles")
        for d in o.domain:
            index, at = check_domain(log, d, o.vkey, size)
            print(f"{d}: leaf {index} included in the tree of {at}")
        if o.since:
            with open(o.since, encoding="utf-8") as f:
                saved = f.read()
            if saved.startswith("{"):  # `mailmesh log checkpoint --save` keeps the note in JSON
                saved = json.loads(saved)["checkpoint"]
            old = check_since(log, saved, o.vkey, size, root)
            print(f"consistent: the tree of {old} is a prefix of the tree of {size}")
        if o.save:
            with open(o.save, "w", encoding="utf-8") as f:
                f.write(note)
    except Failure as e:
        print(f"verify.py: FAIL {e}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        print(f"verify.py: FAIL FORMAT: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

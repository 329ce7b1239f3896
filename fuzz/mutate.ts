// libFuzzer-style byte mutations (LLVM libFuzzer FuzzerMutate.cpp, the same families, written
// anew): bit and byte changes, interesting integers, insert/erase/copy ranges, dictionary
// tokens and splicing with another corpus input.

export type Rng = () => number;

/** Mulberry32: a small seeded PRNG, so a campaign is reproducible from its seed. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

const below = (r: Rng, n: number) => Math.floor(r() * n);

export function mutate(input: Buffer, r: Rng, maxLen: number, dictionary: Buffer[], corpus: Buffer[]): Buffer {
  let b: Buffer = Buffer.from(input);
  for (let rounds = 1 + below(r, 4); rounds > 0; rounds--) b = mutateOnce(b, r, dictionary, corpus);
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

function insert(b: Buffer, at: number, what: Buffer): Buffer {
  return Buffer.concat([b.subarray(0, at), what, b.subarray(at)]);
}

function mutateOnce(b: Buffer, r: Rng, dictionary: Buffer[], corpus: Buffer[]): Buffer {
  const pos = () => below(r, b.length + 1);
  switch (below(r, 12)) {
    case 0: // flip a bit
      if (b.length) b[below(r, b.length)]! ^= 1 << below(r, 8);
      return b;
    case 1: // a random byte
      if (b.length) b[below(r, b.length)] = below(r, 256);
      return b;
    case 2: { // an interesting integer, 1, 2 or 4 bytes, either byte order
      const v = INTERESTING[below(r, INTERESTING.length)]!;
      const width = [1, 2, 4][below(r, 3)]!;
      if (b.length < width) return b;
      const at = below(r, b.length - width + 1);
      const le = r() < 0.5;
      for (let i = 0; i < width; i++) b[at + (le ? i : width - 1 - i)] = (v >>> (8 * i)) & 0xff;
      return b;
    }
    case 3: // add or subtract a little from a byte
      if (b.length) {
        const at = below(r, b.length);
        b[at] = (b[at]! + below(r, 70) - 35) & 0xff;
      }
      return b;
    case 4: // insert random bytes
      return insert(b, pos(), Buffer.from(Array.from({ length: 1 + below(r, 8) }, () => below(r, 256))));
    case 5: { // erase a range
      if (!b.length) return b;
      const at = below(r, b.length);
      const n = 1 + below(r, Math.min(b.length - at, 64));
      return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
    }
    case 6: { // duplicate a range somewhere else
      if (!b.length) return b;
      const at = below(r, b.length);
      const n = 1 + below(r, Math.min(b.length - at, 128));
      return insert(b, pos(), Buffer.from(b.subarray(at, at + n)));
    }
    case 7: { // repeat one byte many times (long runs: lengths, nesting)
      const byte = b.length && r() < 0.7 ? b[below(r, b.length)]! : below(r, 256);
      return insert(b, pos(), Buffer.alloc(1 + below(r, 512), byte));
    }
    case 8: // a dictionary token
    case 9:
      if (!dictionary.length) return mutateOnce(b, r, dictionary, corpus);
      return insert(b, pos(), dictionary[below(r, dictionary.length)]!);
    case 10: { // splice with another input
      const other = corpus[below(r, corpus.length)];
      if (!other || !other.length) return b;
      const from = below(r, other.length);
      const cut = pos();
      return Buffer.concat([b.subarray(0, cut), other.subarray(from, from + 1 + below(r, other.length - from))]);
    }
    default: { // truncate
      return b.subarray(0, below(r, b.length + 1));
    }
  }
}

import { createHash } from 'node:crypto';
import t from 'tap';
import {
  appendHashes,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  treeHash,
  verifyConsistency,
  verifyInclusion,
  type HashReader,
} from '../../../directory/tlog/merkle.js';
import { rejectsCode } from '../../helpers.js';

// Vectors: RFC 9162 §2.1.1 (empty tree, empty leaf) and transparency-dev/merkle
// (testonly/constants.go: leaves, node hashes and roots of sizes 0..8; the inclusion and
// consistency proofs of proof/verify_test.go before bcba819; their leaf numbers are 1-based).
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hex);
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map(hex);
const INCLUSION: [number, number, string[]][] = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [3, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [2, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];
const CONSISTENCY: [number, number, string[]][] = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
];

/** The reference: RFC 9162 §2.1.1 MTH over the leaves themselves. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1) return leafHash(leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** A log built with appendHashes only; its reader refuses any subtree not complete inside `size`. */
async function buildLog(leaves: Buffer[]): Promise<{ stored: Map<string, Buffer>; reader: (size: number) => HashReader; reads: { n: number } }> {
  const stored = new Map<string, Buffer>();
  const reads = { n: 0 };
  const reader = (size: number): HashReader => async (wanted) => {
    reads.n++;
    return wanted.map(({ level, index }) => {
      if ((index + 1) * 2 ** level > size) throw new Error(`asked for ${level}/${index}, outside a tree of ${size}`);
      const h = stored.get(`${level}/${index}`);
      if (!h) throw new Error(`${level}/${index} is not stored`);
      return h;
    });
  };
  for (const [i, leaf] of leaves.entries()) {
    for (const s of await appendHashes(i, leafHash(leaf), reader(i))) {
      if (stored.has(`${s.level}/${s.index}`)) throw new Error(`${s.level}/${s.index} stored twice`);
      stored.set(`${s.level}/${s.index}`, s.hash);
    }
  }
  return { stored, reader, reads };
}

t.test('RFC 9162 and transparency-dev/merkle vectors: hashes, roots of sizes 0..8, proofs', async (t) => {
  t.equal(leafHash(Buffer.alloc(0)).toString('hex'), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', 'the empty leaf');
  const { reader, stored } = await buildLog(LEAVES);
  t.equal(stored.size, 15, 'eight leaves store 8 + 4 + 2 + 1 hashes');
  t.equal(stored.get('1/3')!.toString('hex'), 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'a level-1 node hash');
  for (let size = 0; size <= 8; size++) t.same(await treeHash(size, reader(size)), ROOTS[size], `root of ${size}`);
  for (const [leaf, size, proof] of INCLUSION) {
    const got = await inclusionProof(leaf - 1, size, reader(size));
    t.same(got.map((h) => h.toString('hex')), proof, `inclusion of leaf ${leaf - 1} in ${size}`);
    t.ok(verifyInclusion(leaf - 1, size, leafHash(LEAVES[leaf - 1]!), proof.map(hex), ROOTS[size]!));
  }
  for (const [m, n, proof] of CONSISTENCY) {
    const got = await consistencyProof(m, n, reader(n));
    t.same(got.map((h) => h.toString('hex')), proof, `consistency ${m} → ${n}`);
    t.ok(verifyConsistency(m, n, ROOTS[m]!, ROOTS[n]!, proof.map(hex)));
  }
  t.same(await inclusionProof(0, 1, reader(1)), [], 'a one-leaf tree: an empty path');
  t.ok(verifyInclusion(0, 1, leafHash(LEAVES[0]!), [], ROOTS[1]!));
  t.same(await consistencyProof(1, 1, reader(1)), []);
  t.ok(verifyConsistency(1, 1, ROOTS[1]!, ROOTS[1]!, []));
  t.ok(verifyConsistency(0, 8, ROOTS[0]!, ROOTS[8]!, []), 'the empty tree is a prefix of every tree');
  t.notOk(verifyConsistency(0, 8, ROOTS[1]!, ROOTS[8]!, []), 'but its root is SHA-256("")');
  // transparency-dev/merkle testdata/consistency/1/truncated-proof.json and a modified-proof probe.
  t.notOk(verifyConsistency(1, 8, ROOTS[1]!, ROOTS[8]!, CONSISTENCY[0]![2].slice(0, 2).map(hex)), 'truncated proof');
  const flipped = INCLUSION[0]![2].map(hex);
  flipped[0]![0]! ^= 8;
  t.notOk(verifyInclusion(0, 8, leafHash(LEAVES[0]!), flipped, ROOTS[8]!), 'modified proof[0] bit @3');
  t.notOk(verifyConsistency(1, 2, Buffer.from("don't care 1"), Buffer.from("don't care 2"), []), 'sizes differ and the proof is empty');
  // Proofs of one shape serve several sizes (the roots bind them); where the shapes differ, the size counts:
  const p12 = await consistencyProof(1, 2, reader(2));
  t.ok(verifyConsistency(1, 2, ROOTS[1]!, ROOTS[2]!, p12));
  t.notOk(verifyConsistency(1, 4, ROOTS[1]!, ROOTS[2]!, p12), "the root of 2 claimed for a tree of 4 (RFC 9162 step 7's sn = 0)");
  const p02 = await inclusionProof(0, 2, reader(2));
  t.notOk(verifyInclusion(0, 4, leafHash(LEAVES[0]!), p02, ROOTS[2]!), 'the root of 2 claimed for a tree of 4 (inclusion)');
});

t.test('bad arguments: TLOG_INVALID, and verification says false', async (t) => {
  const { reader } = await buildLog(LEAVES);
  await rejectsCode(t, inclusionProof(8, 8, reader(8)), 'TLOG_INVALID', 'index = size');
  await rejectsCode(t, inclusionProof(-1, 8, reader(8)), 'TLOG_INVALID', 'negative index');
  await rejectsCode(t, consistencyProof(5, 4, reader(8)), 'TLOG_INVALID', 'old above new');
  await rejectsCode(t, treeHash(1.5, reader(8)), 'TLOG_INVALID', 'a fraction');
  await rejectsCode(t, treeHash(3, async () => [Buffer.alloc(32)]), 'TLOG_INVALID', 'a reader giving too few hashes');
  await rejectsCode(t, appendHashes(0, Buffer.alloc(31), reader(0)), 'TLOG_INVALID', 'a short leaf hash');
  t.notOk(verifyInclusion(0, 0, leafHash(LEAVES[0]!), [], ROOTS[0]!), 'no leaf in the empty tree');
  t.notOk(verifyConsistency(4, 3, ROOTS[4]!, ROOTS[3]!, []), 'old above new');
});

const flipBit = (proof: Buffer[], n: number): Buffer[] => proof.map((h, i) => (i === n ? Buffer.from(h.map((b, j) => (j === 7 ? b ^ 0x10 : b))) : h));
const junk = createHash('sha256').update('junk').digest();

t.test('every size 1..70: appendHashes stores what a from-scratch build has; proofs verify; tampered ones fail', async (t) => {
  const leaves = Array.from({ length: 70 }, (_, i) => Buffer.from(`entry ${i}`));
  const { stored, reader, reads } = await buildLog(leaves);
  let expected = 0;
  for (let level = 0; 2 ** level <= 70; level++) {
    for (let index = 0; (index + 1) * 2 ** level <= 70; index++, expected++) {
      const want = mth(leaves.slice(index * 2 ** level, (index + 1) * 2 ** level));
      if (!stored.get(`${level}/${index}`)?.equals(want)) t.fail(`stored ${level}/${index}`);
    }
  }
  t.equal(stored.size, expected, `exactly the ${expected} complete subtrees are stored`);
  const roots = [createHash('sha256').digest(), ...leaves.map((_, i) => mth(leaves.slice(0, i + 1)))];
  let failures = 0;
  let checks = 0;
  const expect = (ok: boolean, what: string): void => {
    checks++;
    if (!ok) t.fail(what, { failures: ++failures });
  };
  for (let size = 1; size <= 70; size++) {
    expect((await treeHash(size, reader(size))).equals(roots[size]!), `root of ${size}`);
    for (let i = 0; i < size; i++) {
      const before = reads.n;
      const proof = await inclusionProof(i, size, reader(size));
      expect(reads.n - before <= 1, `one read for inclusion ${i}/${size}`);
      const leaf = leafHash(leaves[i]!);
      expect(verifyInclusion(i, size, leaf, proof, roots[size]!), `inclusion ${i} in ${size}`);
      proof.forEach((_, n) => expect(!verifyInclusion(i, size, leaf, flipBit(proof, n), roots[size]!), `flipped bit in hash ${n}: inclusion ${i}/${size}`));
      if (size > i + 1) expect(!verifyInclusion(i, size - 1, leaf, proof, roots[size - 1]!), `size ${size - 1} for ${i}/${size}`);
      if (size < 70) expect(!verifyInclusion(i, size + 1, leaf, proof, roots[size + 1]!), `size ${size + 1} for ${i}/${size}`);
      for (const j of [i - 1, i + 1].filter((j) => j >= 0 && j < size)) {
        expect(!verifyInclusion(j, size, leaf, proof, roots[size]!), `index ${j} for ${i}/${size}`);
        expect(!verifyInclusion(j, size, leafHash(leaves[j]!), proof, roots[size]!), `leaf ${j} with the proof of ${i}/${size}`);
      }
      if (proof.length) expect(!verifyInclusion(i, size, leaf, proof.slice(0, -1), roots[size]!), `short proof ${i}/${size}`);
      if (proof.length) expect(!verifyInclusion(i, size, leaf, proof.slice(1), roots[size]!), `proof without its first hash ${i}/${size}`);
      expect(!verifyInclusion(i, size, leaf, [...proof, junk], roots[size]!), `long proof ${i}/${size}`);
    }
    for (let m = 0; m <= size; m++) {
      const proof = await consistencyProof(m, size, reader(size));
      expect(verifyConsistency(m, size, roots[m]!, roots[size]!, proof), `consistency ${m} → ${size}`);
      proof.forEach((_, n) => expect(!verifyConsistency(m, size, roots[m]!, roots[size]!, flipBit(proof, n)), `flipped bit in hash ${n}: ${m} → ${size}`));
      if (m > 0 && m < size) expect(!verifyConsistency(m - 1, size, roots[m - 1]!, roots[size]!, proof), `old size ${m - 1} for ${m} → ${size}`);
      if (m + 1 < size) expect(!verifyConsistency(m + 1, size, roots[m + 1]!, roots[size]!, proof), `old size ${m + 1} for ${m} → ${size}`);
      if (m > 0 && size < 70) expect(!verifyConsistency(m, size + 1, roots[m]!, roots[size + 1]!, proof), `new size ${size + 1} for ${m} → ${size}`);
      if (proof.length) expect(!verifyConsistency(m, size, roots[m]!, roots[size]!, proof.slice(0, -1)), `short proof ${m} → ${size}`);
      expect(!verifyConsistency(m, size, roots[m]!, roots[size]!, [...proof, junk]), `long proof ${m} → ${size}`);
      if (m > 0 && m < size) expect(!verifyConsistency(m, size, roots[m]!, roots[size - 1]!, proof), `another new root ${m} → ${size}`);
    }
  }
  t.equal(failures, 0, `${checks} checks`);
  t.ok(checks > 20000, 'and they are many');
});

import t from 'tap';
import { MemoryStore } from '../../../directory/store/memory.js';
import { dumpContract } from './dump-contract.js';
import { kvStoreContract } from './kv-contract.js';
import { logStoreContract } from './log-contract.js';
import { draft, recordStoreContract } from './record-contract.js';

recordStoreContract(t, async () => new MemoryStore());
dumpContract(t, async () => new MemoryStore());
// One process, one store: "two connections" are the same object, its appends interleaved.
logStoreContract(t, async () => new MemoryStore(), async () => {
  const s = new MemoryStore();
  return [s, s];
});
kvStoreContract(t, async () => new MemoryStore(), async () => {
  let now = 1_000_000;
  return { store: new MemoryStore({ clock: () => now }), advance: (ms) => (now += ms) };
});

t.test('memory store hands out copies', async (t) => {
  const s = new MemoryStore();
  const r = await s.putRecord(draft('a.example'));
  r.formats.push('smime');
  t.same((await s.getRecord(r.domain))!.formats, ['pgp-mime']);
});

import ldap from 'ldapjs';
import net from 'node:net';
import t from 'tap';
import { floodNeverReading, rss, rssUnderFlood, settleRss, startFace } from '../../edges/helpers.js';
import { ldapsearch } from './helpers.js';

/** RFC 4511 §4.5.1: a subtree search for every entry (each answer is a few KB: keys and certificates). */
function searchAll(messageId: number): Buffer {
  const { SearchRequest } = ldap as unknown as { SearchRequest: new (o: object) => { toBer(): { buffer: Buffer } } };
  return new SearchRequest({ messageId, baseObject: 'dc=mailmesh', scope: 'sub', filter: '(objectClass=*)', attributes: [] }).toBer().buffer;
}

// The bound: the face may hold maxPendingBytes (here 2 MB) of unsent results, one 64 KB read of
// requests, and garbage; 48 MB over the idle RSS covers that with room for V8's heap growth.
// Before the fix, 3 MB of searches (≈ 20,000) queued ≈ 20,000 × 10 KB of results: > 150 MB.
const BOUND_MB = 48;

t.test('LDAP: a client flooding searches without reading stops being read; RSS stays bounded and comes back down', async (t) => {
  const { pid, port } = await startFace(t, 'ldap', { maxPendingBytes: 2 * 1024 * 1024, drainTimeoutMs: 600_000 });
  await ldapsearch(`ldap://127.0.0.1:${port}`, 'dc=mailmesh', '(mail=x@a.example)'); // warm up
  const idle = rss(pid).now;
  const flood = await floodNeverReading(port, searchAll(2), 3 * 1024 * 1024);
  const during = await rssUnderFlood(pid, idle, BOUND_MB);
  t.comment(`RSS idle ${idle.toFixed(0)} MB, grew ${during.grown.toFixed(0)} MB under the flood`);
  t.ok(during.settled, `RSS settled ${during.grown.toFixed(0)} MB over idle (bound ${BOUND_MB} MB)`);

  // Another client is served meanwhile: the flood holds only its own connection.
  const other = await ldapsearch(`ldap://127.0.0.1:${port}`, 'dc=mailmesh', '(mail=x@a.example)', ['mail']);
  t.equal(other.code, 0, `ldapsearch is answered during the flood: ${other.stderr}`);
  t.match(other.stdout, /mail: domainkey@a\.example/);

  flood.socket.destroy();
  const after = await settleRss(pid, idle, 24);
  t.ok(after - idle < 24, `RSS back near idle after close: ${after.toFixed(0)} MB (idle ${idle.toFixed(0)} MB)`);
});

t.test('LDAP: a client that stays over maxPendingBytes is closed after drainTimeoutMs', async (t) => {
  // One connection per address: ldapsearch gets in only once the server closed the flooding one
  // (a never-reading client cannot see the close itself).
  const { port } = await startFace(t, 'ldap', { maxPendingBytes: 256 * 1024, drainTimeoutMs: 300, maxConnectionsPerAddress: 1 });
  const flood = await floodNeverReading(port, searchAll(2), 1024 * 1024);
  t.teardown(() => void flood.socket.destroy());
  let r = await ldapsearch(`ldap://127.0.0.1:${port}`, 'dc=mailmesh', '(mail=x@a.example)', ['mail']);
  t.not(r.code, 0, 'while the flooding connection is open, a second one from the address is refused');
  for (let i = 0; i < 100 && r.code !== 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    r = await ldapsearch(`ldap://127.0.0.1:${port}`, 'dc=mailmesh', '(mail=x@a.example)', ['mail']);
  }
  t.equal(r.code, 0, 'the server closed the stalled connection: the address has a free slot again');
});

t.test('LDAP: connections per client address and in total are limited; the refused get a Notice of Disconnection', async (t) => {
  const { port } = await startFace(t, 'ldap', { maxConnectionsPerAddress: 2 });
  const open = async () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    return s;
  };
  const a = await open();
  const b = await open();
  const c = await open();
  const got = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('close', () => resolve(Buffer.concat(chunks)));
  });
  t.ok(got.includes(Buffer.from('1.3.6.1.4.1.1466.20036')), 'RFC 4511 §4.4.1 Notice of Disconnection');
  t.ok(got.includes(Buffer.from([0x0a, 0x01, 52])), 'resultCode unavailable (52)');
  a.destroy();
  // The server sees the close a moment after the client: try until the slot is free.
  let r = await ldapsearch(`ldap://127.0.0.1:${port}`, 'dc=mailmesh', '(mail=x@a.example)', ['mail']);
  for (let i = 0; i < 20 && r.code !== 0; i++) r = await ldapsearch(`ldap://127.0.0.1:${port}`, 'dc=mailmesh', '(mail=x@a.example)', ['mail']);
  t.equal(r.code, 0, 'a slot freed by a closed connection is used again');
  b.destroy();
});

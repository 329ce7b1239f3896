// readTunnel (gateway/tunnel/read.ts): one reading of a message serves every step on its way
// through the gateway, for every kind of message, and reads hostile headers as gateway/header.ts does.
import t, { type Test } from 'tap';
import { authorDomain, headerFields } from '../../../gateway/header.js';
import { removeOurResults } from '../../../gateway/tunnel/authresults.js';
import { parseEntity } from '../../../gateway/tunnel/mime.js';
import { addAuthenticationResults, classifyMessage, decryptTunnel, encryptTunnel, readTunnel, type TunnelMessage } from '../../../gateway/tunnel/tunnel.js';
import { rejectsCode } from '../../helpers.js';
import { makeDomain, NOW, peer, sampleMessage } from './fixtures.js';

const [alpha, beta, gamma] = await Promise.all([makeDomain('alpha.test'), makeDomain('beta.test'), makeDomain('gamma.test')]);
const original = sampleMessage();
const ID = 'gw.beta.test';

/** The reading's header and entity are those the one splitter and the MIME reader give for the bytes. */
function sameAsBytes(t: Test, m: TunnelMessage, bytes: Buffer, what: string): void {
  const h = headerFields(bytes);
  t.equal(m.bytes, bytes, `${what}: the bytes themselves, not a copy`);
  t.same(m.header.fields, h.fields, `${what}: the fields of gateway/header.ts`);
  t.equal(m.header.headerEnd, h.headerEnd, `${what}: header end`);
  t.equal(m.header.bodyStart, h.bodyStart, `${what}: body start`);
  const e = parseEntity(bytes);
  t.same(m.entity.fields.map((f) => [f.name, f.value, f.raw.toString('latin1')]), e.fields.map((f) => [f.name, f.value, f.raw.toString('latin1')]), `${what}: MIME fields`);
  t.equal(m.entity.body.byteOffset, bytes.byteOffset + e.bodyStart, `${what}: the body is a view of the bytes`);
  t.equal(m.entity, m.entity, `${what}: the entity is read once`);
}

t.test('every kind: one reading, the same header and entity as the bytes, the same classification', async (t) => {
  const pgp = await encryptTunnel('pgp-mime', readTunnel(original), alpha, peer(beta), { now: NOW });
  const smime = await encryptTunnel('smime', readTunnel(original), alpha, peer(beta), { now: NOW });
  const inline = Buffer.from('From: a@alpha.test\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n-----END PGP MESSAGE-----\r\n');
  const cases: Array<[string, Buffer, string, unknown]> = [
    ['PGP/MIME tunnel', pgp, 'pgp-mime', { kind: 'tunnel', format: 'pgp-mime', keys: [1] }],
    ['S/MIME tunnel', smime, 'smime', { kind: 'tunnel', format: 'smime', keys: [1] }],
    ['inline PGP', inline, 'inline-pgp', { kind: 'personal', format: 'inline-pgp' }],
    ['plain', original, 'plain', { kind: 'plain' }],
  ];
  for (const [what, bytes, kind, classified] of cases) {
    const m = readTunnel(bytes);
    t.equal(m.kind, kind, `${what}: kind`);
    sameAsBytes(t, m, bytes, what);
    t.same(await classifyMessage(m, [gamma.keys, beta.keys]), classified, `${what}: classified with our ring`);
    const alone = await classifyMessage(m);
    t.same([alone.kind, 'format' in alone ? alone.format : undefined], kind === 'plain' ? ['plain', undefined] : ['personal', kind], `${what}: without keys`);
  }
  // Personal: encrypted to gamma, so to none of beta's keys: it names what it is encrypted to.
  for (const bytes of [pgp, smime]) {
    const c = await classifyMessage(readTunnel(bytes), [gamma.keys]);
    t.equal(c.kind, 'personal');
    t.ok(c.kind === 'personal' && c.recipients!.length >= 1, 'names its recipients');
  }
});

t.test('the encryption layer is read once, however often the message is classified and opened', async (t) => {
  for (const format of ['pgp-mime', 'smime'] as const) {
    const sealed = readTunnel(await encryptTunnel(format, readTunnel(original), alpha, peer(beta), { now: NOW }));
    if (format === 'pgp-mime') {
      t.equal(sealed.armored(), sealed.armored());
      t.equal(sealed.pgpKeyIds(), sealed.pgpKeyIds(), 'one read of the key IDs');
      t.throws(() => sealed.der(), { code: 'TUNNEL_MALFORMED' });
    } else {
      t.equal(sealed.der(), sealed.der(), 'one decoded DER');
      t.equal(sealed.cmsRecipients(), sealed.cmsRecipients(), 'one read of the recipient infos');
      t.throws(() => sealed.armored(), { code: 'TUNNEL_MALFORMED' });
    }
    // What inbound does: classify without keys, then with the ring, then open it (more than once).
    t.equal((await classifyMessage(sealed)).kind, 'personal');
    t.equal((await classifyMessage(sealed, beta.keys)).kind, 'tunnel');
    const first = await decryptTunnel(sealed, beta, peer(alpha), { now: NOW });
    const again = await decryptTunnel(sealed, beta, peer(gamma), { now: NOW });
    t.ok(first.inner.equals(original) && again.inner.equals(original), `${format}: the same inner bytes from one reading`);
    t.equal(first.signature, 'valid');
    t.equal(again.signature, 'key-changed', 'only the verification differs');
    // Authentication-Results takes the inner header split once, as the author does.
    const inner = headerFields(first.inner);
    t.equal(authorDomain(inner), 'alpha.test');
    const out = addAuthenticationResults(inner, ID, { ...first, author: authorDomain(inner), aligned: true, alignment: 'strict' });
    t.ok(out.subarray(out.length - original.length).equals(original), 'the inner message after our one field, bytes unchanged');
  }
});

t.test('hostile headers: the reading sees what gateway/header.ts sees', async (t) => {
  // A bare CR hides a Content-Type behind a Subject: the marker, the author and the kind are read from the same fields.
  const hidden = Buffer.from('Subject: x\rContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\r\nFrom: a@alpha.test\r\n\r\n--b\r\n--b--\r\n');
  const h = readTunnel(hidden);
  t.same(h.header.fields.map((f) => f.key), ['subject', 'content-type', 'from']);
  t.equal(h.kind, 'pgp-mime', 'the hidden Content-Type is a Content-Type here too');
  t.same(await classifyMessage(h, beta.keys), { kind: 'personal', format: 'pgp-mime' }, 'unreadable: not ours to open');
  sameAsBytes(t, h, hidden, 'bare CR');

  // Folded and duplicated Content-Type: unfolded; the first one counts.
  const folded = readTunnel(Buffer.from('Content-Type: application/pkcs7-mime;\r\n smime-type=enveloped-data\r\nContent-Type: text/plain\r\n\r\nMIIB\r\n'));
  t.equal(folded.kind, 'smime');
  t.same(folded.contentType, { type: 'application', subtype: 'pkcs7-mime', params: { 'smime-type': 'enveloped-data' } });

  // A header that is not MIME (a line without a colon, white space before one): plain, and TUNNEL_MALFORMED to each step that needs the entity.
  for (const bad of ['not a header line\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\r\n\r\n', 'Content-Type : application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIIB']) {
    const m = readTunnel(Buffer.from(bad));
    t.equal(m.kind, 'plain', JSON.stringify(bad.slice(0, 20)));
    t.equal(m.contentType, undefined);
    t.throws(() => m.entity, { code: 'TUNNEL_MALFORMED' });
    await rejectsCode(t, decryptTunnel(m, beta), 'TUNNEL_MALFORMED');
    await rejectsCode(t, encryptTunnel('pgp-mime', m, alpha, peer(beta)), 'TUNNEL_MALFORMED');
    t.same(await classifyMessage(m, beta.keys), { kind: 'plain' });
  }
  t.throws(() => readTunnel(Buffer.from('A: 1\r\n'.repeat(1001))).entity, { code: 'TUNNEL_MALFORMED' }, 'too many fields');

  // An inner message with a forged result behind a bare CR: removed, the rest byte for byte.
  const forgedInner = Buffer.concat([Buffer.from(`Subject: x\rAuthentication-Results: ${ID}; mailmesh=pass\r\n`), original]);
  const sealed = readTunnel(await encryptTunnel('smime', readTunnel(forgedInner), alpha, peer(beta), { now: NOW }));
  const r = await decryptTunnel(sealed, beta, peer(alpha), { now: NOW });
  t.ok(r.inner.equals(forgedInner), 'the inner message travels unchanged');
  const out = addAuthenticationResults(headerFields(r.inner), ID, { ...r, aligned: true, alignment: 'strict' }).toString('latin1');
  t.equal(out.split(`Authentication-Results: ${ID};`).length, 2, 'one result with our id: ours');
  t.ok(out.endsWith(`Subject: x\r${original.toString('latin1')}`), 'every other byte unchanged');
  t.equal(removeOurResults(headerFields(original), ID), original, 'nothing to remove: the same buffer');
});

t.test('outbound: the outer header copies the fields the splitter sees, every line break as CRLF', async (t) => {
  // A bare CR between To and a Bcc: two fields; To is copied, Bcc is not, and no bare CR reaches the outer header.
  const head = 'From: Alice <alice@alpha.test>\r\nTo: bob@beta.test\rBcc: hidden@elsewhere.test\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nSubject: s\r\n\r\nbody\r\n';
  const bytes = Buffer.from(head);
  for (const format of ['pgp-mime', 'smime'] as const) {
    const sealed = await encryptTunnel(format, readTunnel(bytes), alpha, peer(beta), { now: NOW });
    const outer = readTunnel(sealed);
    const text = sealed.toString('latin1', 0, outer.header.headerEnd);
    t.match(text, /^From: Alice <alice@alpha\.test>\r\nTo: bob@beta\.test\r\nDate: Mon, 2 Mar 2026 10:00:00 \+0100\r\nSubject: \.\.\.\r\n/, `${format}: From, To, Date copied`);
    t.notMatch(text, /hidden/, `${format}: the Bcc behind the bare CR is not copied`);
    t.notMatch(text, /\r(?!\n)/, `${format}: no bare CR in the outer header`);
    t.ok((await decryptTunnel(outer, beta, peer(alpha), { now: NOW })).inner.equals(bytes), `${format}: the original inside, bytes unchanged`);
  }
});

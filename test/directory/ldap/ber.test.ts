import ldap from 'ldapjs';
import t from 'tap';
import { checkMessage, encodeResult, isWellFormedMessage, readHeader, takeMessages } from '../../../directory/ldap/ber.js';
import { seeded } from '../../helpers.js';

type Msg = { type: string; messageId: number; status?: number; diagnosticMessage?: string; responseName?: string };
const L = ldap as unknown as Record<string, new (o: object) => { toBer(): { buffer: Buffer } }> & {
  Parser: new () => NodeJS.EventEmitter & { write(b: Buffer): void };
  parseFilter(s: string): unknown;
};

/** Decodes bytes with ldapjs's own parser (the client side's decoder). */
function decode(bytes: Buffer): Msg[] {
  const out: Msg[] = [];
  const p = new L.Parser();
  p.on('message', (m: Msg) => out.push(m));
  p.on('error', (e: Error) => out.push({ type: `error: ${e.message}`, messageId: -1 }));
  p.write(bytes);
  return out;
}

const search = (filter: string, extra: object = {}) =>
  new L.SearchRequest({ messageId: 5, baseObject: 'dc=mailmesh', scope: 'sub', filter, attributes: ['mail', 'userCertificate;binary'], ...extra }).toBer().buffer;

t.test('X.690 §8.1.3 lengths: short and long form; indefinite, 5-octet and high tags refused', async (t) => {
  t.same(readHeader(Buffer.from([0x30, 0x05])), { tag: 0x30, length: 5, contentStart: 2 });
  t.same(readHeader(Buffer.from([0x30, 0x82, 0x01, 0x00])), { tag: 0x30, length: 256, contentStart: 4 });
  t.equal(readHeader(Buffer.from([0x30])), 'incomplete');
  t.equal(readHeader(Buffer.from([0x30, 0x82, 0x01])), 'incomplete');
  t.equal(readHeader(Buffer.from([0x30, 0x80])), 'invalid', 'indefinite length (RFC 4511 §5.1)');
  t.equal(readHeader(Buffer.from([0x30, 0x85, 1, 1, 1, 1, 1])), 'invalid', 'more than 4 length octets');
  t.equal(readHeader(Buffer.from([0x1f, 0x01, 0x00])), 'invalid', 'high-tag-number form');
});

t.test('framing: pipelined messages split, a partial one kept, garbage and oversize refused', async (t) => {
  const a = search('(mail=x@example.org)');
  const b = new L.UnbindRequest({ messageId: 6 }).toBer().buffer;
  const r = takeMessages(Buffer.concat([a, b, a.subarray(0, 10)]), 1024);
  t.not(r, 'invalid');
  if (r === 'invalid') return;
  t.same(r.messages.map((m) => m.toString('hex')), [a.toString('hex'), b.toString('hex')]);
  t.equal(r.rest.toString('hex'), a.subarray(0, 10).toString('hex'));
  t.equal(takeMessages(Buffer.from('GET /'), 1024), 'invalid');
  t.equal(takeMessages(Buffer.from([0x30, 0x82, 0x10, 0x00]), 1024), 'invalid', 'a declared length beyond the cap is refused at once');
  t.same(takeMessages(Buffer.alloc(0), 1024), { messages: [], rest: Buffer.alloc(0) });
});

t.test('encodeResult is what ldapjs decodes: message IDs, long diagnostics, the Notice of Disconnection', async (t) => {
  for (const id of [0, 1, 127, 128, 255, 256, 2 ** 31 - 1]) {
    const [m] = decode(encodeResult(id, 0x69, 53, 'read-only'));
    t.same([m?.type, m?.messageId, m?.status, m?.diagnosticMessage], ['AddResponse', id, 53, 'read-only'], `id ${id}`);
  }
  const long = 'x'.repeat(300);
  t.equal(decode(encodeResult(2, 0x67, 53, long))[0]?.diagnosticMessage, long, 'a diagnostic longer than 127 octets (long-form length)');
  const [n] = decode(encodeResult(0, 0x78, 2, 'bye', '1.3.6.1.4.1.1466.20036'));
  t.same([n?.type, n?.messageId, n?.status, n?.responseName], ['ExtensionResponse', 0, 2, '1.3.6.1.4.1.1466.20036']);
});

t.test('checkMessage accepts every well-formed request shape and refuses malformed ones', async (t) => {
  const filters = ['(mail=x)', '(mail=a*b*c)', '(mail=*x)', '(cn>=a)', '(cn<=a)', '(cn~=a)', '(cn=*)', '(cn:caseExactMatch:=a)', '(:dn:2.5.13.5:=a)',
    '(&(a=b)(|(c=d)(!(e=f))))'];
  for (const f of filters) t.same(checkMessage(search(f)), { messageId: 5, op: 0x63 }, f);
  const valid: [string, Buffer, number][] = [
    ['bind', new L.BindRequest({ messageId: 1, name: 'cn=a', credentials: 'pw' }).toBer().buffer, 0x60],
    ['unbind', new L.UnbindRequest({ messageId: 2 }).toBer().buffer, 0x42],
    ['abandon', new L.AbandonRequest({ messageId: 3, abandonId: 2 }).toBer().buffer, 0x50],
    ['add', new L.AddRequest({ messageId: 4, entry: 'cn=a,dc=x', attributes: [] }).toBer().buffer, 0x68],
    ['delete', new L.DeleteRequest({ messageId: 4, entry: 'cn=a,dc=x' }).toBer().buffer, 0x4a],
    ['extended', new L.ExtendedRequest({ messageId: 4, requestName: '1.3.6.1.4.1.1466.20037' }).toBer().buffer, 0x77],
  ];
  for (const [name, bytes, op] of valid) t.equal(checkMessage(bytes)?.op, op, name);
  // RFC 4511 §4.1.11 controls after the protocolOp: paged results (RFC 2696), critical.
  const withControls = new L.SearchRequest({
    messageId: 9, baseObject: 'dc=mailmesh', filter: '(cn=*)',
    controls: [new (ldap as unknown as { PagedResultsControl: new (o: object) => unknown }).PagedResultsControl({ criticality: true, value: { size: 5 } })],
  }).toBer().buffer;
  t.same(checkMessage(withControls), { messageId: 9, op: 0x63 }, 'controls');

  const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');
  const refused: [string, Buffer][] = [
    ['negative message ID', hex('3005 0201ff 4200')],
    ['no protocolOp', hex('3003 020101')],
    ['unbind with content', hex('3007 020101 42020000')],
    ['search without attribute list', hex('301e 020101 6319 0400 0a0100 0a0100 020100 020100 010100 8706 6f626a656374')],
    ['filter choice [15]', hex('301e 020101 6319 0400 0a0100 0a0100 020100 020100 010100 af04 04000400 3000')],
    ['substrings with no parts', hex('301f 020101 631a 0400 0a0100 0a0100 020100 020100 010100 a405 040161 3000 3000')],
    // Found by fuzzing (ldapjs 3.0.7 loops forever on them): the attribute list's SEQUENCE tag mutated,
    ['attribute list not a SEQUENCE', hex('303002010d632b04000a01000a0100020100020100010100870b6f626a656374436c6173730f0b0462312e3104012b04012a')],
    // and a substrings element whose length overruns its enclosing filter.
    ['overrunning substrings', hex('308182020107637d040b64633d6d61696c6d6573480a01020a0100020100020100010100a03fa41904046d61696c30118001618258406578616d706c652e6f7267a122a307040263ff040178a217a315040b6f626a656374436c6173730406706572736f6e301e04046d61696c041675736572436572746966696361745d3b62696e617279')],
  ];
  for (const [name, bytes] of refused) {
    t.equal(checkMessage(bytes), undefined, name);
    if (name !== 'overrunning substrings') t.ok(isWellFormedMessage(bytes), `${name}: well-formed BER, refused for its shape`);
  }
  t.equal(checkMessage(search('(!'.repeat(17) + '(a=b)' + ')'.repeat(17))), undefined, 'filters nested deeper than 16');
  t.ok(checkMessage(search('(!'.repeat(15) + '(a=b)' + ')'.repeat(15))), '15 levels are fine');
});

t.test('fuzz: mutated requests never make checkMessage throw, and what it accepts ldapjs parses without hanging', async (t) => {
  const rnd = seeded(0x5eed);
  const seeds = [
    search('(&(mail=a*b*@example.org)(|(cn=x)(!(objectClass=person)))(cn~=y)(sn>=a)(o=*))'),
    search('(mail:caseExactMatch:=x)', { scope: 'one', attributes: [] }),
    new L.BindRequest({ messageId: 2, name: 'cn=admin,dc=x', credentials: 'pw' }).toBer().buffer,
    new L.UnbindRequest({ messageId: 11 }).toBer().buffer,
    new L.AbandonRequest({ messageId: 12, abandonId: 3 }).toBer().buffer,
  ];
  let accepted = 0;
  for (let i = 0; i < 20000; i++) {
    const bytes = Buffer.from(seeds[i % seeds.length]!);
    for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
    const env = checkMessage(bytes);
    if (!env || ![0x60, 0x42, 0x63, 0x50].includes(env.op)) continue;
    accepted++;
    decode(bytes); // a hang here fails the test by its timeout
  }
  t.ok(accepted > 500, `${accepted} mutated messages passed the check and were parsed by ldapjs`);
});

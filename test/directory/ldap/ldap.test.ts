import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import ldap from 'ldapjs';
import t from 'tap';
import { encodeResult } from '../../../directory/ldap/ber.js';
import { RESULT } from '../../../directory/ldap/ldap.js';
import { gpgHome, memoryDirectory, seeded, tempDir } from '../../helpers.js';
import { ldapsearch, parseLdif, runText as run, startLdap } from './helpers.js';

// One directory with two domains for the whole file (key generation is the slow part).
const directory = await memoryDirectory();
const a = await directory.addDomain('example.org');
const b = await directory.addDomain('beta.example');
const BASE = 'dc=mailmesh';
const dnOf = (domain: string) => `mail=domainkey@${domain},${BASE}`;

/** Sends bytes on a fresh connection, half-closes, and returns every LDAP message the server sent before closing. */
async function raw(port: number, bytes: Buffer): Promise<{ type: string; messageId: number; status?: number; responseName?: string }[]> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    socket.on('connect', () => socket.end(bytes));
    socket.on('close', () => resolve());
    socket.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e)));
  });
  const messages: { type: string; messageId: number; status?: number; responseName?: string }[] = [];
  const parser = new (ldap as unknown as { Parser: new () => NodeJS.EventEmitter & { write(b: Buffer): void } }).Parser();
  parser.on('message', (m: { type: string; messageId: number; status?: number; responseName?: string }) => messages.push(m));
  parser.on('error', (e: Error) => messages.push({ type: `unparsable reply: ${e.message}`, messageId: -1 }));
  if (chunks.length) parser.write(Buffer.concat(chunks));
  return messages;
}

function searchRequest(o: { messageId?: number; base?: string; filter?: string; scope?: string; attributes?: string[] } = {}): Buffer {
  const { SearchRequest } = ldap as unknown as { SearchRequest: new (o: object) => { toBer(): { buffer: Buffer } } };
  return new SearchRequest({
    messageId: o.messageId ?? 7,
    baseObject: o.base ?? BASE,
    scope: o.scope ?? 'sub',
    filter: o.filter ?? '(objectClass=*)',
    attributes: o.attributes ?? ['mail'],
  }).toBer().buffer;
}

t.test('a recipient address finds its domain certificate: DER, readable by openssl, the record\'s fingerprint', async (t) => {
  const { url } = await startLdap(t, directory);
  const dir = tempDir(t);
  for (const filter of ['(mail=alice@example.org)', '(mail=Alice.Smith@EXAMPLE.ORG)', '(mail=domainkey@example.org)']) {
    const r = await ldapsearch(url, BASE, filter, ['userCertificate;binary']);
    t.equal(r.code, 0, `${filter}: ${r.stderr}`);
    const entries = parseLdif(r.stdout);
    t.equal(entries.length, 1, `${filter}: one entry`);
    t.equal(entries[0]!.dn, dnOf('example.org'));
    t.same([...entries[0]!.attrs.keys()], ['userCertificate;binary'], 'only the requested attribute, under its ;binary name');
    const der = entries[0]!.attrs.get('userCertificate;binary')![0] as Buffer;
    t.ok(Buffer.isBuffer(der), 'sent as a binary (base64 in LDIF) value');
    t.equal(createHash('sha256').update(der).digest('hex'), a.keys.smime!.fingerprint, 'SHA-256 of the DER is the record\'s smime fingerprint');
    const file = join(dir, 'cert.der');
    writeFileSync(file, der);
    const x509 = await run('openssl', ['x509', '-inform', 'DER', '-in', file, '-noout', '-fingerprint', '-sha256', '-ext', 'subjectAltName']);
    t.equal(x509.code, 0, x509.stderr);
    t.equal(/Fingerprint=([0-9A-F:]+)/.exec(x509.stdout)?.[1]?.replace(/:/g, '').toLowerCase(), a.keys.smime!.fingerprint, 'openssl reads it');
    t.match(x509.stdout, /email:domainkey@example\.org/);
  }
  // ldapsearch -tt writes every value to a file: the bytes arrive as sent.
  const tt = await run('ldapsearch', ['-x', '-LLL', '-tt', '-T', dir, '-H', url, '-b', BASE, '(mail=x@example.org)', 'userCertificate;binary']);
  t.equal(tt.code, 0, tt.stderr);
  t.match(tt.stdout, /userCertificate;binary:< file:\/\//, 'ldapsearch -tt stores the certificate in a file');
});

t.test('requested attribute names are matched case-insensitively, with or without ;binary', async (t) => {
  const { url } = await startLdap(t, directory);
  for (const attrs of [['USERCERTIFICATE;BINARY'], ['usercertificate'], ['PgpCertId']]) {
    const r = await ldapsearch(url, BASE, '(mail=bob@beta.example)', attrs);
    const e = parseLdif(r.stdout)[0]!;
    t.equal(e.attrs.size, 1, `${attrs[0]}: one attribute`);
    if (attrs[0] === 'PgpCertId') t.same(e.attrs.get('pgpCertID'), [b.keys.openpgp!.keyId]);
    else t.equal(createHash('sha256').update(e.attrs.get('userCertificate;binary')![0]!).digest('hex'), b.keys.smime!.fingerprint);
  }
  const none = await ldapsearch(url, BASE, '(mail=bob@beta.example)', ['1.1']);
  t.same([...parseLdif(none.stdout)[0]!.attrs.keys()], [], '1.1: no attributes (RFC 4511 §4.5.1.8)');
  const all = await ldapsearch(url, BASE, '(mail=bob@beta.example)');
  t.same([...parseLdif(all.stdout)[0]!.attrs.keys()].sort(),
    ['cn', 'description', 'mail', 'objectClass', 'pgpCertID', 'pgpKey', 'sn', 'userCertificate;binary'], 'no list: every attribute');
  const typesOnly = await ldapsearch(url, BASE, '(mail=bob@beta.example)', ['mail'], ['-A']);
  t.match(typesOnly.stdout, /^mail:\s*$/m, 'typesOnly: names without values');
});

t.test('the pgpKey imports into gpg with the record\'s fingerprint', async (t) => {
  const { url } = await startLdap(t, directory);
  const { home, gpg } = gpgHome(t);
  const r = await ldapsearch(url, BASE, '(mail=carol@beta.example)', ['pgpKey', 'pgpCertID']);
  const e = parseLdif(r.stdout)[0]!;
  const armored = e.attrs.get('pgpKey')![0]!.toString();
  t.match(armored, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/, 'ASCII armored');
  t.same(e.attrs.get('pgpCertID'), [b.keys.openpgp!.keyId]);
  writeFileSync(join(home, 'key.asc'), armored);
  await gpg(['--import', join(home, 'key.asc')]);
  const list = (await gpg(['--with-colons', '--list-keys'])).stdout.toString();
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(list)?.[1];
  t.equal(fpr, b.keys.openpgp!.fingerprint);
  t.match(list, /domainkey@beta\.example/);
});

t.test('filters: equality, substrings, presence, AND/OR/NOT; scopes base/one/sub; the root DSE', async (t) => {
  const { url } = await startLdap(t, directory);
  const dns = async (base: string, filter: string, extra: string[] = []) => {
    const r = await ldapsearch(url, base, filter, ['1.1'], extra);
    t.equal(r.code, 0, `${filter}: ${r.stderr}`);
    return parseLdif(r.stdout).map((e) => e.dn);
  };
  const A = dnOf('example.org');
  const B = dnOf('beta.example');
  t.same(await dns(BASE, '(objectClass=*)'), [BASE, B, A], 'sub: the base and both domains');
  t.same(await dns(BASE, '(objectClass=*)', ['-s', 'one']), [B, A], 'one: the domains');
  t.same(await dns(BASE, '(objectClass=*)', ['-s', 'base']), [BASE], 'base: the base entry exists');
  t.same(await dns(A, '(objectClass=*)', ['-s', 'base']), [A], 'a domain entry as the base');
  t.same(await dns(A, '(objectClass=*)', ['-s', 'one']), [], 'a domain entry has no children');
  t.same(await dns(BASE, '(objectClass=INETORGPERSON)'), [B, A], 'objectClass matches case-insensitively');
  t.same(await dns(BASE, '(cn=Example.ORG Domain Key)'), [A], 'cn, case-insensitively');
  t.same(await dns(BASE, '(mail=*@beta.example)'), [B], 'substrings');
  t.same(await dns(BASE, '(mail=domain*ample*org)'), [A], 'initial, any and final');
  t.same(await dns(BASE, '(&(objectClass=inetOrgPerson)(!(mail=someone@beta.example)))'), [A], 'AND with NOT');
  t.same(await dns(BASE, '(|(mail=x@example.org)(mail=y@beta.example))'), [B, A], 'OR');
  t.same(await dns(BASE, '(|(mail=x@example.org)(cn=nothing))'), [A]);
  t.same(await dns(BASE, '(pgpKey=*)'), [B, A], 'presence');
  t.same(await dns(BASE, '(!(pgpKey=*))'), [BASE]);
  t.same(await dns(BASE, '(pgpCertID=' + a.keys.openpgp!.keyId.toLowerCase() + ')'), [A], 'key ID');
  t.same(await dns(BASE, '(mail=bob@other.test)'), [], 'an address outside the federation: no entry');
  t.same(await dns(BASE, '(mail=bob@sub.example.org)'), [], 'a subdomain is not its parent');
  t.same(await dns(BASE, '(mail=not an address)'), [], 'a value that is no address matches nothing');
  t.same(await dns(BASE, '(userCertificate=abc)'), [], 'no equality rule: Undefined, so no entry');
  t.same(await dns(BASE, '(!(userCertificate=abc))'), [], 'NOT Undefined is Undefined (RFC 4511 §4.5.1.7)');
  t.same(await dns(BASE, '(mail~=X@Example.Org)'), [A], 'approxMatch as equality');
  t.same(await dns(BASE, '(mail>=a)'), [], 'no ordering rule: Undefined');
  t.same(await dns(BASE, '(mail:caseExactMatch:=x@example.org)'), [], 'extensibleMatch: Undefined');
  const root = await ldapsearch(url, '', '(objectClass=*)', ['namingContexts'], ['-s', 'base']);
  t.same(parseLdif(root.stdout)[0]?.attrs.get('namingContexts'), [BASE], 'the root DSE names the base (RFC 4512 §5.1)');
});

t.test('unknown bases are noSuchObject (32); writes are unwillingToPerform (53); binds', async (t) => {
  const { url, port } = await startLdap(t, directory);
  const other = await ldapsearch(url, 'dc=other', '(objectClass=*)');
  t.equal(other.code, RESULT.noSuchObject, 'outside our base');
  const missing = await ldapsearch(url, dnOf('other.test'), '(objectClass=*)');
  t.equal(missing.code, RESULT.noSuchObject, 'a non-member domain entry');
  t.match(missing.stderr, /Matched DN: dc=mailmesh/, 'matchedDN names the base');
  const rootOne = await ldapsearch(url, '', '(objectClass=*)', [], ['-s', 'one']);
  t.equal(rootOne.code, RESULT.noSuchObject, 'the root DSE has no children to list');

  const dir = tempDir(t);
  const ldif = join(dir, 'add.ldif');
  writeFileSync(ldif, `dn: mail=domainkey@evil.test,${BASE}\nobjectClass: inetOrgPerson\ncn: x\nsn: x\n`);
  const mod = join(dir, 'mod.ldif');
  writeFileSync(mod, `dn: ${dnOf('example.org')}\nchangetype: modify\nreplace: cn\ncn: owned\n`);
  const writes: [string, string[]][] = [
    ['ldapadd', ['-f', ldif]],
    ['ldapmodify', ['-f', mod]],
    ['ldapdelete', [dnOf('example.org')]],
    ['ldapmodrdn', [dnOf('example.org'), 'mail=domainkey@x.test']],
    ['ldapcompare', [dnOf('example.org'), 'cn:x']],
  ];
  for (const [cmd, args] of writes) {
    const r = await run(cmd, ['-x', '-H', url, ...args]);
    t.equal(r.code, RESULT.unwillingToPerform, `${cmd}: ${r.stderr.trim()}`);
  }
  const after = await ldapsearch(url, BASE, '(mail=domainkey@example.org)', ['cn']);
  t.same(parseLdif(after.stdout)[0]!.attrs.get('cn'), ['example.org domain key'], 'nothing changed');

  const pw = await ldapsearch(url, BASE, '(objectClass=*)', [], ['-D', 'cn=admin,dc=mailmesh', '-w', 'secret']);
  t.equal(pw.code, RESULT.invalidCredentials, 'a simple bind with a password: invalidCredentials');
  const { createClient } = ldap as unknown as { createClient(o: object): { bind(dn: string, pw: string, cb: (e: { code?: number } | null) => void): void; destroy(): void } };
  const client = createClient({ url: `ldap://127.0.0.1:${port}` });
  t.teardown(() => client.destroy());
  const code = await new Promise<number>((resolve) => client.bind('cn=admin,dc=mailmesh', '', (e) => resolve(e?.code ?? 0)));
  t.equal(code, RESULT.unwillingToPerform, 'a name without a password: unwillingToPerform (RFC 4513 §5.1.2)');
  const anon = await new Promise<number>((resolve) => client.bind('', '', (e) => resolve(e?.code ?? 0)));
  t.equal(anon, RESULT.success, 'anonymous bind succeeds');
});

t.test('size limits: the client\'s and the server\'s, whichever is lower', async (t) => {
  const { url } = await startLdap(t, directory);
  const z1 = await ldapsearch(url, BASE, '(objectClass=*)', ['1.1'], ['-z', '1']);
  t.equal(z1.code, RESULT.sizeLimitExceeded, z1.stderr);
  t.equal(parseLdif(z1.stdout).length, 1, 'one entry, then sizeLimitExceeded');
  const z3 = await ldapsearch(url, BASE, '(objectClass=*)', ['1.1'], ['-z', '3']);
  t.equal(z3.code, 0, 'exactly at the limit is no error');
  t.equal(parseLdif(z3.stdout).length, 3);

  const small = await startLdap(t, directory, { sizeLimit: 2 });
  const s = await ldapsearch(small.url, BASE, '(objectClass=*)', ['1.1'], ['-z', '100']);
  t.equal(s.code, RESULT.sizeLimitExceeded, 'the server limit caps a larger client limit');
  t.equal(parseLdif(s.stdout).length, 2);
  const one = await ldapsearch(small.url, BASE, '(mail=a@example.org)', ['1.1']);
  t.equal(one.code, 0, 'a search under the limit is fine');
});

t.test('time limit: a search that outlives it ends with timeLimitExceeded (3)', async (t) => {
  let clock = 0;
  // Every reading of the clock advances it by 600 ms: the third entry is looked at after > 1 s.
  const { url } = await startLdap(t, directory, { timeLimitSec: 1, now: () => (clock += 600) });
  const r = await ldapsearch(url, BASE, '(objectClass=*)', ['1.1']);
  t.equal(r.code, RESULT.timeLimitExceeded, r.stderr);
  t.ok(parseLdif(r.stdout).length < 3, 'not every entry was sent');
  const still = await startLdap(t, directory, { timeLimitSec: 1, now: () => 0 });
  t.equal((await ldapsearch(still.url, BASE, '(objectClass=*)', ['1.1'])).code, 0, 'with a still clock the same search completes');
});

t.test('malformed requests get the Notice of Disconnection (protocolError); the server goes on', async (t) => {
  const { url, port } = await startLdap(t, directory, { maxRequestBytes: 1024 });
  const good = searchRequest({ filter: '(mail=x@example.org)' });
  const ok = await raw(port, good);
  t.same(ok.map((m) => m.type), ['SearchResultEntry', 'SearchResultDone'], 'the well-formed request is answered');

  // The equality filter's tag [3] (0xa3) turned into an undefined choice [15] (RFC 4511 §4.5.1).
  t.equal(good.indexOf(0xa3), good.lastIndexOf(0xa3), 'the filter tag occurs once');
  const badFilter = Buffer.from(good);
  badFilter[good.indexOf(0xa3)] = 0xaf;
  const truncated = good.subarray(0, good.length - 3);
  const tooLarge = Buffer.concat([Buffer.from([0x30, 0x82, 0x08, 0x00]), Buffer.alloc(2048)]);
  const notSequence = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const deep = searchRequest({ filter: '(!'.repeat(20) + '(cn=x)' + ')'.repeat(20) });
  const clientSentResponse = encodeResult(3, 0x65, 0, ''); // a SearchResultDone, which no client may send
  const cases = [
    ['unknown filter choice', badFilter],
    ['not an LDAPMessage', notSequence],
    ['larger than maxRequestBytes', tooLarge],
    ['filters nested 20 deep', deep],
    ['a response sent as a request', clientSentResponse],
  ] as const;
  for (const [name, bytes] of cases) {
    const replies = await raw(port, bytes);
    t.same(replies.map((m) => [m.type, m.messageId, m.status, m.responseName]),
      [['ExtensionResponse', 0, RESULT.protocolError, '1.3.6.1.4.1.1466.20036']], `${name}: Notice of Disconnection`);
  }
  t.same(await raw(port, truncated), [], 'a truncated message waits for more, then the client leaves: no reply');
  const { ExtendedRequest } = ldap as unknown as { ExtendedRequest: new (o: object) => { toBer(): { buffer: Buffer } } };
  const startTls = new ExtendedRequest({ messageId: 9, requestName: '1.3.6.1.4.1.1466.20037' }).toBer().buffer;
  t.same((await raw(port, Buffer.concat([startTls, good]))).map((m) => [m.type, m.messageId, m.status]),
    [['ExtensionResponse', 9, RESULT.protocolError], ['SearchResultEntry', 7, undefined], ['SearchResultDone', 7, 0]],
    'an extended operation (StartTLS) gets protocolError (RFC 4511 §4.12) and the session goes on');
  const after = await ldapsearch(url, BASE, '(mail=x@example.org)', ['mail']);
  t.equal(after.code, 0);
  t.equal(parseLdif(after.stdout).length, 1, 'a valid search still works');
});

t.test('fuzz: random and mutated bytes never crash the server', async (t) => {
  const { url, port } = await startLdap(t, directory, { maxRequestBytes: 4096 });
  const rnd = seeded(0x1d4a);
  const valid = searchRequest({ filter: '(&(mail=a*@example.org)(|(cn=x)(!(objectClass=person))))', attributes: ['mail', 'userCertificate;binary'] });
  let answered = 0;
  for (let i = 0; i < 300; i++) {
    let bytes: Buffer;
    if (i % 3 === 0) {
      bytes = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
      if (i % 2 === 0) bytes[0] = 0x30; // looks like a SEQUENCE, so the parser reads further
    } else {
      bytes = Buffer.from(valid);
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
    }
    const replies = await raw(port, bytes);
    if (replies.some((m) => m.type === 'SearchResultDone')) answered++;
  }
  t.comment(`${answered} of 300 mutated requests were still valid searches`);
  const after = await ldapsearch(url, BASE, '(mail=x@beta.example)', ['mail']);
  t.equal(after.code, 0, 'the server still answers');
  t.same(parseLdif(after.stdout).map((e) => e.dn), [dnOf('beta.example')]);
});

t.test('20,000 pipelined requests in one write (ldapjs parses them recursively) do not crash it', async (t) => {
  const { url, port } = await startLdap(t, directory);
  // AbandonRequest (RFC 4511 §4.11): [APPLICATION 16] MessageID; it gets no response.
  const abandon = Buffer.from([0x30, 0x06, 0x02, 0x01, 0x02, 0x50, 0x01, 0x01]);
  const replies = await raw(port, Buffer.concat([...Array.from({ length: 20000 }, () => abandon), searchRequest({ filter: '(mail=x@example.org)' })]));
  t.ok(replies.every((m) => m.type !== 'SearchResultDone' || m.status === 0), 'any search answered, answered well');
  const after = await ldapsearch(url, BASE, '(mail=x@example.org)', ['mail']);
  t.equal(after.code, 0, 'the server still answers');
});

t.test('the snapshot follows the directory: a removed domain disappears', async (t) => {
  const { url, server } = await startLdap(t, directory);
  await directory.removeDomain('beta.example');
  await server.settled();
  const r = await ldapsearch(url, BASE, '(mail=x@beta.example)', ['1.1']);
  t.equal(r.code, 0);
  t.same(parseLdif(r.stdout), [], 'no entry for the removed domain');
  t.same(server.entries.map((e) => e.dn), [BASE, dnOf('example.org')]);
});

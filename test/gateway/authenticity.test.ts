/**
 * Inbound authenticity between two real gateways over SMTP (swaks): forged
 * Authentication-Results, the signer bound to the author, and the CBC rewrite (EFAIL).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as asn1js from 'asn1js';
import * as openpgp from 'openpgp';
import * as pkijs from 'pkijs';
import t, { type Test } from 'tap';
import { loadConfig } from '../../cli/config.js';
import { loopbackPair, type LoopbackMember, type LoopbackOptions } from '../../cli/demo/loopback.js';
import type { InboundPolicy, PolicySettings } from '../../gateway/policy.js';
import { openEnvelope } from '../../gateway/tunnel/cms/envelope.js';
import { decodeBody, encodeBase64Lines, fieldValue, parseContentType, parseEntity } from '../../gateway/tunnel/mime.js';
import { encryptTunnel, readTunnel, type OwnDomain } from '../../gateway/tunnel/tunnel.js';
import { DEFAULT_POLICY, run, tempDir } from '../helpers.js';
import { FORGED_IDS } from './forged.js';

const inbound = (o: Partial<InboundPolicy>): PolicySettings => ({ ...DEFAULT_POLICY, inbound: { ...DEFAULT_POLICY.inbound, ...o } });
const LENIENT = inbound({ authorMismatch: 'mark', authorAlignment: 'relaxed', unsigned: 'mark', unknownSigner: 'mark' });
const SMIME_TO_BETA: PolicySettings = { ...DEFAULT_POLICY, domains: { 'beta.test': { format: 'smime' } } };

async function pair(t: Test, opts: LoopbackOptions = {}) {
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], opts);
  t.teardown(close);
  return members;
}

/** Sends raw message bytes with swaks; the last reply line (`<-` or `<**`). */
async function send(t: Test, port: number, from: string, to: string, data: Buffer | string): Promise<string> {
  const file = join(tempDir(t), 'msg.eml');
  writeFileSync(file, data);
  const r = await run('swaks', ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.test', '--from', from, '--to', to, '--data', `@${file}`], { allowFail: true });
  const lines = r.stdout.toString().split('\n').filter((l) => /^(<-|<\*\*) {1,2}\d{3} /.test(l));
  return lines.at(-2)?.replace(/^(<-|<\*\*) {1,2}/, '') ?? r.stdout.toString();
}

/** The Authentication-Results fields of a delivered message's header, unfolded. */
function resultsFields(data: Buffer): string[] {
  const head = data.subarray(0, data.indexOf('\r\n\r\n')).toString('utf8');
  return head.split(/\r\n(?![ \t])/).filter((f) => /^authentication-results\s*:/i.test(f)).map((f) => f.replace(/\r\n/g, ''));
}

async function own(m: LoopbackMember): Promise<OwnDomain> {
  const rec = await m.directory.getRecord(m.domain);
  return { domain: rec.domain, keys: rec.keys, secrets: await m.directory.getSecrets(m.domain) };
}

const forgedHeader = FORGED_IDS.map((id) => `Authentication-Results: ${id}; mailmesh=pass header.d=bank.test\r\n`).join('') +
  'Authentication-Results: other.example; spf=pass smtp.mailfrom=evil.test\r\n';

t.test('forged Authentication-Results with our authserv-id are removed from plain and tunnel mail, in every spelling', async (t) => {
  const [alpha, beta] = await pair(t);
  const plain = `${forgedHeader}From: CEO <ceo@bank.test>\r\nTo: b@beta.test\r\nSubject: wire the money\r\n\r\nNow.\r\n`;
  t.match(await send(t, beta.smtpPort, 'ceo@bank.test', 'b@beta.test', plain), /^250 /, 'plain mail from outside is delivered');
  await beta.sink.received(1);
  t.same(resultsFields(beta.sink.messages[0]!.data), ['Authentication-Results: other.example; spf=pass smtp.mailfrom=evil.test'], 'plain: only the other server\'s result is left');
  t.ok(beta.sink.messages[0]!.data.toString().includes('\r\nAuthentication-Results: other.example; spf=pass smtp.mailfrom=evil.test\r\nFrom: CEO <ceo@bank.test>\r\nTo: b@beta.test\r\nSubject: wire the money\r\n\r\nNow.\r\n'), 'the rest unchanged');

  const inner = `${forgedHeader}From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: hello\r\n\r\nHi.\r\n`;
  t.match(await send(t, alpha.smtpPort, 'a@alpha.test', 'b@beta.test', inner), /^250 /, 'tunnel mail alpha → beta');
  await beta.sink.received(2);
  const fields = resultsFields(beta.sink.messages[1]!.data);
  t.equal(fields.length, 2, 'ours and the other server\'s, nothing else');
  t.match(fields[0], /^Authentication-Results: mx\.beta\.test;\tmailmesh=pass .*header\.d=alpha\.test .*header\.from=alpha\.test/);
  t.equal(fields[1], 'Authentication-Results: other.example; spf=pass smtp.mailfrom=evil.test');
});

t.test('a message signed by one member with another domain in From is not a pass, over PGP/MIME and S/MIME', async (t) => {
  const [alpha, strictBeta] = await pair(t);
  const [alpha2, lenientBeta] = await pair(t, { policies: [undefined, LENIENT] });
  for (const format of ['pgp-mime', 'smime'] as const) {
    for (const [a, beta, expect] of [[alpha, strictBeta, /^550 5\.7\.1 .*signed by alpha\.test, not by the author domain bank\.test \(AUTHOR_MISMATCH\)/], [alpha2, lenientBeta, /^250 /]] as const) {
      const signer = await own(a);
      const rec = await beta.directory.getRecord('beta.test');
      const original = Buffer.from('From: CEO <ceo@bank.test>\r\nTo: b@beta.test\r\nSubject: urgent transfer\r\n\r\nPay today.\r\n');
      // Signed with alpha's real domain key: what a gateway of alpha.test sends for a user who writes From: bank.test.
      const sealed = await encryptTunnel(format, readTunnel(original), signer, { domain: rec.domain, keys: rec.keys });
      t.match(await send(t, beta.smtpPort, 'a@alpha.test', 'b@beta.test', sealed), expect, `${format}: ${beta === strictBeta ? 'strict' : 'lenient'}`);
    }
  }
  t.equal(strictBeta.sink.messages.length, 0, 'the strict gateway delivered nothing');
  await lenientBeta.sink.received(2);
  for (const m of lenientBeta.sink.messages) {
    const [ours] = resultsFields(m.data);
    t.match(ours, /mailmesh=fail \(decrypted [^)]*signature valid; author not aligned, relaxed\)\theader\.d=alpha\.test header\.b=\S+ header\.from=bank\.test/, 'marked fail, with signer and author');
    t.notMatch(m.data.toString(), /mailmesh=pass/);
  }

  // A subdomain of the signer: relaxed alignment passes it, strict refuses it.
  const sub = Buffer.from('From: a@sales.alpha.test\r\nTo: b@beta.test\r\nSubject: offer\r\n\r\nBuy.\r\n');
  for (const [a, beta, expect] of [[alpha, strictBeta, /^550 5\.7\.1 .*AUTHOR_MISMATCH/], [alpha2, lenientBeta, /^250 /]] as const) {
    const rec = await beta.directory.getRecord('beta.test');
    const sealed = await encryptTunnel('pgp-mime', readTunnel(sub), await own(a), { domain: rec.domain, keys: rec.keys });
    t.match(await send(t, beta.smtpPort, 'a@alpha.test', 'b@beta.test', sealed), expect);
  }
  await lenientBeta.sink.received(3);
  t.match(resultsFields(lenientBeta.sink.messages[2]!.data)[0], /mailmesh=pass .*author aligned, relaxed.*header\.d=alpha\.test .*header\.from=sales\.alpha\.test/);
});

/** The IV and ciphertext of an EnvelopedData, and a writer for new ones (RFC 5652 §6.1, RFC 3565 §4.1: the IV is the AES-CBC parameter). */
function cbcParts(der: Buffer) {
  const ci = pkijs.ContentInfo.fromBER(new Uint8Array(der));
  const env = new pkijs.EnvelopedData({ schema: ci.content });
  const eci = env.encryptedContentInfo;
  const iv = Buffer.from((eci.contentEncryptionAlgorithm.algorithmParams as asn1js.OctetString).valueBlock.valueHexView);
  const ct = Buffer.from(eci.getEncryptedContent());
  const write = (newIv: Buffer, newCt: Buffer): Buffer => {
    eci.contentEncryptionAlgorithm.algorithmParams = new asn1js.OctetString({ valueHex: new Uint8Array(newIv) });
    eci.encryptedContent = new asn1js.OctetString({ valueHex: new Uint8Array(newCt) });
    return Buffer.from(new pkijs.ContentInfo({ contentType: ci.contentType, content: env.toSchema() }).toSchema().toBER());
  };
  return { iv, ct, write };
}

const xor = (...bs: Buffer[]) => Buffer.from(bs[0]!.map((_, i) => bs.reduce((x, b) => x ^ b[i]!, 0)));
const block = (s: string) => {
  const b = Buffer.from(s, 'latin1');
  if (b.length !== 16) throw new Error(`not a block: ${JSON.stringify(s)}`);
  return b;
};

t.test('EFAIL: a captured S/MIME CBC tunnel message rewritten without the key is refused, with the same reply as a garbled one', async (t) => {
  // beta would mark unsigned mail: integrity still wins, whatever the policy.
  const [alpha, beta] = await pair(t, { policies: [SMIME_TO_BETA, LENIENT] });
  // What alpha sends to a peer whose record announces no AEAD (an older gateway): CBC EnvelopedData.
  const rec = await beta.directory.getRecord('beta.test');
  const original = Buffer.from('From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: salaries\r\n\r\nThe secret figures.\r\n');
  const captured = await encryptTunnel('smime', readTunnel(original), await own(alpha), { domain: rec.domain, keys: rec.keys });
  t.match(await send(t, beta.smtpPort, 'a@alpha.test', 'b@beta.test', captured), /^250 /, 'the genuine CBC message is delivered (validly signed)');
  await beta.sink.received(1);
  const outer = parseEntity(captured);
  t.match(fieldValue(outer.fields, 'content-type'), /smime-type=enveloped-data/, 'an S/MIME tunnel message travelled');
  const { iv, ct, write } = cbcParts(decodeBody(outer));
  t.equal(iv.length, 16, 'AES-CBC: a 16-octet IV');
  const header = captured.subarray(0, outer.bodyStart);
  const message = (der: Buffer) => Buffer.concat([header, Buffer.from(encodeBase64Lines(der), 'latin1')]);
  // The first plaintext block is always the same: our signed-data entity's Content-Type line.
  const P1 = block('Content-Type: ap');
  const C = (i: number) => ct.subarray(16 * i, 16 * i + 16);
  const rest = ct.subarray(16);
  const betaKey = await own(beta);
  const opens = (der: Buffer) => openEnvelope(der, betaKey.keys.smime!.chain[0]!, betaKey.secrets.smime!.keyPkcs8Pem).content;

  // 1. Only the IV changes: the first block becomes an empty header and an <img> tag; the rest
  //    of the content (signed-data, now text) follows it unsigned.
  const ivOnly = write(xor(iv, P1, block("\r\n<img src='http")), ct);
  t.ok(opens(ivOnly).toString('latin1').startsWith("\r\n<img src='httpplication/pkcs7-mime;"), 'decrypts to the chosen first block');

  // 2. Splicing: each chosen block X is (IV⊕P1⊕X, C1), after a block of garbage. The attacker
  //    tries blind; the test uses beta's key only to pick a variant that parses as text/html.
  let html: Buffer | undefined;
  for (const c of 'abcdefghijklmnopqrstuvwxyz') {
    const X0 = block('Content-Type:(xx');
    const X1 = block(`)text/html\r\n\r\n<${c}`);
    const X2 = block("<img src='http:/");
    const der = write(xor(iv, P1, X0), Buffer.concat([C(0), xor(iv, P1, X1), C(0), xor(iv, P1, X2), C(0), rest]));
    try {
      const e = parseEntity(opens(der));
      if (parseContentType(fieldValue(e.fields, 'content-type')).subtype === 'html' && e.body.includes("<img src='http:/plication")) html = der;
    } catch {
      continue;
    }
    if (html) break;
  }
  t.ok(html, 'a rewrite that decrypts to text/html with an <img> before the original content');

  // Garbled: a changed byte in the last but one block breaks the padding; one in the middle the content.
  const badPadding = Buffer.from(ct);
  badPadding[ct.length - 17] ^= 0x5a;
  const badContent = Buffer.from(ct);
  badContent[Math.floor(ct.length / 32) * 16 + 3] ^= 0x01;
  const replies: string[] = [];
  for (const der of [ivOnly, html!, write(iv, badPadding), write(iv, badContent), write(iv, ct.subarray(0, ct.length - 16))]) {
    replies.push(await send(t, beta.smtpPort, 'a@alpha.test', 'b@beta.test', message(der)));
  }
  t.same(replies, Array(5).fill('554 5.7.5 The tunnel message cannot be decrypted and authenticated (TUNNEL_UNAUTHENTICATED)'), 'one reply for all: no oracle');
  t.equal(beta.sink.messages.length, 1, 'nothing but the genuine message was delivered');
  t.match(await beta.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="smime",result="unauthenticated"\} 5/);
});

t.test('a 1 MB adversarial From on a tunnel message from the null sender costs about 100× 10 KB (the old regex was cubic)', async (t) => {
  const [alpha, beta] = await pair(t);
  const rec = await beta.directory.getRecord('beta.test');
  const sealed = await encryptTunnel('pgp-mime', readTunnel(Buffer.from('From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: bounce\r\n\r\nx\r\n')), await own(alpha), { domain: rec.domain, keys: rec.keys });
  const text = sealed.toString('latin1');
  const withFrom = (n: number) => text.replace(/^From: .*\r\n/m, `From: ${'@'.repeat(n)}<\r\n`);
  const time = async (n: number) => {
    const t0 = performance.now();
    const reply = await send(t, beta.smtpPort, '<>', 'b@beta.test', withFrom(n));
    t.match(reply, /^250 /, `${n} octets of From: delivered`);
    return performance.now() - t0;
  };
  await time(10_000); // warm up
  const small = (await time(10_000)) + (await time(10_000));
  const large = (await time(1_000_000)) * 2;
  const ratio = large / small;
  // Linear is at most ~100 (fixed costs make it less); cubic would be 10^6. A generous bound, no absolute time.
  t.ok(ratio < 300, `1 MB / 10 KB = ${ratio.toFixed(1)}`);
  const last = beta.sink.messages.at(-1)!.data.toString();
  t.match(resultsFields(Buffer.from(last))[0], /mailmesh=pass .*header\.d=alpha\.test .*header\.from=alpha\.test/, 'verified with the decrypted From domain\'s key');
});

t.test('unsigned tunnel content is refused by default; with `mark`, delivered as none only over a cipher with integrity', async (t) => {
  const defaults = loadConfig({ env: {}, cwd: tempDir(t) }).policy;
  t.same(defaults.inbound, { invalidSignature: 'reject', unknownSigner: 'mark', unsigned: 'reject', authorMismatch: 'reject', authorAlignment: 'strict', keyChanged: 'reject', undecryptable: 'reject' });
  const [, strictBeta] = await pair(t, { policies: [undefined, defaults] });
  const [, lenientBeta] = await pair(t, { policies: [undefined, LENIENT] });
  const original = 'From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: unsigned\r\n\r\nNo signature.\r\n';
  for (const [beta, expect] of [[strictBeta, /^550 5\.7\.1 Tunnel message refused: signature absent/], [lenientBeta, /^250 /]] as const) {
    const rec = await beta.directory.getRecord('beta.test');
    // OpenPGP integrity-protected data (SEIPD), encrypted to beta, signed by nobody.
    const armored = await openpgp.encrypt({ message: await openpgp.createMessage({ binary: new Uint8Array(Buffer.from(original)) }), encryptionKeys: await openpgp.readKey({ armoredKey: rec.keys.openpgp!.armored }) });
    const pgp = 'From: a@alpha.test\r\nTo: b@beta.test\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n' +
      `--b\r\nContent-Type: application/octet-stream\r\n\r\n${armored.replace(/\r?\n/g, '\r\n')}\r\n--b--\r\n`;
    t.match(await send(t, beta.smtpPort, 'a@alpha.test', 'b@beta.test', pgp), expect);
  }
  t.equal(strictBeta.sink.messages.length, 0);
  await lenientBeta.sink.received(1);
  t.match(resultsFields(lenientBeta.sink.messages[0]!.data)[0], /mailmesh=none \(decrypted pgp-mime, openpgp-seipd with integrity; signature absent; author alpha\.test\)\theader\.from=alpha\.test\tpolicy\.cipher=openpgp-seipd policy\.integrity=yes$/);
});

t.test('the sending gateway signs with the From domain\'s key when it is one of its domains, whatever MAIL FROM says', async (t) => {
  const [alpha, beta] = await pair(t);
  await alpha.directory.addDomain('eu.alpha.test', { formats: ['pgp-mime', 'smime'] });
  const message = 'From: Sales <x@eu.alpha.test>\r\nTo: b@beta.test\r\nSubject: offer\r\n\r\nBuy.\r\n';
  // The gateway learns of its new domain from the directory's change feed: try until it signs with it.
  let reply = '';
  for (let i = 0; i < 20 && !/^250 /.test(reply); i++) {
    reply = await send(t, alpha.smtpPort, 'bounces@alpha.test', 'b@beta.test', message);
    if (!/^250 /.test(reply)) await new Promise((r) => setTimeout(r, 100));
  }
  t.match(reply, /^250 /, 'delivered through both gateways');
  await beta.sink.received(1);
  const [ours] = resultsFields(beta.sink.messages.at(-1)!.data);
  // beta's discovery does not reach the new domain's key (alpha's DNS publishes key owner names for
  // alpha.test only), so the result is neutral; what counts is whose key signed.
  const eu = (await alpha.directory.getRecord('eu.alpha.test')).keys.openpgp!.fingerprint.toUpperCase();
  t.match(ours, new RegExp(`header\\.b=${eu} header\\.from=eu\\.alpha\\.test`), 'signed with the author domain\'s key, not MAIL FROM\'s');
});

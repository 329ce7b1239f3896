import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { parseDomain } from '../../directory/domain.js';
import { generateDomainKeys } from '../../directory/keys.js';
import { captureSink, loopbackPair, type LoopbackOptions } from '../../cli/demo/loopback.js';
import { encryptTunnel, readTunnel } from '../../gateway/tunnel/tunnel.js';
import type { PolicySettings } from '../../gateway/policy.js';
import { MailPolicy } from '../../gateway/gateway.js';
import { DEFAULT_POLICY, memoryDirectory, run, tempDir } from '../helpers.js';

function policy(over: Partial<PolicySettings> = {}): PolicySettings {
  return { ...DEFAULT_POLICY, ...over };
}

/** alpha.test and beta.test on loopback (cli/demo/loopback.ts), stopped when the test ends. */
async function pair(t: Test, opts: LoopbackOptions = {}) {
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], opts);
  t.teardown(close);
  return members;
}

async function swaks(port: number, args: string[]) {
  return run('swaks', ['--server', '127.0.0.1', '--port', String(port), '--helo', 'client.alpha.test', ...args], { allowFail: true });
}

t.test('alpha → beta: PGP/MIME between the gateways, the original arrives unchanged and verified', async (t) => {
  const [alpha, beta] = await pair(t);

  const dir = tempDir(t);
  const attachment = join(dir, 'report.bin');
  writeFileSync(attachment, randomBytes(20_000));
  const sent = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--header', 'Subject: quarterly report',
    '--body', 'Hello Bob,\r\nthe report is attached.\r\n', '--attach-type', 'application/octet-stream', '--attach', `@${attachment}`]);
  t.equal(sent.code, 0, sent.stderr + sent.stdout.toString());
  await beta.sink.received(1);

  const original = alpha.arrived[0]!;
  const between = beta.arrived[0]!.toString('latin1');
  t.match(between, /Content-Type: multipart\/encrypted;[\s\S]*protocol="application\/pgp-encrypted"/i, 'PGP/MIME between the gateways');
  t.match(between, /^Subject: \.\.\.$/m, 'the subject is hidden');
  t.notMatch(between, 'quarterly report');
  t.notMatch(between, 'Hello Bob');
  t.match(between, /-----BEGIN PGP MESSAGE-----/);

  const got = beta.sink.messages[0]!;
  t.same(got.to, ['b@beta.test']);
  const data = got.data;
  t.ok(data.subarray(data.length - original.length).equals(original), 'the original bytes, unchanged, at the end');
  const added = data.subarray(0, data.length - original.length).toString('latin1');
  const fields = added.split(/\r\n(?![ \t])/).filter(Boolean).map((f) => f.split(':')[0]!.toLowerCase());
  t.same(fields, ['received', 'authentication-results'], 'only a trace header and Authentication-Results were added');
  t.match(added, /Authentication-Results: mx\.beta\.test;[\s\S]*mailmesh=pass[\s\S]*header\.d=alpha\.test/);
  const alphaFpr = (await alpha.directory.getRecord('alpha.test')).keys.openpgp!.fingerprint;
  t.match(added, alphaFpr, 'names the signer key');
  t.match(await beta.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="pgp-mime",result="signature-valid"\} 1/);
  t.match(await alpha.metrics.render(), /mailmesh_tunnel_results_total\{direction="outbound",format="pgp-mime",result="encrypted"\} 1/);
  const lookups = [...(await alpha.metrics.render()).matchAll(/^mailmesh_discovery_lookups_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  t.equal(lookups, 1, 'one key discovery for the message: the plan made at RCPT time is used at DATA time');
});

t.test('S/MIME when the policy says so; decryptable by openssl cms; require and reject refuse at RCPT time', async (t) => {
  const pol = policy({ domains: { 'beta.test': { format: 'smime' }, 'nokey.test': { mode: 'require' }, '.strict.test': { fallback: 'reject' } } });
  const [alpha, beta] = await pair(t, { policies: [pol] });

  const sent = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--header', 'Subject: s/mime please', '--body', 'Hi via S/MIME']);
  t.equal(sent.code, 0, sent.stdout.toString());
  await beta.sink.received(1);
  const between = beta.arrived[0]!;
  t.match(between.toString('latin1'), /application\/pkcs7-mime; smime-type=authEnveloped-data/, 'S/MIME between the gateways: AES-256-GCM, as beta\'s `_mailmesh` pin announces');
  t.match(beta.sink.messages[0]!.data.toString(), /mailmesh=pass \(decrypted smime/);
  t.ok(beta.sink.messages[0]!.data.toString().endsWith(alpha.arrived[0]!.toString()));

  // What travelled decrypts with OpenSSL, using beta's domain key, and verifies against alpha's domain CA.
  const dir = tempDir(t);
  const betaRec = await beta.directory.getRecord('beta.test');
  const alphaRec = await alpha.directory.getRecord('alpha.test');
  writeFileSync(join(dir, 'msg.eml'), between);
  writeFileSync(join(dir, 'beta.pem'), betaRec.keys.smime!.chain[0]!);
  writeFileSync(join(dir, 'beta.key'), (await beta.directory.getSecrets('beta.test')).smime!.keyPkcs8Pem);
  writeFileSync(join(dir, 'alpha-ca.pem'), alphaRec.keys.smime!.chain[1]!);
  await run('openssl', ['cms', '-decrypt', '-in', join(dir, 'msg.eml'), '-recip', join(dir, 'beta.pem'), '-inkey', join(dir, 'beta.key'), '-out', join(dir, 'signed.eml')]);
  const verified = await run('openssl', ['cms', '-verify', '-in', join(dir, 'signed.eml'), '-CAfile', join(dir, 'alpha-ca.pem')]);
  t.ok(verified.stdout.equals(alpha.arrived[0]!), 'openssl recovers the original bytes');

  const required = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'x@nokey.test', '--quit-after', 'RCPT']);
  t.match(required.stdout.toString(), /<\*\* 550 5\.7\.1 Encryption to nokey\.test is required/);
  const rejected = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'x@sub.strict.test', '--quit-after', 'RCPT']);
  t.match(rejected.stdout.toString(), /<\*\* 550 5\.7\.1 Encryption to sub\.strict\.test/);
  t.equal(beta.sink.messages.length, 1, 'nothing else was delivered');
});

t.test('fallback tls: plain to a domain without a key, but TLS is required; a trigger refuses it', async (t) => {
  const plainHop = await captureSink(); // offers no STARTTLS
  t.teardown(() => plainHop.close());
  const [alpha] = await pair(t, { smarthosts: [plainHop.port] }); // beta's DNS knows nothing of other.test
  const r = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'x@other.test', '--quit-after', 'RCPT']);
  t.match(r.stdout.toString(), /<\*\* 451 4\.4\.1/, 'the next hop offers no TLS: deferred, never sent in the clear');
  t.equal(plainHop.messages.length, 0);

  const triggered = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--header', 'Subject: [secure] salaries', '--body', 'x']);
  // beta.test has a key here, so the trigger is satisfied: it is encrypted, and the hop is a plain sink.
  t.equal(triggered.code, 0, triggered.stdout.toString());
  await plainHop.received(1);
  t.match(plainHop.messages[0]!.data.toString(), /multipart\/encrypted/);
});

t.test('personal end-to-end mail passes untouched; a tampered tunnel message is refused with 554', async (t) => {
  const [alpha, beta] = await pair(t);

  const { publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'bob@beta.test' }], format: 'object' });
  const armored = await openpgp.encrypt({ message: await openpgp.createMessage({ text: 'for Bob only' }), encryptionKeys: publicKey });
  const personal = [
    'From: a@alpha.test', 'To: b@beta.test', 'Subject: personal', 'MIME-Version: 1.0',
    'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"', '',
    '--b1', 'Content-Type: application/pgp-encrypted', '', 'Version: 1', '',
    '--b1', 'Content-Type: application/octet-stream', '', armored.trim(), '', '--b1--', '',
  ].join('\r\n');
  const dir = tempDir(t);
  writeFileSync(join(dir, 'personal.eml'), personal);
  const sent = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--data', `@${join(dir, 'personal.eml')}`]);
  t.equal(sent.code, 0, sent.stdout.toString());
  await beta.sink.received(1);
  const received = beta.sink.messages[0]!.data.toString();
  t.ok(received.endsWith(alpha.arrived[0]!.toString()), 'unchanged end to end');
  t.match(received, armored.trim().split('\n').slice(2, 4).join('\r\n'), 'the personal ciphertext itself');
  t.notMatch(beta.sink.messages[0]!.data.toString(), 'Authentication-Results');

  // A tunnel message to beta whose ciphertext was altered: beta refuses it permanently.
  const sent2 = await swaks(alpha.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--body', 'second']);
  t.equal(sent2.code, 0);
  await beta.sink.received(2);
  const tunnel = beta.arrived[1]!.toString('latin1');
  // Flip one base64 digit deep inside the armored ciphertext (the key packets up front stay intact).
  const lines = tunnel.split('\r\n');
  const first = lines.findIndex((l) => l.startsWith('-----BEGIN PGP MESSAGE-----'));
  const victim = first + 8;
  lines[victim] = lines[victim]!.slice(0, 10) + (lines[victim]![10] === 'A' ? 'B' : 'A') + lines[victim]!.slice(11);
  const tampered = lines.join('\r\n');
  t.not(tampered, tunnel);
  writeFileSync(join(dir, 'tampered.eml'), tampered);
  const refused = await swaks(beta.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--data', `@${join(dir, 'tampered.eml')}`]);
  t.match(refused.stdout.toString(), /<\*\* 554 5\.7\.5 The tunnel message cannot be decrypted/);
  t.equal(beta.sink.messages.length, 2, 'nothing delivered');
});

t.test('inbound: a tunnel message signed by a key that is not the sender domain\'s is key-changed: refused by default, or marked by policy', async (t) => {
  const [, beta] = await pair(t);
  const [, lenientBeta] = await pair(t, { policies: [undefined, policy({ inbound: { ...DEFAULT_POLICY.inbound, keyChanged: 'mark' } })] });
  // An impostor with its own keys for alpha.test encrypts to the real beta key and signs with its own.
  const impostor = await generateDomainKeys(parseDomain('alpha.test'), { openpgp: 'curve25519', validDays: 30 }, new Date());
  const original = Buffer.from('From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: pay this invoice\r\n\r\nTrust me.\r\n');
  const refusal = new RegExp(`<\\*\\* 451 4\\.7\\.5 Tunnel message refused: signed by key ${impostor.keys.openpgp!.fingerprint}, which is none of the current, next or previous keys of alpha\\.test \\(KEY_CHANGED\\)`);
  const dir = tempDir(t);
  for (const [target, expect] of [[beta, refusal], [lenientBeta, /<- {2}250 /]] as const) {
    const betaRec = await target.directory.getRecord('beta.test');
    const forged = await encryptTunnel('pgp-mime', readTunnel(original), { domain: parseDomain('alpha.test'), keys: impostor.keys, secrets: impostor.secrets }, { domain: betaRec.domain, keys: betaRec.keys });
    writeFileSync(join(dir, 'forged.eml'), forged);
    const r = await swaks(target.smtpPort, ['--from', 'a@alpha.test', '--to', 'b@beta.test', '--data', `@${join(dir, 'forged.eml')}`]);
    t.match(r.stdout.toString(), expect);
  }
  t.equal(beta.sink.messages.length, 0, 'the strict gateway delivered nothing');
  await lenientBeta.sink.received(1);
  const marked = lenientBeta.sink.messages[0]!.data.toString();
  t.match(marked, /mailmesh=fail \(decrypted [^)]*signature key-changed; author alpha\.test\)/, 'delivered, but as a fail');
  t.notMatch(marked, /mailmesh=pass/);
  t.ok(marked.endsWith(original.toString()));
});

t.test('smtp.ourDomains: exact domains and the `.example.org` form (its subdomains) are inbound', async (t) => {
  const directory = await memoryDirectory();
  await directory.addDomain('alpha.test');
  const discovery = { discover: async () => { throw new Error('not asked'); } };
  const mail = await MailPolicy.create({ directory, discovery, policy: DEFAULT_POLICY, authservId: 'mx.alpha.test', extraDomains: ['other.test', '.sub.test'] });
  t.teardown(() => mail.close());
  const ours = ['alpha.test', 'other.test', 'a.sub.test', 'b.a.sub.test', 'sub.test', 'x.other.test', 'beta.test'].filter((d) => mail.ourDomain(parseDomain(d)));
  t.same(ours, ['alpha.test', 'other.test', 'a.sub.test', 'b.a.sub.test']);
});

/**
 * The gateway across key changes (issue #10, docs/lifecycle.md): our key ring (current, next,
 * retained keys open inbound mail), tunnel mail that cannot be opened is refused rather than
 * delivered as ciphertext, peers' next and previous keys sign validly and an unannounced one
 * is `key-changed`, outbound mail during a peer's roll opens with either of its keys, and which
 * of our keys each peer encrypted to is recorded. Real SMTP over real sockets (SmtpClient).
 */
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import t, { type Test } from 'tap';
import { Directory } from '../../directory/directory.js';
import { parseDomain, type Domain } from '../../directory/domain.js';
import { MailmeshError } from '../../directory/errors.js';
import { generateDomainKeys, type DomainKeySet } from '../../directory/keys.js';
import { Metrics } from '../../directory/metrics.js';
import { ownCapabilities, secretsContext, SMIME_AEAD, type DomainRecord, type DomainSecrets, type RetainedKeys, type TunnelFormat } from '../../directory/record.js';
import { Sealer } from '../../directory/seal.js';
import { MemoryStore } from '../../directory/store/memory.js';
import type { Store } from '../../directory/store/store.js';
import type { Discovered } from '../../federation/discovery.js';
import { MailPolicy, seenKey, type SeenByPeer } from '../../gateway/gateway.js';
import { captureSink } from '../../cli/demo/loopback.js';
import { DEFAULT_POLICY } from '../helpers.js';
import type { InboundPolicy, PolicySettings } from '../../gateway/policy.js';
import { SmtpClient, type Reply } from '../../gateway/smtp/client.js';
import { decryptTunnel, encryptTunnel, readTunnel, TUNNEL_HEADER, type OwnDomain } from '../../gateway/tunnel/tunnel.js';
import { startGateway } from './smtp/helpers.js';

const OPTS = { openpgp: 'curve25519' as const, validDays: 365 };
const NOW = new Date();
const ALPHA = parseDomain('alpha.test');
const BETA = parseDomain('beta.test');
const FORMATS = ['pgp-mime', 'smime'] as const;

// Every key set these tests use, made once (the RSA-3072 S/MIME keys take a second or two each).
const gen = (d: Domain) => generateDomainKeys(d, OPTS, NOW);
const [alphaNow, alphaNext, alphaOld, alphaRogue, betaNow, betaNext, betaOld, betaOlder] = await Promise.all([
  gen(ALPHA), gen(ALPHA), gen(ALPHA), gen(ALPHA), gen(BETA), gen(BETA), gen(BETA), gen(BETA),
]);

const own = (domain: Domain, k: DomainKeySet): OwnDomain => ({ domain, keys: k.keys, secrets: k.secrets });
const retained = (k: DomainKeySet, o: Partial<RetainedKeys> = {}): RetainedKeys => ({
  keys: k.keys,
  secrets: k.secrets,
  retired: NOW.toISOString(),
  until: new Date(NOW.getTime() + 30 * 86_400_000).toISOString(),
  ...o,
});

/** What alpha.test's gateway would send to beta.test when it believes `to` are beta's keys, signed with alpha's `signer`. */
function sealFromAlpha(format: (typeof FORMATS)[number], to: DomainKeySet, signer: DomainKeySet = alphaNow, subject = 'hello'): Promise<Buffer> {
  const original = Buffer.from(`From: a@alpha.test\r\nTo: b@beta.test\r\nSubject: ${subject}\r\n\r\nHi Bob.\r\n`);
  return encryptTunnel(format, readTunnel(original), own(ALPHA, signer), { domain: BETA, keys: to.keys, capabilities: [SMIME_AEAD] });
}

/** The peer as discovery describes it; tests change it between messages. */
interface PeerView {
  keys: DomainKeySet;
  next?: DomainKeySet;
  previous?: DomainKeySet[];
  /** Keys a cache still answers with (cache: 'hit') until the gateway forgets them. */
  cached?: DomainKeySet;
  /** How often the gateway forgot the cached answer. */
  forgotten?: number;
  /** The peer revoked its keys and no new ones are accepted yet: no keys, a new one awaited until then. */
  awaiting?: string;
}

const inbound = (o: Partial<InboundPolicy>): PolicySettings => ({ ...DEFAULT_POLICY, inbound: { ...DEFAULT_POLICY.inbound, ...o } });

type GatewayOptions = { policy?: PolicySettings; peer?: PeerView; store?: (s: Store) => Store; clock?: () => Date };

/**
 * beta.test's gateway with the given key ring in its store (written as a roll leaves it: the
 * current keys in the record, next keys announced in it, old keys retained in the secrets),
 * alpha.test known through a fake KeyDiscovery, inbound and outbound mail captured.
 */
async function betaGateway(t: Test, ring: { next?: DomainKeySet; retained?: RetainedKeys[] }, o: GatewayOptions = {}) {
  const masterKey = randomBytes(32);
  const store = (o.store ?? ((s) => s))(new MemoryStore());
  const directory = await Directory.open(store, masterKey, { keys: OPTS });
  const secrets: DomainSecrets = { ...betaNow.secrets, next: ring.next?.secrets, retained: ring.retained };
  const at = NOW.toISOString();
  await store.putRecord(
    {
      domain: BETA,
      keys: betaNow.keys,
      next: ring.next?.keys,
      gateways: { smtp: [] },
      formats: ['pgp-mime', 'smime'],
      capabilities: ownCapabilities(betaNow.keys),
      validity: { notBefore: at, notAfter: null },
      updated: at,
      status: 'active',
      provenance: { source: 'local', verified: 'written by the test', at },
    },
    { ifSerial: null, secrets: new Sealer(masterKey).seal(Buffer.from(JSON.stringify(secrets)), secretsContext(BETA)) },
  );
  return serve(t, directory, o);
}

/** A gateway for the directory's domains, alpha.test known through a fake KeyDiscovery, inbound and outbound mail captured. */
async function serve(t: Test, directory: Directory, o: GatewayOptions = {}) {
  const at = NOW.toISOString();
  const peer: PeerView = o.peer ?? { keys: alphaNow };
  const discovery = {
    discover: async (domain: string): Promise<Discovered> => {
      if (domain !== ALPHA) throw new MailmeshError('DOMAIN_NOT_FOUND', domain);
      const base = { domain: ALPHA, formats: ['pgp-mime', 'smime'] as TunnelFormat[], capabilities: [SMIME_AEAD], provenance: { source: 'directory-https' as const, verified: 'signed record', at, trust: 'signed-record' as const } };
      if (peer.awaiting) return { ...base, keys: {}, provenance: { source: 'none', verified: 'key revoked', at, trust: 'unauthenticated' }, cache: 'miss', awaitingKeysUntil: peer.awaiting };
      if (peer.cached) return { ...base, keys: peer.cached.keys, cache: 'hit' };
      return { ...base, keys: peer.keys.keys, next: peer.next?.keys, previous: peer.previous?.map((p) => p.keys), cache: 'miss' };
    },
    forget: async (domain: string) => {
      if (domain === ALPHA) peer.cached = undefined;
      peer.forgotten = (peer.forgotten ?? 0) + 1;
    },
  };
  const logs: { msg?: string; [k: string]: unknown }[] = [];
  const logger = { warn: (x: object, msg?: string) => logs.push({ ...x, msg }), info: (x: object, msg?: string) => logs.push({ ...x, msg }) };
  const metrics = new Metrics();
  const mail = await MailPolicy.create({ directory, discovery, policy: o.policy ?? DEFAULT_POLICY, authservId: 'mx.beta.test', metrics, logger, clock: o.clock });
  t.teardown(() => mail.close());
  const sink = await captureSink();
  const out = await captureSink();
  t.teardown(() => Promise.all([sink.close(), out.close()]));
  const { port } = await startGateway(t, { inbound: sink, outbound: out }, { name: 'mx.beta.test', ...mail.gatewayHooks() });
  const client = await SmtpClient.connect({ host: '127.0.0.1', port, helo: 'client.test', tls: 'none' });
  t.teardown(() => client.close());
  /** One transaction; the reply to the end of DATA (or the refusal of RCPT). */
  const send = async (from: string, to: string, data: Buffer): Promise<Reply> => {
    await client.mail(from);
    const rcpt = await client.rcpt(to);
    if (rcpt.code !== 250) {
      await client.rset();
      return rcpt;
    }
    return client.data(data);
  };
  return { store: directory.store, directory, mail, sink, out, logs, metrics, peer, send };
}

const text = (r: Reply) => `${r.code} ${r.lines.join(' ')}`;

/** The key ID (16 upper-case hex digits) of a key set's OpenPGP encryption subkey: what a PKESK packet names (RFC 4880 §5.1). */
async function encryptionKeyId(k: DomainKeySet): Promise<string> {
  const key = await openpgp.readKey({ armoredKey: k.keys.openpgp!.armored });
  return (await key.getEncryptionKey()).getKeyID().toHex().toUpperCase();
}

t.test('a tunnel message encrypted to a key we do not hold is refused with 554 5.7.5 naming the key, never delivered as ciphertext', async (t) => {
  // beta.test replaced its keys and kept nothing of the old ones (today's `domain remove` + `domain add`);
  // alpha.test still encrypts to the old key.
  const beta = await betaGateway(t, {});
  const pgp = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('pgp-mime', betaOld));
  t.equal(pgp.code, 554, text(pgp));
  t.match(text(pgp), `554 5.7.5 `);
  t.match(text(pgp), `encrypted to key ${await encryptionKeyId(betaOld)}, which this gateway does not hold (TUNNEL_NOT_FOR_US)`);
  const smime = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('smime', betaOld));
  t.equal(smime.code, 554, text(smime));
  t.match(text(smime), /^554 5\.7\.5 .*encrypted to certificate serial [0-9a-f]+ issued by CN=[^,]*beta\.test.*, which this gateway does not hold \(TUNNEL_NOT_FOR_US\)/);
  t.equal(beta.sink.messages.length, 0, 'nothing was delivered');
  t.match(await beta.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="pgp-mime",result="undecryptable"\} 1/);
  t.match(await beta.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="smime",result="undecryptable"\} 1/);
  const logged = beta.logs.filter((l) => l.msg === 'tunnel message refused');
  t.equal(logged.length, 2, 'both refusals are logged');
  t.match(String(logged[0]!.err), /TUNNEL_NOT_FOR_US|not encrypted to this domain key/);
});

t.test('personally encrypted mail without the tunnel header, not to our keys, still passes untouched', async (t) => {
  const beta = await betaGateway(t, {});
  const personals: Buffer[] = [];
  for (const format of FORMATS) {
    // Someone's end-to-end mail: what a person's client sends (no tunnel header), here to a key of alpha's.
    const sealed = await sealFromAlpha(format, alphaRogue);
    const personal = Buffer.from(sealed.toString('latin1').replace(new RegExp(`^${TUNNEL_HEADER}: [^\\r]*\\r\\n`, 'im'), ''), 'latin1');
    t.notMatch(personal.toString('latin1'), TUNNEL_HEADER);
    personals.push(personal);
    const r = await beta.send('a@alpha.test', 'b@beta.test', personal);
    t.equal(r.code, 250, `${format}: ${text(r)}`);
  }
  await beta.sink.received(2);
  t.match(await beta.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="none",result="passed"\} 2/);
  for (const [i, m] of beta.sink.messages.entries()) t.ok(m.data.subarray(m.data.length - personals[i]!.length).equals(personals[i]!), 'delivered as it came');
});

/** The Authentication-Results field we added to a delivered message, unfolded. */
function ourResults(data: Buffer): string {
  const head = data.subarray(0, data.indexOf('\r\n\r\n')).toString('utf8');
  return head.split(/\r\n(?![ \t])/).find((f) => /^authentication-results: mx\.beta\.test;/i.test(f))?.replace(/\r\n/g, '') ?? '';
}

/** The tunnel message beta's gateway sent to alpha for a plain message from b@beta.test. */
async function outboundToAlpha(beta: Awaited<ReturnType<typeof betaGateway>>, n: number): Promise<Buffer> {
  const r = await beta.send('b@beta.test', 'a@alpha.test', Buffer.from(`From: b@beta.test\r\nTo: a@alpha.test\r\nSubject: reply ${n}\r\n\r\nHi Alice.\r\n`));
  if (r.code !== 250) throw new Error(text(r));
  await beta.out.received(n);
  return beta.out.messages[n - 1]!.data;
}

const SMIME_TO_ALPHA: PolicySettings = { ...DEFAULT_POLICY, domains: { 'alpha.test': { format: 'smime' } } };

t.test('our key ring: mail to our announced next key or a retained old key opens; we sign with the current key', async (t) => {
  for (const format of FORMATS) {
    const beta = await betaGateway(t, { next: betaNext, retained: [retained(betaOld)] }, { policy: format === 'smime' ? SMIME_TO_ALPHA : DEFAULT_POLICY });
    for (const [i, to] of [betaNow, betaNext, betaOld].entries()) {
      const r = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha(format, to, alphaNow, `to key ${i}`));
      t.equal(r.code, 250, `${format} to ${['current', 'next', 'retained'][i]} key: ${text(r)}`);
      await beta.sink.received(i + 1);
      const got = beta.sink.messages[i]!.data.toString();
      t.match(got, `Subject: to key ${i}`, 'decrypted');
      t.match(ourResults(beta.sink.messages[i]!.data), /mailmesh=pass .*header\.d=alpha\.test/);
    }
    const sealed = await outboundToAlpha(beta, 1);
    const opened = await decryptTunnel(readTunnel(sealed), own(ALPHA, alphaNow), { domain: BETA, keys: betaNow.keys });
    t.equal(opened.signature, 'valid', `${format}: alpha verifies it with beta's current key`);
    t.equal(opened.signerFingerprint, format === 'pgp-mime' ? betaNow.keys.openpgp!.fingerprint : betaNow.keys.smime!.fingerprint, 'signed with the current key');
  }
});

t.test('mail to a retained key whose private key was erased is refused naming it; a garbled one gets the one generic reply', async (t) => {
  const beta = await betaGateway(t, { retained: [retained(betaOld), retained(betaOlder, { secrets: {} })] });
  const erased = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('pgp-mime', betaOlder));
  t.equal(text(erased), `554 5.7.5 The tunnel message is encrypted to beta.test's key ${betaOlder.keys.openpgp!.fingerprint}, whose private key this gateway no longer holds (TUNNEL_NO_KEY)`);
  const smime = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('smime', betaOlder));
  t.equal(text(smime), `554 5.7.5 The tunnel message is encrypted to beta.test's key ${betaOlder.keys.smime!.fingerprint}, whose private key this gateway no longer holds (TUNNEL_NO_KEY)`);

  // Encrypted to a key we hold, failing after decryption: no word about why (EFAIL, docs/security.md).
  const good = (await sealFromAlpha('pgp-mime', betaOld)).toString('latin1');
  const at = good.indexOf('-----BEGIN PGP MESSAGE-----') + 400;
  const garbled = Buffer.from(good.slice(0, at) + (good[at] === 'A' ? 'B' : 'A') + good.slice(at + 1), 'latin1');
  const r = await beta.send('a@alpha.test', 'b@beta.test', garbled);
  t.equal(text(r), '554 5.7.5 The tunnel message cannot be decrypted and authenticated (TUNNEL_UNAUTHENTICATED)');
  t.equal(beta.sink.messages.length, 0);
  for (const format of FORMATS) t.match(await beta.metrics.render(), `mailmesh_tunnel_results_total{direction="inbound",format="${format}",result="undecryptable"} 1`);
  t.match(await beta.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="pgp-mime",result="unauthenticated"\} 1/);

  // A tunnel marker on something that is not encrypted: refused too, never passed as plain mail.
  const unencrypted = await beta.send('a@alpha.test', 'b@beta.test', Buffer.from(`From: a@alpha.test\r\nTo: b@beta.test\r\n${TUNNEL_HEADER}: pgp-mime\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n`));
  t.equal(text(unencrypted), '554 5.7.5 The tunnel message is not PGP/MIME or S/MIME encrypted (TUNNEL_MALFORMED)');

  // `undecryptable: defer`: the sender keeps it and tries again (by then it may know our current key).
  const deferring = await betaGateway(t, {}, { policy: inbound({ undecryptable: 'defer' }) });
  const later = await deferring.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('pgp-mime', betaOld));
  t.match(text(later), /^451 4\.7\.5 The tunnel message is encrypted to key [0-9A-F]{16}, which this gateway does not hold \(TUNNEL_NOT_FOR_US\)$/);
  t.equal(deferring.sink.messages.length, 0);
});

t.test('peers: a signature by the peer\'s next or previous key is valid; by a key it never announced, key-changed (reject or mark)', async (t) => {
  const peer: PeerView = { keys: alphaNow, next: alphaNext, previous: [alphaOld] };
  const strict = await betaGateway(t, {}, { peer });
  const marking = await betaGateway(t, {}, { peer, policy: inbound({ keyChanged: 'mark' }) });
  let delivered = 0;
  for (const format of FORMATS) {
    for (const [name, signer] of [['next', alphaNext], ['previous', alphaOld]] as const) {
      const r = await strict.send('a@alpha.test', 'b@beta.test', await sealFromAlpha(format, betaNow, signer));
      t.equal(r.code, 250, `${format}, signed with alpha's ${name} key: ${text(r)}`);
      await strict.sink.received(++delivered);
      const fpr = format === 'pgp-mime' ? signer.keys.openpgp!.fingerprint : signer.keys.smime!.fingerprint;
      t.match(ourResults(strict.sink.messages.at(-1)!.data), new RegExp(`mailmesh=pass .*header\\.d=alpha\\.test header\\.b=${fpr}`, 'i'));
    }
    // Signed by a key alpha.test never announced (today's `domain remove` + `domain add`, or a forger).
    const rogue = await sealFromAlpha(format, betaNow, alphaRogue);
    const refused = await strict.send('a@alpha.test', 'b@beta.test', rogue);
    const rogueFpr = format === 'pgp-mime' ? alphaRogue.keys.openpgp!.fingerprint : alphaRogue.keys.smime!.fingerprint;
    t.equal(text(refused), `451 4.7.5 Tunnel message refused: signed by key ${rogueFpr}, which is none of the current, next or previous keys of alpha.test (KEY_CHANGED)`);
    const marked = await marking.send('a@alpha.test', 'b@beta.test', rogue);
    t.equal(marked.code, 250, text(marked));
    await marking.sink.received(format === 'pgp-mime' ? 1 : 2);
    t.match(ourResults(marking.sink.messages.at(-1)!.data), /mailmesh=fail \(decrypted [^)]*signature key-changed; author alpha\.test\)/i);
  }
  t.equal(strict.sink.messages.length, 4, 'the strict gateway delivered only the validly signed ones');
  t.match(await strict.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="pgp-mime",result="signature-key-changed"\} 1/);
  t.match(await marking.metrics.render(), /mailmesh_tunnel_results_total\{direction="inbound",format="smime",result="signature-key-changed"\} 1/);
});

t.test('a key change the cached answer does not know (alpha revoked): the cache is forgotten and the fresh answer decides; still key-changed, 451', async (t) => {
  for (const format of FORMATS) {
    // beta's discovery cached alpha's old keys; alpha revoked them and signs with its new ones.
    const peer: PeerView = { keys: alphaNext, previous: [], cached: alphaNow };
    const beta = await betaGateway(t, {}, { peer });
    const r = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha(format, betaNow, alphaNext));
    t.equal(r.code, 250, `${format}, signed with alpha's new key: ${text(r)}`);
    t.equal(peer.forgotten, 1, 'the cached answer was forgotten once');
    if (r.code !== 250) continue;
    await beta.sink.received(1);
    t.match(ourResults(beta.sink.messages.at(-1)!.data), /mailmesh=pass .*header\.d=alpha\.test/i);
    // A key the fresh answer does not know either: a temporary failure (the change may not have
    // reached the directories yet; a forgery never passes), after one fresh lookup, not one per message.
    peer.cached = alphaNext;
    const rogue = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha(format, betaNow, alphaRogue));
    t.match(text(rogue), /^451 4\.7\.5 Tunnel message refused: signed by key \S+, which is none of the current, next or previous keys of alpha\.test \(KEY_CHANGED\)$/);
    t.equal(peer.forgotten, 2);
    const again = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha(format, betaNow, alphaRogue));
    t.equal(again.code, 451, 'a fresh (uncached) answer is not looked up again');
    t.equal(peer.forgotten, 2);
    t.equal(beta.sink.messages.length, 1);
  }
});

t.test('we sign with keys that match the record we name, though another process (a CLI) rolled or revoked them a moment ago', async (t) => {
  const store = new MemoryStore();
  const masterKey = randomBytes(32);
  const cli = await Directory.open(store, masterKey, { keys: OPTS });
  await cli.addDomain(BETA);
  /** Runs once inside serve's next secrets read: a write between its reading the record and the secrets. */
  let duringRead: (() => Promise<unknown>) | undefined;
  const interleaved = (s: Store): Store =>
    new Proxy(s, {
      get(target, p) {
        const v: unknown = Reflect.get(target, p);
        if (p === 'getSecrets') {
          return async (domain: Domain) => {
            const write = duringRead;
            duringRead = undefined;
            await write?.();
            return target.getSecrets(domain);
          };
        }
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  // serve's directory: a MemoryStore has no change feed, so writes by `cli` never reach its cached records.
  const directory = await Directory.open(interleaved(store), masterKey, { keys: OPTS });
  for (const format of FORMATS) {
    const beta = await serve(t, directory, { policy: format === 'smime' ? SMIME_TO_ALPHA : DEFAULT_POLICY });
    await cli.announceRoll(BETA);
    const switched = await cli.finishRoll(BETA, { now: true });
    const signed = await outboundToAlpha(beta, 1);
    t.equal((await decryptTunnel(readTunnel(signed), own(ALPHA, alphaNow), { domain: BETA, keys: switched.keys })).signature, 'valid', `${format}: signed by the key the new record names, after the roll`);
    let revoked: DomainRecord | undefined;
    duringRead = async () => (revoked = await cli.revokeKeys(BETA, 'compromised'));
    const after = await outboundToAlpha(beta, 2);
    t.equal((await decryptTunnel(readTunnel(after), own(ALPHA, alphaNow), { domain: BETA, keys: revoked!.keys })).signature, 'valid', `${format}: revoked while the gateway read its keys`);
  }
});

t.test('outbound during the peer\'s announced roll: encrypted to its current and its next key, opens with either', async (t) => {
  for (const format of FORMATS) {
    const beta = await betaGateway(t, {}, { peer: { keys: alphaNow, next: alphaNext }, policy: format === 'smime' ? SMIME_TO_ALPHA : DEFAULT_POLICY });
    const sealed = await outboundToAlpha(beta, 1);
    for (const [name, k] of [['current', alphaNow], ['next', alphaNext]] as const) {
      const opened = await decryptTunnel(readTunnel(sealed), own(ALPHA, k), { domain: BETA, keys: betaNow.keys });
      t.equal(opened.signature, 'valid', `${format}: opens with alpha's ${name} key alone`);
      t.match(opened.inner.toString(), 'Subject: reply 1');
    }
    // Once the roll is over (no next key), to the current key only.
    beta.peer.next = undefined;
    const after = await outboundToAlpha(beta, 2);
    await t.rejects(decryptTunnel(readTunnel(after), own(ALPHA, alphaNext)), { code: 'TUNNEL_NOT_FOR_US' }, `${format}: not to the next key without a roll`);
  }
});

t.test('outbound while the peer revoked its keys and its new ones are not confirmed yet: 451 4.7.5, never plain text; plain again once nothing is awaited', async (t) => {
  const policy: PolicySettings = { ...DEFAULT_POLICY, default: { ...DEFAULT_POLICY.default, fallback: 'reject' } };
  const beta = await betaGateway(t, {}, { policy, peer: { keys: alphaNow, awaiting: new Date(NOW.getTime() + 86_400_000).toISOString() } });
  const held = await beta.send('b@beta.test', 'a@alpha.test', Buffer.from('From: b@beta.test\r\nTo: a@alpha.test\r\nSubject: held\r\n\r\nHi.\r\n'));
  t.equal(held.code, 451, text(held));
  t.match(text(held), /4\.7\.5 alpha\.test revoked its keys and no new key is confirmed yet/);
  t.equal(beta.out.messages.length, 0, 'nothing sent');
  // The same answer without a key awaited (past federation.staleMaxSec): the policy's fallback decides (here reject).
  beta.peer.awaiting = undefined;
  beta.peer.keys = { keys: {} } as DomainKeySet;
  const fallback = await beta.send('b@beta.test', 'a@alpha.test', Buffer.from('From: b@beta.test\r\nTo: a@alpha.test\r\nSubject: plain\r\n\r\nHi.\r\n'));
  t.match(text(fallback), /^550 5\.7\.1 Encryption to alpha\.test is required and not possible: no key found/, 'the fallback, as for any domain without keys');
  t.equal(beta.out.messages.length, 0);
});

t.test('which of our keys each peer encrypted to is recorded in the store, on change or hourly; a failed write never fails the mail', async (t) => {
  // The gateway's clock, ahead of real time: the messages are signed at real time, which must never be in
  // the gateway's future (NOW + 60 s was, when key generation on a loaded machine took over a minute).
  let now = new Date(Date.now() + 600_000);
  let writes = 0;
  const counting = (s: Store): Store =>
    new Proxy(s, {
      get(target, p) {
        const v: unknown = Reflect.get(target, p);
        if (p === 'kvPut') return (key: string, value: string, o?: object) => ((writes += key === seenKey(BETA) ? 1 : 0), target.kvPut(key, value, o));
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const beta = await betaGateway(t, { next: betaNext }, { store: counting, clock: () => now, policy: inbound({ keyChanged: 'mark' }) });
  const seen = async (): Promise<SeenByPeer> => JSON.parse((await beta.store.kvGet(seenKey(BETA))) ?? '{}') as SeenByPeer;
  const deliver = async (format: (typeof FORMATS)[number], to: DomainKeySet) => t.equal((await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha(format, to))).code, 250);

  await deliver('pgp-mime', betaNow);
  t.same(await seen(), { 'alpha.test': { openpgp: betaNow.keys.openpgp!.fingerprint, at: now.toISOString() } });
  await deliver('pgp-mime', betaNow);
  t.equal(writes, 1, 'the same key again within the hour: no write');
  await deliver('smime', betaNext);
  t.same(await seen(), { 'alpha.test': { openpgp: betaNow.keys.openpgp!.fingerprint, smime: betaNext.keys.smime!.fingerprint, at: now.toISOString() } }, 'alpha switched its S/MIME to our next key');
  now = new Date(now.getTime() + 3_600_001);
  await deliver('pgp-mime', betaNow);
  t.equal(writes, 3, 'the same key an hour later: written again');
  t.equal((await seen())['alpha.test']!.at, now.toISOString());
  await deliver('pgp-mime', betaNext);
  t.equal((await seen())['alpha.test']!.openpgp, betaNext.keys.openpgp!.fingerprint, 'alpha switched to our next key');
  // Only a valid signature speaks for the peer: a message signed by a key alpha never announced (delivered under `mark`) records nothing.
  const forged = await beta.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('pgp-mime', betaNow, alphaRogue));
  t.equal(forged.code, 250, text(forged));
  t.equal((await seen())['alpha.test']!.openpgp, betaNext.keys.openpgp!.fingerprint, 'unchanged');
  t.equal(writes, 4);

  // A store that refuses the write: logged, the mail goes on.
  const failing = (s: Store): Store =>
    new Proxy(s, {
      get(target, p) {
        const v: unknown = Reflect.get(target, p);
        if (p === 'kvPut') return () => Promise.reject(new MailmeshError('STORE_UNAVAILABLE', 'kv write refused by the test'));
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const broken = await betaGateway(t, {}, { store: failing });
  const r = await broken.send('a@alpha.test', 'b@beta.test', await sealFromAlpha('pgp-mime', betaNow));
  t.equal(r.code, 250, text(r));
  await broken.sink.received(1);
  t.match(broken.logs.find((l) => l.msg === 'recording the key a peer encrypted to failed'), { err: /kv write refused by the test/, domain: 'beta.test', peer: 'alpha.test' });
});

t.test('the key ring follows Directory.announceRoll, finishRoll, renewSmime, revokeKeys and pruneRetained while the gateway runs', async (t) => {
  let clock = new Date(); // keys made now, used at once by alpha's (real-time) encryption
  const directory = await Directory.open(new MemoryStore(), randomBytes(32), { keys: OPTS, clock: () => clock });
  const first = await directory.addDomain(BETA);
  const beta = await serve(t, directory);
  let n = 0;
  /** alpha's message to beta.test, encrypted to `keys` (as alpha's gateway believes them), signed with alpha's current key. */
  const deliver = async (format: (typeof FORMATS)[number], keys: DomainRecord['keys'], what: string) => {
    const sealed = await sealFromAlpha(format, { keys, secrets: {} }, alphaNow, `${what} ${++n}`);
    return beta.send('a@alpha.test', 'b@beta.test', sealed);
  };
  const opens = async (format: (typeof FORMATS)[number], keys: DomainRecord['keys'], what: string) => {
    const r = await deliver(format, keys, what);
    t.equal(r.code, 250, `${format}, ${what}: ${text(r)}`);
    await beta.sink.received(n);
    t.match(beta.sink.messages.at(-1)!.data.toString(), `Subject: ${what} ${n}`, 'decrypted');
  };

  const announced = await directory.announceRoll(BETA);
  await beta.mail.settled();
  for (const format of FORMATS) {
    await opens(format, announced.next!, 'to the announced next key');
    await opens(format, first.keys, 'to the current key during the overlap');
  }

  const switched = await directory.finishRoll(BETA, { now: true });
  await beta.mail.settled();
  t.equal(switched.keys.openpgp!.fingerprint, announced.next!.openpgp!.fingerprint);
  for (const format of FORMATS) {
    await opens(format, first.keys, 'to the retained old key after the switch');
    await opens(format, switched.keys, 'to the new current key');
  }
  const signed = await outboundToAlpha(beta, 1);
  t.equal((await decryptTunnel(readTunnel(signed), own(ALPHA, alphaNow), { domain: BETA, keys: switched.keys })).signerFingerprint, switched.keys.openpgp!.fingerprint, 'signed with the new current key');

  const renewed = await directory.renewSmime(BETA);
  await beta.mail.settled();
  t.not(renewed.keys.smime!.fingerprint, switched.keys.smime!.fingerprint);
  await opens('smime', switched.keys, 'to the S/MIME leaf before its renewal');
  await opens('smime', renewed.keys, 'to the renewed leaf');

  const revoked = await directory.revokeKeys(BETA, 'compromised');
  await beta.mail.settled();
  for (const format of FORMATS) {
    await opens(format, renewed.keys, 'to the revoked key, still in flight');
    await opens(format, revoked.keys, 'to the keys made at the revocation');
  }

  // Past keys.retainDays the old private keys are erased: mail to them is refused, never passed on.
  clock = new Date(clock.getTime() + 400 * 86_400_000);
  t.ok((await directory.pruneRetained(BETA)) > 0, 'retained keys erased');
  for (const format of FORMATS) {
    const r = await deliver(format, first.keys, 'to an erased key');
    t.match(text(r), /^554 5\.7\.5 The tunnel message is encrypted to .*, which this gateway does not hold \(TUNNEL_NOT_FOR_US\)$/, `${format}: ${text(r)}`);
  }
  t.equal(beta.sink.messages.length, n - 2, 'everything but the two to erased keys was delivered');
});

import t from 'tap';
import { encodeHeader, encodeQuestion, encodeRR, FLAG, nameToWire, TYPE, txtRdata } from '../../directory/dnswire.js';
import { isMailmeshError } from '../../directory/errors.js';
import { signPayload, verifySigned } from '../../directory/signed.js';
import { decodeResponse, lookupRecords, stubResolver, txtText } from '../../federation/dns.js';
import { parsePin, pinMatches } from '../../federation/pin.js';
import { seeded, throwsCode } from '../helpers.js';
import { mutate } from '../directory/dns/helpers.js';
import { memoryDirectory, startZone } from './helpers.js';

const FPR = 'A'.repeat(40);
const SHA = 'b'.repeat(64);

t.test('_mailmesh TXT pins', async (t) => {
  t.same(parsePin(`v=mm1; pgp=${FPR.toLowerCase()}; smime=${SHA.toUpperCase()}; dir=https://dir.example`), { pgp: FPR, smime: SHA, dir: 'https://dir.example' });
  t.same(parsePin(`v=mm1;pgp=${FPR}`), { pgp: FPR });
  t.same(parsePin(`v=mm1; pgp=${FPR}; caps=smime-aes-256-gcm, smime-future`), { pgp: FPR, caps: ['smime-aes-256-gcm', 'smime-future'] }, 'capabilities');
  throwsCode(t, () => parsePin(`v=mm1; pgp=${FPR}; caps=a b`), 'SIGNED_RECORD_MALFORMED', 'caps not names');
  t.same(parsePin(`v=mm1; pgp=${FPR}; later=1`), { pgp: FPR }, 'an unknown field is ignored (how older readers see caps)');
  t.equal(parsePin('v=spf1 -all'), undefined, 'not ours');
  t.equal(parsePin('google-site-verification=abc'), undefined);
  throwsCode(t, () => parsePin('v=mm1; pgp=1234'), 'SIGNED_RECORD_MALFORMED', 'short fingerprint');
  throwsCode(t, () => parsePin(`v=mm1; smime=${FPR}`), 'SIGNED_RECORD_MALFORMED', 'smime not a SHA-256');
  throwsCode(t, () => parsePin('v=mm1; dir=x'), 'SIGNED_RECORD_MALFORMED', 'no key');
  throwsCode(t, () => parsePin(`v=mm1; pgp=${FPR}; pgp=${FPR}`), 'SIGNED_RECORD_MALFORMED', 'twice');
  throwsCode(t, () => parsePin(`v=mm1; pgp=${FPR}; junk`), 'SIGNED_RECORD_MALFORMED', 'junk');
  t.ok(pinMatches({ pgp: FPR }, { openpgp: { fingerprint: FPR } }));
  t.notOk(pinMatches({ pgp: FPR, smime: SHA }, { openpgp: { fingerprint: FPR }, smime: { fingerprint: 'c'.repeat(64) } }));
  const rnd = seeded(7);
  const base = `v=mm1; pgp=${FPR}; smime=${SHA}; dir=https://d`;
  for (let i = 0; i < 2000; i++) {
    const s = [...base].map((c) => (rnd() < 0.05 ? String.fromCharCode(Math.floor(rnd() * 128)) : c)).join('');
    try {
      parsePin(s);
    } catch (e) {
      if (!isMailmeshError(e, 'SIGNED_RECORD_MALFORMED')) t.fail(`${JSON.stringify(s)}: ${String(e)}`);
    }
  }
});

t.test('DNS responses: decoded, and garbage is DNS_MALFORMED only', async (t) => {
  const qname = nameToWire('_mailmesh.alpha.test');
  const rr = encodeRR(Buffer.from([0xc0, 12]), TYPE.TXT, 60, txtRdata('v=mm1; pgp=' + FPR));
  const msg = Buffer.concat([encodeHeader({ id: 7, flags: FLAG.QR | FLAG.AA, rcode: 0, qd: 1, an: 1, ns: 0, ar: 0 }), encodeQuestion(qname, TYPE.TXT), rr]);
  const a = decodeResponse(msg, 7, qname, TYPE.TXT);
  t.equal(txtText(a.records[0]!.rdata), 'v=mm1; pgp=' + FPR);
  throwsCode(t, () => decodeResponse(msg, 8, qname, TYPE.TXT), 'DNS_MALFORMED', 'another ID');
  throwsCode(t, () => decodeResponse(msg, 7, nameToWire('other.test'), TYPE.TXT), 'DNS_MALFORMED', 'another question');
  throwsCode(t, () => txtText(Buffer.from([5, 65])), 'DNS_MALFORMED', 'string past RDATA');
  const rnd = seeded(1035);
  for (let i = 0; i < 3000; i++) {
    const m = mutate(msg, rnd);
    try {
      const r = decodeResponse(m, m.length >= 2 ? m.readUInt16BE(0) : 0, qname, TYPE.TXT);
      for (const x of r.records) txtText(x.rdata);
    } catch (e) {
      if (!isMailmeshError(e, 'DNS_MALFORMED')) t.fail(`${m.toString('hex')}: ${String(e)}`);
    }
  }
});

t.test('the stub resolver: TXT over 255 octets (split mid-character) and TCP after TC', async (t) => {
  const zone = await startZone(t);
  const r = stubResolver([`127.0.0.1:${zone.port}`], { timeoutMs: 2000 });
  const long = 'v=mm1; ' + 'é'.repeat(400);
  zone.setTxt('long.test', long);
  const [rr] = await lookupRecords(r, 'long.test', TYPE.TXT);
  t.equal(txtText(rr!.rdata), long, 'character-strings are joined before UTF-8 decoding');
  const big = Buffer.alloc(3000, 9);
  zone.set('big.test', TYPE.OPENPGPKEY, [big]);
  const queriesBefore = zone.queries;
  t.same((await lookupRecords(r, 'big.test', TYPE.OPENPGPKEY))[0]!.rdata, big, 'the whole RDATA, over TCP');
  t.equal(zone.queries - queriesBefore, 2, 'one UDP (truncated) and one TCP query');
  t.same(await lookupRecords(r, 'nothing.test', TYPE.TXT), [], 'NXDOMAIN is no records');
  const down = stubResolver(['127.0.0.1:1'], { timeoutMs: 200 });
  await t.rejects(down.query('x.test', TYPE.TXT), { code: 'LOOKUP_UNAVAILABLE' });
  t.throws(() => stubResolver(['not a server:x']), { code: 'CONFIG_INVALID' });
});

t.test('signed records: verified, and mutations are refused with codes, never a crash', async (t) => {
  const d = await memoryDirectory();
  const r = await d.addDomain('alpha.test');
  const v = await verifySigned(r.signed, new Date());
  t.equal(v.keys.openpgp.fingerprint, r.keys.openpgp!.fingerprint);
  t.equal(v.keys.smime?.fingerprint, r.keys.smime!.fingerprint);
  t.same(v.signers, [r.keys.openpgp!.fingerprint]);
  const rnd = seeded(4880);
  const codes = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const which = rnd() < 0.5 ? 'payload' : 'signature';
    const text = r.signed![which];
    const at = Math.floor(rnd() * text.length);
    const changed = { ...r.signed!, [which]: text.slice(0, at) + String.fromCharCode(32 + Math.floor(rnd() * 90)) + text.slice(at + 1) };
    if (changed[which] === text) continue;
    try {
      await verifySigned(changed, new Date());
      // A change inside the armored signature's base64 may hit an unsigned subpacket; a payload change never passes.
      if (which === 'payload') t.fail(`payload change at ${at} accepted`);
    } catch (e) {
      if (!isMailmeshError(e)) t.fail(`${which} at ${at}: ${String(e)}`);
      else codes.add(e.code);
    }
  }
  t.ok(codes.has('SIGNATURE_INVALID') || codes.has('SIGNED_RECORD_MALFORMED'), `refused with ${[...codes].join(', ')}`);
  // A payload for another domain than its key: refused by the key check.
  const other = await d.addDomain('beta.test');
  const p = JSON.parse(other.signed!.payload) as { keys: unknown };
  p.keys = JSON.parse(r.signed!.payload).keys;
  const priv = (await d.getSecrets('alpha.test')).openpgp!.armored;
  await t.rejects(verifySigned(await signPayload(p as never, [priv], new Date()), new Date()), { code: 'KEY_WRONG_DOMAIN' });
});

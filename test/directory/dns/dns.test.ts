import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import t from 'tap';
import { domainKeyAddress, parseDomain } from '../../../directory/domain.js';
import { openPgpKeyOwner, smimeaOwner } from '../../../directory/dane.js';
import { exportZone } from '../../../directory/dns/dns.js';
import { FLAG, RCODE, TYPE } from '../../../directory/dnswire.js';
import { pemToDer } from '../../../directory/smime.js';
import { rejectsCode, run, tempDir } from '../../helpers.js';
import { kdig, memoryDirectory, mutate, query, rdataOf, seeded, startDns, ZONE, zoneOptions } from './helpers.js';

// One directory with two domains for the whole file (key generation is the slow part).
const directory = await memoryDirectory();
const a = await directory.addDomain('example.org');
const b = await directory.addDomain('beta.example');
const aName = `example.org.${ZONE}`;
const keyOf = async (armored: string) => Buffer.from((await openpgp.readKey({ armoredKey: armored })).write());

/** Sends one UDP datagram and returns the reply, or undefined if none comes before the server answers a probe. */
async function udpExchange(port: number, msg: Buffer): Promise<Buffer | undefined> {
  const sock = dgram.createSocket('udp4');
  try {
    const replies: Buffer[] = [];
    const probe = query(ZONE, TYPE.SOA, { id: 0xbeef });
    const done = new Promise<void>((resolve) => sock.on('message', (m) => (m.readUInt16BE(0) === 0xbeef && m.length > 12 && (m[2]! & 0x80) ? resolve() : replies.push(m))));
    await new Promise<void>((r) => sock.connect(port, '127.0.0.1', () => r()));
    sock.send(msg);
    // The server answers in order on one socket: the probe's answer comes after msg's, if msg had one.
    sock.send(probe);
    await done;
    return replies[0];
  } finally {
    sock.close();
  }
}

t.test('OPENPGPKEY (type 61) is the binary key, over UDP with EDNS and over TCP', async (t) => {
  const { port } = await startDns(t, directory);
  const want = await keyOf(a.keys.openpgp!.armored);
  for (const args of [['+bufsize=4096'], ['+tcp']]) {
    const r = await kdig(port, [aName, 'TYPE61', ...args]);
    t.equal(r.status, 'NOERROR', args.join(' '));
    t.ok(r.flags.includes('aa'), 'authoritative answer');
    t.equal(r.answers.length, 1);
    t.ok(Buffer.from(rdataOf(r.answers[0]!), 'base64').equals(want), `byte-identical to the record's key (${args})`);
    t.equal(r.via, args[0] === '+tcp' ? 'TCP' : 'UDP');
  }
  const udp = await kdig(port, [aName, 'TYPE61', '+bufsize=4096']);
  t.match(udp.out, /EDNS PSEUDOSECTION:[\s\S]*Version: 0;[\s\S]*UDP size: 1232 B/, 'the OPT record is echoed with our payload size (RFC 6891 §6.1.1)');
  const plain = await kdig(port, [`${ZONE}`, 'SOA', '+noedns']);
  t.notMatch(plain.out, /EDNS PSEUDOSECTION/, 'no OPT record without one in the query');
});

t.test('without EDNS the key does not fit in 512 octets: TC, and kdig retries over TCP', async (t) => {
  const { port } = await startDns(t, directory);
  const truncated = await kdig(port, [aName, 'TYPE61', '+noedns', '+ignore']);
  t.ok(truncated.flags.includes('tc'), 'TC set (RFC 2181 §9)');
  t.equal(truncated.answers.length, 0, 'header and question only');
  t.equal(truncated.via, 'UDP');
  const retried = await kdig(port, [aName, 'TYPE61', '+noedns']);
  t.match(retried.err, /truncated reply .* retrying over TCP/, 'kdig says it retries over TCP');
  t.equal(retried.via, 'TCP');
  t.ok(Buffer.from(rdataOf(retried.answers[0]!), 'base64').equals(await keyOf(a.keys.openpgp!.armored)), 'the full key over TCP');
  const tooSmall = await kdig(port, [aName, 'SMIMEA', '+bufsize=1000', '+ignore']);
  t.ok(tooSmall.flags.includes('tc'), 'the client payload size is honoured');
  const big = await kdig(port, [aName, 'SMIMEA', '+bufsize=4096', '+ignore']);
  t.ok(big.flags.includes('tc'), 'and capped by ours (1232 by default)');
});

t.test('TXT pin and SMIMEA 3 0 0 <leaf DER>', async (t) => {
  const { port } = await startDns(t, directory, { maxUdpPayload: 4096 });
  const txt = await kdig(port, [aName, 'TXT']);
  t.equal(rdataOf(txt.answers[0]!), `"v=mm1; pgp=${a.keys.openpgp!.fingerprint}; smime=${a.keys.smime!.fingerprint}; dir=http://127.0.0.1:8080; caps=smime-aes-256-gcm"`);
  const smimea = await kdig(port, [`beta.example.${ZONE}`, 'TYPE53', '+bufsize=4096']);
  t.equal(smimea.via, 'UDP', 'fits with a larger payload size');
  const [usage, selector, matching, ...hex] = rdataOf(smimea.answers[0]!).split(' ');
  t.same([usage, selector, matching], ['3', '0', '0']);
  t.ok(Buffer.from(hex.join(''), 'hex').equals(pemToDer(b.keys.smime!.chain[0]!)), 'the leaf certificate DER');
});

t.test('a long pin is split into 255-octet strings (RFC 1035 §3.3.14)', async (t) => {
  const url = `https://${'d'.repeat(200)}.example/directory`;
  const { port } = await startDns(t, directory, { directoryUrl: url });
  const r = await kdig(port, [aName, 'TXT', '+tcp']);
  const strings = [...rdataOf(r.answers[0]!).matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  t.equal(strings.length, 2);
  t.equal(strings[0]!.length, 255);
  t.equal(strings.join(''), `v=mm1; pgp=${a.keys.openpgp!.fingerprint}; smime=${a.keys.smime!.fingerprint}; dir=${url}; caps=smime-aes-256-gcm`);
});

t.test('NXDOMAIN, NODATA, empty non-terminals, REFUSED, case', async (t) => {
  const { port } = await startDns(t, directory);
  const nx = await kdig(port, [`nope.${ZONE}`, 'TXT']);
  t.equal(nx.status, 'NXDOMAIN');
  t.ok(nx.flags.includes('aa'));
  t.match(nx.authority[0], new RegExp(`^${ZONE}\\.\\s+300\\s+IN\\s+SOA\\s+ns1\\.${ZONE}\\. hostmaster\\.mailmesh\\.test\\. \\d+ `), 'SOA in authority (RFC 2308 §3)');
  t.equal((await kdig(port, [`x.${aName}`, 'TXT'])).status, 'NXDOMAIN', 'below an existing name');
  const nodata = await kdig(port, [aName, 'A']);
  t.equal(nodata.status, 'NOERROR');
  t.same(nodata.answers, [], 'NODATA: no answer');
  t.equal(nodata.authority.length, 1, 'SOA in authority');
  const ent = await kdig(port, [`org.${ZONE}`, 'TXT']);
  t.same([ent.status, ent.answers.length, ent.authority.length], ['NOERROR', 0, 1], 'an empty non-terminal is NODATA');
  const refused = await kdig(port, ['example.com', 'TXT']);
  t.equal(refused.status, 'REFUSED');
  t.notOk(refused.flags.includes('aa'));
  t.equal((await kdig(port, ['mailmesh.test', 'SOA'])).status, 'REFUSED', 'the parent is not ours');
  // kdig prints names lower-cased, so the echo is checked on the wire.
  const asked = query(`ExAmPlE.oRg.DIR.mailmesh.TEST`, TYPE.TXT);
  const mixed = (await udpExchange(port, asked))!;
  t.ok(mixed.subarray(12, asked.length).equals(asked.subarray(12)), 'the question is echoed as asked (RFC 4343)');
  t.equal(mixed.readUInt16BE(6), 1, 'and answered');
  t.equal(mixed.readUInt16BE(asked.length), 0xc00c, 'the answer owner points at the question (RFC 1035 §4.1.4)');
  const apex = await kdig(port, [ZONE, 'NS']);
  t.match(apex.answers[0], /IN\s+NS\s+ns1\.dir\.mailmesh\.test\./);
  const glue = await kdig(port, [`ns1.${ZONE}`, 'A']);
  t.match(glue.answers[0], /IN\s+A\s+127\.0\.0\.1/);
  const any = await kdig(port, [aName, 'ANY', '+ignore']);
  t.ok(any.flags.includes('tc'), 'ANY over UDP: TC, never an amplified answer');
  t.equal((await kdig(port, [aName, 'ANY', '+tcp'])).answers.length, 3, 'ANY over TCP: every RRset');
});

t.test('AXFR over TCP: SOA first and last, every record, several messages', async (t) => {
  const { port, server } = await startDns(t, directory, { axfrMessageSize: 1024 });
  const r = await kdig(port, ['AXFR', ZONE]);
  const types = r.answers.map((l) => l.split(/\s+/)[3]);
  t.equal(types[0], 'SOA');
  t.equal(types[types.length - 1], 'SOA');
  t.same(types.slice(1, -1).sort(), ['A', 'NS', 'OPENPGPKEY', 'OPENPGPKEY', 'SMIMEA', 'SMIMEA', 'TXT', 'TXT']);
  t.match(r.out, /Received \d+ B \((\d+) messages, 10 records\)/);
  t.ok(Number(/\((\d+) messages/.exec(r.out)![1]) > 1, 'split into several messages');
  t.match(r.answers[0], new RegExp(`SOA\\s+\\S+ \\S+ ${server.serial} `));
  const udp = await kdig(port, ['AXFR', ZONE, '+notcp']);
  t.match(udp.out + udp.err, /REFUSED/, 'AXFR over UDP is refused');
  const ixfr = await kdig(port, [`IXFR=0`, ZONE]);
  t.same(ixfr.answers.map((l) => l.split(/\s+/)[3]), r.answers.map((l) => l.split(/\s+/)[3]), 'IXFR over TCP: a full transfer (RFC 1995 §4)');
  const ixfrUdp = await kdig(port, [`IXFR=0`, ZONE, '+notcp']);
  t.same(ixfrUdp.answers.map((l) => l.split(/\s+/)[3]), ['SOA'], 'IXFR over UDP: the current SOA');
  const notApex = await kdig(port, ['AXFR', aName]);
  t.match(notApex.out + notApex.err, /NOTAUTH/, 'AXFR of a name that is not a zone apex');
});

t.test('the zone follows changes: the serial grows, a new domain is answered', async (t) => {
  const d = await memoryDirectory();
  const { port, server } = await startDns(t, d);
  const soa = async () => Number(rdataOf((await kdig(port, [ZONE, 'SOA'])).answers[0]!).split(' ')[2]);
  const before = await soa();
  t.equal((await kdig(port, [`gamma.example.${ZONE}`, 'TXT'])).status, 'NXDOMAIN');
  const g = await d.addDomain('gamma.example');
  await server.settled();
  const after = await soa();
  t.ok(after > before, `serial ${before} → ${after}`);
  const r = await kdig(port, [`gamma.example.${ZONE}`, 'TYPE61', '+tcp']);
  t.ok(Buffer.from(rdataOf(r.answers[0]!), 'base64').equals(await keyOf(g.keys.openpgp!.armored)));
  await d.removeDomain('gamma.example');
  await server.settled();
  t.equal((await kdig(port, [`gamma.example.${ZONE}`, 'TXT'])).status, 'NXDOMAIN', 'a removed domain is gone');
  t.ok((await soa()) > after, 'and the serial grew again');
});

t.test('authoritative for a member domain: RFC 7929 §3 / RFC 8162 §3 owner names, SOA/NS at its apex', async (t) => {
  const { port } = await startDns(t, directory, { authoritativeFor: ['example.org', 'absent.example'] });
  const addr = domainKeyAddress(parseDomain('example.org'));
  const pgp = await kdig(port, [openPgpKeyOwner(addr), 'TYPE61', '+tcp']);
  t.ok(Buffer.from(rdataOf(pgp.answers[0]!), 'base64').equals(await keyOf(a.keys.openpgp!.armored)));
  const smimea = await kdig(port, [smimeaOwner(addr), 'TYPE53', '+tcp']);
  t.match(rdataOf(smimea.answers[0]!), /^3 0 0 /);
  t.match(rdataOf((await kdig(port, ['_mailmesh.example.org', 'TXT'])).answers[0]!), /^"v=mm1; pgp=/);
  t.equal((await kdig(port, ['example.org', 'SOA'])).answers.length, 1);
  t.ok((await kdig(port, ['example.org', 'SOA'])).flags.includes('aa'));
  t.equal((await kdig(port, ['_openpgpkey.example.org', 'TYPE61'])).status, 'NOERROR', 'an empty non-terminal');
  t.equal((await kdig(port, ['www.example.org', 'A'])).status, 'NXDOMAIN');
  t.equal((await kdig(port, ['absent.example', 'SOA'])).answers.length, 1, 'a zone without a member record still has SOA');
  t.equal((await kdig(port, ['beta.example', 'SOA'])).status, 'REFUSED', 'not authoritative for other members');
  const axfr = await kdig(port, ['AXFR', 'example.org']);
  t.same(axfr.answers.map((l) => l.split(/\s+/)[3]), ['SOA', 'NS', 'TXT', 'OPENPGPKEY', 'SMIMEA', 'SOA'], 'nothing of other zones');
});

t.test('opcodes, classes and EDNS versions', async (t) => {
  const { port } = await startDns(t, directory);
  const notify = await udpExchange(port, query(ZONE, TYPE.SOA, { opcode: 4, id: 9 }));
  t.equal(notify!.readUInt16BE(0), 9);
  t.equal(notify!.readUInt16BE(2) & 0xf, RCODE.NOTIMP, 'NOTIFY (opcode 4) is not implemented');
  const chaos = await kdig(port, ['version.bind', 'TXT', '-c', 'CH']);
  t.equal(chaos.status, 'REFUSED');
  const v1 = await kdig(port, [ZONE, 'SOA', '+edns=1']);
  t.equal(v1.status, 'BADVERS', 'RFC 6891 §6.1.3');
  const response = query(ZONE, TYPE.SOA);
  response[2] |= 0x80;
  t.equal(await udpExchange(port, response), undefined, 'a response (QR set) is never answered');
});

t.test('several queries on one TCP connection, split and pipelined (RFC 7766)', async (t) => {
  const { port } = await startDns(t, directory);
  const keep = await kdig(port, ['+tcp', '+keepopen', aName, 'TXT', `beta.example.${ZONE}`, 'TXT', `nope.${ZONE}`, 'TXT']);
  t.equal((keep.out.match(/status: NOERROR/g) ?? []).length, 2);
  t.equal((keep.out.match(/status: NXDOMAIN/g) ?? []).length, 1);
  const sock = net.connect(port, '127.0.0.1');
  const frames: Buffer[] = [];
  let buf = Buffer.alloc(0);
  const got = new Promise<void>((resolve) => sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      frames.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
    if (frames.length === 3) resolve();
  }));
  const framed = [1, 2, 3].map((id) => {
    const q = query(aName, TYPE.TXT, { id });
    return Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  });
  const all = Buffer.concat(framed);
  sock.write(all.subarray(0, 1)); // the length prefix split across writes
  sock.write(all.subarray(1, 30));
  sock.write(all.subarray(30));
  await got;
  sock.destroy();
  t.same(frames.map((f) => f.readUInt16BE(0)), [1, 2, 3]);
  t.ok(frames.every((f) => (f.readUInt16BE(2) & (FLAG.QR | FLAG.AA)) === (FLAG.QR | FLAG.AA) && f.readUInt16BE(6) === 1));
});

t.test('malformed packets: FORMERR or nothing, never a crash (seeded mutations over UDP and TCP)', async (t) => {
  // Hundreds of UDP exchanges in a row from one address: response-rate limiting (tested in hostile.test.ts) off here.
  const { port, server } = await startDns(t, directory, { rrl: { responsesPerSecond: 0 } });
  // Direct: many mutations through the same entry point the sockets use.
  const rnd = seeded(20240601);
  const seeds = [query(aName, TYPE.OPENPGPKEY, { edns: 4096 }), query(ZONE, TYPE.AXFR), query(`nope.${ZONE}`, TYPE.TXT)];
  const allowed = new Set<number>([RCODE.NOERROR, RCODE.FORMERR, RCODE.NXDOMAIN, RCODE.NOTIMP, RCODE.REFUSED, RCODE.NOTAUTH]);
  const bad: string[] = [];
  let formerr = 0;
  for (let i = 0; i < 5000; i++) {
    const msg = mutate(seeds[i % seeds.length]!, rnd);
    for (const out of server.handle(msg, i % 2 ? 'udp' : 'tcp')) {
      if (out.readUInt16BE(0) !== msg.readUInt16BE(0) || !allowed.has(out.readUInt16BE(2) & 0xf)) bad.push(msg.toString('hex'));
      if ((out.readUInt16BE(2) & 0xf) === RCODE.FORMERR) formerr++;
    }
  }
  t.same(bad.slice(0, 3), [], 'every reply keeps the ID and has a defined rcode (no SERVFAIL)');
  t.ok(formerr > 0, `FORMERR given (${formerr} times)`);
  // Over the wire: random bytes, short headers, a compression loop, huge counts.
  const loop = Buffer.concat([query(ZONE, TYPE.SOA).subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  const huge = Buffer.from(query(ZONE, TYPE.SOA));
  huge.writeUInt16BE(65535, 10);
  for (const msg of [loop, huge]) {
    const r = await udpExchange(port, msg);
    t.equal(r!.readUInt16BE(2) & 0xf, RCODE.FORMERR);
  }
  t.equal(await udpExchange(port, Buffer.from([1, 2, 3])), undefined, 'no header: dropped');
  for (let i = 0; i < 200; i++) await udpExchange(port, mutate(seeds[i % seeds.length]!, rnd));
  // TCP: garbage frames, a frame shorter than a header (the connection is closed), then a good query still works.
  await new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat([Buffer.from([0, 20]), Buffer.alloc(20, 0xc0), Buffer.from([0, 3, 1, 2, 3])])));
    s.on('data', () => {});
    s.on('close', () => resolve());
  });
  const r = await kdig(port, [aName, 'TYPE61', '+tcp']);
  t.equal(r.answers.length, 1, 'the server still answers');
  t.equal((await kdig(port, [aName, 'TXT'])).answers.length, 1);
});

t.test('zone export: RFC 1035 master file accepted by kzonecheck', async (t) => {
  const dir = tempDir(t);
  const opts = zoneOptions({ authoritativeFor: ['example.org'] });
  for (const apex of [ZONE, 'example.org']) {
    const text = await exportZone(directory, opts, apex);
    const file = join(dir, `${apex}.zone`);
    writeFileSync(file, text);
    const { stdout, stderr } = await run('kzonecheck', ['-v', '-o', apex, file]);
    t.pass(`kzonecheck accepts ${apex}: ${(stdout.toString() + stderr).trim().split('\n').pop()}`);
    t.match(text, new RegExp(`^${apex.replace(/\./g, '\\.')}\\. 300 IN SOA `, 'm'));
  }
  const fed = await exportZone(directory, opts);
  t.match(fed, new RegExp(`^example\\.org\\.${ZONE}\\. 300 IN OPENPGPKEY ${(await keyOf(a.keys.openpgp!.armored)).toString('base64').replace(/[+/]/g, '\\$&')}$`, 'm'));
  await rejectsCode(t, exportZone(directory, opts, 'beta.example'), 'NOT_FOUND');
  // kzonecheck itself is not blind: a zone with an in-zone NS and no address is refused.
  const noGlue = join(dir, 'noglue.zone');
  writeFileSync(noGlue, await exportZone(directory, { ...opts, nameserverAddresses: [] }));
  await t.rejects(run('kzonecheck', ['-o', ZONE, noGlue]), 'missing glue is reported');
});

import t from 'tap';
import { isMailmeshError } from '../../../directory/errors.js';
import {
  addressRdata, encodeHeader, encodeQuestion, lowerName, nameToWire, parseQuery, readName, txtRdata, TYPE,
} from '../../../directory/dnswire.js';
import { throwsCode } from '../../helpers.js';
import { mutate, query, seeded } from './helpers.js';

const header = (qd = 1, an = 0, ns = 0, ar = 0) => encodeHeader({ id: 7, flags: 0x0100, rcode: 0, qd, an, ns, ar });

t.test('a query decodes: ID, RD copied, name as asked, lower-case key, EDNS', async (t) => {
  const q = parseQuery(query('Example.ORG.dir.mailmesh.test', TYPE.OPENPGPKEY, { id: 4711, edns: 4096 }));
  t.equal(q.id, 4711);
  t.equal(q.copyFlags, 0x0100);
  t.ok(q.qname.equals(nameToWire('Example.ORG.dir.mailmesh.test')));
  t.equal(q.key, nameToWire('example.org.dir.mailmesh.test').toString('latin1'));
  t.equal(q.qtype, 61);
  t.same(q.edns, { udpSize: 4096, version: 0 });
  t.equal(parseQuery(query('a.example', TYPE.TXT)).edns, undefined);
});

t.test('compression pointers are followed only backwards (RFC 1035 §4.1.4)', async (t) => {
  // "b" at 12, then at 15: label "a" + pointer to 12 → a.b
  const msg = Buffer.concat([Buffer.from([1, 0x62, 0]), Buffer.from([1, 0x61, 0xc0, 12])]);
  const full = Buffer.concat([Buffer.alloc(12), msg]);
  const r = readName(full, 15);
  t.ok(r.name.equals(nameToWire('a.b')));
  t.equal(r.end, 19, 'the name ends after the pointer');
  const self = Buffer.concat([header(), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  throwsCode(t, () => parseQuery(self), 'DNS_MALFORMED', 'a pointer to itself');
  const forward = Buffer.concat([header(), Buffer.from([0xc0, 14, 0, 0, 1, 0, 1])]);
  throwsCode(t, () => parseQuery(forward), 'DNS_MALFORMED', 'a forward pointer');
  // Two names pointing at each other: the second jump would go forward again.
  const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([1, 0x61, 0xc0, 16, 1, 0x62, 0xc0, 12])]);
  throwsCode(t, () => readName(loop, 16), 'DNS_MALFORMED', 'a loop');
  throwsCode(t, () => readName(Buffer.concat([Buffer.alloc(12), Buffer.from([0x40, 0])]), 12), 'DNS_MALFORMED', 'label type 01');
  throwsCode(t, () => readName(Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0])]), 12), 'DNS_MALFORMED', 'half a pointer');
  throwsCode(t, () => readName(Buffer.concat([Buffer.alloc(12), Buffer.from([5, 0x61])]), 12), 'DNS_MALFORMED', 'a short label');
  const long = Buffer.concat([...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0])]);
  throwsCode(t, () => readName(long, 0), 'DNS_MALFORMED', 'a name over 255 octets');
  // A chain of backward pointers, each legal, still ends (every jump goes to a lower offset).
  const chain = [0];
  for (let i = 1; i < 100; i++) chain.push(0xc0, i === 1 ? 0 : 2 * i - 3); // pointer i sits at 2i-1 and points at pointer i-1
  t.ok(readName(Buffer.from(chain), chain.length - 2).name.equals(Buffer.from([0])), 'a long legal chain');
});

t.test('malformed queries: counts, truncation, OPT placement, trailing octets', async (t) => {
  const good = query('a.example', TYPE.TXT);
  throwsCode(t, () => parseQuery(good.subarray(0, 11)), 'DNS_MALFORMED', 'short header');
  throwsCode(t, () => parseQuery(good.subarray(0, good.length - 1)), 'DNS_MALFORMED', 'truncated question');
  throwsCode(t, () => parseQuery(Buffer.concat([header(0), good.subarray(12)])), 'DNS_MALFORMED', 'QDCOUNT 0');
  throwsCode(t, () => parseQuery(Buffer.concat([header(2), good.subarray(12)])), 'DNS_MALFORMED', 'QDCOUNT 2');
  throwsCode(t, () => parseQuery(Buffer.concat([header(1, 65535, 65535, 65535), good.subarray(12)])), 'DNS_MALFORMED', 'huge counts');
  throwsCode(t, () => parseQuery(Buffer.concat([good, Buffer.from([0])])), 'DNS_MALFORMED', 'trailing octet');
  const withOpt = query('a.example', TYPE.TXT, { edns: 1232 });
  const opt = withOpt.subarray(good.length);
  const twoOpts = Buffer.concat([header(1, 0, 0, 2), good.subarray(12), opt, opt]);
  throwsCode(t, () => parseQuery(twoOpts), 'DNS_MALFORMED', 'two OPT records (RFC 6891 §6.1.1)');
  const optInAnswer = Buffer.concat([header(1, 1, 0, 0), good.subarray(12), opt]);
  throwsCode(t, () => parseQuery(optInAnswer), 'DNS_MALFORMED', 'OPT in the answer section');
  const namedOpt = Buffer.concat([header(1, 0, 0, 1), good.subarray(12), Buffer.from([1, 0x61]), opt]);
  throwsCode(t, () => parseQuery(namedOpt), 'DNS_MALFORMED', 'OPT not owned by the root');
  const rdataTooLong = Buffer.from(withOpt);
  rdataTooLong.writeUInt16BE(10, rdataTooLong.length - 2);
  throwsCode(t, () => parseQuery(rdataTooLong), 'DNS_MALFORMED', 'RDLENGTH past the end');
});

t.test('property: any mutation of a valid query decodes or fails with DNS_MALFORMED, nothing else', async (t) => {
  const rnd = seeded(0x5eed);
  const seeds = [query('example.org.dir.mailmesh.test', TYPE.OPENPGPKEY, { edns: 4096 }), query('dir.mailmesh.test', TYPE.AXFR)];
  let decoded = 0;
  const bad: string[] = [];
  for (let i = 0; i < 20000; i++) {
    const msg = mutate(seeds[i % seeds.length]!, rnd);
    try {
      const q = parseQuery(msg);
      if (q.qname.length > 255 || q.key.length !== q.qname.length) bad.push(`name out of bounds: ${msg.toString('hex')}`);
      decoded++;
    } catch (e) {
      if (!isMailmeshError(e, 'DNS_MALFORMED')) bad.push(`${String(e)}: ${msg.toString('hex')}`);
    }
  }
  t.same(bad.slice(0, 5), [], 'no other error, no name out of bounds');
  t.ok(decoded > 0 && decoded < 20000, `some mutations decode (${decoded}), some do not`);
});

t.test('encoding: TXT split at 255 octets, names, addresses', async (t) => {
  const long = 'x'.repeat(600);
  const rdata = txtRdata(long);
  t.same([rdata[0], rdata[256], rdata[512]], [255, 255, 90], 'RFC 1035 §3.3.14: 255 + 255 + 90');
  t.equal(rdata.length, 603);
  t.same(txtRdata(''), Buffer.from([0]), 'an empty TXT is one empty string');
  t.ok(lowerName(nameToWire('ExAmPle.ORG')).equals(nameToWire('example.org')));
  t.ok(nameToWire('').equals(Buffer.from([0])));
  throwsCode(t, () => nameToWire('a'.repeat(64) + '.org'), 'DOMAIN_INVALID');
  t.same(addressRdata('192.0.2.1'), { type: TYPE.A, rdata: Buffer.from([192, 0, 2, 1]) });
  t.same(addressRdata('2001:db8::1').rdata.toString('hex'), '20010db8000000000000000000000001');
  t.same(addressRdata('::ffff:192.0.2.1').rdata.toString('hex'), '00000000000000000000ffffc0000201');
  t.same(addressRdata('::').rdata.toString('hex'), '0'.repeat(32));
  throwsCode(t, () => addressRdata('dns.example'), 'CONFIG_INVALID');
  t.ok(encodeQuestion(nameToWire('a.b'), 16).equals(Buffer.from([1, 0x61, 1, 0x62, 0, 0, 16, 0, 1])));
});

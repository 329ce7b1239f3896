// The DNS face's query handler (directory/dns/dns.ts DnsServer.handle) over a zone with a member
// domain: every message gets nothing or a well-formed answer, never SERVFAIL (an internal error).
import { randomBytes } from 'node:crypto';
import { createDnsServer, type DnsServer } from '../../directory/dns/dns.js';
import { Directory } from '../../directory/directory.js';
import { MemoryStore } from '../../directory/store/memory.js';
import { RCODE } from '../../directory/dnswire.js';
import { invariant, type FuzzTarget } from '../target.js';

let server: DnsServer;

export const DNS_ZONE = 'dir.mailmesh.test';

const target: FuzzTarget = {
  name: 'dns-handler',
  description: 'DnsServer.handle over UDP and TCP rules, zone with one member domain (answers, NXDOMAIN, AXFR, EDNS, truncation)',
  maxLen: 1024,
  dictionary: [Buffer.from([0xc0, 0x0c]), Buffer.from([0, 0, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]), Buffer.from([0, 0xfc, 0, 1]), Buffer.from([0, 0xfb, 0, 1]), Buffer.from([0, 0xff, 0, 1]), Buffer.from('\x03dir\x08mailmesh\x04test\x00', 'latin1'), Buffer.from('\x04fuzz\x07example', 'latin1')],
  async setup() {
    const directory = await Directory.open(new MemoryStore(), randomBytes(32), { keys: { openpgp: 'curve25519', validDays: 365 } });
    await directory.addDomain('fuzz.example');
    server = await createDnsServer({
      directory, zone: DNS_ZONE, ttl: 300, hostmaster: 'hostmaster@mailmesh.test', nameservers: ['ns1.dir.mailmesh.test'],
      nameserverAddresses: ['127.0.0.1'], authoritativeFor: [], directoryUrl: 'http://127.0.0.1:8080',
    });
    await server.settled();
  },
  async teardown() {
    await server.close();
  },
  fuzz(data) {
    for (const transport of ['udp', 'tcp'] as const) {
      for (const out of server.handle(data, transport)) {
        invariant(out.length >= 12 && out.readUInt16BE(0) === data.readUInt16BE(0), 'an answer has a header with the query ID');
        invariant((out[3]! & 0xf) !== RCODE.SERVFAIL, 'SERVFAIL: answering threw an internal error');
        invariant(transport === 'tcp' ? out.length <= 65535 : out.length <= 1232, `${transport} answer of ${out.length} octets is over the limit`);
      }
    }
  },
  expected: () => false,
};
export default target;

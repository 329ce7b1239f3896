import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { Test } from 'tap';
import { openPgpKeyData, PIN_LABEL, pinText } from '../../directory/dane.js';
import { encodeHeader, encodeOpt, encodeQuestion, encodeRR, FLAG, HEADER_SIZE, lowerName, nameToWire, parseQuery, RCODE, txtRdata, TYPE, UDP_MIN } from '../../directory/dnswire.js';
import type { DomainRecord, SignedRecord } from '../../directory/record.js';
import { WELL_KNOWN_RECORD } from '../../federation/proof.js';

/** A directory on a memory store (a gateway's local store, or a directory's), with an optional clock. */
export { memoryDirectory } from '../helpers.js';

/**
 * A member's own DNS, for tests: an authoritative UDP+TCP server on port 0 answering from a
 * table the test edits (the `_mailmesh` pins of alpha.test and beta.test, …), on directory/dnswire.ts.
 */
export class TestZone {
  readonly #rrs = new Map<string, Map<number, Buffer[]>>();
  port = 0;
  queries = 0;

  set(name: string, type: number, rdatas: Buffer[]): void {
    const k = lowerName(nameToWire(name)).toString('latin1');
    if (!this.#rrs.has(k)) this.#rrs.set(k, new Map());
    this.#rrs.get(k)!.set(type, rdatas);
  }

  setTxt(name: string, text: string): void {
    this.set(name, TYPE.TXT, [txtRdata(text)]);
  }

  delete(name: string, type?: number): void {
    const k = lowerName(nameToWire(name)).toString('latin1');
    if (type === undefined) this.#rrs.delete(k);
    else this.#rrs.get(k)?.delete(type);
  }

  /** Publishes the pin of a record in its own zone, as its DNS operator would (`_mailmesh.<domain>`). */
  pin(r: DomainRecord, dir = 'http://127.0.0.1'): void {
    this.setTxt(`${PIN_LABEL}.${r.domain}`, pinText(r, dir));
  }

  answer(msg: Buffer, udp: boolean): Buffer | undefined {
    let q;
    try {
      q = parseQuery(msg);
    } catch {
      return undefined;
    }
    this.queries++;
    const node = this.#rrs.get(q.key);
    const rdatas = node?.get(q.qtype) ?? [];
    const rcode = node ? RCODE.NOERROR : RCODE.NXDOMAIN;
    const answers = rdatas.map((rd) => encodeRR(Buffer.from([0xc0, HEADER_SIZE]), q.qtype, 60, rd));
    const opt = q.edns ? [encodeOpt(1232)] : [];
    const limit = udp ? Math.max(UDP_MIN, Math.min(q.edns?.udpSize ?? UDP_MIN, 1232)) : 65535;
    const head = (an: number, tc: number) => encodeHeader({ id: q.id, flags: FLAG.QR | FLAG.AA | tc, rcode, qd: 1, an, ns: 0, ar: opt.length });
    const full = Buffer.concat([head(answers.length, 0), encodeQuestion(q.qname, q.qtype), ...answers, ...opt]);
    if (full.length <= limit) return full;
    return Buffer.concat([head(0, FLAG.TC), encodeQuestion(q.qname, q.qtype), ...opt]);
  }
}

export async function startZone(t: Test): Promise<TestZone> {
  const zone = new TestZone();
  const tcpHandler = (s: net.Socket): void => {
    let buf = Buffer.alloc(0);
    s.on('error', () => s.destroy());
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const a = zone.answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), false);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (!a) return void s.destroy();
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        s.write(Buffer.concat([len, a]));
      }
    });
  };
  // UDP and TCP must share one port: take a free UDP port, then try TCP on it; another
  // process may hold that TCP port (EADDRINUSE), so try again with a new UDP port.
  for (let attempt = 1; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (m, r) => {
      const a = zone.answer(m, true);
      if (a) udp.send(a, r.port, r.address);
    });
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = net.createServer(tcpHandler);
    const ok = await new Promise<boolean>((resolve, reject) => {
      tcp.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' && attempt < 20 ? resolve(false) : reject(e)));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) {
      udp.close();
      continue;
    }
    zone.port = port;
    t.teardown(() => {
      udp.close();
      tcp.close();
    });
    return zone;
  }
}

/** Publishes a record's OPENPGPKEY at an owner name (RFC 7929 §2.1). */
export async function publishOpenPgpKey(zone: TestZone, owner: string, r: DomainRecord): Promise<void> {
  zone.set(owner, TYPE.OPENPGPKEY, [await openPgpKeyData(r.keys.openpgp!.armored)]);
}

/** A test clock that only moves when told to. */
export function testClock(start = new Date()): { now: () => Date; advance: (ms: number) => void } {
  let t = start.getTime();
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

/**
 * The members' web servers, for tests: one loopback HTTP server answering
 * `/<domain>/.well-known/mailmesh/record` from `records`; `base` is a federation.wellKnownBase template.
 */
export async function startWellKnown(t: Test): Promise<{ records: Map<string, SignedRecord>; base: string }> {
  const records = new Map<string, SignedRecord>();
  const web = http.createServer((req, res) => {
    const m = /^\/([^/]+)(\/.*)$/.exec(req.url ?? '');
    const rec = m && m[2] === WELL_KNOWN_RECORD ? records.get(m[1]!) : undefined;
    res.writeHead(rec ? 200 : 404, { 'content-type': 'application/json' }).end(rec ? JSON.stringify(rec) : '{}');
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  t.teardown(() => web.close());
  return { records, base: `http://127.0.0.1:${(web.address() as { port: number }).port}/{domain}` };
}

import http from 'node:http';
import * as openpgp from 'openpgp';
import type { Test } from 'tap';
import type { DomainRecord } from '../../directory/record.js';
import { recordPayload, signPayload } from '../../directory/signed.js';
import { memoryDirectory } from './helpers.js';

// Peers' view of a domain's key lifecycle, for tests: directories that serve the signed records a
// test builds from generations of a domain's keys.

/** A directory's HTTP face as far as discovery and doctor read it: the record of a domain, as set by the test. */
export async function startDirectory(t: Test): Promise<{ url: string; records: Map<string, Partial<DomainRecord>> }> {
  const records = new Map<string, Partial<DomainRecord>>();
  const server = http.createServer((req, res) => {
    const m = /^\/v1\/domains\/([^/?]+)$/.exec(req.url ?? '');
    const r = m ? records.get(decodeURIComponent(m[1]!)) : undefined;
    res.writeHead(r ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(r ? { status: 'active', ...r } : { error: { code: 'DOMAIN_NOT_FOUND' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, records };
}

/** One generation of a domain's keys (OpenPGP and S/MIME under its own CA), with the private OpenPGP key. */
export async function keyset(domain: string, now: () => Date) {
  const d = await memoryDirectory(now);
  const record = await d.addDomain(domain, { gateways: { smtp: [`mx.${domain}:25`] } });
  return { record, keys: record.keys, priv: (await d.getSecrets(domain)).openpgp!.armored };
}

export type Keys = Awaited<ReturnType<typeof keyset>>;

/** A record of `base`'s domain with these keys, signed by the given generations. */
export async function record(base: Keys, keys: DomainRecord['keys'], signers: Keys[], now: Date, extra: Parameters<typeof recordPayload>[2] = {}): Promise<Partial<DomainRecord>> {
  return { domain: base.record.domain, keys, signed: await signPayload(recordPayload({ ...base.record, keys }, now, extra), signers.map((s) => s.priv), now) };
}

/** RFC 4880 §5.2.1 0x20: the key revocation certificate of a generation's OpenPGP key, armored. */
export async function revocationOf(k: Keys, now: Date): Promise<string> {
  const revoked = await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: k.priv }), format: 'object', date: now });
  const packets = new openpgp.PacketList<openpgp.AnyPacket>();
  packets.push(revoked.publicKey.revocationSignatures[0]!);
  return openpgp.armor(openpgp.enums.armor.publicKey, packets.write());
}


import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { Directory } from '../../directory/directory.js';
import { parseDomain } from '../../directory/domain.js';
import { generateDomainKeys } from '../../directory/keys.js';
import type { DomainRecord } from '../../directory/record.js';

/**
 * A record in a roll, for the faces' tests, written with Directory.putRecord: next keys (freshly
 * generated) beside the current ones, a rollover, and a CRL of the domain CA that lists the
 * current leaf (RFC 5280 §5), with its authority key identifier (§5.2.1). The faces publish what the record says; who signs it is not theirs to check.
 */
export async function announceForTest(directory: Directory, domainInput: string): Promise<{ record: DomainRecord; crlDer: Buffer; revokedSerial: string }> {
  const domain = parseDomain(domainInput);
  const { serial, ...current } = await directory.getRecord(domain);
  const now = directory.clock();
  const { keys: next } = await generateDomainKeys(domain, { openpgp: 'curve25519', validDays: 365 }, now);
  const secrets = await directory.getSecrets(domain);
  const [leafPem, caPem] = current.keys.smime!.chain;
  const leaf = new x509.X509Certificate(leafPem!);
  const ca = new x509.X509Certificate(caPem!);
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pemToPkcs8(secrets.smime!.caKeyPkcs8Pem!), alg, false, ['sign']);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.subject,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + 7 * 86400_000),
    entries: [{ serialNumber: leaf.serialNumber, revocationDate: now, reason: x509.X509CrlReason.keyCompromise }],
    signingAlgorithm: alg,
    signingKey: signingKey as CryptoKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca)],
  });
  const crlDer = Buffer.from(crl.rawData);
  const rollover = { announced: now.toISOString(), switchAfter: new Date(now.getTime() + 7 * 86400_000).toISOString() };
  const record = await directory.putRecord({ ...current, next, rollover, crls: [crlDer.toString('base64')] }, serial);
  return { record, crlDer, revokedSerial: leaf.serialNumber };
}

function pemToPkcs8(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

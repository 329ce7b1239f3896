import t from 'tap';
import { tempDir } from '../helpers.js';
import { freePort, startDns, startPebble } from './pebble.js';
import { leaf, NAME, openssl, startNode } from './setup.js';

t.test('http-01: the HTTP face answers the challenge, STARTTLS then serves the certificate, a second node serves it too', async (t) => {
  const dir = tempDir(t);
  const dnsPort = await startDns(t, new Map([[NAME, '127.0.0.1']]));
  const httpPort = await freePort();
  const pebble = await startPebble(t, { httpPort, tlsPort: httpPort, dnsPort });
  const env = { MAILMESH_ACME__DIRECTORY_URL: pebble.directoryUrl, MAILMESH_ACME__CA_FILE: pebble.caFile, MAILMESH_ACME__CHALLENGE: 'http-01' };
  const { running } = await startNode(t, { cwd: dir, httpPort, env });
  const root = await pebble.root();
  t.match(root, /BEGIN CERTIFICATE/, "pebble's root");

  // Nothing pending: the challenge route answers NOT_FOUND.
  const miss = await fetch(`http://127.0.0.1:${httpPort}/.well-known/acme-challenge/nothing-pending`);
  t.equal(miss.status, 404);
  t.equal(((await miss.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');

  // The order (joined with the lease holder's, if it started first) validates over the HTTP face.
  t.match(await running.acme!.renewIfDue(), /^(ordered|current)$/);
  const stored = (await running.acme!.stored())!;
  t.same(stored.domains, [NAME]);
  const cert = leaf(stored.pair.cert);
  t.ok(cert.subjectAltName?.includes(`DNS:${NAME}`), 'issued for the name');
  t.equal(running.tls!.smtp!.current().cert, stored.pair.cert, 'STARTTLS holds the certificate');
  for (const k of ['acme:certificate', 'acme:account']) {
    const raw = (await running.directory.store.kvGet(k))!;
    t.ok(raw && !raw.includes('PRIVATE KEY'), `${k}: the store holds the private key sealed`);
  }

  const smtp = await openssl(dir, running.addresses.smtp!, root, true);
  t.equal(smtp.code, 0, `STARTTLS verifies against pebble's root: ${smtp.output.slice(-300)}`);
  t.equal(smtp.leaf?.fingerprint256, cert.fingerprint256, 'STARTTLS presents the ordered certificate');
  const other = await openssl(dir, running.addresses.smtp!, pebble.caPem, true);
  t.not(other.code, 0, 'and does not verify against another root');

  // Within the validity (pebble: 5 years) and renewBeforeDays (30): no new order.
  t.equal(await running.acme!.renewIfDue(), 'current');
  t.equal((await running.acme!.stored())!.pair.cert, stored.pair.cert);

  // A second node on the same store serves the same certificate from its start, without ordering.
  const second = await startNode(t, { cwd: dir, httpPort: 0, env });
  t.equal(second.running.tls!.smtp!.current().cert, stored.pair.cert, 'the second node holds the stored certificate');
  const two = await openssl(dir, second.running.addresses.smtp!, root, true);
  t.equal(two.leaf?.fingerprint256, cert.fingerprint256, "the second node's STARTTLS presents it");
  t.notOk(second.logs.lines.some((l) => l.msg === 'ACME order failed; the current certificate stays in use'));
});

t.test('a configuration ACME cannot work with is refused at start', async (t) => {
  const dir = tempDir(t);
  const { rejectsCode } = await import('../helpers.js');
  await rejectsCode(t, startNode(t, { cwd: dir, httpPort: 0, env: { MAILMESH_ACME__CHALLENGE: 'tls-alpn-01' } }), 'CONFIG_INVALID', 'tls-alpn-01 without HTTPS');
  await rejectsCode(t, startNode(t, { cwd: dir, httpPort: 0, env: { MAILMESH_ACME__DOMAINS: '' } }), 'CONFIG_INVALID', 'no names');
  await rejectsCode(t, startNode(t, { cwd: dir, httpPort: 0, env: { MAILMESH_HTTP__TLS__SELF_SIGNED: 'true' } }), 'CONFIG_INVALID', 'http-01 with an HTTPS face (the CA asks over plain HTTP)');
  await rejectsCode(t, startNode(t, { cwd: dir, httpPort: 0, env: { MAILMESH_ACME__CA_FILE: `${dir}/missing.pem` } }), 'CONFIG_INVALID', 'a missing caFile');
});

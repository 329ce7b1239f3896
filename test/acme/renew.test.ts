import t from 'tap';
import { tempDir } from '../helpers.js';
import { freePort, startDns, startPebble } from './pebble.js';
import { leaf, NAME, nextCert, openssl, startNode } from './setup.js';

t.test('renewal within renewBeforeDays by the periodic check; a failed order keeps the certificate and logs ACME_ORDER_FAILED', async (t) => {
  const dir = tempDir(t);
  const names = new Map([[NAME, '127.0.0.1']]);
  const dnsPort = await startDns(t, names);
  const port = await freePort();
  // Certificates valid 20 days: always within renewBeforeDays (30), so every check orders anew.
  const pebble = await startPebble(t, { httpPort: port, tlsPort: port, dnsPort, validitySec: 20 * 86400 });
  const root = await pebble.root();
  const env = { MAILMESH_ACME__DIRECTORY_URL: pebble.directoryUrl, MAILMESH_ACME__CA_FILE: pebble.caFile, MAILMESH_ACME__CHECK_INTERVAL_SEC: '1' };
  const { running, logs } = await startNode(t, { cwd: dir, httpPort: port, env });
  const holder = running.tls!.smtp!;

  const first = holder.current().cert === (await running.acme!.stored())?.pair.cert ? holder.current().cert : await nextCert(holder);
  const second = await nextCert(holder);
  t.not(leaf(second).serialNumber, leaf(first).serialNumber, 'the periodic check ordered a new certificate');
  t.ok(new Date(leaf(second).validTo).getTime() - Date.now() < 30 * 86_400_000, 'the renewed one is also within renewBeforeDays');
  const served = await openssl(dir, running.addresses.smtp!, root, true);
  t.equal(served.code, 0, 'STARTTLS verifies');
  t.ok([second, holder.current().cert].map((c) => leaf(c).fingerprint256).includes(served.leaf!.fingerprint256), 'STARTTLS presents a renewed certificate');

  // The name now resolves where nothing answers (127.0.0.2): validation fails.
  names.set(NAME, '127.0.0.2');
  const failure = await logs.wait((l) => l.code === 'ACME_ORDER_FAILED');
  t.match(failure, { level: 50, face: 'acme', domains: [NAME], msg: 'ACME order failed; the current certificate stays in use' });
  t.match(String((failure.err as { message: string }).message), /127\.0\.0\.2|connection refused|Connection refused/i, 'the log says why');
  const kept = holder.current().cert;
  t.equal((await running.acme!.stored())!.pair.cert, kept, 'the store keeps the last certificate');
  t.equal(await running.acme!.renewIfDue(), 'failed');
  t.equal(holder.current().cert, kept, 'the listener keeps it');
  const after = await openssl(dir, running.addresses.smtp!, root, true);
  t.equal(after.code, 0, 'STARTTLS still verifies');
  t.equal(after.leaf?.fingerprint256, leaf(kept).fingerprint256, 'with the kept certificate');
});

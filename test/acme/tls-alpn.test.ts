import t from 'tap';
import { tempDir } from '../helpers.js';
import { freePort, startDns, startPebble } from './pebble.js';
import { leaf, NAME, openssl, startNode } from './setup.js';

t.test('tls-alpn-01: the HTTPS face answers the challenge (RFC 8737), then HTTPS and STARTTLS serve the certificate', async (t) => {
  const dir = tempDir(t);
  const dnsPort = await startDns(t, new Map([[NAME, '127.0.0.1']]));
  const port = await freePort();
  const pebble = await startPebble(t, { httpPort: port, tlsPort: port, dnsPort });
  const root = await pebble.root();
  const env = {
    MAILMESH_ACME__DIRECTORY_URL: pebble.directoryUrl, MAILMESH_ACME__CA_FILE: pebble.caFile, MAILMESH_ACME__CHALLENGE: 'tls-alpn-01',
    MAILMESH_HTTP__TLS__SELF_SIGNED: 'true',
  };
  const { running } = await startNode(t, { cwd: dir, httpPort: port, env });
  const https = `127.0.0.1:${port}`;
  // The order (joined with the lease holder's, if it started first) validates over the HTTPS face.
  t.match(await running.acme!.renewIfDue(), /^(ordered|current)$/);
  const cert = leaf((await running.acme!.stored())!.pair.cert);
  const face = await openssl(dir, https, root, false);
  t.equal(face.code, 0, `HTTPS verifies against pebble's root: ${face.output.slice(-300)}`);
  t.equal(face.leaf?.fingerprint256, cert.fingerprint256, 'the HTTPS face presents the ordered certificate');
  const smtp = await openssl(dir, running.addresses.smtp!, root, true);
  t.equal(smtp.leaf?.fingerprint256, cert.fingerprint256, 'STARTTLS presents it too');

  // A real HTTP client over the new certificate; the challenge is over, so h2/http1.1 clients get the face.
  const { run } = await import('../helpers.js');
  const r = await run('curl', ['-sS', '--cacert', `${dir}/root.pem`, '--resolve', `${NAME}:${port}:127.0.0.1`, `https://${NAME}:${port}/healthz`], { allowFail: true });
  t.equal(r.code, 0, `curl: ${r.stderr}`);
  t.match(JSON.parse(r.stdout.toString()) as object, { status: 'ok' });
});

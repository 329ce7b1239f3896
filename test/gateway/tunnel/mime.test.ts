import t from 'tap';
import { isMailmeshError } from '../../../directory/errors.js';
import {
  decodeBase64,
  decodeBody,
  encodeBase64Lines,
  fieldValue,
  makeBoundary,
  parseContentType,
  parseEntity,
  splitMultipart,
} from '../../../gateway/tunnel/mime.js';
import { seeded, throwsCode } from '../../helpers.js';
import { mutate, sampleMessage } from './fixtures.js';

t.test('entities: header fields, unfolding, body offset, LF-only input', async (t) => {
  const e = parseEntity(Buffer.from('Subject: a\r\n  b\r\nX-Y:z\r\n\r\nbody\r\n'));
  t.same(e.fields.map((f) => [f.name, f.value]), [['Subject', 'a  b'], ['X-Y', 'z']]);
  t.equal(e.fields[0]!.raw.toString(), 'Subject: a\r\n  b\r\n', 'raw bytes kept with folding');
  t.equal(e.body.toString(), 'body\r\n');
  t.equal(e.bodyStart, 26);
  const lf = parseEntity(Buffer.from('A: 1\nB: 2\n\nbody'));
  t.equal(fieldValue(lf.fields, 'b'), '2', 'names are case-insensitive');
  t.equal(lf.body.toString(), 'body');
  t.same(parseEntity(Buffer.from('A: 1\r\n')).body.length, 0, 'no body');
  t.same(parseEntity(Buffer.from('\r\nonly body')).fields, [], 'no header');
  throwsCode(t, () => parseEntity(Buffer.from('not a header line\r\n\r\n')), 'TUNNEL_MALFORMED');
  throwsCode(t, () => parseEntity(Buffer.from(': empty name\r\n\r\n')), 'TUNNEL_MALFORMED');
  throwsCode(t, () => parseEntity(Buffer.from('Bad Name: x\r\n\r\n')), 'TUNNEL_MALFORMED');
  throwsCode(t, () => parseEntity(Buffer.from('A: 1\r\n'.repeat(1001))), 'TUNNEL_MALFORMED', 'too many fields');
});

t.test('Content-Type (RFC 2045 §5.1)', async (t) => {
  t.same(parseContentType('Multipart/Encrypted; protocol="application/pgp-encrypted";\tBOUNDARY=abc'), {
    type: 'multipart',
    subtype: 'encrypted',
    params: { protocol: 'application/pgp-encrypted', boundary: 'abc' },
  });
  t.same(parseContentType('text/plain (a comment) ; charset="utf\\"8";').params, { charset: 'utf"8' });
  t.same(parseContentType('application/pkcs7-mime; name="a;b (c).p7m"').params, { name: 'a;b (c).p7m' }, 'separators inside quotes');
  t.same(parseContentType(undefined), { type: 'text', subtype: 'plain', params: { charset: 'us-ascii' } }, 'RFC 2045 §5.2 default');
  for (const bad of ['', 'text', 'text/', '/plain', 'text/plain; charset', 'text/plain; =x', 'text/plain; a="unterminated', 'text/plain junk', 'text/plain; a=b c']) {
    throwsCode(t, () => parseContentType(bad), 'TUNNEL_MALFORMED', JSON.stringify(bad));
  }
});

t.test('multipart bodies (RFC 2046 §5.1.1)', async (t) => {
  const body = Buffer.from('preamble\r\n--b\r\npart one\r\n--b \t\r\nA: 1\r\n\r\ntwo\r\n--bb\r\nnot a delimiter\r\n--b--\r\nepilogue\r\n--b\r\nignored');
  const parts = splitMultipart(body, 'b');
  t.same(parts.map(String), ['part one', 'A: 1\r\n\r\ntwo\r\n--bb\r\nnot a delimiter'], 'the CRLF before a delimiter belongs to it; a longer boundary is not one');
  t.same(splitMultipart(Buffer.from('--x\nLF only\n--x--'), 'x').map(String), ['LF only']);
  t.same(splitMultipart(Buffer.from('--x\r\n\r\n--x--'), 'x').map(String), [''], 'an empty part');
  throwsCode(t, () => splitMultipart(Buffer.from('--b\r\nno close'), 'b'), 'TUNNEL_MALFORMED');
  throwsCode(t, () => splitMultipart(Buffer.from('no delimiter at all'), 'b'), 'TUNNEL_MALFORMED');
  throwsCode(t, () => splitMultipart(Buffer.from('x--b\r\n--b--'), 'b'), 'TUNNEL_MALFORMED', 'a delimiter must start a line');
  throwsCode(t, () => splitMultipart(Buffer.from('--b--'), 'b'), 'TUNNEL_MALFORMED', 'no part');
  throwsCode(t, () => splitMultipart(Buffer.from(''), 'x'.repeat(71)), 'TUNNEL_MALFORMED', 'boundary over 70 characters');
  throwsCode(t, () => splitMultipart(Buffer.from('--b\r\n'.repeat(1002) + '--b--'), 'b'), 'TUNNEL_MALFORMED', 'too many parts');
});

t.test('transfer encodings', async (t) => {
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
  const lines = encodeBase64Lines(data);
  t.ok(lines.split('\r\n').every((l) => l.length <= 76), 'lines of at most 76 characters');
  t.same(decodeBase64(Buffer.from(lines)), data);
  throwsCode(t, () => decodeBase64(Buffer.from('ab$d')), 'TUNNEL_MALFORMED');
  throwsCode(t, () => decodeBase64(Buffer.from('abcde')), 'TUNNEL_MALFORMED');
  throwsCode(t, () => decodeBody(parseEntity(Buffer.from('Content-Transfer-Encoding: quoted-printable\r\n\r\na=3D'))), 'TUNNEL_UNSUPPORTED');
  t.same(decodeBody(parseEntity(Buffer.from('Content-Transfer-Encoding: 8BIT\r\n\r\n\xe4', 'latin1'))), Buffer.from([0xe4]));
  t.match(makeBoundary((n) => Buffer.alloc(n, 1)), /^=_mailmesh_(01){18}$/);
});

t.test('property: random multiparts split back into their parts', async (t) => {
  const rnd = seeded(42);
  const alphabet = 'ab-=\r\n \t-x';
  for (let i = 0; i < 300; i++) {
    const boundary = makeBoundary((n) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256))));
    const parts = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () =>
      Array.from({ length: Math.floor(rnd() * 40) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join(''),
    );
    const body = Buffer.from(`pre\r\n${parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('')}--${boundary}--\r\npost`);
    t.same(splitMultipart(body, boundary).map(String), parts);
  }
});

t.test('fuzz: mutated messages give a clean TUNNEL_* error or a result, never a crash', async (t) => {
  const rnd = seeded(7);
  const seed = Buffer.concat([Buffer.from('Content-Type: multipart/mixed; boundary="b1"; x="y\\"z" (c)\r\n'), sampleMessage()]);
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    let m: Buffer = seed;
    for (let j = 1 + Math.floor(rnd() * 4); j > 0; j--) m = mutate(m, rnd);
    try {
      const e = parseEntity(m);
      const ct = parseContentType(fieldValue(e.fields, 'content-type'));
      if (ct.params.boundary) for (const p of splitMultipart(e.body, ct.params.boundary)) decodeBody(parseEntity(p));
    } catch (e) {
      errors++;
      if (!isMailmeshError(e) || !e.code.startsWith('TUNNEL_')) {
        t.fail(`iteration ${i}: ${String(e)}`);
        return;
      }
    }
  }
  t.ok(errors > 0, `${errors} of 3000 mutations were refused cleanly`);
});

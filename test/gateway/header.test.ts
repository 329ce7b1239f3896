import { performance } from 'node:perf_hooks';
import t from 'tap';
import { authorDomain, authservIdOf, countReceived, headerFields, MAX_FROM_LENGTH, rfc5322Date } from '../../gateway/header.js';
import { aligned, triggered } from '../../gateway/policy.js';
import { removeOurResults } from '../../gateway/tunnel/authresults.js';
import { FORGED_IDS } from './forged.js';

const ID = 'mx.beta.test';


t.test('authservIdOf reads the id through comments, quotes, case, a trailing dot and folding', async (t) => {
  for (const id of FORGED_IDS) t.equal(authservIdOf(`${id}; mailmesh=pass`), ID, JSON.stringify(id));
  t.equal(authservIdOf('mx.beta.test;'), ID);
  t.equal(authservIdOf('other.example; spf=pass'), 'other.example');
  t.equal(authservIdOf('mx.beta.test.evil; spf=pass'), 'mx.beta.test.evil', 'a longer name is another server');
  t.equal(authservIdOf('(unclosed mx.beta.test; x=pass'), undefined, 'an unclosed comment has no id');
  t.equal(authservIdOf('"mx.beta.test; x=pass'), undefined, 'an unclosed quote has no id');
  t.equal(authservIdOf('   '), undefined);
});

t.test('removeOurResults drops every field claiming our id, and unreadable ones; all other bytes stay', async (t) => {
  const body = '\r\nAuthentication-Results: mx.beta.test; in the body, not a field\r\n';
  for (const id of FORGED_IDS) {
    const head = `Received: from x\r\nAuthentication-Results: ${id}; mailmesh=pass header.d=bank.test\r\nAuthentication-Results: other.example; spf=pass\r\nFrom: a@b.test\r\n`;
    const out = removeOurResults(headerFields(Buffer.from(head + body)), ID).toString();
    t.equal(out, `Received: from x\r\nAuthentication-Results: other.example; spf=pass\r\nFrom: a@b.test\r\n${body}`, JSON.stringify(id));
  }
  const odd = 'authentication-RESULTS  :(x)mx.beta.test;a=pass\nAuthentication-Results\n :mx.beta.test;a=pass\nAuthentication-Results: (never closed; a=pass\nSubject: s\n\nbody';
  t.equal(removeOurResults(headerFields(Buffer.from(odd)), ID).toString(), 'Subject: s\n\nbody', 'LF line ends, odd case, WSP (even folded) before the colon');
  // An id that is no domain name once mapped (a no-break space, which a reader's trim() removes) is unreadable: dropped.
  t.equal(authservIdOf('mx.beta.test\u00a0; mailmesh=pass'), undefined, 'a no-break space: unreadable');
  t.equal(removeOurResults(headerFields(Buffer.from('Authentication-Results: mx.beta.test\u00a0; mailmesh=pass\r\nSubject: s\r\n\r\nb')), ID).toString(), 'Subject: s\r\n\r\nb');
  // A bare CR is a line break to some readers: the field it hides is a field here too.
  const hidden = 'Subject: x\rAuthentication-Results: mx.beta.test; mailmesh=pass\r\nFrom: a@b.test\r\n\r\nb';
  t.equal(removeOurResults(headerFields(Buffer.from(hidden)), ID).toString(), 'Subject: x\rFrom: a@b.test\r\n\r\nb', 'a result hidden behind a bare CR');
  const clean = Buffer.from('From: a@b.test\r\n\r\nhi\r\n');
  t.equal(removeOurResults(headerFields(clean), ID), clean, 'the same buffer when nothing is removed');
});

t.test('authorDomain: exactly one From field with exactly one mailbox', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['From: CEO <ceo@Bank.Test>', 'bank.test'],
    ['From: ceo@bank.test (The CEO)', 'bank.test'],
    ['From: "ceo@partner.test" <ceo@bank.test>', 'bank.test'],
    ['From: "a, b" <ceo@bank.test>', 'bank.test'],
    ['From: (x) <"odd@local"@bank.test>', 'bank.test'],
    ['From: CEO\r\n <ceo@bank.test>', 'bank.test'],
    ['From: ceo@bank.test.', 'bank.test'],
    ['From: a@partner.test, b@bank.test', undefined],
    ['From: <a@partner.test> <b@bank.test>', undefined],
    ['From: a@partner.test <b@bank.test>', undefined],
    ['From: group: a@bank.test;', undefined],
    ['From: ceo@[192.0.2.1]', undefined],
    ['From: <ceo@bank.test', undefined],
    ['From: (ceo@bank.test', undefined],
    ['From: nobody', undefined],
    ['From: a@bank.test\r\nFrom: b@bank.test', undefined],
    ['Subject: hi\rFrom: ceo@victim.test\r\nFrom: a@attacker.test', undefined],
    ['Sender: a@bank.test', undefined],
  ];
  for (const [head, want] of cases) t.equal(authorDomain(headerFields(Buffer.from(`${head}\r\nTo: x@y.test\r\n\r\nFrom: body@evil.test\r\n`))), want, JSON.stringify(head));
  t.equal(authorDomain(headerFields(Buffer.from(`From: ${'x'.repeat(MAX_FROM_LENGTH)}@bank.test\r\n\r\n`))), undefined, 'a From over the cap has no author');
});

t.test('countReceived and the body offset follow the one splitter; rfc5322Date', async (t) => {
  t.equal(countReceived(Buffer.from('Received: a\r\nReceived\r\n : folded name\r\nX: y\rReceived: behind a bare CR\r\n\r\nReceived: body\r\n')), 3);
  t.equal(countReceived(Buffer.from('Received: a\nreceived : b\n\nReceived: body after an LF-only empty line\n')), 2);
  const h = headerFields(Buffer.from('A: 1\r\n\r\nbody'));
  t.same([h.headerEnd, h.bodyStart], [6, 8], 'CRLF empty line');
  const lf = headerFields(Buffer.from('A: 1\n\nbody'));
  t.same([lf.headerEnd, lf.bodyStart], [5, 6], 'LF empty line');
  const none = headerFields(Buffer.from('A: 1\r\n'));
  t.same([none.headerEnd, none.bodyStart], [6, 6], 'no body');
  t.equal(rfc5322Date(Date.UTC(2003, 6, 1, 10, 52, 37)), 'Tue, 01 Jul 2003 10:52:37 +0000', 'RFC 5322 §3.3');
});

t.test('alignment: strict is the same domain; relaxed also a parent, never a child, a sibling or a suffix match', async (t) => {
  t.ok(aligned('alpha.test', 'alpha.test', 'strict'));
  t.notOk(aligned('alpha.test', 'sales.alpha.test', 'strict'));
  t.ok(aligned('alpha.test', 'sales.alpha.test', 'relaxed'));
  t.ok(aligned('alpha.test', 'a.b.alpha.test', 'relaxed'));
  t.notOk(aligned('sales.alpha.test', 'alpha.test', 'relaxed'), 'a subdomain does not sign for its parent');
  t.notOk(aligned('sales.alpha.test', 'hr.alpha.test', 'relaxed'), 'nor for a sibling');
  t.notOk(aligned('alpha.test', 'evilalpha.test', 'relaxed'), 'a label boundary, not a string suffix');
  t.notOk(aligned(undefined, 'alpha.test', 'relaxed'));
  t.notOk(aligned('alpha.test', undefined, 'relaxed'));
});

t.test('triggered reads Subject and the trigger header through the same splitter', async (t) => {
  const trigger = { subjectTag: '[secure]', header: 'X-Mailmesh-Encrypt' };
  const m = (h: string) => Buffer.from(`${h}\r\n\r\nSubject: [secure] in the body\r\n`);
  t.ok(triggered(m('Subject: [SECURE] pay'), trigger));
  t.ok(triggered(m('Subject:\r\n [secure] folded'), trigger));
  t.ok(triggered(m('x-mailmesh-encrypt : yes'), trigger));
  t.notOk(triggered(m('X-Mailmesh-Encrypt: No'), trigger));
  t.notOk(triggered(m('Subject: re: [secure]'), trigger));
  t.notOk(triggered(m('From: a@b.test'), trigger), 'the body is not the header');
  t.notOk(triggered(m('Subject: [secure] x'), { subjectTag: '', header: '' }), 'both off');
});

/** The median of five timings of f, in ms per call, each over `reps` calls. */
function median(f: () => void, reps: number): number {
  const times = [0, 1, 2, 3, 4].map(() => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    return (performance.now() - t0) / reps;
  });
  return times.sort((a, b) => a - b)[2]!;
}

t.test('header parsing is linear: 1 MB of adversarial header costs about 100× 10 KB, not more', async (t) => {
  // What froze the old From regex (/^from:.*?<?([^<>\s]+@[^<>\s]+)>?\s*$/im): many `@`, no end.
  const attacks: Array<[string, (n: number) => Buffer]> = [
    ['From of @s', (n) => Buffer.from(`From: ${'@'.repeat(n)}<\r\n\r\n`)],
    ['From of nested comments', (n) => Buffer.from(`From: ${'(@'.repeat(n / 2)}\r\n\r\n`)],
    ['many folded lines', (n) => Buffer.from(`From: a\r\n${' @<\r\n'.repeat(n / 5)}\r\n`)],
    ['Authentication-Results of comments', (n) => Buffer.from(`Authentication-Results: ${'((\\)'.repeat(n / 4)}mx.beta.test; a=pass\r\n\r\n`)],
    ['lines without a colon', (n) => Buffer.from(`${'x\r\n'.repeat(n / 3)}From: a@b.test\r\n\r\n`)],
    ['many fields', (n) => Buffer.from('Authentication-Results: (x) mx.beta.test.; a=pass\r\n'.repeat(n / 50) + '\r\n')],
  ];
  for (const [name, make] of attacks) {
    const small = make(10_000);
    const large = make(1_000_000);
    const run = (m: Buffer) => () => {
      authorDomain(headerFields(m));
      removeOurResults(headerFields(m), ID);
      headerFields(m);
    };
    median(run(small), 20); // warm up
    const ratio = median(run(large), 1) / median(run(small), 100);
    // Linear is ~100; the old regex was cubic (10^6). A generous bound, no absolute time.
    t.ok(ratio < 1000, `${name}: 1 MB / 10 KB = ${ratio.toFixed(0)}`);
  }
});

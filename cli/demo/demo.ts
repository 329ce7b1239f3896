import { EXIT } from '../exit.js';
import type { TunnelFormat } from '../../directory/record.js';
import { loopbackPair } from './loopback.js';
import { SmtpClient } from '../../gateway/smtp/client.js';

/**
 * `mailmesh demo`: two member domains with their own directories, DNS, gateways and internal
 * mail servers on loopback; one message alpha.test → beta.test; prints what travelled between
 * the gateways and what arrived. Returns the exit code.
 */
export async function demo(opts: { format: TunnelFormat; out: (s: string) => void }): Promise<number> {
  const say = opts.out;
  say(`Starting alpha.test and beta.test on loopback (directories, DNS, gateways, mail servers)…\n`);
  const { members, close } = await loopbackPair(['alpha.test', 'beta.test'], { format: opts.format });
  try {
    const [alpha, beta] = members;
    for (const m of members) {
      const r = await m.directory.getRecord(m.domain);
      say(`  ${m.domain}: gateway 127.0.0.1:${m.smtpPort}, DNS 127.0.0.1:${m.dnsPort}, OpenPGP ${r.keys.openpgp?.fingerprint}\n`);
    }
    const message = Buffer.from(
      [
        'From: Alice <alice@alpha.test>',
        'To: Bob <bob@beta.test>',
        'Subject: Quarterly figures',
        `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
        `Message-ID: <demo.${Date.now()}@alpha.test>`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Hello Bob, the figures are attached in spirit. Regards, Alice',
        '',
      ].join('\r\n'),
    );
    const client = await SmtpClient.connect({ host: '127.0.0.1', port: alpha.smtpPort, helo: 'client.alpha.test', tls: 'none' });
    const steps = [await client.mail('alice@alpha.test'), await client.rcpt('bob@beta.test'), await client.data(message)];
    await client.quit();
    const last = steps[steps.length - 1]!;
    say(`\nalice@alpha.test → bob@beta.test through alpha's gateway: ${last.code} ${last.lines.join(' ')}\n`);
    if (last.code !== 250) return EXIT.FAILURE;
    await beta.sink.received(1);
    const travelled = beta.arrived[0]!.toString('utf8');
    say(`\n=== What travelled between the gateways (${opts.format}) ===\n`);
    say(travelled.length > 1800 ? `${travelled.slice(0, 1800)}\n[… ${travelled.length - 1800} more bytes]\n` : travelled);
    const delivered = beta.sink.messages[0]!.data;
    say(`\n=== What beta.test's mail server received ===\n${delivered.toString('utf8')}\n`);
    const intact = delivered.subarray(delivered.length - message.length).equals(message);
    const verified = /mailmesh=pass/.test(delivered.toString('latin1'));
    say(`The original message arrived ${intact ? 'byte for byte unchanged' : 'CHANGED'}; the signature ${verified ? 'verified' : 'did NOT verify'}.\n`);
    return intact && verified ? EXIT.OK : EXIT.FAILURE;
  } finally {
    await close();
  }
}

import { parseDomain } from '../../../directory/domain.js';
import { generateDomainKeys } from '../../../directory/keys.js';
import { SMIME_AEAD } from '../../../directory/record.js';
import type { OwnDomain, PeerDomain } from '../../../gateway/tunnel/tunnel.js';

export const NOW = new Date();

/** A member domain with fresh keys (Ed25519/Curve25519 OpenPGP, RSA-3072 S/MIME: about a second or two). */
export async function makeDomain(name: string): Promise<OwnDomain> {
  const domain = parseDomain(name);
  const { keys, secrets } = await generateDomainKeys(domain, { openpgp: 'curve25519', validDays: 365 }, NOW);
  return { domain, keys, secrets };
}

/** A peer whose record announces no capabilities (signed before they existed): S/MIME goes as CBC. */
export function peer(own: OwnDomain): PeerDomain {
  return { domain: own.domain, keys: own.keys };
}

/** A peer whose record announces AuthEnvelopedData with AES-256-GCM. */
export function aeadPeer(own: Pick<OwnDomain, 'domain' | 'keys'>): PeerDomain {
  return { domain: own.domain, keys: own.keys, capabilities: [SMIME_AEAD] };
}

/**
 * A multipart message with a binary attachment, 8-bit text, trailing white space, a folded
 * header, and a lone LF inside the attachment's raw bytes: anything a text mode would change.
 */
export function sampleMessage(seed = 1): Buffer {
  const attachment = Buffer.alloc(3000);
  for (let i = 0; i < attachment.length; i++) attachment[i] = (i * 31 + seed * 7) & 0xff;
  const b64 = attachment.toString('base64').replace(/.{1,76}/g, '$&\r\n');
  return Buffer.concat([
    Buffer.from(
      'From: Alice <alice@alpha.test>\r\n' +
        'To: Bob <bob@beta.test>,\r\n  Carol <carol@beta.test>\r\n' +
        'Cc: dave@beta.test\r\n' +
        'Subject: Quarterly figures (confidential)\r\n' +
        'Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n' +
        `Message-ID: <${seed}.tunnel@alpha.test>\r\n` +
        'MIME-Version: 1.0\r\n' +
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
        'preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
        'Grüße, trailing spaces   \r\n\tand a tab\r\n' +
        '--b1\r\nContent-Type: application/octet-stream; name="data.bin"\r\nContent-Transfer-Encoding: base64\r\n' +
        'Content-Disposition: attachment; filename="data.bin"\r\n\r\n',
      'utf8',
    ),
    Buffer.from(b64, 'latin1'),
    Buffer.from('--b1--\r\n', 'latin1'),
  ]);
}

/** One random mutation of the input: flip, overwrite, insert, delete or truncate. */
export function mutate(data: Buffer, rnd: () => number): Buffer {
  const pos = Math.floor(rnd() * data.length);
  switch (Math.floor(rnd() * 5)) {
    case 0: {
      const c = Buffer.from(data);
      c[pos] = c[pos]! ^ (1 << Math.floor(rnd() * 8));
      return c;
    }
    case 1: {
      const c = Buffer.from(data);
      c[pos] = Math.floor(rnd() * 256);
      return c;
    }
    case 2:
      return Buffer.concat([data.subarray(0, pos), Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * 256))), data.subarray(pos)]);
    case 3:
      return Buffer.concat([data.subarray(0, pos), data.subarray(pos + 1 + Math.floor(rnd() * 16))]);
    default:
      return data.subarray(0, pos);
  }
}

import type { LdapAttribute } from './entries.js';

/** What renderLdif needs of an entry: its DN and attributes. */
interface LdifEntry {
  dn: string;
  attributes: LdapAttribute[];
}

/** RFC 2849 recommends folding; 76 columns is what OpenLDAP's tools write. */
const WIDTH = 76;

/**
 * RFC 2849 §"Formal Syntax": a value may be written as-is only if it is a SAFE-STRING:
 * ASCII without NUL, LF or CR, not starting with space, ':' or '<'. We also base64 a value
 * that ends with a space (RFC 2849 note 8) and every binary (Buffer) value.
 */
// eslint-disable-next-line no-control-regex -- the unsafe characters are exactly what is tested
const SAFE_STRING = /^(?:[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*)?$/;

function isSafe(value: string): boolean {
  return SAFE_STRING.test(value) && !value.endsWith(' ');
}

/** RFC 2849 note 2: a long line is folded by inserting a line separator and a single space. */
export function foldLine(line: string, width = WIDTH): string {
  if (line.length <= width) return line;
  const parts = [line.slice(0, width)];
  for (let i = width; i < line.length; i += width - 1) parts.push(' ' + line.slice(i, i + width - 1));
  return parts.join('\n');
}

/** One `attr: value` or `attr:: base64` line, folded (RFC 2849 attrval-spec). */
export function ldifLine(attr: string, value: string | Buffer): string {
  if (typeof value === 'string' && isSafe(value)) return foldLine(`${attr}: ${value}`);
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return foldLine(`${attr}:: ${bytes.toString('base64')}`);
}

/**
 * RFC 2849 ldif-content: each entry as a dn-spec and its attrval-specs, entries separated by
 * blank lines, comments first. We write no `version: 1` line: slapadd refuses it (it reads it as
 * an attribute), as slapcat writes none; ldapadd reads the file either way.
 */
export function renderLdif(entries: LdifEntry[], comment?: string): string {
  const blocks = entries.map((e) =>
    [ldifLine('dn', e.dn), ...e.attributes.flatMap((a) => a.values.map((v) => ldifLine(a.type, v)))].join('\n'),
  );
  const head = comment ? comment.split('\n').map((l) => foldLine(`# ${l}`)).join('\n') + '\n' : '';
  return head + blocks.join('\n\n') + '\n';
}

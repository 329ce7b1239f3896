/**
 * Proactive content negotiation on the Accept header (RFC 9110 §12.5.1), enough for choosing
 * between a few representations of one resource.
 */

// RFC 9110 §5.6.2 token characters; a media range is type "/" subtype, or type "/*", or "*/*".
const TOKEN = "[a-z0-9!#$%&'*+.^_`|~-]+";
const RANGE = new RegExp(`^(${TOKEN})/(${TOKEN})$`);
// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$/;

interface Range {
  type: string;
  subtype: string;
  q: number;
  /** 0 for *\/*, 1 for type/*, 2 for type/subtype: a more specific range overrides a less specific one. */
  specificity: number;
}

function parseRange(part: string): Range | undefined {
  const [media, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
  const m = RANGE.exec(media ?? '');
  if (!m) return undefined;
  const [, type, subtype] = m as unknown as [string, string, string];
  if (type === '*' && subtype !== '*') return undefined;
  let q = 1;
  for (const p of params) {
    if (!p.startsWith('q=')) continue; // other parameters are not used to choose here
    const qm = QVALUE.exec(p.replace(/\s+/g, ''));
    if (!qm) return undefined;
    q = Number(qm[1]);
  }
  return { type, subtype, q, specificity: type === '*' ? 0 : subtype === '*' ? 1 : 2 };
}

/**
 * The offer the client prefers: highest q of the most specific range matching it, then the more
 * specific match, then the order of `offers`. With no Accept header, or when it accepts none of the
 * offers, the first offer is the answer: RFC 9110 §12.5.1 lets a server disregard the header
 * instead of answering 406.
 */
export function negotiate(accept: string | undefined, offers: readonly [string, ...string[]]): string {
  if (!accept) return offers[0];
  const ranges = accept
    .slice(0, 4096)
    .split(',')
    .map(parseRange)
    .filter((r): r is Range => r !== undefined);
  let best = offers[0];
  let bestQ = 0;
  let bestSpecificity = -1;
  for (const offer of offers) {
    const [type, subtype] = offer.split('/');
    let match: Range | undefined;
    for (const r of ranges) {
      const fits = r.specificity === 0 || (r.type === type && (r.specificity === 1 || r.subtype === subtype));
      if (fits && (!match || r.specificity > match.specificity)) match = r;
    }
    if (match && (match.q > bestQ || (match.q === bestQ && match.q > 0 && match.specificity > bestSpecificity))) {
      best = offer;
      bestQ = match.q;
      bestSpecificity = match.specificity;
    }
  }
  return best;
}

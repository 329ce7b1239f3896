import { parseAddress } from '../domain.js';
import type { LdapEntry } from './entries.js';

/**
 * Search filter evaluation (RFC 4511 §4.5.1.7) over our entries, on the filter tree ldapjs
 * parsed from the request. We do not use ldapjs's `matches()`: it compares values
 * case-sensitively (mail, cn and objectClass match case-insensitively, RFC 4517) and throws on
 * approxMatch and extensibleMatch. Evaluation is three-valued: TRUE, FALSE or UNDEFINED.
 */
export type Truth = 'TRUE' | 'FALSE' | 'UNDEFINED';

/** The shape of an ldapjs 3 filter object, as far as we read it. */
export interface FilterNode {
  type: string;
  attribute?: string;
  value?: unknown;
  clauses?: FilterNode[];
  filter?: FilterNode;
  initial?: string;
  any?: string[];
  final?: string;
}

/** Attribute types with a case-ignore equality and substrings rule; every other known type has none. */
const CASE_IGNORE = new Set(['objectclass', 'mail', 'cn', 'sn', 'description', 'pgpcertid', 'dc', 'o', 'ou', 'namingcontexts', 'supportedldapversion']);
/** Known types whose syntax has no equality rule we implement (certificate, IA5 without EQUALITY). */
const NO_EQUALITY = new Set(['usercertificate', 'pgpkey']);

/** The attribute type of a description, without options (RFC 4512 §2.5), lower-cased. */
export function attributeType(description: string): string {
  return description.split(';')[0]!.toLowerCase();
}

/** RFC 4518 §2.6.1 (insignificant space handling) and case folding, simplified to ASCII-range lower-casing. */
function prep(s: string): string {
  return s.trim().replace(/\s+/g, ' ').toLowerCase();
}

function values(entry: LdapEntry, type: string): (string | Buffer)[] | undefined {
  const found = entry.attributes.filter((a) => attributeType(a.type) === type);
  return found.length ? found.flatMap((a) => a.values) : undefined;
}

const asText = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v ?? ''));

/** A filter compiled for one search: evaluates it against an entry. */
type Matcher = (entry: LdapEntry) => Truth;

const always = (t: Truth): Matcher => () => t;

/**
 * equalityMatch (and approxMatch, which RFC 4511 §4.5.1.7.6 lets us treat as equality).
 * The one extension: `mail=<any address in the entry's domain>` matches, so a client looking
 * up a recipient's certificate finds the domain key (docs/architecture.md "Publication").
 */
function equality(type: string, assertion: string): Matcher {
  if (!CASE_IGNORE.has(type)) return always('UNDEFINED');
  let domain: string | undefined;
  if (type === 'mail') {
    try {
      domain = parseAddress(assertion).domain;
    } catch {
      // not an address: compare as a plain value only
    }
  }
  const want = prep(assertion);
  return (entry) =>
    (domain !== undefined && entry.domain === domain) || (values(entry, type) ?? []).some((v) => prep(asText(v)) === want) ? 'TRUE' : 'FALSE';
}

/** RFC 4511 §4.5.1.7.2: initial, then each any in order without overlap, then final. */
function substrings(type: string, f: FilterNode): Matcher {
  if (!CASE_IGNORE.has(type)) return always('UNDEFINED');
  const initial = f.initial ? prep(f.initial) : '';
  const final = f.final ? prep(f.final) : '';
  const anys = (f.any ?? []).map(prep);
  const match = (raw: string): boolean => {
    const v = prep(raw);
    if (!v.startsWith(initial)) return false;
    let pos = initial.length;
    for (const a of anys) {
      const at = v.indexOf(a, pos);
      if (at < 0) return false;
      pos = at + a.length;
    }
    return v.length - final.length >= pos && v.endsWith(final);
  };
  return (entry) => ((values(entry, type) ?? []).some((v) => match(asText(v))) ? 'TRUE' : 'FALSE');
}

/** AND and OR in three-valued logic: the deciding value wins, else any UNDEFINED, else the other value. */
function combine(clauses: FilterNode[], decisive: Truth, otherwise: Truth): Matcher {
  const matchers = clauses.map(compileFilter);
  return (entry) => {
    let out = otherwise;
    for (const m of matchers) {
      const r = m(entry);
      if (r === decisive) return decisive;
      if (r === 'UNDEFINED') out = 'UNDEFINED';
    }
    return out;
  };
}

/** Compiles a filter once per search; only TRUE selects an entry (RFC 4511 §4.5.1.7). */
export function compileFilter(f: FilterNode): Matcher {
  switch (f.type) {
    case 'AndFilter':
      // RFC 4511 §4.5.1.7.1 and RFC 4526 §2: FALSE decides an AND; the empty AND is TRUE.
      return combine(f.clauses ?? [], 'FALSE', 'TRUE');
    case 'OrFilter':
      // RFC 4511 §4.5.1.7.2: TRUE decides an OR; the empty OR is FALSE.
      return combine(f.clauses ?? [], 'TRUE', 'FALSE');
    case 'NotFilter': {
      if (!f.filter) return always('UNDEFINED');
      const inner = compileFilter(f.filter);
      return (entry) => {
        const r = inner(entry);
        return r === 'TRUE' ? 'FALSE' : r === 'FALSE' ? 'TRUE' : 'UNDEFINED';
      };
    }
    case 'PresenceFilter': {
      // RFC 4511 §4.5.1.7.5: TRUE if the entry has the attribute, FALSE otherwise.
      const type = attributeType(f.attribute ?? '');
      return (entry) => (values(entry, type) ? 'TRUE' : 'FALSE');
    }
    case 'EqualityFilter':
    case 'ApproximateFilter': {
      const type = attributeType(f.attribute ?? '');
      return NO_EQUALITY.has(type) ? always('UNDEFINED') : equality(type, asText(f.value));
    }
    case 'SubstringFilter':
      return substrings(attributeType(f.attribute ?? ''), f);
    default:
      // greaterOrEqual / lessOrEqual (no ordering rule on our types) and extensibleMatch.
      return always('UNDEFINED');
  }
}

/** Evaluates a filter against one entry (compileFilter, for a single use). */
export function evaluate(f: FilterNode, entry: LdapEntry): Truth {
  return compileFilter(f)(entry);
}

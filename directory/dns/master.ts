import { TYPE_NAMES } from '../dnswire.js';
import type { Zone } from './zone.js';

/**
 * RFC 1035 §5.1: a zone in master-file text form, one record a line with absolute names
 * (`owner. TTL IN TYPE RDATA`), the SOA first. Types without a mnemonic use the RFC 3597 §5
 * generic form. Knot (`kzonecheck`), NSD and BIND read it.
 */
export function renderMasterFile(zone: Zone, comment?: string): string {
  const lines = [`; zone ${zone.apex}${comment ? `, ${comment}` : ''}`, `$ORIGIN ${zone.apex}.`];
  for (const r of zone.records) {
    const type = TYPE_NAMES[r.type];
    const rdata = type ? r.text : `\\# ${r.rdata.length} ${r.rdata.toString('hex')}`;
    lines.push(`${r.owner}. ${r.ttl} IN ${type ?? `TYPE${r.type}`} ${rdata}`);
  }
  return lines.join('\n') + '\n';
}

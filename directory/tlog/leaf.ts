import { canonicalize } from '../jcs.js';
import type { RecordDraft } from '../record.js';
import { recordPayload } from '../signed.js';

/**
 * What the transparency log holds for a record version (docs/transparency.md "Entries"): the
 * RFC 8785 canonical JSON, as UTF-8, of the signed-record envelope of docs/federation.md
 * "Signed records", `{"payload": "<canonical payload>", "signature": "<armored signature>"}`
 * — byte for byte what the domain signed, so anyone can check the entry with the domain's key.
 * A published version that no domain signed is logged as the directory's own statement, the
 * same envelope without `signature`:
 * - an imported third-party key (provenance `imported`): the RecordPayload of what is
 *   published, `issued` being when it was imported;
 * - a removal (a tombstone): `{v: 1, type: "mailmesh.removed", domain, issued}`.
 */
export const REMOVED_TYPE = 'mailmesh.removed';

/** The log entry of a record version, or undefined for one that is not published (`publish: false`). */
export function recordEntry(r: RecordDraft): Buffer | undefined {
  if (r.publish === false) return undefined;
  if (r.status === 'deleted') {
    return envelope({ payload: canonicalize({ v: 1, type: REMOVED_TYPE, domain: r.domain, issued: r.updated }) });
  }
  if (r.signed) return envelope({ payload: r.signed.payload, signature: r.signed.signature });
  return envelope({ payload: canonicalize(recordPayload(r, new Date(r.provenance.at))) });
}

function envelope(e: { payload: string; signature?: string }): Buffer {
  return Buffer.from(canonicalize(e), 'utf8');
}

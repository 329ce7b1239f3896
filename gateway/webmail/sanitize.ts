import { esc } from './i18n.js';

/**
 * A small allow-list HTML sanitiser for the message page (docs/webmail.md "HTML messages").
 * It re-writes the input: only the tags and attributes listed here survive, attribute values are
 * re-escaped, URLs must be http(s)/mailto (links) or data:image (images), and the content of
 * script/style-like elements is dropped. Its output goes into `<iframe sandbox srcdoc>` under
 * `default-src 'none'`, so a gap here still runs no script and loads nothing.
 */

const TAGS = new Set([
  'a', 'abbr', 'b', 'blockquote', 'br', 'caption', 'cite', 'code', 'col', 'colgroup', 'dd', 'del', 'div', 'dl', 'dt', 'em', 'font',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'ins', 'kbd', 'li', 'ol', 'p', 'pre', 'q', 's', 'small', 'span', 'strike', 'strong',
  'sub', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'u', 'ul',
]);
/** Elements dropped with everything inside them. */
const DROP = new Set(['script', 'style', 'head', 'title', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'template', 'noscript', 'noembed', 'noframes', 'svg', 'math', 'textarea', 'select', 'xmp', 'plaintext']);
const ATTRS = new Set(['align', 'alt', 'colspan', 'dir', 'headers', 'height', 'lang', 'rowspan', 'scope', 'title', 'valign', 'width', 'color', 'size', 'face', 'start', 'type']);
const VOID = new Set(['br', 'col', 'hr', 'img']);

// HTML Living Standard §13.1.2 (start and end tags), §13.1.2.3 (attributes), §13.1.6 (comments).
const TAG = /^<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?|\s*\/)*)\s*>/;
const ATTR = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

/** §13.5 character references, enough to see the real URL scheme (`jav&#x61;script:`). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos|nbsp|colon|tab|newline);?/gi, (m, e: string) => {
    const k = e.toLowerCase();
    if (k.startsWith('#x')) return String.fromCodePoint(parseInt(k.slice(2), 16) % 0x110000);
    if (k.startsWith('#')) return String.fromCodePoint(parseInt(k.slice(1), 10) % 0x110000);
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', colon: ':', tab: '\t', newline: '\n' } as Record<string, string>)[k] ?? m;
  });
}

/** WHATWG URL §4.4: the scheme, after the control characters and spaces a browser would ignore. */
function safeUrl(value: string, img: boolean): string | undefined {
  // eslint-disable-next-line no-control-regex -- the characters a browser strips from a URL are exactly what is removed
  const v = decodeEntities(value).replace(/[\x00-\x20\x7f]/g, '');
  if (img) return /^data:image\/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=]+$/i.test(v) ? v : undefined;
  return /^(https?:\/\/|mailto:)/i.test(v) ? v : undefined;
}

function startTag(name: string, attrs: string): string {
  const out: string[] = [];
  for (const m of attrs.matchAll(ATTR)) {
    const key = m[1]!.toLowerCase();
    const value = m[2] ?? m[3] ?? m[4] ?? '';
    if (ATTRS.has(key)) out.push(`${key}="${esc(decodeEntities(value))}"`);
    else if ((key === 'href' && name === 'a') || (key === 'src' && name === 'img')) {
      const url = safeUrl(value, name === 'img');
      if (url) out.push(`${key}="${esc(url)}"`);
    }
  }
  if (name === 'img' && !out.some((a) => a.startsWith('src='))) return ''; // remote or scripted images are not loaded
  if (name === 'a') out.push('rel="noopener noreferrer"', 'target="_blank"');
  return `<${name}${out.map((a) => ' ' + a).join('')}>`;
}

/** The sanitised HTML (a body fragment). Never throws; any input gives markup made of the allow-list only. */
export function sanitizeHtml(html: string): string {
  let out = '';
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    const text = lt < 0 ? html.slice(i) : html.slice(i, lt);
    out += text.replace(/>/g, '&gt;');
    if (lt < 0) break;
    i = lt;
    const rest = html.slice(i);
    if (rest.startsWith('<!--')) {
      const end = html.indexOf('-->', i + 4);
      i = end < 0 ? html.length : end + 3;
      continue;
    }
    if (/^<[!?]/.test(rest) || /^<\/[^a-zA-Z]/.test(rest)) {
      const end = html.indexOf('>', i);
      i = end < 0 ? html.length : end + 1;
      continue;
    }
    const m = TAG.exec(rest);
    if (!m) {
      out += '&lt;';
      i += 1;
      continue;
    }
    i += m[0].length;
    const [, close, raw, attrs] = m;
    const name = raw!.toLowerCase();
    if (DROP.has(name)) {
      if (!close) {
        const end = new RegExp(`</${name}\\s*>`, 'i').exec(html.slice(i));
        i = end ? i + end.index + end[0].length : html.length;
      }
      continue;
    }
    if (!TAGS.has(name)) continue;
    if (close) out += VOID.has(name) ? '' : `</${name}>`;
    else out += startTag(name, attrs ?? '');
  }
  return out;
}

/**
 * The iframe document for a sanitised HTML body: its own CSP (images only from data:, nothing
 * else at all), and the iframe is sandboxed without allow-scripts, allow-forms or allow-same-origin.
 */
export function htmlFrame(html: string, title: string): string {
  const doc = `<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:">
<meta name="referrer" content="no-referrer"><base target="_blank"></head><body>${sanitizeHtml(html)}</body></html>`;
  return `<iframe id="html" title="${esc(title)}" sandbox="" referrerpolicy="no-referrer" srcdoc="${esc(doc)}"></iframe>`;
}

import sanitize, { type IOptions } from 'sanitize-html';
import { MailmeshError } from '../errors.js';
import { esc } from './i18n.js';

/**
 * The HTML sanitiser of the message page (docs/webmail.md "HTML messages"): sanitize-html, a real
 * HTML parser (htmlparser2, one pass), with an allow-list. Only the tags and attributes listed here
 * survive; links may be http(s) or mailto; images only inline `data:image/(png|gif|jpeg|webp)`
 * (nothing is fetched from anywhere); no style attribute or element, so no CSS url(); no event
 * handler; the content of script-, style-, SVG- and MathML-like elements is dropped, not shown.
 * Its output goes into `<iframe sandbox srcdoc>` under `default-src 'none'; img-src data:`, so a
 * gap here still runs no script and loads nothing.
 */

const TAGS = [
  'a', 'abbr', 'b', 'blockquote', 'br', 'caption', 'cite', 'code', 'col', 'colgroup', 'dd', 'del', 'div', 'dl', 'dt', 'em', 'font',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'ins', 'kbd', 'li', 'ol', 'p', 'pre', 'q', 's', 'small', 'span', 'strike', 'strong',
  'sub', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'u', 'ul',
];
/** Elements dropped with everything inside them (HTML §13.1.2.6 raw text and foreign content among them). */
const DROP = ['script', 'style', 'head', 'title', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'template', 'noscript', 'noembed', 'noframes', 'svg', 'math', 'textarea', 'select', 'option', 'xmp', 'plaintext', 'listing'];
const ATTRS = ['align', 'alt', 'colspan', 'dir', 'headers', 'height', 'lang', 'rowspan', 'scope', 'title', 'valign', 'width', 'color', 'size', 'face', 'start', 'type'];
/** RFC 2397 data: URLs of raster images only (no SVG: an image format that carries script). */
const DATA_IMAGE = /^data:image\/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=]+$/i;

const OPTIONS: IOptions = {
  allowedTags: TAGS,
  allowedAttributes: { '*': ATTRS, a: ['href', 'rel', 'target'], img: ['src'] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['data'] },
  allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
  allowProtocolRelative: false,
  allowedStyles: {},
  allowVulnerableTags: false,
  disallowedTagsMode: 'discard',
  nonTextTags: DROP,
  // Deeper nesting than a mail needs is flattened (its text stays), which also bounds the output's depth.
  nestingLimit: 100,
  transformTags: {
    // Every link opens outside the frame, without a referrer or a handle on this page.
    a: (tagName, attribs) => ({ tagName, attribs: { ...(attribs.href ? { href: attribs.href } : {}), rel: 'noopener noreferrer', target: '_blank' } }),
  },
  exclusiveFilter: (frame) => frame.tag === 'img' && !DATA_IMAGE.test(frame.attribs.src ?? ''),
};

/**
 * The parser's open elements at most. htmlparser2 keeps them in an array it shifts at every start
 * tag, so 1 MB of `<div>` would cost time quadratic in the depth; deeper HTML is refused instead.
 */
export const MAX_DEPTH = 256;

/**
 * The sanitised HTML (a body fragment): markup made of the allow-list only. HTML nested deeper
 * than MAX_DEPTH is WEBMAIL_INVALID (the page then shows the message's text).
 */
export function sanitizeHtml(html: string): string {
  let depth = 0;
  return sanitize(html, {
    ...OPTIONS,
    onOpenTag: () => {
      if (++depth > MAX_DEPTH) throw new MailmeshError('WEBMAIL_INVALID', `HTML nested deeper than ${MAX_DEPTH} elements`);
    },
    onCloseTag: () => void depth--,
  });
}

/**
 * The iframe document for a sanitised HTML body: its own CSP (images only from data:, nothing
 * else at all), and the iframe is sandboxed without allow-scripts, allow-forms or allow-same-origin.
 * HTML the sanitiser refuses is shown as `text` instead.
 */
export function htmlFrame(html: string, title: string, text = ''): string {
  let body: string;
  try {
    body = sanitizeHtml(html);
  } catch {
    return `<pre id="text">${esc(text)}</pre>`;
  }
  const doc = `<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:">
<meta name="referrer" content="no-referrer"><base target="_blank"></head><body>${body}</body></html>`;
  return `<iframe id="html" title="${esc(title)}" sandbox="" referrerpolicy="no-referrer" srcdoc="${esc(doc)}"></iframe>`;
}

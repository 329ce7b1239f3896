import type { SealedMessage } from './crypto.js';
import { esc, type Texts } from './i18n.js';
import { REPLY_MAX } from './form.js';
import type { Readable } from './message.js';
import { htmlFrame } from './sanitize.js';

/** Server-rendered pages: no scripts, no external assets; the one style sheet carries the CSP nonce. */
const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.4rem}form{margin:1rem 0}label{display:block;margin:.6rem 0 .2rem}
input[type=password],textarea{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}
button{padding:.5rem 1.2rem;font:inherit;background:#1f5fbf;color:#fff;border:0;border-radius:4px}
.err{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}
.ok{background:#e6f4ea;border:1px solid #9ccaa6;padding:.6rem;border-radius:4px}
iframe{width:100%;height:28rem;border:1px solid #d0d4da;border-radius:4px}
pre{white-space:pre-wrap;background:#f6f7f9;padding:1rem;border-radius:4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}.hint{color:#555;font-size:.9rem}`;

export function page(lang: string, title: string, body: string, nonce: string): string {
  return `<!DOCTYPE html>
<html lang="${esc(lang)}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${esc(title)}</title><style nonce="${esc(nonce)}">${STYLE}</style></head>
<body>${body}</body></html>`;
}

/** The hidden fields that carry the sealed message from form to form (nothing is kept on the server). */
export function sealedFields(s: SealedMessage): string {
  return (['recipient', 'messageId', 'expires', 'data'] as const).map((k) => `<input type="hidden" name="${k}" value="${esc(String(s[k]))}">`).join('');
}

function form(action: string, s: SealedMessage, csrf: string, inner: string): string {
  return `<form method="post" action="${esc(action)}">${sealedFields(s)}<input type="hidden" name="csrf" value="${esc(csrf)}">${inner}</form>`;
}

export function registerPage(t: Texts, s: SealedMessage, csrf: string, error?: string): string {
  return `<h1>${esc(t('registerTitle'))}</h1><p>${esc(t('registerText', { to: s.recipient }))}</p>${error ? `<p class="err">${esc(error)}</p>` : ''}
${form('register', s, csrf, `<label for="p1">${esc(t('password'))}</label><input id="p1" type="password" name="password" autocomplete="new-password" required>
<label for="p2">${esc(t('passwordAgain'))}</label><input id="p2" type="password" name="password2" autocomplete="new-password" required>
<p class="hint">${esc(t('passwordRules'))}</p><button type="submit">${esc(t('register'))}</button>`)}`;
}

export function loginPage(t: Texts, s: SealedMessage, csrf: string, error?: string): string {
  return `<h1>${esc(t('loginTitle'))}</h1><p>${esc(t('loginText', { to: s.recipient }))}</p>${error ? `<p class="err">${esc(error)}</p>` : ''}
${form('login', s, csrf, `<input type="hidden" name="username" value="${esc(s.recipient)}" autocomplete="username">
<label for="p1">${esc(t('password'))}</label><input id="p1" type="password" name="password" autocomplete="current-password" required>
<button type="submit">${esc(t('login'))}</button>`)}`;
}

export function messagePage(t: Texts, s: SealedMessage, csrf: string, m: Readable): string {
  const rows = (['from', 'to', 'subject', 'date'] as const).map((k) => `<dt>${esc(t(k))}</dt><dd>${esc(m[k])}</dd>`).join('');
  const files = m.attachments.length
    ? `<h2>${esc(t('attachments'))}</h2>` +
      m.attachments.map((a, i) => form('attachment', s, csrf, `<input type="hidden" name="index" value="${i}">${esc(a.name)} (${a.data.length} B) <button type="submit">${esc(t('download'))}</button>`)).join('')
    : '';
  const body = m.html !== undefined ? htmlFrame(m.html, t('subject'), m.text) : `<pre id="text">${esc(m.text)}</pre>`;
  return `<h1>${esc(m.subject)}</h1><dl>${rows}</dl>${body}${files}
<h2>${esc(t('reply'))}</h2>${form('reply', s, csrf, `<label for="r">${esc(t('reply'))}</label><textarea id="r" name="text" rows="8" maxlength="${REPLY_MAX}" required></textarea><button type="submit">${esc(t('send'))}</button>`)}`;
}

/** A note; a refusal names its code and the request ID (the detail is in the log under it). */
export function notePage(title: string, note: string, ok: boolean, code?: string, requestId?: string): string {
  const request = requestId ? `, request <code id="request">${esc(requestId)}</code>` : '';
  return `<h1>${esc(title)}</h1><p class="${ok ? 'ok' : 'err'}" id="note">${esc(note)}</p>${code ? `<p class="hint">code: <code id="code">${esc(code)}</code>${request}</p>` : ''}`;
}

/** The attachment `secure-message.html`: a form that posts the sealed message; JavaScript only presses the button. */
export function attachmentFile(t: Texts, lang: string, openUrl: string, s: SealedMessage): string {
  return `<!DOCTYPE html>
<html lang="${esc(lang)}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">
<title>${esc(t('open'))}</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem">
<p>${esc(t('openHint', { to: s.recipient }))}</p>
<form id="open" method="post" action="${esc(openUrl)}">${sealedFields(s)}<button type="submit" style="padding:.6rem 1.4rem;font:inherit">${esc(t('open'))}</button></form>
<script>document.getElementById('open').submit();</script>
</body></html>
`;
}

import t, { type Test } from 'tap';
import { htmlFrame, MAX_DEPTH, sanitizeHtml } from '../../../gateway/webmail/sanitize.js';
import { seeded } from '../../helpers.js';

const ALLOWED = /^(a|abbr|b|blockquote|br|caption|cite|code|col|colgroup|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|ins|kbd|li|ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|td|tfoot|th|thead|tr|u|ul)$/;

/** What a browser would see as markup in the output: every `<` starts an allowed tag with quoted, harmless attributes. */
function checkOutput(t: Test, out: string, label: string): void {
  for (const m of out.matchAll(/<([^>]*)(>|$)/g)) {
    const tag = /^\/?([a-z0-9]+)((?: [a-z]+="[^"<>]*")*)(?: \/)?$/.exec(m[1]!);
    if (!tag || !ALLOWED.test(tag[1]!)) return void t.fail(`${label}: unexpected markup <${m[1]}>`);
    for (const a of tag[2]!.matchAll(/ ([a-z]+)="([^"]*)"/g)) {
      if (/^on/.test(a[1]!) || a[1] === 'style') return void t.fail(`${label}: attribute ${a[1]}`);
      if ((a[1] === 'href' && !/^(https?:\/\/|mailto:)/i.test(a[2]!)) || (a[1] === 'src' && !/^data:image\//.test(a[2]!))) return void t.fail(`${label}: url ${a[2]}`);
    }
  }
  t.pass(label);
}

t.test('scripts, styles, event handlers, javascript: URLs and remote images are removed', async (t) => {
  const cases: [string, string][] = [
    ['<p>Hi<script>document.title="x"</script> there</p>', '<p>Hi there</p>'],
    ['<SCRIPT src=//evil.test/x.js></SCRIPT>ok', 'ok'],
    ['<style>body{background:url(http://evil.test/t)}</style>ok', 'ok'],
    ['<img src="http://evil.test/pixel.gif" onerror="alert(1)">', ''],
    ['<img src=x onerror=alert(1) alt=a>', ''],
    ['<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="jav&#x61;script:alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href=" java\tscript:alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="https://example.test/?a=1&amp;b=2" onclick="x()">x</a>', '<a href="https://example.test/?a=1&amp;b=2" rel="noopener noreferrer" target="_blank">x</a>'],
    ['<p style="background:url(http://evil.test)" title="t&quot;">x</p>', '<p title="t&quot;">x</p>'],
    ['<form action="http://evil.test"><input name=p><button>go</button></form>', 'go'],
    ['<iframe src="http://evil.test"></iframe><object data=x></object>ok', 'ok'],
    ['<svg><script>alert(1)</script></svg>ok', 'ok'],
    ['<!-- <script>alert(1)</script> -->ok', 'ok'],
    ['a < b > c', 'a &lt; b &gt; c'],
    ['<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">', '<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo" />'],
    ['<b>unclosed <i>tags', '<b>unclosed <i>tags</i></b>'],
    ['<p title="a>b">x</p>', '<p title="a&gt;b">x</p>'],
  ];
  for (const [input, want] of cases) t.equal(sanitizeHtml(input), want, input);
});

t.test('XSS vectors: mXSS, foreign content, entity-encoded schemes, CSS, remote resources', async (t) => {
  const vectors: [string, string][] = [
    // mXSS classics: markup that changes meaning when re-parsed (noscript/template/foreign content).
    ['<noscript><p title="</noscript><img src=x onerror=alert(1)>">', ''],
    ['<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>ok', 'ok'],
    ['<svg><p><style><img src=x onerror=alert(1)></style></p></svg>ok', 'ok'],
    ['<math><mi><svg><mtext><textarea><path id="</textarea><img src=x onerror=alert(1)>"></textarea></mtext></svg></mi></math>ok', 'ok'],
    ['<svg><script>alert(1)</script></svg>', ''],
    ['<svg/onload=alert(1)>ok', ''], // an unclosed svg drops the rest
    ['<template><img src=x onerror=alert(1)></template>ok', 'ok'],
    ['<xmp><img src=x onerror=alert(1)></xmp>ok', 'ok'],
    ['<noembed><img src=x onerror=alert(1)></noembed>ok', 'ok'],
    ['<title><img src=x onerror=alert(1)></title>ok', 'ok'],
    ['<textarea><img src=x onerror=alert(1)></textarea>ok', 'ok'],
    ['<!--><img src=x onerror=alert(1)>-->', '--&gt;'], // text either way, never an img
    ['<scr<script>ipt>alert(1)</script>', 'ipt&gt;alert(1)'],
    // javascript: behind entities, control characters and case.
    ['<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="javascript&colon;alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="&#x0A;JaVaScRiPt:alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="\u0001javascript:alert(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="vbscript:msgbox(1)">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="//evil.test/">x</a>', '<a rel="noopener noreferrer" target="_blank">x</a>'],
    ['<a href="http://ok.test/" target="_self" rel="opener">x</a>', '<a href="http://ok.test/" rel="noopener noreferrer" target="_blank">x</a>'],
    // CSS: no style element or attribute, so no url() and no @import.
    ['<style>@import url(http://evil.test/x.css);</style>ok', 'ok'],
    ['<div style="background-image:url(&quot;http://evil.test/t&quot;)">x</div>', '<div>x</div>'],
    ['<link rel="stylesheet" href="http://evil.test/x.css">ok', 'ok'],
    // Remote or scriptable resources: only raster data: images.
    ['<img src="cid:logo@alpha.test" alt="logo">', ''],
    ['<img src="data:image/svg+xml;base64,PHN2Zy8+">', ''],
    ['<img src="data:image/png;base64,AA==" srcset="http://evil.test/x 2x">', '<img src="data:image/png;base64,AA==" />'],
    ['<table background="http://evil.test/t.png"><tr><td>x</td></tr></table>', '<table><tr><td>x</td></tr></table>'],
    ['<video poster="http://evil.test/p"><source src="http://evil.test/v"></video>ok', 'ok'],
    ['<base href="http://evil.test/"><meta http-equiv="refresh" content="0;url=javascript:alert(1)">ok', 'ok'],
    ['<form><button formaction="javascript:alert(1)">go</button></form>', 'go'],
    ['<div title="x" onmouseover="alert(1)" onfocus=alert(1) autofocus tabindex=1>x</div>', '<div title="x">x</div>'],
  ];
  for (const [input, want] of vectors) {
    const out = sanitizeHtml(input);
    t.equal(out, want, input);
    checkOutput(t, out, input);
  }
});

t.test('the frame is sandboxed, with its own CSP, and the document is escaped into srcdoc', async (t) => {
  const f = htmlFrame('<p>"quoted" & <b>bold</b></p>', 'Message');
  t.match(f, /^<iframe id="html" title="Message" sandbox="" referrerpolicy="no-referrer" srcdoc="[^"<>]*"><\/iframe>$/);
  t.match(f, 'default-src &#39;none&#39;; img-src data:');
  t.match(f, '&#60;b&#62;bold&#60;/b&#62;');
});

t.test('fuzz: random markup only ever yields allowed tags and safe attributes', async (t) => {
  const rnd = seeded(11);
  const pieces = ['<', '>', '/', '"', "'", '=', ' ', '\t', '&', '#', ';', 'x', 'script', 'img', 'a', 'p', 'style', 'src', 'href', 'onerror', 'on', 'javascript:', 'http://e.test/', 'data:image/png;base64,AA==', '<!--', '-->', '<!', '<?', 'svg', 'b', 'title', '&#x6a;', '\n', '\0'];
  for (let i = 0; i < 2000; i++) {
    const input = Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => pieces[Math.floor(rnd() * pieces.length)]!).join('');
    const out = sanitizeHtml(input);
    checkOutput(t, out, `fuzz ${i}`);
    t.equal(sanitizeHtml(out), out, `fuzz ${i}: sanitising again changes nothing`);
  }
});

t.test('HTML nested deeper than MAX_DEPTH is refused; the frame then shows the text', async (t) => {
  t.match(sanitizeHtml('<div>'.repeat(MAX_DEPTH - 1) + 'deep'), 'deep', 'just within the depth (beyond 100 flattened)');
  t.equal(sanitizeHtml('<div></div>'.repeat(10 * MAX_DEPTH)), '<div></div>'.repeat(10 * MAX_DEPTH), 'many elements side by side are fine');
  t.throws(() => sanitizeHtml('<div>'.repeat(MAX_DEPTH + 1)), { code: 'WEBMAIL_INVALID' });
  t.equal(htmlFrame('<div>'.repeat(MAX_DEPTH + 1), 'Message', 'the <text>'), '<pre id="text">the &#60;text&#62;</pre>');
});

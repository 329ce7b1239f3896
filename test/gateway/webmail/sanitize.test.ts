import t, { type Test } from 'tap';
import { htmlFrame, sanitizeHtml } from '../../../gateway/webmail/sanitize.js';
import { seeded } from '../../helpers.js';

const ALLOWED = /^(a|abbr|b|blockquote|br|caption|cite|code|col|colgroup|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|ins|kbd|li|ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|td|tfoot|th|thead|tr|u|ul)$/;

/** What a browser would see as markup in the output: every `<` starts an allowed tag with quoted, harmless attributes. */
function checkOutput(t: Test, out: string, label: string): void {
  for (const m of out.matchAll(/<([^>]*)(>|$)/g)) {
    const tag = /^\/?([a-z0-9]+)((?: [a-z]+="[^"<>]*")*)$/.exec(m[1]!);
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
    ['<a href="https://example.test/?a=1&amp;b=2" onclick="x()">x</a>', '<a href="https://example.test/?a=1&#38;b=2" rel="noopener noreferrer" target="_blank">x</a>'],
    ['<p style="background:url(http://evil.test)" title="t&quot;">x</p>', '<p title="t&#34;">x</p>'],
    ['<form action="http://evil.test"><input name=p><button>go</button></form>', 'go'],
    ['<iframe src="http://evil.test"></iframe><object data=x></object>ok', 'ok'],
    ['<svg><script>alert(1)</script></svg>ok', 'ok'],
    ['<!-- <script>alert(1)</script> -->ok', 'ok'],
    ['a < b > c', 'a &lt; b &gt; c'],
    ['<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">', '<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">'],
    ['<b>unclosed <i>tags', '<b>unclosed <i>tags'],
    ['<p title="a>b">x</p>', '<p title="a&#62;b">x</p>'],
  ];
  for (const [input, want] of cases) t.equal(sanitizeHtml(input), want, input);
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

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { get } from '../directory/http/helpers.js';
import { parseExposition, start } from '../directory/http/scrape.js';
import { run } from '../helpers.js';

// deploy/: the Prometheus alert rules pass promtool's check and their unit tests; the Grafana
// dashboard and the rules query only families a real `mailmesh serve` exposes, and
// docs/observability.md lists exactly the mailmesh_* families of a scrape.

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const RULES = join(root, 'deploy/prometheus/alerts.yml');

/** The metric names a PromQL expression reads (mailmesh_*, process_*, nodejs_*). */
const namesIn = (expr: string) => [...expr.matchAll(/\b((?:mailmesh|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!);

/** A scrape of a node with every face on, as family names (a histogram's _bucket/_sum/_count belong to it). */
const running = await start(t);
const { types } = parseExposition((await get(`http://${running.addresses.http}/metrics`)).text);
const exposed = (name: string) => types.has(name) || types.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram';

t.test('promtool check rules and promtool test rules pass', async (t) => {
  const check = await run('promtool', ['check', 'rules', RULES], { allowFail: true });
  t.equal(check.code, 0, check.stdout.toString() + check.stderr);
  t.match(check.stdout.toString(), /SUCCESS: \d+ rules found/);
  const unit = await run('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: join(root, 'deploy/prometheus'), allowFail: true });
  t.equal(unit.code, 0, unit.stdout.toString() + unit.stderr);
});

t.test('the rules cover key expiry, pin violations, the 4xx rate and the store', async (t) => {
  const rules = (parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
  const byMetric = (m: string) => rules.filter((r) => namesIn(r.expr).includes(m)).map((r) => r.alert);
  t.ok(byMetric('mailmesh_key_not_after_timestamp_seconds').length, 'key expiry');
  t.ok(byMetric('mailmesh_pin_violations_total').length, 'pin violations');
  t.ok(rules.some((r) => r.expr.includes('mailmesh_http_requests_total{status="4xx"}')), '4xx rate');
  t.ok(byMetric('mailmesh_store_up').length, 'store down');
  for (const r of rules) for (const m of namesIn(r.expr)) t.ok(exposed(m), `${r.alert}: ${m} is exposed`);
});

t.test('the Grafana dashboard parses and queries only exposed families', async (t) => {
  const dash = JSON.parse(readFileSync(join(root, 'deploy/grafana/mailmesh.json'), 'utf8')) as { title: string; panels: { title: string; targets: { expr: string }[] }[] };
  t.equal(dash.title, 'mailmesh');
  const exprs = dash.panels.flatMap((p) => p.targets.map((x) => ({ panel: p.title, expr: x.expr })));
  t.ok(exprs.length >= 10, `${exprs.length} queries`);
  for (const { panel, expr } of exprs) {
    const names = namesIn(expr);
    t.ok(names.length > 0, `${panel}: reads a metric`);
    for (const m of names) t.ok(exposed(m), `${panel}: ${m} is exposed`);
  }
});

t.test('docs/observability.md lists exactly the mailmesh_* families of a scrape', async (t) => {
  const doc = readFileSync(join(root, 'docs/observability.md'), 'utf8');
  const listed = new Set([...doc.matchAll(/^\| `(mailmesh_[a-z0-9_]+)`/gm)].map((m) => m[1]!));
  const scraped = [...types.keys()].filter((n) => n.startsWith('mailmesh_'));
  t.same([...listed].sort(), scraped.sort(), 'the table of families');
});

import t from 'tap';
import { Metrics } from '../../directory/metrics.js';

t.test('a counter asked for twice by name is one family', async (t) => {
  const m = new Metrics();
  m.counter('mailmesh_faults_total', 'Faults by face', ['face']).inc({ face: 'dns' });
  m.counter('mailmesh_faults_total', 'Faults by face').inc({ face: 'ldap' }, 2);
  const text = await m.render();
  t.equal(text.match(/# TYPE mailmesh_faults_total counter/g)?.length, 1, 'one TYPE line');
  t.match(text, /mailmesh_faults_total\{face="dns"\} 1\n/);
  t.match(text, /mailmesh_faults_total\{face="ldap"\} 2\n/);
  t.equal(m.faults().get({ face: 'ldap' }), 2, 'faults() is that family, read back without a scrape');
});

t.test('a label the family did not declare is refused, not silently a new series', async (t) => {
  const m = new Metrics();
  t.throws(() => m.counter('x_total', 'x', ['a']).inc({ b: '1' }), /not included in initial labelset/);
});

t.test('collected families are read at each scrape, sync or async; label values are escaped', async (t) => {
  const m = new Metrics();
  let n = 1;
  m.collect('x_things', 'things', 'gauge', () => [{ labels: { name: 'a"b\\c\nd' }, value: n }], ['name']);
  m.collect('x_done_total', 'done', 'counter', async () => [{ value: n * 10 }]);
  t.match(await m.render(), /x_things\{name="a\\"b\\\\c\\nd"\} 1\n/);
  n = 2;
  const text = await m.render();
  t.match(text, /x_things\{name="a\\"b\\\\c\\nd"\} 2\n/, 'the new value, one sample');
  t.match(text, /^x_done_total 20$/m);
  t.notMatch(text, /process_cpu|mailmesh_build_info/, 'no runtime metrics unless asked for');
});

t.test('runtime: the process and Node.js families and mailmesh_build_info', async (t) => {
  const m = new Metrics({ runtime: { version: '9.9.9' } });
  const text = await m.render();
  t.match(text, `mailmesh_build_info{version="9.9.9",node="${process.version}"} 1`);
  t.match(text, /^process_resident_memory_bytes \d+/m);
  t.match(text, /^nodejs_version_info\{/m);
  t.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

t.test('a collected family asked for again is replaced, not an error; faults exist from the start', async (t) => {
  const m = new Metrics();
  m.collect('x_serial', 'serial', 'gauge', () => [{ value: 1 }]);
  m.collect('x_serial', 'serial', 'gauge', () => [{ value: 2 }]);
  const text = await m.render();
  t.match(text, /^x_serial 2$/m);
  t.equal(text.match(/# TYPE x_serial gauge/g)?.length, 1);
  t.match(text, /# TYPE mailmesh_faults_total counter/);
  m.counter('mailmesh_faults_total', 'read by name').inc({ face: 'mirror' });
  t.equal(m.faults().get({ face: 'mirror' }), 1);
});

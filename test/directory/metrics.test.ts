import t from 'tap';
import { Metrics } from '../../directory/metrics.js';

t.test('a counter asked for twice by name is one family', async (t) => {
  const m = new Metrics();
  m.counter('mailmesh_faults_total', 'Faults by face').inc({ face: 'dns' });
  m.counter('mailmesh_faults_total', 'Faults by face').inc({ face: 'ldap' }, 2);
  const text = m.render();
  t.equal(text.match(/# TYPE mailmesh_faults_total counter/g)?.length, 1, 'one TYPE line');
  t.match(text, /mailmesh_faults_total\{face="dns"\} 1\n/);
  t.match(text, /mailmesh_faults_total\{face="ldap"\} 2\n/);
});

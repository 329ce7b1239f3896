import type { Metrics } from '../directory/metrics.js';
import type { GatewayStats } from './smtp/smtp.js';

/** Exposes the SMTP core's counters (gateway/smtp/smtp.ts GatewayStats) as Prometheus families. */
export function collectGatewayStats(metrics: Metrics, stats: GatewayStats): void {
  metrics.collect('mailmesh_smtp_messages_total', 'Transactions by direction and outcome', 'counter', () =>
    Object.entries(stats.messages).flatMap(([direction, byOutcome]) =>
      Object.entries(byOutcome).map(([outcome, value]) => ({ labels: { direction, outcome }, value })),
    ),
  ['direction', 'outcome']);
  metrics.collect('mailmesh_smtp_recipients_total', 'Recipients by result', 'counter', () =>
    Object.entries(stats.recipients).map(([result, value]) => ({ labels: { result }, value })),
  ['result']);
  metrics.collect('mailmesh_smtp_connections', 'Open upstream connections', 'gauge', () => [{ value: stats.connections.current }]);
  metrics.collect('mailmesh_smtp_connections_total', 'Upstream connections accepted', 'counter', () => [{ value: stats.connections.total }]);
  metrics.collect('mailmesh_next_hop_connects_total', 'Next-hop connections by result', 'counter', () => [
    { labels: { result: 'ok' }, value: stats.nextHop.connects },
    { labels: { result: 'failed' }, value: stats.nextHop.connectFailures },
  ], ['result']);
}

import test from 'ava'
import { datagramChecks, lossOf, memberChecks, type HeardMember } from '../src/listen.js'
import type { DiagSettings } from '../src/settings.js'

const settings = { group: '239.192.77.1', port: 7700, interface: '10.1.0.100', listenMs: 3000 } as DiagSettings

function member (over: Partial<HeardMember>): HeardMember {
  return { id: 'node-1', role: 'storage', center: 'east', slot: 1, address: '10.1.0.1', port: 8701, bootId: 'b1', heartbeatMs: 100, from: '10.1.0.1', received: 30, firstAt: 0, lastAt: 2900, runs: new Map([['b1', { min: 1000, max: 1029, count: 30 }]]), skews: [2, 3, 1], saidGoodbye: false, ...over }
}

function verdict (m: HeardMember): { status: string, message: string } {
  const [, line] = memberChecks(settings, { members: new Map([[m.id, m]]), drops: new Map() })
  return line as { status: string, message: string }
}

function expect (t: import('ava').ExecutionContext, m: HeardMember, status: string, message: RegExp): void {
  const v = verdict(m)
  t.is(v.status, status, v.message)
  t.regex(v.message, message)
}

test('loss counts the sequence numbers skipped in each boot, not the jump between boots', (t) => {
  const m = member({ runs: new Map([['b1', { min: 10, max: 29, count: 18 }], ['b2', { min: 9_000_000, max: 9_000_009, count: 10 }]]) })
  t.deepEqual(lossOf(m), { lost: 2, sent: 30 })
})

test('a member line is ok, warn or fail by loss, skew, rate and restarts, and says why', (t) => {
  t.is(verdict(member({})).status, 'ok')
  expect(t, member({ runs: new Map([['b1', { min: 1, max: 40, count: 30 }]]) }), 'warn', /loss 25 % \(10 of 40\).*datagrams are being lost/)
  expect(t, member({ runs: new Map([['b1', { min: 1, max: 60, count: 30 }]]) }), 'fail', /heavy datagram loss/)
  expect(t, member({ skews: [-4000, -4100, -3900] }), 'warn', /clock -4000 ms — its clock is off by 4 s/)
  expect(t, member({ skews: [45_000, 45_010, 44_990] }), 'fail', /45 s ahead: every member drops its datagrams as stale/)
  expect(t, member({ received: 10 }), 'warn', /3\.1 heartbeats\/s \(announces 10\/s\).*starved or paused/)
  expect(t, member({ runs: new Map([['b0', { min: 1, max: 10, count: 10 }], ['b1', { min: 900, max: 919, count: 20 }]]) }), 'warn', /restarted while we listened \(2 boot ids\)/)
  t.regex(memberChecks(settings, { members: new Map(), drops: new Map() })[0]?.message ?? '', /nothing was heard on 239\.192\.77\.1:7700 through 10\.1\.0\.100 in 3 s/)
})

test('refused datagrams are reported by reason and source', (t) => {
  const checks = datagramChecks({ members: new Map(), drops: new Map([['bad-mac 10.1.0.9', { reason: 'bad-mac', from: '10.1.0.9', count: 12 }], ['foreign-cluster 10.2.0.4', { reason: 'foreign-cluster', from: '10.2.0.4', count: 3 }]]) })
  t.deepEqual(checks.map((c) => [c.status, c.subject]), [['fail', '10.1.0.9'], ['fail', '10.2.0.4']])
  t.regex(checks[1]?.message ?? '', /3 datagram\(s\) from 10\.2\.0\.4 carry another cluster name/)
})

import test from 'ava'
import { ReplayWindow, ReplayWindows } from '../src/index.js'

test('a window accepts each number once, late ones inside it, none far behind the newest', (t) => {
  const w = new ReplayWindow()
  t.true(w.accept(10))
  t.false(w.accept(10))
  t.true(w.accept(5))
  t.true(w.accept(1000))
  t.false(w.accept(5))
  t.false(w.accept(1000 - 256))
  t.true(w.accept(1000 - 255))
})

test('a long-lived member keeps its window while thousands of short-lived senders come and go', (t) => {
  const windows = new ReplayWindows({ maxAgeMs: 60_000, maxSenders: 100 })
  let now = 1_000_000
  t.true(windows.accept('member', 1, now))
  for (let i = 0; i < 5000; i++) {
    now += 10
    windows.accept(`transient-${i}`, 1, now)
    // the member heartbeats now and then, as a live one does
    if (i % 50 === 0) t.true(windows.accept('member', 2 + i, now))
  }
  t.true(windows.has('member'))
  t.true(windows.size <= 100)
  // so its old datagrams are still refused as replays
  t.false(windows.accept('member', 1, now))
  t.false(windows.accept('member', 2, now))
})

test('a sender silent past the age limit is forgotten, and one heard again starts afresh', (t) => {
  const windows = new ReplayWindows({ maxAgeMs: 1000, maxSenders: 100 })
  t.true(windows.accept('gone', 5, 0))
  t.true(windows.accept('live', 5, 0))
  t.true(windows.accept('live', 6, 900))
  t.true(windows.accept('other', 1, 1500))
  t.false(windows.has('gone'), 'silent for 1,500 ms')
  t.true(windows.has('live'), 'heard 600 ms ago')
  // its datagrams are stale by now (the age is twice the skew), so a fresh window is safe
  t.true(windows.accept('gone', 5, 1500))
})

test('over the cap, the sender silent the longest is dropped, not the first one ever heard', (t) => {
  const windows = new ReplayWindows({ maxAgeMs: 60_000, maxSenders: 3 })
  windows.accept('first', 1, 0)
  windows.accept('b', 1, 1)
  windows.accept('c', 1, 2)
  windows.accept('first', 2, 3)
  windows.accept('d', 1, 4)
  t.true(windows.has('first'))
  t.false(windows.has('b'))
  t.is(windows.size, 3)
})

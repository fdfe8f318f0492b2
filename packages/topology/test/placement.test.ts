import test from 'ava'
import { randomBytes } from 'node:crypto'
import { pickSlot } from '../src/index.js'

test('rendezvous placement spreads files evenly and moves few when a slot is added', (t) => {
  const ids = Array.from({ length: 30_000 }, () => randomBytes(16).toString('hex'))
  const counts = new Map<number, number>()
  for (const id of ids) {
    const slot = pickSlot(id, [1, 2, 3]) as number
    counts.set(slot, (counts.get(slot) ?? 0) + 1)
  }
  for (const slot of [1, 2, 3]) {
    const share = (counts.get(slot) ?? 0) / ids.length
    t.true(share > 0.3 && share < 0.37, `slot ${slot} got ${(share * 100).toFixed(1)} %`)
  }
  const moved = ids.filter((id) => pickSlot(id, [1, 2, 3]) !== pickSlot(id, [1, 2, 3, 4])).length / ids.length
  t.true(moved > 0.2 && moved < 0.3, `adding a fourth slot moved ${(moved * 100).toFixed(1)} % (ideal 25 %)`)
  t.true(ids.every((id) => { const s = pickSlot(id, [1, 2, 3, 4]); return s === pickSlot(id, [1, 2, 3]) || s === 4 }), 'files only move to the new slot')
  t.is(pickSlot('a'.repeat(32), []), undefined)
})

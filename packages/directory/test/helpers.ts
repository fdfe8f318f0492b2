import type { Entry } from '@mirrorcast/wire'
import type { Namespace } from '../src/index.js'

/** Every entry below a path, depth first: a namespace's whole visible state. */
export function dump (ns: Namespace, path = '/'): Entry[] {
  const out: Entry[] = []
  for (const e of ns.list(path).entries) {
    out.push(e)
    if (e.type === 'dir') out.push(...dump(ns, e.path))
  }
  return out
}

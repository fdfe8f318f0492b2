#!/usr/bin/env -S node --initial-old-space-size=96
// The flag: see MEMBER_EXEC_ARGV in src/launch.ts.
// Committed, not built: npm links a workspace's bins before its `prepare` build runs, so a bin
// pointing into dist/ would not exist yet at link time and `npx mirrorcast` would go to the registry.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = fileURLToPath(new URL('../dist/src/bin.js', import.meta.url))
if (!existsSync(entry)) {
  const repo = fileURLToPath(new URL('../../..', import.meta.url))
  process.stderr.write(`mirrorcast: the CLI is not built (${entry} is missing); run \`npm run build\` in ${repo}\n`)
  process.exit(1)
}
await import(entry)

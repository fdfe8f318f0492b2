// npm run netdiag -- [--config FILE | --data DIR] [--json]: the same code as `mirrorcast diag`.
import { diagCommand } from '@mirrorcast/cli'

diagCommand('netdiag').parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`netdiag: ${err.message}\n`)
  process.exitCode = 1
})

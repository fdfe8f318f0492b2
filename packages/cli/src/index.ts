export { memberAddress } from './up.js'
export { CliError } from './errors.js'
export { launchUp, CLI_BIN, MEMBER_EXEC_ARGV, type LaunchedCluster } from './launch.js'
export { diagCommand } from './diag.js'

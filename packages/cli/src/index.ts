export { ManagerClient, DEFAULT_URL } from './client.js'
export { memberAddress } from './up.js'
export { CliError } from './errors.js'
export { launchUp, CLI_BIN, type LaunchedCluster } from './launch.js'

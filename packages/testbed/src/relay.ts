/**
 * Runs inside the test bed's client host: accepts connections on a Unix
 * socket (file system paths cross network namespaces) and carries each to the
 * manager's HTTP address. A test in the root namespace thus talks to the
 * manager the way a client on the LAN does, without any route into the root
 * namespace.
 */
import { connect, createServer, type Socket } from 'node:net'

const [socketPath, host, port] = process.argv.slice(2)
if (socketPath === undefined || host === undefined || port === undefined) {
  process.stderr.write('usage: relay.js <unix socket> <host> <port>\n')
  process.exit(2)
}

const server = createServer((client: Socket) => {
  const upstream = connect(Number(port), host)
  const close = (): void => { client.destroy(); upstream.destroy() }
  client.on('error', close).on('close', close)
  upstream.on('error', close).on('close', close)
  client.pipe(upstream).pipe(client)
})
server.listen(socketPath, () => { process.send?.({ type: 'ready' }) })
process.on('disconnect', () => process.exit(0))

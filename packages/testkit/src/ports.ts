/**
 * A random UDP port for a test's own multicast group, below Linux's ephemeral range
 * (32768–60999), where the sockets bound to port 0 by the same and parallel tests
 * land: a port picked from inside it may already be some test's reply socket.
 */
export function randomGroupPort (): number {
  return 20000 + Math.floor(Math.random() * 12000)
}

/** A part of a process that is started and stopped with it (js-libp2p's `Startable`, in short). */
export interface Component {
  name: string
  start: () => Promise<void> | void
  stop: () => Promise<void> | void
}

/**
 * Starts components in order and stops them in reverse. If one fails to
 * start, those already started are stopped again, last first, so a process
 * that cannot start leaves no socket, timer or file open.
 */
export class Lifecycle {
  private started: Component[] = []

  async start (components: Component[]): Promise<void> {
    for (const c of components) {
      try {
        await c.start()
      } catch (err) {
        await this.stop()
        throw err
      }
      this.started.push(c)
    }
  }

  /** Stops every started component, last first; a failure to stop one does not keep the others open. */
  async stop (): Promise<void> {
    const started = this.started.reverse()
    this.started = []
    const errors: unknown[] = []
    for (const c of started) {
      try {
        await c.stop()
      } catch (err) {
        errors.push(err)
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `could not stop ${errors.length} component(s) cleanly`)
  }
}

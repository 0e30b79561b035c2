/**
 * Telling the service manager how the service is doing (systemd's
 * notification protocol, sd_notify(3)): `READY=1` once the stub, the engine and
 * the data plane are up (shim6.service is `Type=notify`, so units ordered after
 * it start only then), `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`
 * when the stop begins, and a `STATUS=` line for `systemctl status`.
 *
 * Owns reading `$NOTIFY_SOCKET` (once, then removed from the environment so
 * that the processes we start, `ip` and the like, do not notify in our name)
 * and the message texts; the datagram itself is the addon's (native/notify.c:
 * Node has no AF_UNIX datagram sockets). Without `$NOTIFY_SOCKET` — not
 * started by systemd as `Type=notify` — it does nothing and loads nothing. A
 * notification that cannot be sent is logged, never fatal: the service
 * manager's start timeout is what reports a service that never got ready.
 */
import type { Logger } from '../log.ts';

/** Sends one notification; 0 or -errno (the addon's `notify`). */
export type NotifySend = (path: string, state: string) => number;

export class ServiceNotifier {
  /**
   * `socketPath`: the notification socket (`$NOTIFY_SOCKET`; undefined: none,
   * every call does nothing). `send`: how a datagram is sent (default the addon,
   * loaded at the first notification).
   */
  constructor(
    readonly socketPath: string | undefined,
    private readonly log: Logger,
    private send?: NotifySend,
  ) {}

  /** The notifier of this process: takes `$NOTIFY_SOCKET` out of the environment. */
  static fromEnvironment(log: Logger): ServiceNotifier {
    const socketPath = process.env.NOTIFY_SOCKET || undefined;
    delete process.env.NOTIFY_SOCKET;
    return new ServiceNotifier(socketPath, log);
  }

  /** The service is up; `status` is the one-line summary `systemctl status` shows. */
  async ready(status?: string): Promise<void> {
    await this.notify(['READY=1', ...(status ? [`STATUS=${status}`] : [])]);
  }

  /**
   * A reload begins (the service manager waits for the next `ready()`).
   * MONOTONIC_USEC is CLOCK_MONOTONIC in µs, as systemd wants it with RELOADING=1;
   * Node's hrtime reads that clock on Linux.
   */
  async reloading(): Promise<void> {
    await this.notify(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`, 'STATUS=reloading the configuration']);
  }

  /** The stop begins (contexts are closed, routes removed). */
  async stopping(): Promise<void> {
    await this.notify(['STOPPING=1', 'STATUS=stopping']);
  }

  private async notify(lines: string[]): Promise<void> {
    if (this.socketPath === undefined) return;
    try {
      if (!this.send) {
        const { loadAddon } = await import('../../native/addon.ts');
        const addon = loadAddon();
        this.send = (p, s) => addon.notify(p, s);
      }
      const rc = this.send(this.socketPath, lines.join('\n') + '\n');
      if (rc < 0) this.log.warn('service notification not sent', { socket: this.socketPath, state: lines[0], errno: -rc });
    } catch (err) {
      this.log.warn('service notification not sent', { socket: this.socketPath, state: lines[0], error: (err as Error).message });
    }
  }
}

/**
 * A service manager's end of sd_notify(3) for tests: an AF_UNIX datagram
 * socket (Node has none, so a few lines of python3) that collects every
 * notification. `path` is a file system path or `@name` (abstract namespace,
 * which is per network namespace: use a path across namespaces).
 */
import { spawn } from 'node:child_process';
import type { TestContext } from 'node:test';
import { track, waitFor, type Proc } from './built.ts';

const RECEIVER = `
import json, socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print('bound', flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

export class NotifySocket {
  private constructor(readonly path: string, private readonly proc: Proc) {}

  /** Bound and listening when this resolves. */
  static async open(t: TestContext, path: string): Promise<NotifySocket> {
    const proc = track(t, spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await waitFor(() => {
      if (proc.status() !== undefined) throw new Error(`notification receiver exited: ${proc.out()}`);
      return proc.out().startsWith('bound');
    }, 'the notification socket to be bound');
    return new NotifySocket(path, proc);
  }

  /** Every notification so far, each as its `KEY=value` lines. */
  messages(): string[][] {
    return this.proc.out().split('\n').slice(1).filter((l) => l.startsWith('"'))
      .map((l) => (JSON.parse(l) as string).split('\n').filter((x) => x !== ''));
  }

  /**
   * Wait for the `n`-th (from 1) notification carrying `line` (e.g. `READY=1`)
   * and return it; fails at once if `from` (the notifying process) exits first.
   */
  async waitFor(line: string, from: Proc, n = 1): Promise<string[]> {
    let found: string[] | undefined;
    await waitFor(() => {
      found = this.messages().filter((m) => m.includes(line))[n - 1];
      if (found === undefined && from.status() !== undefined) {
        throw new Error(`exited (${String(from.status())}) before notification #${n} with ${line}; notifications ${JSON.stringify(this.messages())}; output:\n${from.out()}`);
      }
      return found !== undefined;
    }, `notification #${n} with ${line}`);
    return found!;
  }
}

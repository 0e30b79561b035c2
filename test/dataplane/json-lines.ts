/** JSON-lines conversation with a child process (fixtures under ./fixtures), with timeouts on every wait. */
import readline from 'node:readline';
import type { ChildProcess } from 'node:child_process';

export type Msg = { op: string } & Record<string, unknown>;

export class JsonLines {
  private readonly inbox: Msg[] = [];
  private readonly listeners = new Map<string, (m: Msg) => void>();
  private readonly waiters: Array<() => void> = [];
  readonly stderr: string[] = [];

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      let m: Msg;
      try { m = JSON.parse(l) as Msg; } catch { this.stderr.push(l); return; }
      const listener = this.listeners.get(m.op);
      if (listener) listener(m); else this.inbox.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr?.on('data', (d: Buffer) => this.stderr.push(d.toString()));
    child.once('exit', () => { for (const w of this.waiters.splice(0)) w(); });
  }

  /** Deliver every message with `op` to `cb` instead of the inbox. */
  onOp(op: string, cb: (m: Msg) => void): void {
    this.listeners.set(op, cb);
  }

  send(m: object): void {
    this.child.stdin!.write(JSON.stringify(m) + '\n');
  }

  /** The first message matching `pred` (removed from the inbox). */
  async take(pred: (m: Msg) => boolean, timeoutMs: number, what = 'a message'): Promise<Msg> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = end - Date.now();
      if (left <= 0 || this.child.exitCode !== null) {
        throw new Error(`timed out waiting for ${what} (exit ${this.child.exitCode}): ${this.stderr.join('').slice(-2000)}`);
      }
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  op(op: string, timeoutMs: number): Promise<Msg> {
    return this.take((m) => m.op === op, timeoutMs, `"${op}"`);
  }
}

/**
 * The control socket server: JSON lines over a unix socket (mode 0600, so only
 * the owner — root for the daemon — may ask). Each request line is
 * `{"id"?: any, "method": string, "params"?: object}`; each reply line is
 * `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`.
 * The resolver serves `status` today; the daemon registers more methods later.
 * Owns the socket file; must not know what the methods do.
 */
import net from 'node:net';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';

export type ControlMethod = (params: Record<string, unknown>) => unknown;

/** Longest request line accepted (a client sending more is cut off). */
const MAX_LINE = 64 * 1024;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** True when something accepts connections on `socketPath`. */
function inUse(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/** Listen on `socketPath`, replacing a stale socket file but never a live server. */
export async function startControlServer(socketPath: string, methods: Record<string, ControlMethod>): Promise<ControlServer> {
  if (await inUse(socketPath)) throw new UsageError('ECONTROL_IN_USE', `control socket ${socketPath} is in use by a running process`, '--socket');
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  rmSync(socketPath, { force: true });
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => c.destroy());
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) { c.end(reply(null, undefined, { code: 'ELINE', message: 'request line too long' })); return; }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) void answer(line, methods).then((out) => { if (!c.destroyed) c.write(out); });
      }
    });
  });
  // The socket file is created 0600 from the start (no window with a looser mode): the bind
  // inside listen() is synchronous, so the process-wide umask is narrowed only around that call.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const oldMask = process.umask(0o177);
    try {
      server.listen(socketPath, () => { server.off('error', reject); resolve(); });
    } finally {
      process.umask(oldMask);
    }
  });
  chmodSync(socketPath, 0o600);
  return {
    path: socketPath,
    close: () => new Promise<void>((resolve) => {
      for (const c of conns) c.destroy();
      server.close(() => { rmSync(socketPath, { force: true }); resolve(); });
    }),
  };
}

function reply(id: unknown, result: unknown, error?: { code: string; message: string }): string {
  return JSON.stringify(error ? { id, ok: false, error } : { id, ok: true, result }) + '\n';
}

async function answer(line: string, methods: Record<string, ControlMethod>): Promise<string> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return reply(null, undefined, { code: 'EJSON', message: 'request is not JSON' });
  }
  const r = req as { id?: unknown; method?: unknown; params?: unknown };
  const id = r?.id ?? null;
  if (typeof r !== 'object' || r === null || typeof r.method !== 'string') return reply(id, undefined, { code: 'EREQUEST', message: 'request needs a string "method"' });
  const fn = Object.hasOwn(methods, r.method) ? methods[r.method] : undefined;
  if (!fn) return reply(id, undefined, { code: 'EMETHOD', message: `unknown method ${JSON.stringify(r.method)}` });
  const params = typeof r.params === 'object' && r.params !== null ? r.params as Record<string, unknown> : {};
  try {
    return reply(id, await fn(params));
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    return reply(id, undefined, { code: typeof e.code === 'string' ? e.code : 'EINTERNAL', message: String(e.message ?? err) });
  }
}

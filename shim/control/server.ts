/**
 * The control socket server: JSON lines over a unix socket (mode 0600, so only
 * the owner — root for the daemon — may ask). Each request line is
 * `{"id"?: any, "method": string, "params"?: object}`; each reply line is
 * `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`.
 * The resolver serves `status` today; the daemon registers more methods later.
 * Owns the connections; the socket file is socket-file.ts's; must not know what the methods do.
 */
import net from 'node:net';
import { bindSocketFile, clearSocketPath, removeSocketFile } from './socket-file.ts';

export type ControlMethod = (params: Record<string, unknown>) => unknown;

/** Longest request line accepted (a client sending more is cut off). */
const MAX_LINE = 64 * 1024;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listen on `socketPath`: absent, or a stale socket (replaced); never a live
 * server (ECONTROL_IN_USE) nor anything that is not a socket (ECONTROL_NOT_SOCKET,
 * left untouched). close() removes the file only if it is still ours.
 */
export async function startControlServer(socketPath: string, methods: Record<string, ControlMethod>): Promise<ControlServer> {
  await clearSocketPath(socketPath);
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    serve(c, methods);
  });
  const id = await bindSocketFile(server, socketPath);
  return {
    path: socketPath,
    close: () => new Promise<void>((resolve) => {
      for (const c of conns) c.destroy();
      // Before server.close(): while our socket is open its inode cannot be reused by another file.
      removeSocketFile(socketPath, id);
      server.close(() => resolve());
    }),
  };
}

/** Read request lines from one client and answer each. */
function serve(c: net.Socket, methods: Record<string, ControlMethod>): void {
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

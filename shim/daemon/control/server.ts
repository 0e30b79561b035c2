/**
 * The control socket server: JSON lines over a unix socket (mode 0600, so only
 * the owner — root for the daemon — may ask). Each request line is
 * `{"id"?: any, "method": string, "params"?: object}`; each reply line is
 * `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`.
 * The resolver serves `status` today; the daemon registers more methods later.
 * Owns the connections; the socket file is socket-file.ts's; must not know what the methods do.
 *
 * Each client is bounded, so one that pipelines requests and never reads cannot
 * grow the process: at most MAX_IN_FLIGHT of its requests are answered at once
 * (reading from it pauses meanwhile), and a client with more than
 * MAX_QUEUED_OUTPUT bytes of replies unread when the next reply is due is
 * disconnected. One reply of any size is always queued, so a single large
 * `status` is never cut. A request line longer than MAX_LINE octets (its newline
 * not counted), complete or not, is never run: the client gets one `ELINE` reply
 * and the connection is closed, nothing it sent after is read.
 *
 * Each method is called with a ControlContext whose `clientGone` signal fires
 * when the connection closes, for whatever reason: a long-running method (the
 * daemon's `capture`) ends then instead of working for nobody.
 */
import net from 'node:net';
import type { Logger } from '../../log.ts';
import { bindSocketFile, clearSocketPath, forgetSocketRecord, recordSocketFile, removeSocketFile } from './socket-file.ts';

/** What a method may know of the request's connection, and nothing of what other methods do. */
export interface ControlContext {
  /**
   * Aborted when the client's connection closes (the client exited, was killed,
   * or was cut off; also at the server's close): a method that runs until asked
   * to stop ends when this fires, since nobody is left to read its reply.
   */
  readonly clientGone: AbortSignal;
}

export type ControlMethod = (params: Record<string, unknown>, ctx: ControlContext) => unknown;

/** Longest request line accepted, in octets without its newline (a client sending a longer one gets ELINE and is cut off). */
export const MAX_LINE = 64 * 1024;

/** Requests of one client being answered at once; past this its further lines wait (and reading pauses). */
export const MAX_IN_FLIGHT = 16;

/** Reply bytes one client may leave unread (socket.writableLength) when another reply is due; past this it is disconnected. */
export const MAX_QUEUED_OUTPUT = 1024 * 1024;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

export interface ControlServerOptions {
  /** Where a client cut off for not reading is reported (once per disconnect). */
  log?: Logger;
  /**
   * Where to record the socket file once bound, for the next start to remove it if a SIGKILL
   * leaves it at a path no longer configured (socket-file.ts removeRecordedSocket); removed by close().
   */
  record?: string;
}

/**
 * Listen on `socketPath`: absent, or a stale socket (replaced); never a live
 * server (ECONTROL_IN_USE) nor anything that is not a socket (ECONTROL_NOT_SOCKET,
 * left untouched). close() removes the file only if it is still ours.
 */
export async function startControlServer(socketPath: string, methods: Record<string, ControlMethod>, opts: ControlServerOptions = {}): Promise<ControlServer> {
  await clearSocketPath(socketPath);
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    serve(c, methods, opts.log);
  });
  const id = await bindSocketFile(server, socketPath);
  const record = opts.record;
  if (record !== undefined) {
    const why = recordSocketFile(record, socketPath, id);
    if (why !== undefined) opts.log?.warn('cannot record the control socket: if this daemon is killed and started again with another controlSocket, this one stays', { record, error: why });
  }
  return {
    path: socketPath,
    close: () => new Promise<void>((resolve) => {
      for (const c of conns) c.destroy();
      // Before server.close(): while our socket is open its inode cannot be reused by another file.
      removeSocketFile(socketPath, id);
      if (record !== undefined) forgetSocketRecord(record);
      server.close(() => resolve());
    }),
  };
}

/** Read request lines from one client and answer them, within the per-client bounds. */
function serve(c: net.Socket, methods: Record<string, ControlMethod>, log: Logger | undefined): void {
  c.on('error', () => c.destroy());
  const gone = new AbortController();
  c.once('close', () => gone.abort());
  const ctx: ControlContext = { clientGone: gone.signal };
  /** Octets read and not yet taken as lines (complete lines waiting for a slot, then the unterminated tail), in the order read. */
  let parts: Buffer[] = [];
  /** Octets after the last newline read: the line being received. */
  let tail = 0;
  let inFlight = 0;
  let replies = 0;
  /** Set once the client sent a line over MAX_LINE: nothing more is read, run or answered. */
  let cut = false;
  const refuseLine = (): void => {
    cut = true;
    parts = [];
    c.pause();
    c.end(reply(null, undefined, { code: 'ELINE', message: `request line longer than ${MAX_LINE} octets` }), () => c.destroy());
  };
  const pump = (): void => {
    if (parts.length > 1) parts = [Buffer.concat(parts)];
    let buf = parts[0] ?? Buffer.alloc(0);
    let nl: number;
    while (!cut && inFlight < MAX_IN_FLIGHT && !c.destroyed && (nl = buf.indexOf(0x0a)) >= 0) {
      // The tail was measured as it arrived; a line that came whole in one read is measured here.
      if (nl > MAX_LINE) { refuseLine(); return; }
      const line = buf.toString('utf8', 0, nl).trim();
      buf = buf.subarray(nl + 1);
      parts = buf.length ? [buf] : [];
      if (!line) continue;
      inFlight++;
      void answer(line, methods, ctx).then((out) => {
        inFlight--;
        if (c.destroyed || cut) return;
        if (c.writableLength > MAX_QUEUED_OUTPUT) {
          log?.warn('control client disconnected: it does not read its replies', { queuedBytes: c.writableLength, limit: MAX_QUEUED_OUTPUT, replies });
          c.destroy();
          return;
        }
        replies++;
        c.write(out);
        pump();
      });
    }
    if (cut) return;
    if (inFlight >= MAX_IN_FLIGHT) c.pause();
    else if (c.isPaused()) c.resume();
  };
  c.on('data', (chunk: Buffer) => {
    if (cut) return;
    const last = chunk.lastIndexOf(0x0a);
    tail = last < 0 ? tail + chunk.length : chunk.length - 1 - last;
    if (tail > MAX_LINE) { refuseLine(); return; }
    parts.push(chunk);
    if (last >= 0) pump();
  });
}

function reply(id: unknown, result: unknown, error?: { code: string; message: string }): string {
  return JSON.stringify(error ? { id, ok: false, error } : { id, ok: true, result }) + '\n';
}

async function answer(line: string, methods: Record<string, ControlMethod>, ctx: ControlContext): Promise<string> {
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
    return reply(id, await fn(params, ctx));
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    return reply(id, undefined, { code: typeof e.code === 'string' ? e.code : 'EINTERNAL', message: String(e.message ?? err) });
  }
}

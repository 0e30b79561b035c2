/**
 * The control socket client: one request, one reply line, with a deadline: no reply begun
 * within it, or a reply that stops arriving for that long (a `status` of tens of thousands of
 * contexts is megabytes, and keeps arriving).
 * Used by `shim6 status` (and later other CLI commands talking to the daemon).
 * Errors are ControlError with stable codes: ECONTROL_CONNECT (nothing listening, or the socket not ours to use),
 * ECONTROL_TIMEOUT, ECONTROL_PROTOCOL (a reply that is not a JSON object, none, or one over MAX_REPLY), or the server's own code.
 */
import net from 'node:net';
import { statSync } from 'node:fs';
import path from 'node:path';
import { EnvironmentError, Shim6Error } from '../../errors.ts';
import { networkNamespaceName } from '../netns-name.ts';
import { socketPathProblem } from './socket-file.ts';

/** The engine's parts of a `status` reply (the engine's own types, for the CLI that prints them). */
export type { CapabilityStatus, GuardCounters } from '../../engine/index.ts';

export type ControlErrorCode = 'ECONTROL_CONNECT' | 'ECONTROL_TIMEOUT' | 'ECONTROL_PROTOCOL' | string;

/** The control request failed: nothing listening, no reply, a bad reply, or the server's own error code. */
export class ControlError extends Shim6Error {
  readonly code: ControlErrorCode;
  constructor(code: ControlErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Where the daemon, and a resolver run by root, listen by default. */
export const DEFAULT_CONTROL_SOCKET = '/run/shim6/control.sock';

/** The default control socket as `--help` says it. */
export const DEFAULT_CONTROL_SOCKET_HELP = `${DEFAULT_CONTROL_SOCKET}, in a named network namespace /run/shim6/netns/NAME/control.sock; as a user other than root $XDG_RUNTIME_DIR/shim6/control.sock`;

/**
 * Root's default control socket: DEFAULT_CONTROL_SOCKET, and in a named network namespace other
 * than the host's /run/shim6/netns/<name>/control.sock (netns-name.ts): there is a daemon per
 * namespace, and with one path the second namespace's start failed (ECONTROL_IN_USE). The daemon
 * and `ip netns exec NAME shim6 status` find the same one. A name too long for a socket path keeps
 * DEFAULT_CONTROL_SOCKET.
 */
export function rootControlSocket(namespace = networkNamespaceName()): string {
  if (namespace === undefined) return DEFAULT_CONTROL_SOCKET;
  const own = path.join('/run/shim6/netns', namespace, 'control.sock');
  return socketPathProblem(own) === undefined ? own : DEFAULT_CONTROL_SOCKET;
}

/**
 * The control socket `shim6 resolver`, `status` and `flush` use when nothing names one: root's
 * rootControlSocket() (in /run/shim6, root's alone); for another user
 * `$XDG_RUNTIME_DIR/shim6/control.sock` when XDG_RUNTIME_DIR is an absolute path to a directory of
 * that user's (pam_systemd's /run/user/UID), else undefined: there is no default (runtimeDefault).
 */
export function defaultControlSocket(uid: number | undefined = process.getuid?.(), env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (uid === undefined || uid === 0) return rootControlSocket();
  const dir = env.XDG_RUNTIME_DIR;
  if (!dir || !path.isAbsolute(dir)) return undefined;
  let st;
  try { st = statSync(dir); } catch { return undefined; }
  return st.isDirectory() && st.uid === uid ? path.join(dir, 'shim6', 'control.sock') : undefined;
}

/**
 * defaultControlSocket, or, when a user other than root has none, ENOTROOT (exit 1) saying to
 * give `--socket`: thrown before anything is bound or asked.
 */
export function runtimeDefaultControlSocket(command: string, uid: number | undefined = process.getuid?.(), env: NodeJS.ProcessEnv = process.env): string {
  const p = defaultControlSocket(uid, env);
  if (p !== undefined) return p;
  const what = command === 'shim6 resolver' ? 'give --socket PATH (where this user may create a socket)' : 'give --socket PATH (the resolver\'s), or run it as root for the daemon\'s';
  throw new EnvironmentError('ENOTROOT', `${command}: the default control socket ${DEFAULT_CONTROL_SOCKET} is root's, and XDG_RUNTIME_DIR names no directory of this user's: ${what}`);
}

/**
 * ECONTROL_CONNECT for a failed connect to `socketPath`, with what to do about it: nothing
 * listening (ENOENT, ECONNREFUSED) asks whether shim6 runs; a refused permission (EACCES,
 * EPERM) says that the socket is root's (the daemon makes it 0600): run the command as root.
 */
export function connectError(socketPath: string, err: Error & { code?: unknown }): ControlError {
  const base = `cannot connect to ${socketPath}`;
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return new ControlError('ECONTROL_CONNECT', `${base}: permission denied (${String(err.code)}): the control socket is root's (mode 0600); run the command as root`);
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new ControlError('ECONTROL_CONNECT', `${base}: ${err.message} (is shim6 resolver or daemon running?)`);
    default:
      return new ControlError('ECONTROL_CONNECT', `${base}: ${err.message}`);
  }
}

/**
 * The longest reply line the client takes (characters): far above the largest status (its
 * contexts, at most `maxContexts`, and capability entries: tens of megabytes), below what a
 * string may hold. Something else listening on the socket that streams without end is refused at
 * it (ECONTROL_PROTOCOL) instead of growing the CLI's memory for as long as it streams.
 */
export const MAX_REPLY = 256 * 1024 * 1024;

export function controlRequest(socketPath: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 3000, maxReply = MAX_REPLY): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath);
    let buf = '';
    let settled = false;
    const expire = (): NodeJS.Timeout => setTimeout(() => finish(new ControlError('ECONTROL_TIMEOUT', `no reply on ${socketPath} within ${timeoutMs} ms (or the reply stopped arriving for that long)`)), timeoutMs);
    const finish = (err: Error | undefined, v?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      if (err) reject(err); else resolve(v);
    };
    let timer = expire();
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify({ id: 1, method, params }) + '\n'));
    c.on('error', (e) => finish(connectError(socketPath, e)));
    c.on('data', (chunk: string) => {
      // The reply keeps arriving: the deadline starts again. Only the new chunk is searched for the line's end.
      clearTimeout(timer);
      timer = expire();
      const at = chunk.indexOf('\n');
      if (buf.length + (at < 0 ? chunk.length : at) > maxReply) {
        finish(new ControlError('ECONTROL_PROTOCOL', `reply longer than ${maxReply} characters: is ${socketPath} a shim6 control socket?`));
        return;
      }
      buf += chunk;
      if (at < 0) return;
      const nl = buf.length - chunk.length + at;
      let parsed: unknown;
      try {
        parsed = JSON.parse(buf.slice(0, nl));
      } catch {
        finish(new ControlError('ECONTROL_PROTOCOL', 'reply is not JSON'));
        return;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        finish(new ControlError('ECONTROL_PROTOCOL', 'reply is not a JSON object'));
        return;
      }
      const rep = parsed as { ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } | null };
      if (rep.ok === true) finish(undefined, rep.result);
      else finish(new ControlError(typeof rep.error?.code === 'string' ? rep.error.code : 'ECONTROL_PROTOCOL', String(rep.error?.message ?? 'request failed')));
    });
    c.on('end', () => finish(new ControlError('ECONTROL_PROTOCOL', 'connection closed before a reply')));
  });
}

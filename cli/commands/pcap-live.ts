/**
 * `shim6 pcap --live FILE`: ask the running daemon (or resolver with its
 * engine) over the control socket to capture the Shim6 messages it sends and
 * receives for `--seconds` (or until Ctrl-C, which asks it to stop early and
 * still writes what was captured), then write the pcap it returns to FILE
 * (mode 0600, not through a symbolic link: cli/output-file.ts).
 * Loaded by wire.ts only when the command runs.
 */
import net from 'node:net';
import { connectError, ControlError } from '../../shim/daemon/control/client.ts';
import type { CaptureResult } from '../../shim/daemon/capture.ts';
import { writeOutputFile } from '../output-file.ts';

export interface LiveFlags { socket: string; seconds: number; maxBytes: number; payload: boolean }

/** Run one capture; resolves with what was written. */
export function liveCapture(file: string, flags: LiveFlags): Promise<CaptureResult> {
  return new Promise((resolve, reject) => {
    const c = net.connect(flags.socket);
    let buf = '';
    let settled = false;
    const onSigint = (): void => { if (!c.destroyed) c.write(JSON.stringify({ id: 2, method: 'capture-stop' }) + '\n'); };
    const finish = (err: Error | undefined, r?: CaptureResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      process.off('SIGINT', onSigint);
      c.destroy();
      if (err) reject(err); else resolve(r!);
    };
    // The daemon ends the capture after `seconds`; its reply may take a little longer on a busy host.
    const timer = setTimeout(() => finish(new ControlError('ECONTROL_TIMEOUT', `no capture from ${flags.socket} within ${flags.seconds + 30} s`)), (flags.seconds + 30) * 1000);
    process.on('SIGINT', onSigint);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify({ id: 1, method: 'capture', params: { seconds: flags.seconds, maxBytes: flags.maxBytes, payload: flags.payload } }) + '\n'));
    c.on('error', (e) => finish(connectError(flags.socket, e)));
    c.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let rep: { id?: unknown; ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
        try { rep = JSON.parse(line); } catch { finish(new ControlError('ECONTROL_PROTOCOL', 'reply is not JSON')); return; }
        if (rep.id !== 1) continue; // the stop request's own reply
        if (rep.ok !== true) {
          finish(new ControlError(typeof rep.error?.code === 'string' ? rep.error.code : 'ECONTROL_PROTOCOL', String(rep.error?.message ?? 'capture failed')));
          return;
        }
        const r = rep.result as CaptureResult;
        if (typeof r?.pcap !== 'string') { finish(new ControlError('ECONTROL_PROTOCOL', 'capture reply without a pcap')); return; }
        // Mode 0600 (--payload puts packet contents in it), never through a symbolic link.
        try {
          writeOutputFile(file, Buffer.from(r.pcap, 'base64'));
        } catch (err) {
          finish(err as Error);
          return;
        }
        finish(undefined, r);
        return;
      }
    });
    c.on('end', () => finish(new ControlError('ECONTROL_PROTOCOL', 'connection closed before the capture ended')));
  });
}

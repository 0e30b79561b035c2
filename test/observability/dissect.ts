/**
 * tshark with contrib/wireshark/shim6-udp.lua as the tests' oracle of a
 * capture (test/observability/capture.test.ts, test/e2e/observability.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../helpers/cli.ts';

export const DISSECTOR = path.join(ROOT, 'contrib/wireshark/shim6-udp.lua');

/** What the dissector calls each message type (its Info column). */
export const NAMES: Record<number, string> = { 1: 'I1', 2: 'R1', 3: 'I2', 4: 'R2', 5: 'R1bis', 6: 'I2bis', 60: 'Close', 61: 'Close Ack', 64: 'Update Request', 65: 'Update Ack', 66: 'Keepalive', 67: 'Probe', 68: 'Error' };

/** tshark's fields of every packet of `file` through the dissector. */
export function dissect(file: string, fields: string[]): string[][] {
  const r = spawnSync('tshark', ['-r', file, '-X', `lua_script:${DISSECTOR}`, '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Lua: Error|lua_script.*error/i, r.stderr);
  return r.stdout.trimEnd().split('\n').map((l) => l.split('\t'));
}

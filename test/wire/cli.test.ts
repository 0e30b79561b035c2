// The wire commands through the real CLI (a shim6 process, from the sources, or main's run() in process): decode, encode, pcap.
// Malformed input exits 1 and names the WireError code on stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { shim6 } from '../helpers/cli.ts';
import { buildProgram, run } from '../../cli/main.ts';
import { liveCapture } from '../../cli/commands/pcap-live.ts';
import { writeDemoPcap } from '../../cli/commands/wire-actions.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { EnvironmentError } from '../../shim/errors.ts';
import { demoMessages } from '../../shim/wire/demo.ts';
import { toJson } from '../../shim/wire/json.ts';

const CANARY_HEX = '3b0101009e73123456789abc11111111';

test('shim6 decode prints the message as JSON', () => {
  const r = shim6(['decode', CANARY_HEX]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { type: 'I1', contextTag: 0x123456789abc, initiatorNonce: 0x11111111, options: [] });
});

test('shim6 decode accepts spaces and 0x, and decodes payload headers', () => {
  const r = shim6(['decode', '0x06 00 92 34 56 78 9a bc']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { type: 'PayloadHeader', nextHeader: 6, contextTag: 0x123456789abc });
});

test('shim6 decode: malformed input exits 1 with the WireError code', () => {
  for (const [hex, code] of [[CANARY_HEX.slice(0, -2) + '12', 'ECHECKSUM'], ['3b01', 'ETRUNCATED'], ['xyz', 'ESYNTAX']] as const) {
    const r = shim6(['decode', hex]);
    assert.equal(r.status, 1, `${hex}: ${r.stdout}`);
    assert.match(r.stderr, new RegExp(`error ${code}:`));
    assert.equal(r.stdout, '');
  }
});

test('shim6 encode | shim6 decode gives the message back (I2 with options, Probe)', () => {
  const pick = demoMessages().filter((m) => ['I2', 'Probe'].includes(m.type));
  for (const m of pick) {
    const json = JSON.stringify(toJson(m));
    const enc = shim6(['encode', json]);
    assert.equal(enc.status, 0, enc.stderr);
    assert.match(enc.stdout.trim(), /^[0-9a-f]+$/);
    const dec = shim6(['decode', enc.stdout.trim()]);
    assert.equal(dec.status, 0, dec.stderr);
    assert.deepEqual(JSON.parse(dec.stdout), JSON.parse(json));
  }
});

test('shim6 encode: bad JSON and bad fields exit 1 with the WireError code', () => {
  const notJson = shim6(['encode', '{type:']);
  assert.equal(notJson.status, 1);
  assert.match(notJson.stderr, /error ESYNTAX:/);
  const badTag = shim6(['encode', '{"type":"I1","contextTag":140737488355328,"initiatorNonce":1,"options":[]}']);
  assert.equal(badTag.status, 1);
  assert.match(badTag.stderr, /error EFIELD: I1\.contextTag/);
});

test('shim6 pcap --demo writes a LINKTYPE_RAW pcap with one packet per message type and a payload header', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wire-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'demo.pcap');
  const r = shim6(['pcap', '--demo', file]);
  assert.equal(r.status, 0, r.stderr);
  const b = readFileSync(file);
  assert.equal(b.readUInt32LE(0), 0xa1b2c3d4);
  assert.equal(b.readUInt32LE(20), 101);
  const types: number[] = [];
  for (let off = 24; off < b.length;) {
    const len = b.readUInt32LE(off + 8);
    const pkt = b.subarray(off + 16, off + 16 + len);
    assert.equal(pkt[0]! >> 4, 6);
    assert.equal(pkt[6], 140);
    assert.equal(pkt.readUInt16BE(4), len - 40);
    types.push(pkt[40 + 2]!);
    off += 16 + len;
  }
  assert.deepEqual(types, [1, 2, 3, 4, 5, 6, 64, 65, 66, 67, 68, 60, 61, 0x80 | 0x0b]);
});

test('shim6 pcap --demo and --live write FILE mode 0600 and never through a symbolic link planted at FILE', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wire-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const victim = path.join(dir, 'victim');
  writeFileSync(victim, 'root\'s file\n', { mode: 0o644 });
  const link = path.join(dir, 'planted.pcap');
  symlinkSync(victim, link);
  const untouched = (): void => {
    assert.equal(readFileSync(victim, 'utf8'), 'root\'s file\n');
    assert.equal(statSync(victim).mode & 0o777, 0o644);
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link is left where it was');
  };
  const refused = `shim6: error EOUTPUT: ${link} is a symbolic link: not followed, nothing written; remove it or name another file\n`;

  // --demo: the refusal through the command line (exit 1), the writes through its action.
  const written: string[] = [];
  assert.equal(await run(['pcap', '--demo', link], buildProgram(), (s) => { written.push(s); }), 1);
  assert.equal(written.join(''), refused);
  untouched();
  const fresh = path.join(dir, 'fresh.pcap');
  assert.equal(writeDemoPcap(fresh), 14);
  assert.equal(statSync(fresh).mode & 0o777, 0o600, 'a new file is 0600 whatever the umask');
  // An existing regular file the user named is written (its mode kept).
  const existing = path.join(dir, 'existing.pcap');
  writeFileSync(existing, 'x'.repeat(100_000), { mode: 0o640 });
  writeDemoPcap(existing);
  assert.deepEqual(readFileSync(existing), readFileSync(fresh));
  assert.equal(statSync(existing).mode & 0o777, 0o640);

  // --live: the file is written when the daemon's reply comes (a control server standing in for it).
  const pcap = Buffer.from('a capture with payload octets');
  const server = await startControlServer(path.join(dir, 'control.sock'), { capture: () => ({ pcap: pcap.toString('base64'), packets: 1, bytes: pcap.length, ended: 'seconds' }) });
  t.after(() => server.close());
  const flags = { socket: server.path, seconds: 1, maxBytes: 1 << 20, payload: true };
  await assert.rejects(liveCapture(link, flags), (e: unknown) => e instanceof EnvironmentError && e.code === 'EOUTPUT' && e.path === link);
  untouched();
  const live = path.join(dir, 'live.pcap');
  await liveCapture(live, flags);
  assert.deepEqual(readFileSync(live), pcap);
  assert.equal(statSync(live).mode & 0o777, 0o600);
});

test('shim6 pcap without --demo or --live is a usage error (exit 2) that says so', () => {
  const r = shim6(['pcap', path.join(tmpdir(), 'never-written.pcap')]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'shim6: error EMISSING: pcap: neither --demo nor --live: --demo FILE writes one packet of every message type, --live FILE captures from the running daemon (--stop ends a capture)\n');
});

test('shim6 pcap: each wrong combination of flags says what is wrong (exit 2), and writes nothing', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wire-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'w.pcap');
  const neither = 'EMISSING: pcap: neither --demo nor --live: --demo FILE writes one packet of every message type, --live FILE captures from the running daemon (--stop ends a capture)';
  const cases: Array<[string[], string]> = [
    [['pcap'], neither],
    [['pcap', file], neither],
    [['pcap', '--seconds', '5', file], 'EMISSING: pcap: --seconds goes with --live, which is missing (shim6 pcap --live FILE --seconds …)'],
    [['pcap', '--payload', '--max-bytes', '100', file], 'EMISSING: pcap: --payload, --max-bytes go with --live, which is missing (shim6 pcap --live FILE --payload …)'],
    [['pcap', '--demo', '--live', file], 'EINVALID: pcap: --demo and --live together: give one of them'],
    [['pcap', '--demo', '--seconds', '5', file], 'EINVALID: pcap --demo: --seconds goes with --live only'],
    [['pcap', '--demo'], 'EMISSING: pcap --demo: the file to write is required (shim6 pcap --demo FILE)'],
    [['pcap', '--live'], 'EMISSING: pcap --live: the file to write is required (shim6 pcap --live FILE)'],
    [['pcap', '--live', '--seconds', '0', file], 'EINVALID: --seconds: invalid value "0": expected an integer in 1..3600'],
    // --stop ends another client's capture and writes nothing: what goes with a capture of one's own was ignored.
    [['pcap', '--stop', '--live', file, '--socket', path.join(dir, 'none.sock')], 'EINVALID: pcap --stop: --live, FILE go without --stop (it ends the running capture and writes no file)'],
    [['pcap', '--stop', '--demo', '--socket', path.join(dir, 'none.sock')], 'EINVALID: pcap --stop: --demo goes without --stop (it ends the running capture and writes no file)'],
    [['pcap', '--stop', '--seconds', '5', '--socket', path.join(dir, 'none.sock')], 'EINVALID: pcap --stop: --seconds goes without --stop (it ends the running capture and writes no file)'],
  ];
  for (const [args, line] of cases) {
    const written: string[] = [];
    assert.equal(await run(args, buildProgram(), (s) => { written.push(s); }), 2, args.join(' '));
    assert.equal(written.join(''), `shim6: error ${line}\n`, args.join(' '));
  }
  assert.deepEqual(readdirSync(dir), []);
});

// Capability-record RDATA built by hand from docs/capability-record.md: version 1, flags 0x80 (HBA set),
// 1 locator, ULID 2001:db8:a::1; locator flags 0, priority 1, weight 10; parameter 2 (port) = 6000.
const RECORD_HEX = '01 80 01 00 20010db8000a00000000000000000001  00 01 0a 00 20010db8000a00000000000000000001  0002 0002 1770'.replace(/ /g, '');
const RECORD_JSON = {
  hbaSet: true, cgaUlid: false, ulid: '2001:db8:a::1',
  locators: [{ address: '2001:db8:a::1', flags: 0, priority: 1, weight: 10 }],
  mandatory: [], unknownParams: [], port: 6000,
};

test('shim6 decode --record / encode --record: capability-record RDATA both ways', () => {
  const dec = shim6(['decode', '--record', RECORD_HEX]);
  assert.equal(dec.status, 0, dec.stderr);
  assert.deepEqual(JSON.parse(dec.stdout), RECORD_JSON);
  const enc = shim6(['encode', '--record', JSON.stringify(RECORD_JSON)]);
  assert.equal(enc.status, 0, enc.stderr);
  assert.equal(enc.stdout.trim(), RECORD_HEX);
});

test('shim6 decode --record: malformed RDATA exits 1 with the WireError code', () => {
  const r = shim6(['decode', '--record', RECORD_HEX.slice(0, 30)]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error ETRUNCATED:/);
});

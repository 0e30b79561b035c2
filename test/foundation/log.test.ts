// Log lines: ISO 8601 timestamps with milliseconds in text, `<N>` syslog
// priorities instead when stderr is journald's stream ($JOURNAL_STREAM names
// it), and an IPv6 address with a port written `[addr]:port` everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostPort, Logger } from '../../shim/log.ts';
import { ROOT } from '../helpers/cli.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';

function lines(opts: { format?: 'text' | 'json'; journal?: boolean }): string[] {
  const out: string[] = [];
  const log = new Logger({ level: 'debug', sink: { write: (l) => { out.push(l); } }, ...opts });
  log.debug('d'); log.info('i', { peer: hostPort('2001:db8::1', 5533) }); log.child('engine').warn('w'); log.error('e');
  return out;
}

test('text lines start with an ISO 8601 UTC timestamp with milliseconds', () => {
  const out = lines({});
  assert.equal(out.length, 4);
  for (const l of out) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) (shim6|engine): [diwe]/);
  assert.match(out[1]!, /INFO  shim6: i peer=\[2001:db8::1\]:5533$/);
});

test('under journald: <N> priority prefixes (debug 7, info 6, warning 4, err 3) instead of timestamps, text and json', () => {
  assert.deepEqual(lines({ journal: true }), ['<7>DEBUG shim6: d', '<6>INFO  shim6: i peer=[2001:db8::1]:5533', '<4>WARN  engine: w', '<3>ERROR shim6: e']);
  const json = lines({ journal: true, format: 'json' });
  assert.deepEqual(json.map((l) => l.slice(0, 3)), ['<7>', '<6>', '<4>', '<3>']);
  assert.equal(JSON.parse(json[1]!.slice(3)).peer, '[2001:db8::1]:5533');
});

test('JOURNAL_STREAM counts only when it names the stream stderr is (systemd.exec(5))', () => {
  const file = path.join(os.tmpdir(), `shim6-log-${process.pid}.txt`);
  const run = (journalStream: (st: { dev: number; ino: number }) => string): string => {
    const fd = openSync(file, 'w');
    const st = fstatSync(fd);
    const code = `const { Logger } = await import(${JSON.stringify(treeModule('shim/log.ts'))}); new Logger().warn('hello');`;
    const r = spawnSync(process.execPath, [...TREE_LOADER, '--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', fd], cwd: ROOT, env: { ...process.env, JOURNAL_STREAM: journalStream(st) } });
    closeSync(fd);
    assert.equal(r.status, 0, readFileSync(file, 'utf8'));
    return readFileSync(file, 'utf8');
  };
  try {
    assert.equal(run((st) => `${st.dev}:${st.ino}`), '<4>WARN  shim6: hello\n');
    assert.match(run((st) => `${st.dev}:${st.ino + 1}`), /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN  shim6: hello\n$/, 'inherited from elsewhere: not journald');
    assert.match(run(() => ''), /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN  shim6: hello\n$/);
  } finally {
    spawnSync('rm', ['-f', file]);
  }
});

test('setLevel changes the level of a logger and of all its children, made before or after (a reload\'s log.level)', () => {
  const out: string[] = [];
  const root = new Logger({ level: 'info', sink: { write: (l) => { out.push(l); } } });
  const early = root.child('early');
  early.debug('no');
  early.child('deeper').setLevel('debug');
  const late = root.child('late');
  for (const l of [root, early, late]) l.debug('yes');
  assert.equal(root.level, 'debug');
  assert.equal(out.length, 3, out.join('\n'));
  late.setLevel('error');
  for (const l of [root, early, late]) l.warn('no');
  assert.equal(out.length, 3);
  assert.equal(new Logger({ level: 'info' }).level, 'info', 'another logger keeps its own');
});

test('hostPort: [addr]:port for IPv6, addr:port for IPv4', () => {
  assert.equal(hostPort('::1', 53), '[::1]:53');
  assert.equal(hostPort('2001:db8::1', '5533'), '[2001:db8::1]:5533');
  assert.equal(hostPort('127.0.0.153', 53), '127.0.0.153:53');
});

test('no source writes an address and a port as host:port, host#port or "host port N" (hostPort does)', () => {
  const bad = /\$\{[\w.?!]*(host|address|addr|Address)\}(:|#| port )\$\{/;
  const hits: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) { if (name !== 'node_modules' && name !== 'build') walk(p); continue; }
      if (!name.endsWith('.ts') || p === path.join(ROOT, 'shim/log.ts')) continue; // hostPort itself
      readFileSync(p, 'utf8').split('\n').forEach((line, i) => { if (bad.test(line)) hits.push(`${path.relative(ROOT, p)}:${i + 1}: ${line.trim()}`); });
    }
  };
  for (const d of ['cli', 'shim', 'resolver', 'zone-tools', 'lab', 'native']) walk(path.join(ROOT, d));
  assert.deepEqual(hits, []);
});

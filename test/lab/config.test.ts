// The daemon's config file: defaults, YAML and JSON, and errors that name the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UsageError } from '../../shim/errors.ts';
import { defaultConfig, keysNeedingRestart, loadConfig, parseConfigText, RELOADED_KEYS, timerValues, validateConfig } from '../../shim/daemon/config.ts';
import { configFromObject } from '../../resolver/config.ts';
import { SEND_TIMEOUT, SHIM6_UDP_PORT } from '../../shim/constants.ts';

function rejects(doc: unknown, field: string): void {
  assert.throws(() => validateConfig(doc), (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.code, 'ECONFIG');
    assert.equal(e.field, field);
    return true;
  });
}

test('an empty file gives the documented defaults', () => {
  const c = parseConfigText('');
  assert.deepEqual(c, defaultConfig());
  assert.equal(c.port, SHIM6_UDP_PORT);
  assert.equal(c.timers.profile, 'rfc');
  assert.equal(timerValues(c).sendTimeout, SEND_TIMEOUT);
  // systemd-resolved owns 127.0.0.53 and 127.0.0.54: the default stub must not collide.
  assert.deepEqual(c.listen, [{ address: '127.0.0.153', port: 53 }]);
});

test('YAML and JSON give the same config', () => {
  const yaml = `
listen: ["[::1]:5353", 127.0.0.1:5353]
upstreams: [2001:db8::53]
peers:
  - name: b.lab.example
    ulid: 2001:db8:1::2
    locators: [2001:db8:1::2, { address: "2001:db8:2::2", priority: 1 }]
timers: { profile: fast, sendTimeout: 900 }
tun: { name: shim6lab, mtu: 1380 }
port: 6000
log: { level: debug, format: json }
cacheFile: /tmp/c.json
controlSocket: /tmp/s.sock
`;
  const a = parseConfigText(yaml);
  const json = JSON.stringify({
    listen: ['[::1]:5353', '127.0.0.1:5353'], upstreams: ['2001:db8::53'],
    peers: [{ name: 'b.lab.example', ulid: '2001:db8:1::2', locators: ['2001:db8:1::2', { address: '2001:db8:2::2', priority: 1 }] }],
    timers: { profile: 'fast', sendTimeout: 900 }, tun: { name: 'shim6lab', mtu: 1380 }, port: 6000,
    log: { level: 'debug', format: 'json' }, cacheFile: '/tmp/c.json', controlSocket: '/tmp/s.sock',
  });
  const b = parseConfigText(json);
  assert.deepEqual(a.listen, [{ address: '::1', port: 5353 }, { address: '127.0.0.1', port: 5353 }]);
  assert.deepEqual(a.upstreams, [{ address: '2001:db8::53', port: 53 }]);
  assert.equal(a.peers[0]?.locators[1]?.priority, 1);
  assert.equal(timerValues(a).sendTimeout, 900);
  assert.equal(timerValues(a).initialProbeTimeout, 50, 'fast profile value kept where not overridden');
  assert.equal(a.tun.name, 'shim6lab');
  assert.equal(a.log.format, 'json');
  assert.deepEqual(b, a);
});

test('errors name the key path and carry code ECONFIG', () => {
  rejects({ port: 70000 }, 'port');
  rejects({ port: '5533' }, 'port');
  rejects({ nosuch: 1 }, 'nosuch');
  rejects({ timers: { profile: 'slow' } }, 'timers.profile');
  rejects({ timers: { sendTimeout: -1 } }, 'timers.sendTimeout');
  rejects({ timers: { sendTimout: 5 } }, 'timers.sendTimout');
  rejects({ tun: { name: 'this-name-is-too-long' } }, 'tun.name');
  rejects({ tun: { mtu: 1000 } }, 'tun.mtu');
  rejects({ log: { level: 'loud' } }, 'log.level');
  rejects({ log: { format: 'xml' } }, 'log.format');
  rejects({ listen: ['example.com:53'] }, 'listen[0]');
  rejects({ upstreams: 5 }, 'upstreams');
  rejects({ resolverWorkers: 0 }, 'resolverWorkers');
  rejects({ resolverWorkers: 65 }, 'resolverWorkers');
  rejects({ capabilityMaxTtl: 0 }, 'capabilityMaxTtl');
  rejects({ capabilityMaxNegativeTtl: 86_401 }, 'capabilityMaxNegativeTtl');
  rejects({ peers: [{ ulid: 'not-an-address' }] }, 'peers[0].ulid');
  rejects({ peers: [{ ulid: '2001:db8::1', locators: ['2001:db8::1', '2001:db8:0:Q::2'] }] }, 'peers[0].locators[1]');
  rejects({ peers: [{ ulid: '2001:db8::1', locators: [{ address: '2001:db8::1', priority: 300 }] }] }, 'peers[0].locators[0].priority');
  rejects({ peers: [{ ulid: '2001:db8::1' }, { ulid: '2001:db8:0::1' }] }, 'peers[1].ulid');
  rejects([1, 2], '(top level)');
});

test('hba names a parameters file; listen: [] runs no stub', () => {
  const c = validateConfig({ hba: '/etc/shim6/hba.json', listen: [] });
  assert.equal(c.hba, '/etc/shim6/hba.json');
  assert.deepEqual(c.listen, []);
  assert.equal(defaultConfig().hba, undefined);
  rejects({ hba: '' }, 'hba');
  rejects({ interfaces: ['eth0', ''] }, 'interfaces[1]');
});

test('the message names the value', () => {
  assert.throws(() => validateConfig({ port: 70000 }), /port: invalid value 70000/);
});

test('a peer without locators uses its ULID as the only locator', () => {
  const c = validateConfig({ peers: [{ ulid: '2001:DB8::0:1' }] });
  assert.deepEqual(c.peers[0]?.locators, [{ address: '2001:db8::1', priority: 0, weight: 0, flags: 0 }]);
  assert.equal(c.peers[0]?.ulid, '2001:db8::1');
});

test('a peer ULID or locator that cannot be a peer\'s (unspecified, loopback, multicast, link-local, IPv4-mapped: the zone tools\' rule) is ECONFIG naming the key; so is a locator listed twice', () => {
  for (const bad of ['::', '::1', 'ff02::1', 'fe80::1', '::ffff:10.0.0.1']) {
    rejects({ peers: [{ ulid: bad }] }, 'peers[0].ulid');
    rejects({ peers: [{ ulid: '2001:db8::1', locators: ['2001:db8::1', bad] }] }, 'peers[0].locators[1]');
    rejects({ peers: [{ ulid: '2001:db8::1', locators: [{ address: bad }] }] }, 'peers[0].locators[0].address');
  }
  assert.throws(() => validateConfig({ peers: [{ ulid: 'ff02::1' }] }), /^UsageError: peers\[0\]\.ulid: invalid value "ff02::1": ff02::1 is a multicast address; a peer's ULID must be a global address$/);
  // The same address twice, however written, as a string or a mapping.
  rejects({ peers: [{ ulid: '2001:db8::1', locators: ['2001:db8::1', '2001:db8:1::2', '2001:DB8:0::1'] }] }, 'peers[0].locators[2]');
  rejects({ peers: [{ ulid: '2001:db8::1', locators: [{ address: '2001:db8::1' }, { address: '2001:db8::1', priority: 1 }] }] }, 'peers[0].locators[1]');
  assert.throws(() => validateConfig({ peers: [{ ulid: '2001:db8::1', locators: ['2001:db8::1', '2001:db8::1'] }] }), /peers\[0\]\.locators\[1\]: invalid value "2001:db8::1": the same locator as peers\[0\]\.locators\[0\]/);
  // A unique local address is a peer's as much as a global one.
  assert.equal(validateConfig({ peers: [{ ulid: 'fd00::1', locators: ['fd00::1', '2001:db8::1'] }] }).peers[0]?.locators.length, 2);
});

test('a file\'s relative paths are relative to its directory, not to where the command runs (a service runs in /)', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'shim6.yaml');
  writeFileSync(f, 'hba: keys/host.hba\ncga: { key: keys/cga.pem }\ncacheFile: caches.json\ncontrolSocket: ../run/control.sock\n'
    + 'dnsUpdate: { server: "[::1]:53", zone: example., name: h.example., key: tsig.key }\n');
  const c = loadConfig(path.relative(process.cwd(), f));
  assert.equal(c.hba, path.join(dir, 'keys/host.hba'));
  assert.equal(c.cga?.key, path.join(dir, 'keys/cga.pem'));
  assert.equal(c.cacheFile, path.join(dir, 'caches.json'));
  assert.equal(c.controlSocket, path.join(path.dirname(dir), 'run/control.sock'));
  assert.equal(c.dnsUpdate?.key, path.join(dir, 'tsig.key'));
  writeFileSync(f, 'cacheFile: /var/lib/shim6/c.json\n');
  assert.equal(loadConfig(f).cacheFile, '/var/lib/shim6/c.json', 'an absolute path stays');
  // Anchored, a relative socket path can grow past what a Unix socket takes.
  writeFileSync(f, `controlSocket: ${'s'.repeat(100)}\n`);
  assert.throws(() => loadConfig(f), { code: 'ECONFIG', field: 'controlSocket' });
});

test('a key left out of an object that needs it is "missing", not "invalid value undefined"', () => {
  assert.throws(() => validateConfig({ dnsUpdate: { server: '[::1]:53', zone: 'example.', key: '/k' } }),
    { code: 'ECONFIG', field: 'dnsUpdate.name', message: 'dnsUpdate.name: missing: expected a DNS name' });
  assert.throws(() => validateConfig({ dnsUpdate: { server: '[::1]:53', zone: 'example.', name: 7, key: '/k' } }),
    { code: 'ECONFIG', message: 'dnsUpdate.name: invalid value 7: expected a DNS name' });
});

test('loadConfig reads a file; a missing file and bad syntax are ECONFIG', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'shim6.yaml');
  writeFileSync(f, 'timers: fast\nlog: debug\n');
  const c = loadConfig(f);
  assert.equal(c.timers.profile, 'fast');
  assert.equal(c.log.level, 'debug');
  assert.throws(() => loadConfig(path.join(dir, 'missing.yaml')), { code: 'ECONFIG', field: '--config' });
  writeFileSync(f, 'port: [1, 2\n');
  // One line that names the file, the line and the column (not the yaml package's five, with a caret).
  assert.throws(() => loadConfig(f), (e: UsageError) => e.code === 'ECONFIG' && !e.message.includes('\n')
    && e.message.startsWith(`${f}: not valid YAML/JSON: line 2, column 1: Flow sequence`));
  writeFileSync(f, 'tun: { mtu: 1400\n');
  assert.throws(() => loadConfig(f), { code: 'ECONFIG', message: `${f}: not valid YAML/JSON: line 2, column 1: Flow map in block collection must be sufficiently indented and end with a }` });
  writeFileSync(f, '{"tun": {\n');
  assert.throws(() => loadConfig(f), { code: 'ECONFIG', message: `${f}: not valid YAML/JSON: line 2, column 1: Expected property name or '}' in JSON` });
  writeFileSync(f, '{"peers": [1,,2]}');
  assert.throws(() => loadConfig(f), { code: 'ECONFIG', message: `${f}: not valid YAML/JSON: line 1, column 14: Unexpected token ',' in JSON` });
});

test('icmpDeliverAll: a boolean, off by default (RFC 5533 §8\'s option)', () => {
  assert.equal(defaultConfig().icmpDeliverAll, false);
  assert.equal(validateConfig({ icmpDeliverAll: true }).icmpDeliverAll, true);
  assert.throws(() => validateConfig({ icmpDeliverAll: 'yes' }), (e: UsageError) => e.code === 'ECONFIG' && /icmpDeliverAll/.test(e.message));
});

test('probeReplyLimit: the engine\'s defaults from the timers unless given; off, or partial buckets; bad values are ECONFIG', () => {
  assert.equal(defaultConfig().probeReplyLimit, undefined);
  assert.equal(validateConfig({ probeReplyLimit: 'off' }).probeReplyLimit, 'off');
  assert.deepEqual(validateConfig({ probeReplyLimit: { global: { rate: 50 } } }).probeReplyLimit, { global: { rate: 50 } });
  assert.throws(() => validateConfig({ probeReplyLimit: { perContext: { rate: 0 } } }), (e: UsageError) => e.code === 'ECONFIG' && /probeReplyLimit/.test(e.message));
  assert.throws(() => validateConfig({ probeReplyLimit: { perPrefix: {} } }), (e: UsageError) => e.code === 'ECONFIG' && /unknown key/.test(e.message));
});

test('replyLimit, verifyLimit and probeReplyLimit: the known peers\' reserve (knownPeers) defaults and is checked like the other buckets', () => {
  assert.deepEqual(defaultConfig().replyLimit, { perPrefix: { rate: 10, burst: 10 }, global: { rate: 200, burst: 200 }, knownPeers: { rate: 100, burst: 100 } });
  assert.deepEqual(validateConfig({ verifyLimit: { knownPeers: { burst: 40 } } }).verifyLimit, { perPrefix: { rate: 10, burst: 10 }, global: { rate: 100, burst: 100 }, knownPeers: { rate: 20, burst: 40 } });
  assert.deepEqual(validateConfig({ replyLimit: { global: { rate: 20 } } }).replyLimit, { perPrefix: { rate: 10, burst: 10 }, global: { rate: 20, burst: 200 }, knownPeers: { rate: 100, burst: 100 } });
  rejects({ replyLimit: { knownPeers: { rate: 0 } } }, 'replyLimit');
  rejects({ verifyLimit: { knownPeers: { burst: 2e6 } } }, 'verifyLimit');
  rejects({ replyLimit: { knownPeers: 5 } }, 'replyLimit');
  assert.deepEqual(validateConfig({ probeReplyLimit: { knownPeers: { rate: 1 } } }).probeReplyLimit, { knownPeers: { rate: 1 } });
  rejects({ probeReplyLimit: { knownPeers: { burst: 0.5 } } }, 'probeReplyLimit');
  assert.throws(() => validateConfig({ probeReplyLimit: { reserve: {} } }), (e: UsageError) => e.code === 'ECONFIG' && /unknown key \(perContext, global, knownPeers\)/.test(e.message));
});

test('cga: { key, sec } (or a path alone; sec defaults to 1); bad shapes name the key', () => {
  assert.deepEqual(validateConfig({ cga: { key: '/etc/shim6/cga.pem', sec: 0 } }).cga, { key: '/etc/shim6/cga.pem', sec: 0 });
  assert.deepEqual(validateConfig({ cga: '/k.pem' }).cga, { key: '/k.pem', sec: 1 });
  assert.equal(validateConfig({}).cga, undefined);
  rejects({ cga: { sec: 1 } }, 'cga.key');
  rejects({ cga: { key: '/k.pem', sec: 2 } }, 'cga.sec');
  rejects({ cga: { key: '/k.pem', pass: 'x' } }, 'cga.pass');
  rejects({ cga: 5 }, 'cga');
});

test('dnsUpdate: server, zone, name, key with defaults (minInterval 1 s, no AAAA, TTL 60); the name must be in the zone', () => {
  const c = validateConfig({ dnsUpdate: { server: '[2001:db8::53]:5353', zone: 'example.org', name: 'host.example.org.', key: '/etc/shim6/tsig.key' } }).dnsUpdate;
  assert.deepEqual(c, { server: '[2001:db8::53]:5353', zone: 'example.org.', name: 'host.example.org.', key: '/etc/shim6/tsig.key', keyName: undefined, minInterval: 1, aaaa: false, ttl: 60 });
  const base = { server: '192.0.2.53', zone: 'example.org.', name: 'h.example.org.', key: '/k' };
  rejects({ dnsUpdate: { ...base, name: 'h.example.net.' } }, 'dnsUpdate.name');
  rejects({ dnsUpdate: { ...base, server: '[::1]:99999' } }, 'dnsUpdate.server');
  rejects({ dnsUpdate: { ...base, minInterval: -1 } }, 'dnsUpdate.minInterval');
  rejects({ dnsUpdate: { ...base, aaaa: 'yes' } }, 'dnsUpdate.aaaa');
  rejects({ dnsUpdate: { ...base, key: undefined } }, 'dnsUpdate.key');
  rejects({ dnsUpdate: { ...base, tsig: 'x' } }, 'dnsUpdate.tsig');
});

test('discovery and peers[].mode: integrated by default, configured peers by default; other values are ECONFIG', () => {
  const d = validateConfig({ peers: [{ ulid: '2001:db8::1' }] });
  assert.equal(d.discovery, 'integrated');
  assert.equal(d.peers[0]?.mode, 'configured');
  const c = parseConfigText('discovery: independent\npeers:\n  - { ulid: "2001:db8::2", mode: off }\n  - { ulid: "2001:db8::3", mode: integrated }\n');
  assert.equal(c.discovery, 'independent');
  assert.deepEqual(c.peers.map((p) => p.mode), ['off', 'integrated']);
  assert.equal(validateConfig({ discovery: 'off' }).discovery, 'off');
  rejects({ discovery: 'yes' }, 'discovery');
  rejects({ discovery: true }, 'discovery');
  rejects({ peers: [{ ulid: '2001:db8::1', mode: 'dns' }] }, 'peers[0].mode');
});

test('dataPath and encapsulation: dataPath auto and encapsulation kernel (used on the kernel path only) by default; an explicit kernel encapsulation needs the kernel path; other values are ECONFIG', () => {
  const d = defaultConfig();
  assert.equal(d.dataPath, 'auto');
  assert.equal(d.encapsulation, 'kernel');
  assert.equal(validateConfig({ dataPath: 'kernel', encapsulation: 'tun' }).encapsulation, 'tun');
  const k = validateConfig({ dataPath: 'kernel', encapsulation: 'kernel' });
  assert.equal(k.dataPath, 'kernel');
  assert.equal(k.encapsulation, 'kernel');
  assert.equal(validateConfig({ dataPath: 'auto', encapsulation: 'kernel' }).encapsulation, 'kernel');
  assert.equal(validateConfig({ encapsulation: 'kernel' }).dataPath, 'auto');
  assert.throws(() => validateConfig({ dataPath: 'tun', encapsulation: 'kernel' }), (e: UsageError) => e.code === 'ECONFIG' && e.field === 'encapsulation' && /dataPath kernel or auto/.test(e.message));
  assert.throws(() => validateConfig({ dataPath: 'kernel', encapsulation: 'bpf' }), (e: UsageError) => e.code === 'ECONFIG' && e.field === 'encapsulation');
  assert.throws(() => validateConfig({ dataPath: 'fast' }), (e: UsageError) => e.code === 'ECONFIG' && e.field === 'dataPath');
});

test('a reload names every changed key it does not apply: all but peers, cacheFile and log.level, and a peer\'s mode', () => {
  const running = defaultConfig();
  assert.deepEqual(keysNeedingRestart(running, defaultConfig()), []);
  assert.deepEqual(keysNeedingRestart(running, { ...running, peers: [{ ulid: '2001:db8::1', locators: [] } as never], cacheFile: '/elsewhere.json' }), [], 'applied at once');
  for (const key of Object.keys(running)) {
    if (RELOADED_KEYS.has(key)) continue;
    const next = { ...running, [key]: { changed: key } };
    assert.deepEqual(keysNeedingRestart(running, next), [key === 'log' ? 'log.format' : key], key);
  }
  const changedLog = validateConfig({ log: { level: 'debug' }, dataPath: 'tun', maxContexts: 7 });
  assert.deepEqual(keysNeedingRestart(running, changedLog), ['dataPath', 'maxContexts'], 'the level applies at once');
  assert.deepEqual(keysNeedingRestart(running, validateConfig({ log: { level: 'debug', format: 'json' } })), ['log.format']);
  const withPeer = validateConfig({ peers: [{ ulid: '2001:db8::1' }] });
  assert.deepEqual(keysNeedingRestart(withPeer, validateConfig({ peers: [{ ulid: '2001:db8::1', mode: 'off' }] })), ['peers[].mode']);
});

test('values the daemon would refuse at start are refused in the file: a validator lifetime under 30 s, a peer-gone hold under 1 s, a managed resolv.conf naming a stub off port 53', () => {
  rejects({ timers: { validatorLifetime: 1000 } }, 'timers.validatorLifetime');
  assert.equal(timerValues(validateConfig({ timers: { validatorLifetime: 30_000 } })).validatorLifetime, 30_000);
  rejects({ timers: { peerGoneTimeout: 999 } }, 'timers.peerGoneTimeout');
  assert.equal(timerValues(validateConfig({ timers: { profile: 'fast', peerGoneTimeout: 5000 } })).peerGoneTimeout, 5000);
  assert.equal(timerValues(validateConfig({})).peerGoneTimeout, 60_000);
  rejects({ resolvConf: 'manage', listen: ['127.0.0.153:5353'] }, 'resolvConf');
  rejects({ resolvConf: 'manage', listen: [] }, 'resolvConf');
  assert.equal(validateConfig({ resolvConf: 'manage' }).resolvConf, 'manage');
});

test('as in the resolver\'s file: one listen or upstream address may stand alone, and udp takes auto', () => {
  const c = validateConfig({ listen: '[::1]:5353', upstreams: '2001:db8::53', udp: 'auto' });
  assert.deepEqual(c.listen, [{ address: '::1', port: 5353 }]);
  assert.deepEqual(c.upstreams, [{ address: '2001:db8::53', port: 53 }]);
  assert.equal(c.udp, 'auto');
  rejects({ udp: 'fast' }, 'udp');
  rejects({ listen: 5 }, 'listen');
});

test('recordType, and the resolver file\'s capability.rrType: a private-use type only (RFC 6895 §3.1), as the zone tools\' --rr-type', () => {
  assert.equal(validateConfig({ recordType: 65280 }).recordType, 65280);
  assert.equal(validateConfig({ recordType: 65534 }).recordType, 65534);
  for (const t of [1, 16, 28, 41, 65279, 65535]) {
    rejects({ recordType: t }, 'recordType');
    assert.throws(() => configFromObject({ capability: { rrType: t } }), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && e.field === 'capability.rrType', String(t));
  }
});

test('a controlSocket too long for a Unix socket is refused in the file (ECONFIG naming controlSocket, so --check-config says so), not at the start after the TUN and routes are up', () => {
  const long = `/run/${'s'.repeat(100)}/control.sock`; // 118 octets: over the 107 of a Unix socket path
  assert.throws(() => validateConfig({ controlSocket: long }), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && e.field === 'controlSocket'
    && /^controlSocket: invalid value "\/run\/s+…: too long for a Unix socket path \(with the temporary name \.ctl-XXXXXXXX beside it, at most 107 octets\)$/.test(e.message));
  // The temporary name beside it counts: a path of 102 octets fits, but its directory with the 13 of the temporary name does not.
  const edge = `/run/${'s'.repeat(90)}/c.sock`;
  assert.equal(Buffer.byteLength(edge), 102);
  assert.throws(() => validateConfig({ controlSocket: edge }), (e: unknown) => e instanceof UsageError && e.field === 'controlSocket');
  assert.equal(validateConfig({ controlSocket: '/run/shim6/control.sock' }).controlSocket, '/run/shim6/control.sock');
});

// The authdns fixture itself: Knot and BIND really start on loopback (v4 and v6),
// serve the zone text, accept a TSIG-signed update only with the right key, and
// leave nothing behind after stop().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns, randomTsigSecret, type AuthDnsKind } from '../helpers/authdns.ts';

const ZONE = `$ORIGIN adns.test.
$TTL 300
@ IN SOA ns.adns.test. hostmaster.adns.test. 1 3600 600 86400 300
@ IN NS ns
ns IN AAAA 2001:db8::53
host IN AAAA 2001:db8::10
`;

function kdig(args: string[]): string {
  const r = spawnSync('kdig', [...args, '+timeout=2', '+retry=0'], { encoding: 'utf8', timeout: 10_000 });
  return String(r.stdout);
}

function nsupdate(port: number, key: string, script: string): { status: number | null; out: string } {
  const r = spawnSync('nsupdate', ['-y', key], {
    input: `server 127.0.0.1 ${port}\nzone adns.test.\n${script}\nsend\n`,
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: r.status, out: String(r.stdout) + String(r.stderr) };
}

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  const daemon = kind === 'knot' ? 'knotd' : 'named';
  test(`authdns (${kind}) serves the zone on 127.0.0.1 and ::1, takes TSIG updates, cleans up`, async (t) => {
    if (!needs(t, { root: true, commands: [daemon, 'kdig', 'nsupdate'] })) return;
    const secret = randomTsigSecret();
    const dns = await startAuthDns({ server: kind, zones: [{ name: 'adns.test.', text: ZONE }], tsig: { name: 'k1.', secret }, allowUpdate: true });
    t.after(() => dns.stop());
    for (const addr of dns.addresses) {
      assert.match(kdig([`@${addr}`, '-p', String(dns.port), 'host.adns.test.', 'AAAA', '+short']), /^2001:db8::10$/m, `${kind} over ${addr}`);
    }
    // TCP too.
    assert.match(kdig(['@127.0.0.1', '-p', String(dns.port), '+tcp', 'host.adns.test.', 'AAAA', '+short']), /2001:db8::10/);

    const good = nsupdate(dns.port, `hmac-sha256:k1.:${secret}`, 'update add new.adns.test. 60 AAAA 2001:db8::99');
    assert.equal(good.status, 0, good.out);
    assert.match(kdig(['@127.0.0.1', '-p', String(dns.port), 'new.adns.test.', 'AAAA', '+short']), /2001:db8::99/);

    const bad = nsupdate(dns.port, `hmac-sha256:k1.:${randomTsigSecret()}`, 'update add evil.adns.test. 60 AAAA 2001:db8::66');
    assert.notEqual(bad.status, 0, 'a wrong key must be refused');
    assert.equal(kdig(['@127.0.0.1', '-p', String(dns.port), 'evil.adns.test.', 'AAAA', '+short']).trim(), '');

    await dns.stop();
    assert.equal(existsSync(dns.dir), false, 'temp dir removed');
    assert.equal(kdig(['@127.0.0.1', '-p', String(dns.port), 'host.adns.test.', 'AAAA', '+short']).trim(), '', 'server gone');
  });
}

test('authdns reports a zone the server refuses to load', async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  await assert.rejects(
    startAuthDns({ server: 'knot', zones: [{ name: 'broken.test.', text: 'this is not a zone\n' }] }),
    /authdns: knot refused a zone/,
  );
});

// The daemon's dnsUpdate (issue 18) over a real link: Knot and BIND run in the
// DNS namespace of a lab of the test's own (unique prefix), on an address of
// their own behind the veth from A; A's shim6 daemon publishes its locator set
// there with TSIG-signed RFC 2136 updates. The server goes away for a while —
// Knot paused (SIGSTOP), BIND cut off (its side of the veth down) — while A's
// addresses change twice; the daemon's status and log show the failures, and
// once the server is back the newest set is what DNS serves — and stays: the
// updates that queued meanwhile carry a prerequisite, so none lands over it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, recordLocators, startAuthDns, type AuthDnsKind } from '../helpers/authdns.ts';
import { tempDir, writeZone, zoneHeader } from '../zone/zonefile.ts';
import { waitFor } from '../helpers/wait.ts';
import { LAB_ADDR, LAB_IF, nsExec, type Lab } from '../../lab/topology.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { E2E_TIMEOUT_MS, freshLab, log, oneDaemon } from '../e2e/fixture.ts';

const Z = 'dyn.test.';
const NAME = 'a.dyn.test.';
/** The server's own address in the lab's DNS namespace, on the veth from A (A's side: 2001:db8:53::a/64). */
const SERVER = '2001:db8:53::54';
/** Addresses A gains while the server is away (Q's prefix, outside A's HBA set: A signs them with its CGA key). */
const T1 = '2001:db8:2::71';
const T2 = '2001:db8:2::72';

/** The locators of A's capability record as the server serves it now, asked from A over the veth. */
function published(lab: Lab): string[] {
  const line = nsExec(lab.a, ['kdig', `@${SERVER}`, NAME, 'TYPE65300', '+short', '+timeout=2', '+retry=0'], { check: false }).stdout.trim().split('\n')[0];
  return recordLocators(line).sort();
}

interface DnsStatus { dnsUpdate: { state: string; failures: number; prerequisiteFailures: number; lastError: { code: string; rcode: string | null } | null; published: string[] | null } }
const dnsStatus = async (lab: Lab): Promise<DnsStatus['dnsUpdate']> => (await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as DnsStatus).dnsUpdate;

for (const [kind, away] of [['knot', 'paused (SIGSTOP)'], ['bind', 'cut off (link down)']] as [AuthDnsKind, string][]) {
  test(`dnsUpdate over a veth to ${kind} in a namespace: the server ${away} while A's addresses change twice gets the newest set when it is back`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', ...(kind === 'bind' ? ['named'] : [])] })) return;
    const lab = await freshLab(t);
    nsExec(lab.dns, ['ip', '-6', 'addr', 'add', `${SERVER}/64`, 'dev', LAB_IF.dnsA, 'nodad']);
    const secret = randomTsigSecret();
    const dns = await startAuthDns({ server: kind, zones: [{ name: Z, text: zoneHeader(Z) }], tsig: { name: 'dyn-key.', secret }, allowUpdate: true, netns: { name: lab.dns, addresses: [SERVER] } });
    t.after(() => dns.stop());
    const key = writeZone(tempDir(t), 'dyn.key', `key "dyn-key." {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`);
    await oneDaemon(t, lab, 'a', { dnsUpdate: { server: `[${SERVER}]:53`, zone: Z, name: NAME, key, minInterval: 1, ttl: 5, aaaa: true } });
    await waitFor(() => published(lab).join() === [LAB_ADDR.aP, LAB_ADDR.aQ].sort().join(), 'A publishes its set at start');

    let back: () => void;
    if (kind === 'knot') {
      process.kill(dns.pid!, 'SIGSTOP');
      back = () => process.kill(dns.pid!, 'SIGCONT');
    } else {
      nsExec(lab.dns, ['ip', 'link', 'set', LAB_IF.dnsA, 'down']);
      back = () => { nsExec(lab.dns, ['ip', 'link', 'set', LAB_IF.dnsA, 'up']); };
    }
    let away_ = true;
    t.after(() => { if (away_) back(); });
    const goneAt = Date.now();
    nsExec(lab.a, ['ip', '-6', 'addr', 'add', `${T1}/64`, 'dev', LAB_IF.Q, 'nodad']);
    await waitFor(async () => (await dnsStatus(lab)).failures >= 1, 'the update fails while the server is away');
    nsExec(lab.a, ['ip', '-6', 'addr', 'add', `${T2}/64`, 'dev', LAB_IF.Q, 'nodad']);
    await waitFor(async () => (await dnsStatus(lab)).failures >= 2, 'and is retried, failing again');
    const down = await dnsStatus(lab);
    t.diagnostic(`while away: ${JSON.stringify(down)}`);
    assert.equal(down.state, 'failing');
    assert.ok(down.lastError !== null, 'the failure is in the status');
    assert.deepEqual([...down.published ?? []].sort(), [LAB_ADDR.aP, LAB_ADDR.aQ].sort(), 'DNS still has the last set that got through');
    assert.ok(log(lab, 'a').some((r) => r.msg === 'dns update failed' && Date.parse(r.ts) >= goneAt), 'the failure is logged');

    back();
    away_ = false;
    const backAt = Date.now();
    const newest = [LAB_ADDR.aP, LAB_ADDR.aQ, T1, T2].sort();
    await waitFor(() => published(lab).join() === newest.join(), 'the newest set once the server is back');
    t.diagnostic(`the newest set in DNS ${Date.now() - backAt} ms after the server came back (${Date.now() - goneAt} ms after it went away)`);
    const aaaa = nsExec(lab.a, ['kdig', `@${SERVER}`, NAME, 'AAAA', '+short', '+timeout=2', '+retry=0']).stdout.trim().split('\n').sort();
    assert.deepEqual(aaaa, newest, 'the AAAA RRset follows too');
    await waitFor(async () => (await dnsStatus(lab)).state === 'idle', 'the publisher settles');
    const up = await dnsStatus(lab);
    assert.equal(up.lastError, null);
    assert.deepEqual([...up.published ?? []].sort(), newest);
    // The updates that queued while the server was away carried a prerequisite: none of them lands later.
    t.diagnostic(`prerequisite failures (an update of ours had landed first): ${up.prerequisiteFailures}`);
    assert.deepEqual(published(lab), newest, 'the capability record stays the newest');
    assert.deepEqual(nsExec(lab.a, ['kdig', `@${SERVER}`, NAME, 'AAAA', '+short', '+timeout=2', '+retry=0']).stdout.trim().split('\n').sort(), newest, 'and so does the AAAA RRset');
  });
}

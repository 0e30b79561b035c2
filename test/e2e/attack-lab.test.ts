// The attack lab itself (issue 15): with `attacker: true` link P is a hub and the
// attacker is a host on P only — its own address on P's prefix, no way to Q or to
// the DNS namespace — that sees A↔B frames on P (so the on-path tests observe
// real traffic) while A and B still talk over P and Q; `labDown` removes the
// attacker's and the hub's namespaces too. Without the option (every other
// test) the lab has neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { needs } from '../helpers/prereq.ts';
import { Attacker } from '../helpers/attacker.ts';
import { LAB_ADDR, LAB_IF, listNamespaces, nsExec } from '../../lab/topology.ts';
import { labDown } from '../../lab/lab.ts';
import { ATTACK_PREREQ } from './attack-fixture.ts';
import { freshLab } from './fixture.ts';

function tcpReach(ns: string, addr: string): string {
  return nsExec(ns, [process.execPath, '-e',
    `const s=require('net').connect({host:'${addr}',port:9});setTimeout(()=>{console.log('timeout');process.exit()},2000);` +
    `s.on('connect',()=>{console.log('ok');process.exit()});s.on('error',e=>{console.log(e.code);process.exit()})`]).stdout.trim();
}

test('attacker lab: one interface on hub P, its own address, no way to Q or DNS; it sees A→B frames; A and B still talk; down removes it', { timeout: 60_000 }, async (t) => {
  if (!needs(t, ATTACK_PREREQ)) return;
  const lab = await freshLab(t, { attacker: true });
  for (const ns of [lab.a, lab.b, lab.dns, lab.x, lab.sw]) assert.ok(listNamespaces().includes(ns), ns);

  const links = nsExec(lab.x, ['ip', '-o', 'link', 'show']).stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim().replace(/@.*/, ''));
  assert.deepEqual(links.sort(), ['lo', LAB_IF.P].sort(), 'the attacker has one link: P');
  const globals = nsExec(lab.x, ['ip', '-6', '-o', 'addr', 'show', 'scope', 'global']).stdout;
  assert.match(globals, new RegExp(`${LAB_ADDR.xP}/64`));
  assert.equal(globals.trim().split('\n').length, 1, 'one global address');

  assert.equal(tcpReach(lab.x, LAB_ADDR.aP), 'ECONNREFUSED', 'the attacker reaches A on P');
  assert.equal(tcpReach(lab.x, LAB_ADDR.bP), 'ECONNREFUSED', 'the attacker reaches B on P');
  for (const far of [LAB_ADDR.aQ, LAB_ADDR.bQ, LAB_ADDR.dnsA]) assert.equal(tcpReach(lab.x, far), 'ENETUNREACH', `no way to ${far}`);
  assert.equal(tcpReach(lab.a, LAB_ADDR.bP), 'ECONNREFUSED', 'A and B still talk over P');
  assert.equal(tcpReach(lab.a, LAB_ADDR.bQ), 'ECONNREFUSED', 'and over Q');

  // The hub floods A's unicast to B to the attacker, which captures it.
  const x = Attacker.start(t, lab);
  await x.capture(LAB_ADDR.aP);
  const marker = randomBytes(8).toString('hex');
  nsExec(lab.a, [process.execPath, '-e', `const s=require('dgram').createSocket('udp6');s.send(Buffer.from('${marker}','hex'),9,'${LAB_ADDR.bP}',()=>s.close())`]);
  assert.equal((await x.waitCaptured({ src: LAB_ADDR.aP, dstIn: [LAB_ADDR.bP], marker })).count, 1, 'the attacker saw A→B on P');
  await x.stop();

  assert.equal(labDown(lab), true);
  for (const ns of [lab.x, lab.sw]) assert.ok(!listNamespaces().includes(ns), `${ns} removed`);
});

// The CLI's contract: --help everywhere, usage errors exit 2 with a message on stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shim6 } from '../helpers/cli.ts';
import { buildProgram } from '../../cli/main.ts';
import type { Command } from 'commander';

test('shim6 --help lists the program and exits 0', () => {
  const r = shim6(['--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: shim6/);
});

test('an unknown subcommand is a usage error (exit 2, stderr)', () => {
  const r = shim6(['no-such-command']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no-such-command|unknown command|too many arguments/);
});

test('every subcommand has a description and answers --help', () => {
  const all: Command[] = [];
  const walk = (c: Command): void => { for (const s of c.commands) { all.push(s); walk(s); } };
  walk(buildProgram());
  for (const c of all) {
    assert.ok(c.description().length > 0, `${c.name()} has no description`);
    const pathArgs: string[] = [];
    for (let p: Command | null = c; p && p.parent; p = p.parent) pathArgs.unshift(p.name());
    const r = shim6([...pathArgs, '--help']);
    assert.equal(r.status, 0, `${pathArgs.join(' ')} --help: ${r.stderr}`);
    assert.match(r.stdout, /Usage:/);
  }
});

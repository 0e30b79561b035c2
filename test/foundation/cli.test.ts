// The CLI's contract: --help everywhere, usage errors exit 2 with a message on stderr.
// Two real processes prove the binary and its exit codes; every subcommand's --help is then
// parsed in process by the same commander program (a process each took ~1 s, 23 s in all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shim6 } from '../helpers/cli.ts';
import { buildProgram } from '../../cli/main.ts';
import { CommanderError, type Command } from 'commander';

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

/** The commander program of `shim6`, every command writing into `out` / `err` instead of the process's streams. */
function capturedProgram(): { program: Command; all: Command[]; out: string[]; err: string[] } {
  const program = buildProgram();
  const out: string[] = [];
  const err: string[] = [];
  const all: Command[] = [];
  const walk = (c: Command): void => {
    c.configureOutput({ writeOut: (s) => { out.push(s); }, writeErr: (s) => { err.push(s); } });
    for (const s of c.commands) { all.push(s); walk(s); }
  };
  walk(program);
  return { program, all, out, err };
}

test('every subcommand has a description and answers --help (exit 0, usage on stdout)', async () => {
  const { all } = capturedProgram();
  assert.ok(all.length >= 10, `${all.length} subcommands`);
  for (const c of all) {
    assert.ok(c.description().length > 0, `${c.name()} has no description`);
    const pathArgs: string[] = [];
    for (let p: Command | null = c; p && p.parent; p = p.parent) pathArgs.unshift(p.name());
    // A fresh program per subcommand, as each process had: parsing leaves state in commander's objects.
    const { program, out, err } = capturedProgram();
    const thrown = await program.parseAsync([...pathArgs, '--help'], { from: 'user' }).then(() => undefined, (e: unknown) => e);
    // main() turns commander's exit code into the process's: 0 for help.
    assert.ok(thrown instanceof CommanderError, `${pathArgs.join(' ')} --help: ${String(thrown)}`);
    assert.equal(thrown.code, 'commander.helpDisplayed', `${pathArgs.join(' ')} --help: ${thrown.message} ${err.join('')}`);
    assert.equal(thrown.exitCode, 0);
    assert.match(out.join(''), new RegExp(`^Usage: shim6 ${pathArgs.join(' ')}\\b`), `${pathArgs.join(' ')} --help`);
    assert.equal(err.join(''), '');
  }
});

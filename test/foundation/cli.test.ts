// The CLI's contract: --help everywhere, usage errors exit 2 with a message on stderr.
// Two real processes prove the binary and its exit codes; every subcommand's --help is then
// parsed in process by the same commander program (a process each took ~1 s, 23 s in all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shim6 } from '../helpers/cli.ts';
import { buildProgram, run } from '../../cli/main.ts';
import { describeError } from '../../cli/errors.ts';
import { CommanderError, type Command } from 'commander';

test('shim6 --help lists the program and exits 0', () => {
  const r = shim6(['--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: shim6/);
});

test('an unknown subcommand, even with --help, is a usage error: one line on stderr, exit 2', () => {
  const r = shim6(['stauts', '--help']);
  assert.equal(r.status, 2, r.stdout);
  assert.equal(r.stderr, 'shim6: error EINVALID: unknown command \'stauts\'; did you mean status? (see `shim6 --help`)\n');
  assert.equal(r.stdout, '');
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

test('commander\'s parse errors are the CLI\'s one line, shim6: error CODE: message (exit 2), saying where the usage is', async () => {
  const unknownStatus = 'shim6: error EINVALID: unknown command \'stauts\'; did you mean status? (see `shim6 --help`)\n';
  const unknownRecord = 'shim6: error EINVALID: unknown command \'recrd\'; did you mean record? (see `shim6 zone --help`)\n';
  const cases: Array<[string[], string]> = [
    [['--bogus'], 'shim6: error EINVALID: unknown option \'--bogus\' (see `shim6 --help`)\n'],
    [['status', '--socket'], 'shim6: error EMISSING: option \'--socket <path>\' argument missing (see `shim6 status --help`)\n'],
    [['status', '--jsn'], 'shim6: error EINVALID: unknown option \'--jsn\'; did you mean --json? (see `shim6 status --help`)\n'],
    [['daemon', 'extra'], 'shim6: error EINVALID: too many arguments for \'daemon\': expected 0 arguments but got 1 (see `shim6 daemon --help`)\n'],
    [['decode'], 'shim6: error EMISSING: missing required argument \'hex\' (see `shim6 decode --help`)\n'],
    [['zone', 'record'], 'shim6: error EMISSING: required option \'--name <name>\' not specified (see `shim6 zone record --help`)\n'],
    // An unknown command is refused whether or not --help comes with it (commander showed the parent's help, exit 0).
    [['stauts'], unknownStatus],
    [['stauts', '--help'], unknownStatus],
    [['--help', 'stauts'], unknownStatus],
    [['help', 'stauts'], unknownStatus],
    [['zone', 'recrd', '--help'], unknownRecord],
    [['zone', 'help', 'recrd'], unknownRecord],
  ];
  for (const [args, line] of cases) {
    const { program, out, err } = capturedProgram();
    const written: string[] = [];
    assert.equal(await run(args, program, (s) => { written.push(s); }), 2, args.join(' '));
    assert.equal(written.join(''), line, args.join(' '));
    assert.deepEqual([out.join(''), err.join('')], ['', ''], `${args.join(' ')}: commander printed nothing of its own`);
  }
});

test('--help of a command that exists, `help COMMAND` and --version still exit 0', async () => {
  for (const args of [['--help'], ['status', '--help'], ['help', 'status'], ['zone', '--help'], ['zone', 'hba', 'verify', '--help'], ['--version']]) {
    const { program, out, err } = capturedProgram();
    const written: string[] = [];
    assert.equal(await run(args, program, (s) => { written.push(s); }), 0, `${args.join(' ')}: ${written.join('')}`);
    assert.equal(written.join('') + err.join(''), '', args.join(' '));
    assert.ok(out.join('').length > 0, args.join(' '));
  }
});

test('--help gives each default once: an option whose description names its default has no commander default beside it', () => {
  const { all } = capturedProgram();
  for (const c of all) {
    assert.doesNotMatch(c.helpInformation(), /\(default: \[\]\)/, c.name());
    for (const o of c.options) {
      if (/\bdefault\b/.test(o.description)) assert.equal(o.defaultValue, undefined, `${c.name()} ${o.flags}: "${o.description}" and (default: ${JSON.stringify(o.defaultValue)})`);
    }
  }
});

test('a Node system error is one line with its code once: node\'s `CODE: ` prefix of the message is not repeated (exit 1)', () => {
  const err = Object.assign(new Error('ENOENT: no such file or directory, open \'/x/y.json\''), { code: 'ENOENT', errno: -2, syscall: 'open' });
  assert.deepEqual(describeError(err), { line: 'shim6: error ENOENT: no such file or directory, open \'/x/y.json\'', exitCode: 1 });
  // A message that only mentions a code elsewhere keeps it; an error without a code is EINTERNAL.
  assert.equal(describeError(Object.assign(new Error('bind EADDRINUSE ::1:53'), { code: 'EADDRINUSE' })).line, 'shim6: error EADDRINUSE: bind EADDRINUSE ::1:53');
  assert.equal(describeError(new TypeError('x is not a function')).line, 'shim6: error EINTERNAL: x is not a function');
});

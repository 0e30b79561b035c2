// Lint: typescript-eslint's recommended rules everywhere, plus the sans-I/O rule
// for the protocol core (STYLE.md): under shim/wire/, shim/engine/ and shim/cache/
// no sockets, no files, no processes, no timers and no clocks. Time comes in as
// `now`; bytes come in and go out as values; only drivers do I/O.
import tseslint from 'typescript-eslint';

const ioModules = ['dgram', 'net', 'fs', 'fs/promises', 'child_process', 'http', 'https', 'http2', 'tls', 'dns', 'dns/promises', 'timers', 'timers/promises', 'worker_threads', 'cluster', 'perf_hooks', 'readline', 'os'];
const banned = ioModules.flatMap((m) => [m, `node:${m}`]);

export const sansIoFiles = ['shim/wire/**/*.ts', 'shim/engine/**/*.ts', 'shim/cache/**/*.ts'];

export default tseslint.config(
  { ignores: ['node_modules/**', '**/build/**', 'coverage/**', 'dist/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: sansIoFiles,
    rules: {
      'no-restricted-imports': ['error', { paths: banned.map((name) => ({ name, message: 'The protocol core is sans-I/O: only drivers touch sockets, files, timers and clocks.' })) }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'fetch', 'performance', 'process', 'require'].map((name) => ({ name, message: `${name} is I/O or a clock; the protocol core takes time and bytes as arguments.` })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Take `now` as an argument.' },
        { object: 'performance', property: 'now', message: 'Take `now` as an argument.' },
        { object: 'process', property: 'hrtime', message: 'Take `now` as an argument.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'new Date() reads the clock; take `now` as an argument.' },
        { selector: "ImportExpression", message: 'No dynamic imports in the protocol core.' },
      ],
    },
  },
);

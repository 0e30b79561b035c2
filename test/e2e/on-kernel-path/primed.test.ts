// The failover tests of ../primed.test.ts again, with every context of the lab's
// daemons on the kernel path (config dataPath: kernel; there they run on the
// TUN path, the default): both paths pass the same tests.
process.env.SHIM6_TEST_DATA_PATH = 'kernel';
await import('../primed.test.ts');

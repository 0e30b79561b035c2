// The failover tests of ../primed.test.ts again, with every context of the lab's
// daemons on the kernel path (config dataPath: kernel; there they run on the
// TUN path, the default): both paths pass the same tests. Not restart.test.ts:
// it checks the TUN path's way back (B's TCP gets nothing while B's daemon is
// down); on the kernel path the stream flows on natively.
process.env.SHIM6_TEST_DATA_PATH = 'kernel';
await import('../primed.test.ts');

// ../teardown.test.ts again with the lab's daemons on the kernel path (config dataPath: kernel):
// B's ULID is not routed into A's TUN while its context is on the kernel path, and a stop
// leaves neither the kernel path's nftables table nor the tc programs behind.
process.env.SHIM6_TEST_DATA_PATH = 'kernel';
await import('../teardown.test.ts');

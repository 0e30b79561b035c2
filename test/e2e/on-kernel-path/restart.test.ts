// ../restart.test.ts again with the lab's daemons on the kernel path (config dataPath: kernel):
// there the stream goes on natively while B's daemon is down, and nothing of A's carries the
// context tag on the ULID pair; the context comes back because A's driver sends B a Keepalive
// with B's tag every 30 readings, which the restarted B answers with R1bis (A recovers by I2bis).
process.env.SHIM6_TEST_DATA_PATH = 'kernel';
await import('../restart.test.ts');

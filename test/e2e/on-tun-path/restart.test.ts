// ../restart.test.ts again with the lab's daemons on the TUN path (config dataPath: tun; the default
// is auto, the kernel path where the host has it): both paths pass the same tests.
process.env.SHIM6_TEST_DATA_PATH = 'tun';
await import('../restart.test.ts');

import { defineConfig } from 'vitest/config';

// Integration tests bind ports, create network namespaces and boot QEMU VMs on a
// 2-core machine: running files in parallel would make them fight for CPU and
// turn timing-sensitive boots flaky, so files run one at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});

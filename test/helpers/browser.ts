/**
 * Debian's Chromium, headless, driven by playwright-core (no browser download). With a
 * namespace it runs inside it (through a tiny `ip netns exec` wrapper, the pipe to
 * playwright is inherited), so it reaches a server that lives in a test's lab.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

// The flags of a machine without network: no background fetches, no sandbox as root.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(netns?: string): Promise<Browser> {
  let executablePath = CHROMIUM;
  if (netns) {
    const dir = mkdtempSync(join(tmpdir(), 'pxe-chromium-'));
    executablePath = join(dir, 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec '${netns}' ${CHROMIUM} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  return chromium.launch({ executablePath, args: ARGS, timeout: 60_000 });
}

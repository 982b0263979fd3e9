/**
 * The sync companion of contrib/systemd/pxe.service: pxe-sync.service (oneshot, no
 * capability, the same user and writable paths as the server) started daily by
 * pxe-sync.timer. systemd-analyze verify must accept both, and see mistakes in a
 * broken copy (the check is not vacuous).
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/netns.js';

const DIR = resolve(__dirname, '../../contrib/systemd');
const tmp = mkdtempSync(join(tmpdir(), `pxe-units-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const verify = (...files: string[]) => run(['systemd-analyze', 'verify', '--man=no', ...files], 60_000);

describe('contrib/systemd pxe-sync.service + pxe-sync.timer', () => {
  it('systemd-analyze verify accepts them, and each unit says what it runs', async () => {
    const service = join(DIR, 'pxe-sync.service');
    const timer = join(DIR, 'pxe-sync.timer');
    const r = await verify(service, timer);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => /pxe-sync/.test(l))).toEqual([]);

    const s = readFileSync(service, 'utf8');
    expect(s).toMatch(/^Type=oneshot$/m);
    expect(s).toMatch(/^ExecStart=\S+ \S+\/bin\/pxe\.js sync --config \/etc\/pxe\/pxe\.yaml --no-progress$/m);
    // the same user and writable paths as the server; no capability at all
    const server = readFileSync(join(DIR, 'pxe.service'), 'utf8');
    for (const key of ['User', 'Group', 'ReadWritePaths', 'WorkingDirectory']) {
      const line = new RegExp(`^${key}=.*$`, 'm');
      expect(s.match(line)?.[0], key).toBe(server.match(line)?.[0]);
    }
    expect(s).toMatch(/^CapabilityBoundingSet=$/m);
    expect(s).not.toMatch(/AmbientCapabilities/);

    const t = readFileSync(timer, 'utf8');
    const unit = /^Unit=(\S+)$/m.exec(t)?.[1];
    expect(unit).toBe('pxe-sync.service');
    expect(existsSync(join(DIR, unit!))).toBe(true);
    expect(t).toMatch(/^OnCalendar=daily$/m);
    expect(t).toMatch(/^Persistent=true$/m);
    expect(t).toMatch(/^WantedBy=timers\.target$/m);
  });

  it('a broken copy of either is rejected (negative control)', async () => {
    const service = join(tmp, 'pxe-sync.service');
    const timer = join(tmp, 'pxe-sync.timer');
    copyFileSync(join(DIR, 'pxe-sync.service'), service);
    writeFileSync(timer, readFileSync(join(DIR, 'pxe-sync.timer'), 'utf8').replace('OnCalendar=daily', 'OnCalendar=dayly'));
    const r = await verify(timer, service);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/pxe-sync\.timer:\d+: Failed to parse calendar specification/);

    writeFileSync(service, readFileSync(join(DIR, 'pxe-sync.service'), 'utf8').replace('Type=oneshot', 'Type=oneshots'));
    const s = await verify(service);
    expect(s.stderr).toMatch(/pxe-sync\.service:\d+: Failed to parse service type/);
  });
});

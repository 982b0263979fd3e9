/**
 * The web dashboard of a real `pxe serve` (loopback, high ports) in headless Chromium
 * (Debian's, driven by playwright-core): a machine's row appears and its timeline fills
 * while the page is open (DHCP from the probe client, TFTP from tftp-hpa); the sync
 * action installs an entry from the local mirror; actions without the admin token are
 * refused and logged; no host secret reaches a page. Screenshots of every view are kept
 * in test-artifacts/ (the README's comes from there).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { content, makeSite, makeTestKey, publishAlpine, startLocalMirror, type LocalMirror, type TestSite } from '../helpers/mirror.js';
import { run, waitFor } from '../helpers/netns.js';
import { tftpHpaGet } from '../helpers/tftp.js';
import { encode, makeRequest } from '../../src/dhcp/codec.js';

const CLI = resolve('dist/cli.js');
const ARTIFACTS = resolve('test-artifacts');
const TOKEN = 'dashboard-test-token-0123456789';
const MAC = '52:54:00:d4:5b:01';
const SECRET_HASH = '$6$saltsalt$SECRETHASHSHOULDNEVERSHOW';
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaSECRETKEYSHOULDNEVERSHOW dash@test';
const base = 20_000 + (process.pid % 5000) * 2;
const PORTS = { http: base + 1, tftp: base + 2, dhcp: 30_000 + (process.pid % 5000) * 2, pxe: 30_001 + (process.pid % 5000) * 2 };

describe('dashboard in headless Chromium against a running pxe serve', () => {
  let dir: string;
  let mirror: LocalMirror;
  let site: TestSite;
  let server: ChildProcess;
  let browser: Browser;
  let log = '';
  const url = (p: string): string => `http://127.0.0.1:${PORTS.http}${p}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pxe-dashboard-'));
    mkdirSync(ARTIFACTS, { recursive: true });
    mirror = await startLocalMirror();
    publishAlpine(mirror, { kernel: content('dash-kernel', 256 * 1024), initrd: content('dash-initrd', 512 * 1024) });
    site = makeSite(dir, mirror, { debian: await makeTestKey(), opensuse: await makeTestKey() });
    const root = join(site.root, 'tftproot');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'pxelinux.0'), content('pxelinux', 42 * 1024));
    writeFileSync(join(root, 'vmlinuz'), content('vmlinuz', 1024 * 1024));
    writeFileSync(
      join(site.root, 'hosts.yaml'),
      `hosts:\n  "${MAC}":\n    hostname: web01\n    entry: alpine\n    install_once: true\n    password_hash: "${SECRET_HASH}"\n    ssh_key: "${SSH_KEY}"\n`,
    );
    appendFileSync(join(site.root, 'pxe.yaml'), `hostsFile: ./hosts.yaml\ndashboard:\n  adminToken: ${TOKEN}\n`);
    server = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--config',
        join(site.root, 'pxe.yaml'),
        '--listen',
        '127.0.0.1',
        '--http-port',
        String(PORTS.http),
        '--tftp-port',
        String(PORTS.tftp),
        '--dhcp-port',
        String(PORTS.dhcp),
        '--pxe-port',
        String(PORTS.pxe),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    server.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    server.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(async () => (await fetch(url('/healthz')).catch(() => null))?.ok, 40_000, `pxe serve on ${PORTS.http} (${log})`, 250);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1500));
      server.kill('SIGKILL');
    }
    await mirror?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const shot = async (page: Page, name: string): Promise<void> => {
    const file = join(ARTIFACTS, `dashboard-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect(statSync(file).size).toBeGreaterThan(5_000);
  };

  it('shows a machine appear and its timeline fill to "kernel loaded" while the page stays open', async () => {
    const page = await browser.newPage();
    await page.goto(url('/'));
    expect(await page.textContent('#machines')).toContain('no machine has asked yet');
    // DHCP: the ProxyDHCPREQUEST a PXE ROM sends to port 4011 (PXE 2.1 §2.2.4), unicast, so
    // the ACK comes back to the probe on loopback; the row appears without a reload
    const req = encode(
      makeRequest({
        xid: 0x1234,
        ciaddr: '127.0.0.1',
        chaddr: Buffer.from(MAC.replace(/:/g, ''), 'hex'),
        options: new Map([
          [53, Buffer.from([3])],
          [60, Buffer.from('PXEClient:Arch:00000:UNDI:002001')],
          [93, Buffer.from([0, 0])],
          [94, Buffer.from([1, 2, 1])],
          [97, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 7)])],
        ]),
      }),
    );
    if (!req.ok) throw new Error(req.detail);
    const probe = await run(
      [
        process.execPath,
        'dist-bench/bench/fuzz/probe.js',
        '--port',
        '0',
        '--bind',
        '127.0.0.1',
        '--to',
        `127.0.0.1:${PORTS.pxe}`,
        '--hex',
        req.data.toString('hex'),
        '--expect',
        '1',
        '--wait-ms',
        '5000',
      ],
      15_000,
    );
    expect(probe.stdout, `${probe.stderr}\n${log}`).toContain('"hex"');
    const row = page.locator(`#m-${MAC.replace(/:/g, '')}`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.locator('.stage').textContent()).toContain('DHCP answered');
    expect(await row.textContent()).toContain('BIOS');
    // TFTP with tftp-hpa: the per-host config names the MAC, then the boot file and a kernel
    const out = join(dir, 'got');
    await tftpHpaGet(PORTS.tftp, `pxelinux.cfg/01-${MAC.replace(/:/g, '-')}`, out);
    await tftpHpaGet(PORTS.tftp, 'pxelinux.0', out);
    await tftpHpaGet(PORTS.tftp, 'vmlinuz', out);
    await waitFor(
      async () => (await row.locator('.stage').textContent())?.includes('kernel loaded'),
      10_000,
      `kernel loaded on the page (${await row.textContent()})`,
    );
    await row.locator('summary').click();
    const steps = await row.locator('ol.tl li').allTextContents();
    expect(steps.join('\n')).toMatch(/TFTP pxelinux\.0/);
    expect(steps.join('\n')).toMatch(/TFTP vmlinuz 1\.0 MiB/);
    expect(await row.textContent()).toContain('alpine');
    expect(await row.textContent()).toContain('install pending');
    await shot(page, 'machines');
    await page.close();
  });

  it('refuses actions without the admin token (401, logged), even from loopback', async () => {
    const page = await browser.newPage();
    await page.goto(url('/catalog'));
    const csrf = await page.locator('input[name=csrf]').first().inputValue();
    const status = await page.evaluate(
      async (c) =>
        (
          await fetch('/dashboard/actions/sync/alpine', {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: `csrf=${c}`,
          })
        ).status,
      csrf,
    );
    expect(status).toBe(401);
    const bad = await fetch(url('/dashboard/actions/hosts/' + MAC + '/reinstall'), {
      method: 'POST',
      headers: { authorization: 'Bearer wrong-token-0123456789' },
    });
    expect(bad.status).toBe(401);
    await waitFor(() => log.includes('dashboard action refused'), 5_000, 'the refusal in the log');
    expect(existsSync(join(site.root, 'tftproot', 'images', 'alpine'))).toBe(false);
    await page.close();
  });

  it("signs in and syncs an entry from the page: the local mirror's files are installed and the row says synced", async () => {
    const page = await browser.newPage();
    await page.goto(url('/hosts'));
    const html = await page.content();
    expect(html).not.toContain('SECRETHASH');
    expect(html).not.toContain('SECRETKEY');
    expect(await page.textContent(`tr[data-mac="${MAC}"]`)).toContain('web01');
    await page.fill('input[name=token]', TOKEN);
    await Promise.all([page.waitForURL(url('/hosts')), page.click('form[action="/dashboard/login"] button')]);
    await shot(page, 'hosts');
    await page.goto(url('/catalog'));
    await page.locator('tr[data-entry=alpine] button').click();
    // progress arrives on the open page (server-sent events), then the page reloads itself
    await page.locator('#synclog', { hasText: 'alpine: done' }).waitFor({ timeout: 30_000 });
    await page.locator('tr[data-entry=alpine] .state', { hasText: /^synced/ }).waitFor({ timeout: 10_000 });
    const kernel = join(site.root, 'tftproot', 'images', 'alpine', '3.20', 'x86_64', 'vmlinuz-lts');
    expect(readFileSync(kernel).equals(content('dash-kernel', 256 * 1024))).toBe(true);
    await shot(page, 'catalog');
    await page.goto(url('/server'));
    expect(await page.textContent('main')).toContain('proxyDHCP');
    await page.locator('#v-rate-dhcp-replies-per-s').waitFor();
    await shot(page, 'server');
    for (const p of ['/', '/catalog', '/hosts', '/server']) {
      const body = await (await fetch(url(p))).text();
      expect(body, p).not.toMatch(/SECRETHASH|SECRETKEY/);
      expect(body, p).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)[a-z]/i);
    }
    await page.close();
  });

  it('host actions from the page do what the CLI host commands do: local boot, reinstall, remove', async () => {
    const page = await browser.newPage();
    await page.goto(url('/hosts'));
    await page.fill('input[name=token]', TOKEN);
    await Promise.all([page.waitForURL(url('/hosts')), page.click('form[action="/dashboard/login"] button')]);
    const row = page.locator(`tr[data-mac="${MAC}"]`);
    const act = async (label: string): Promise<void> => {
      await Promise.all([page.waitForURL(url('/hosts')), row.locator('button', { hasText: label }).click()]);
    };
    await act('local boot');
    expect(await row.locator('.install').textContent()).toBe('installed (boots locally)');
    expect(JSON.parse(readFileSync(join(site.root, 'state', 'installed.json'), 'utf8'))).toHaveProperty([MAC]);
    await act('reinstall');
    expect(await row.locator('.install').textContent()).toBe('install pending');
    await act('remove');
    expect(readFileSync(join(site.root, 'hosts.yaml'), 'utf8')).not.toContain(MAC);
    // the running server reloads the hosts file by itself (its watcher): the row goes away
    await waitFor(
      async () => {
        await page.reload();
        return (await row.count()) === 0;
      },
      15_000,
      'the removed host to leave the page',
    );
    await page.close();
  });
});

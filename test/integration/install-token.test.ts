/**
 * Answer files only for the machine being installed, only while it is (issue 17):
 * a real `pxe serve` in a network namespace, a host that follows its own boot chain
 * (tftp-hpa fetches pxelinux.cfg/01-<mac>, curl fetches the URL in its APPEND line)
 * and a second machine on the same LAN that knows only the MAC (curl from another
 * source address). The second machine gets 403 in every MAC spelling and with any
 * guessed token, and cannot end the install; fetching the answers marks nothing; the
 * installer's done callback (the preseed's late_command wget, made here by curl)
 * turns the host's config into local boot and ends the token.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab } from '../helpers/netns.js';

const lab = new NetnsLab('token');
let srv = '';
let cli = '';
let dir = '';
let server: ServeChild | undefined;

const MAC = '52:54:00:7a:0b:c1';
const SLUG = MAC.replace(/:/g, '-');
const HASH = '$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example';
const HOST_IP = '10.79.0.2';
const OTHER_IP = '10.79.0.3';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-token-${process.pid}-`));
  // the shipped debian entry, "synced": its image directory exists
  const img = join(dir, 'tftproot', 'images', 'debian', '12', 'x86_64');
  mkdirSync(img, { recursive: true });
  writeFileSync(join(img, 'linux'), 'kernel');
  writeFileSync(join(img, 'initrd.gz'), 'initrd');
  writeFileSync(
    join(dir, 'hosts.yaml'),
    [
      'hosts:',
      `  "${MAC}":`,
      '    hostname: web1',
      '    entry: debian',
      '    version: "12"',
      '    install_once: true',
      `    password_hash: "${HASH}"`,
      `    ssh_keys: ["${KEY}"]`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'pxe.yaml'), ['tftp: { root: ./tftproot }', 'hostsFile: ./hosts.yaml', 'stateDir: ./state', ''].join('\n'));
  srv = await lab.netns('srv');
  cli = await lab.netns('cli');
  await lab.veth(srv, 's0', '10.79.0.1/24', cli, 'c0', `${HOST_IP}/24`);
  await lab.exec(cli, ['ip', 'addr', 'add', `${OTHER_IP}/24`, 'dev', 'c0']);
  server = new ServeChild({
    netns: srv,
    cwd: dir,
    args: ['--config', join(dir, 'pxe.yaml'), '--server-address', '10.79.0.1', '--tftp-port', '69', '--http-port', '8080', '--no-dhcp'],
  });
  await server.ready();
});

afterAll(async () => {
  await server?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The host's boot step: its per-host pxelinux config over TFTP (tftp-hpa, from HOST_IP). */
async function hostConfig(): Promise<string> {
  const out = join(dir, `cfg-${Date.now()}`);
  const r = await lab.exec(cli, ['tftp', '-m', 'binary', '10.79.0.1', '69', '-c', 'get', `pxelinux.cfg/01-${SLUG}`, out], 15_000);
  expect(r.code, r.stderr).toBe(0);
  return readFileSync(out, 'utf8');
}

/** curl from `from`; returns status and body. */
async function http(from: string, url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const r = await lab.exec(cli, ['curl', '-s', '--max-time', '5', '--interface', from, '-X', method, '-w', '\n%{http_code}', url], 10_000);
  expect(r.code, r.stderr).toBe(0);
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

const installed = () => {
  const f = join(dir, 'state', 'installed.json');
  return existsSync(f) && MAC in (JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>);
};

describe('install token', () => {
  let answersUrl = '';
  let token = '';

  it('the host boot config carries a per-host random token in the answer-file URL', async () => {
    const cfg = await hostConfig();
    const m = new RegExp(`url=(http://10\\.79\\.0\\.1:8080/unattended/${SLUG}/([0-9a-f]{32})/preseed\\.cfg) `).exec(cfg);
    expect(m, cfg).not.toBeNull();
    answersUrl = m![1]!;
    token = m![2]!;
    // stored in the state directory, not world-readable
    const stored = JSON.parse(readFileSync(join(dir, 'state', 'install-tokens.json'), 'utf8')) as Record<string, { token: string }>;
    expect(stored[MAC]!.token).toBe(token);
    // the same live token on the next boot
    expect(await hostConfig()).toContain(answersUrl);
  });

  it('a second machine that knows only the MAC gets 403 in every spelling, with no token or a guessed one, and cannot end the install', async () => {
    const spellings = [
      MAC,
      MAC.toUpperCase(),
      SLUG,
      SLUG.toUpperCase(),
      MAC.replace(/:/g, ''),
      MAC.replace(/:/g, '').toUpperCase(),
      '52:54:00:7A:0b:C1',
    ];
    const guessed = token.replace(/./g, (c) => (c === 'a' ? 'b' : 'a'));
    const before = server!.lines.length;
    for (const mac of spellings) {
      for (const path of [
        `${mac}/preseed.cfg`,
        `${mac}/no-token/preseed.cfg`,
        `${mac}/${guessed}/preseed.cfg`,
        `${mac}/${token.toUpperCase()}x/preseed.cfg`,
        `${mac}/${guessed}/kickstart.ks`,
      ]) {
        const r = await http(OTHER_IP, `http://10.79.0.1:8080/unattended/${path}`);
        expect(r.status, path).toBe(403);
        expect(r.body, path).not.toContain(HASH);
        expect(r.body, path).not.toContain('ssh-ed25519');
      }
      for (const method of ['GET', 'POST']) {
        for (const t of ['no-token', guessed]) {
          const r = await http(OTHER_IP, `http://10.79.0.1:8080/unattended/${mac}/${t}/done`, method);
          expect(r.status, `${method} ${mac}/${t}/done`).toBe(403);
        }
      }
    }
    expect(installed()).toBe(false);
    // every refusal is logged, at warn, with its reason; the token never appears in a log line
    const refused = server!.lines
      .slice(before)
      .filter((l) => l.msg === 'http request refused' && l.status === 403 && String(l.url).startsWith('/unattended/'));
    expect(refused.length).toBe(spellings.length * 9);
    expect(refused.every((l) => l.level === 40 && typeof l.reason === 'string')).toBe(true);
    expect(refused.some((l) => /wrong install token/.test(String(l.reason)))).toBe(true);
    expect(server!.stdout).not.toContain(token);
    // the host still installs: its config is unchanged
    expect(await hostConfig()).toContain(answersUrl);
  });

  it('the host following its chain gets its answers; fetching them marks nothing', async () => {
    const r = await http(HOST_IP, answersUrl);
    expect(r.status).toBe(200);
    expect(r.body).toContain(`d-i passwd/user-password-crypted password ${HASH}`);
    expect(r.body).toContain(KEY);
    expect(r.body).toContain(`wget -q -O /dev/null 'http://10.79.0.1:8080/unattended/${SLUG}/${token}/done' || true`);
    // any MAC spelling works with the right token
    expect((await http(HOST_IP, answersUrl.replace(SLUG, MAC.toUpperCase()))).status).toBe(200);
    expect(installed()).toBe(false);
    expect(await hostConfig()).toMatch(/^DEFAULT install$/m);
  });

  it('after the done callback the host boots locally and the token is refused', async () => {
    const done = await http(HOST_IP, answersUrl.replace(/preseed\.cfg$/, 'done'));
    expect(done.status, done.body).toBe(200);
    expect(installed()).toBe(true);
    const cfg = await hostConfig();
    expect(cfg).toMatch(/DEFAULT local\n[\s\S]*LOCALBOOT 0/);
    expect(cfg).not.toContain('/unattended/');
    const again = await http(HOST_IP, answersUrl);
    expect(again.status).toBe(403);
    expect(again.body).not.toContain(HASH);
    expect((await http(HOST_IP, answersUrl.replace(/preseed\.cfg$/, 'done'), 'POST')).status).toBe(403);
    expect(server!.lines.some((l) => l.msg?.startsWith('install finished') && l.mac === MAC)).toBe(true);
  });
});

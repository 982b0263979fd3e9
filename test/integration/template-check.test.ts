/**
 * Templates are checked like configuration (issue 17): a real `pxe serve` refuses to
 * start with a template file that does not compile or a catalog string that does not
 * render, naming file:line; on SIGHUP either is refused and the running menu is still
 * served over TFTP (tftp-hpa), HTTP /files/ and /boot.ipxe (curl); a fixed template is
 * read and served after the next SIGHUP. Runs in a network namespace.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab } from '../helpers/netns.js';

const lab = new NetnsLab('tplchk');
let ns = '';
let dir = '';
let server: ServeChild | undefined;

const CATALOG = `entries:
  - id: local
    label: Boot from local disk
    group: Local
    order: 0
    default: true
    boot: { method: localboot }
    trust: unverified
  - id: tiny
    label: Tiny Linux
    group: Linux
    order: 10
    mirror: https://example.org/tiny
    architectures: [x86_64]
    versions:
      - { version: "1" }
    boot:
      method: linux
      kernel: v{{ version }}/vmlinuz
      initrd: v{{ version }}/initrd
    checksum: { kind: none }
    trust: unverified
    append: "console=ttyS0 tiny.version={{ version }}"
`;
// line 23 of CATALOG is the append line
const BROKEN_APPEND = CATALOG.replace('tiny.version={{ version }}', 'tiny.version={{ version ');

function writeSite(): void {
  mkdirSync(join(dir, 'tftproot', 'images', 'tiny', '1', 'x86_64'), { recursive: true });
  writeFileSync(join(dir, 'tftproot', 'images', 'tiny', '1', 'x86_64', 'vmlinuz'), 'k');
  writeFileSync(join(dir, 'tftproot', 'images', 'tiny', '1', 'x86_64', 'initrd'), 'i');
  mkdirSync(join(dir, 'distros'), { recursive: true });
  writeFileSync(join(dir, 'distros', 'tiny.yaml'), CATALOG);
  cpSync(join(REPO_ROOT, 'templates'), join(dir, 'templates'), { recursive: true });
  writeFileSync(
    join(dir, 'pxe.yaml'),
    ['tftp: { root: ./tftproot }', 'catalogDir: ./distros', 'templatesDir: ./templates', 'stateDir: ./state', ''].join('\n'),
  );
}

const menuTemplate = () => join(dir, 'templates', 'pxelinux-menu.njk');
const original = () => readFileSync(join(REPO_ROOT, 'templates', 'pxelinux-menu.njk'), 'utf8');

function serve(): ServeChild {
  return new ServeChild({
    netns: ns,
    cwd: dir,
    args: [
      '--config',
      join(dir, 'pxe.yaml'),
      '--listen',
      '127.0.0.1',
      '--server-address',
      '127.0.0.1',
      '--tftp-port',
      '69',
      '--http-port',
      '8080',
      '--no-dhcp',
    ],
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-tplchk-${process.pid}-`));
  writeSite();
  ns = await lab.netns('srv');
});

afterAll(async () => {
  await server?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts with `file` replaced by `text` (restored afterwards); returns stderr of the refused start. */
async function refusedStart(file: string, text: string): Promise<string> {
  const good = readFileSync(file, 'utf8');
  writeFileSync(file, text);
  const s = serve();
  try {
    expect(await s.waitExit(60_000)).toBe(true);
  } finally {
    writeFileSync(file, good);
  }
  expect(await s.waitExit(60_000)).toBe(true);
  expect(s.exitCode).not.toBe(0);
  expect(s.lines.some((l) => l.msg === 'pxe serving')).toBe(false);
  return s.stderr;
}

/** The menu over TFTP, HTTP /files/ and /boot.ipxe. */
async function menus(): Promise<{ tftp: string; http: string; ipxe: string }> {
  const out = join(dir, `menu-${Date.now()}`);
  const t = await lab.exec(ns, ['tftp', '-m', 'binary', '127.0.0.1', '69', '-c', 'get', 'pxelinux.cfg/default', out], 15_000);
  expect(t.code, t.stderr).toBe(0);
  const get = async (path: string) => {
    const r = await lab.exec(ns, ['curl', '-s', '--max-time', '5', '-w', '\n%{http_code}', `http://127.0.0.1:8080${path}`], 10_000);
    const cut = r.stdout.lastIndexOf('\n');
    expect(r.stdout.slice(cut + 1), `${path}: ${r.stdout}`).toBe('200');
    return r.stdout.slice(0, cut);
  };
  return { tftp: readFileSync(out, 'utf8'), http: await get('/files/pxelinux.cfg/default'), ipxe: await get('/boot.ipxe') };
}

async function sighup(s: ServeChild): Promise<{ ok: boolean; line: string }> {
  const from = s.lines.length;
  s.signal('SIGHUP');
  const l = await s.waitLine(
    (x) => x.msg === 'reloaded configuration, catalog and hosts' || x.msg === 'reload rejected; the previous configuration stays in force',
    60_000,
    from,
  );
  expect(l, 'no reload outcome logged').toBeDefined();
  return { ok: l!.msg!.startsWith('reloaded'), line: typeof l!.reason === 'string' ? l!.reason : '' };
}

describe('templates checked like configuration', () => {
  it('start with a template that does not compile: refused with file:line', async () => {
    const err = await refusedStart(menuTemplate(), original().replace('MENU TITLE {{ m.title }}', 'MENU TITLE {{ m.title }'));
    expect(err).toMatch(new RegExp(`pxe: ${menuTemplate().replace(/[.]/g, '\\.')}:10:\\d+: template does not compile`));
  }, 90_000);

  it('start with a template that fails to render (undefined variable): refused with file:line', async () => {
    const err = await refusedStart(menuTemplate(), original().replace('MENU TITLE {{ m.title }}', 'MENU TITLE {{ m.subtitle.text }}'));
    expect(err).toMatch(new RegExp(`pxe: ${menuTemplate().replace(/[.]/g, '\\.')}:10:\\d+: .*(undefined|null)`));
  }, 90_000);

  it('start with a catalog string that does not render: refused with the catalog file:line', async () => {
    const err = await refusedStart(join(dir, 'distros', 'tiny.yaml'), BROKEN_APPEND);
    expect(err).toMatch(new RegExp(`pxe: ${join(dir, 'distros', 'tiny.yaml').replace(/[.]/g, '\\.')}:23:\\d+: field "tiny\\.append"`));
  }, 90_000);

  it('SIGHUP with a broken template or catalog string: refused, the old menu still served; a fixed template is served after the next SIGHUP', async () => {
    server = serve();
    await server.ready(60_000);
    const before = await menus();
    expect(before.tftp).toContain('LABEL tiny-1-x86_64');
    expect(before.http).toBe(before.tftp);
    expect(before.ipxe).toContain('item tiny-1-x86_64');

    // a syntax error in the menu template
    writeFileSync(menuTemplate(), original().replace('MENU TITLE {{ m.title }}', 'MENU TITLE {{ m.title }'));
    let r = await sighup(server);
    expect(r.ok).toBe(false);
    expect(r.line).toMatch(/pxelinux-menu\.njk:10:\d+: template does not compile/);
    expect(await menus()).toEqual(before);

    // an undefined variable in the iPXE menu
    writeFileSync(menuTemplate(), original());
    const ipxeOriginal = readFileSync(join(dir, 'templates', 'ipxe-menu.njk'), 'utf8');
    writeFileSync(join(dir, 'templates', 'ipxe-menu.njk'), ipxeOriginal.replace('menu {{ m.title }}', 'menu {{ m.nope.title }}'));
    r = await sighup(server);
    expect(r.ok).toBe(false);
    expect(r.line).toMatch(/ipxe-menu\.njk:4:\d+/);
    expect(await menus()).toEqual(before);
    writeFileSync(join(dir, 'templates', 'ipxe-menu.njk'), ipxeOriginal);

    // a catalog append string that does not render
    writeFileSync(join(dir, 'distros', 'tiny.yaml'), BROKEN_APPEND);
    r = await sighup(server);
    expect(r.ok).toBe(false);
    expect(r.line).toMatch(/tiny\.yaml:23:\d+: field "tiny\.append"/);
    expect(await menus()).toEqual(before);

    // fixed (and changed): read again and served
    writeFileSync(join(dir, 'distros', 'tiny.yaml'), CATALOG);
    writeFileSync(menuTemplate(), original().replace('# Do not edit:', '# Edited by the operator. Do not edit:'));
    r = await sighup(server);
    expect(r.ok, r.line).toBe(true);
    const after = await menus();
    expect(after.tftp).toContain('# Edited by the operator.');
    expect(after.http).toBe(after.tftp);
    expect(after.tftp.replace('# Edited by the operator. Do not edit:', '# Do not edit:')).toBe(before.tftp);
    expect(after.ipxe).toBe(before.ipxe);
  }, 240_000);
});

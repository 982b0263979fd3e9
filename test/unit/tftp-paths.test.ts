import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeRequestPath, openInRoot } from '../../src/tftp/paths.js';

describe('normalizeRequestPath', () => {
  it.each([
    ['pxelinux.0', 'pxelinux.0'],
    ['/pxelinux.0', 'pxelinux.0'],
    ['\\boot\\x64\\wdsnbp.com', 'boot/x64/wdsnbp.com'],
    ['//a///b/./c', 'a/b/c'],
    ['a/../b', 'b'],
    ['/etc/passwd', 'etc/passwd'],
    ['pxelinux.cfg/01-aa-bb-cc-dd-ee-ff', 'pxelinux.cfg/01-aa-bb-cc-dd-ee-ff'],
  ])('%s -> %s', (input, rel) => {
    expect(normalizeRequestPath(input)).toEqual({ ok: true, rel });
  });

  it.each([['../etc/passwd'], ['..\\..\\etc\\passwd'], ['/../x'], ['a/../../x'], ['..'], ['/'], ['a\0b'], ['x'.repeat(256)]])(
    'refuses %j with access violation',
    (input) => {
      const r = normalizeRequestPath(input);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.code).toBe(2);
    },
  );

  it('name length limit is configurable', () => {
    expect(normalizeRequestPath('x'.repeat(300), 512).ok).toBe(true);
    expect(normalizeRequestPath('x'.repeat(20), 10).ok).toBe(false);
  });
});

describe('openInRoot', () => {
  let dir: string;
  let root: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pxe-tftp-paths-'));
    root = path.join(dir, 'root');
    fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(root, 'sub', 'f.txt'), 'hello');
    fs.writeFileSync(path.join(dir, 'secret'), 'secret');
    fs.symlinkSync(path.join(dir, 'secret'), path.join(root, 'escape'));
    fs.symlinkSync('sub/f.txt', path.join(root, 'inside'));
    root = fs.realpathSync(root);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const closeIfOk = (r: Awaited<ReturnType<typeof openInRoot>>): void => {
    if (r.ok) fs.closeSync(r.file.fd);
  };

  it('opens a regular file and reports its size', async () => {
    const r = await openInRoot(root, 'sub/f.txt');
    expect(r.ok && r.file.size).toBe(5);
    closeIfOk(r);
  });

  it('follows a symlink that stays inside the root', async () => {
    const r = await openInRoot(root, 'inside');
    expect(r.ok && r.file.realPath).toBe(path.join(root, 'sub', 'f.txt'));
    closeIfOk(r);
  });

  it('refuses a symlink resolving outside the root (error 2)', async () => {
    const r = await openInRoot(root, 'escape');
    expect(r).toMatchObject({ ok: false, code: 2 });
    closeIfOk(r);
  });

  it('missing file is error 1, directory is error 2', async () => {
    expect(await openInRoot(root, 'nope')).toMatchObject({ ok: false, code: 1 });
    expect(await openInRoot(root, 'sub/f.txt/x')).toMatchObject({ ok: false, code: 1 });
    expect(await openInRoot(root, 'sub')).toMatchObject({ ok: false, code: 2 });
  });
});

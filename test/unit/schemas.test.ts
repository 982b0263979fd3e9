/**
 * The generated JSON Schemas and field docs: committed copies equal what
 * `npm run gen` produces (stale docs fail here), and a real JSON Schema validator
 * (ajv, draft 2020-12) accepts every shipped file and rejects the traps users fall into.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { generatedFiles } from '../../src/schemas/generate.js';

const ROOT = resolve(__dirname, '../..');
const addFormats = addFormatsModule as unknown as (a: Ajv2020) => Ajv2020;
const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
const load = (name: string) => ajv.compile(JSON.parse(readFileSync(join(ROOT, 'schemas', name), 'utf8')) as object);
const catalog = load('catalog.schema.json');
const hosts = load('hosts.schema.json');
const config = load('pxe.schema.json');
const errors = (v: typeof catalog) => (v.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join('; ');

const ENTRY = `entries:
  - id: rescue
    label: Rescue
    group: Tools
    mirror: http://mirror.example/rescue
    versions:
      - version: "24.10"
    boot: { method: linux, kernel: "{{ version }}/vmlinuz", initrd: "{{ version }}/initrd.img" }
    checksum: { kind: sha256sums, path: "{{ version }}/SHA256SUMS" }
    trust: checksum
`;
const HOSTS = `defaults: { user: ops }
hosts:
  "52:54:00:12:34:56": { hostname: web1, entry: debian, version: "12", password_hash: "$6$abc$def" }
`;

describe('generated schemas and docs', () => {
  it('the committed schemas/ and docs/ files are what npm run gen writes', () => {
    for (const [rel, text] of Object.entries(generatedFiles()))
      expect(readFileSync(join(ROOT, rel), 'utf8'), `${rel} is stale: run npm run gen`).toBe(text);
  });

  it('every shipped distros file names the schema on its first line and validates', () => {
    const files = readdirSync(join(ROOT, 'distros')).filter((n) => n.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const n of files) {
      const text = readFileSync(join(ROOT, 'distros', n), 'utf8');
      expect(text.split('\n')[0], n).toBe('# yaml-language-server: $schema=../schemas/catalog.schema.json');
      expect(catalog(parse(text)), `${n}: ${errors(catalog)}`).toBe(true);
    }
  });

  it('accepts a good entry, a disable-only site file, a hosts file and pxe.yaml settings', () => {
    expect(catalog(parse(ENTRY)), errors(catalog)).toBe(true);
    expect(catalog(parse('disable: [memtest86plus]\n')), errors(catalog)).toBe(true);
    expect(hosts(parse(HOSTS)), errors(hosts)).toBe(true);
    expect(
      config(
        parse(
          'serverAddress: 10.0.0.5\ncatalogDirs: [./site]\ntftp: { root: ./tftproot, port: 69 }\nmirrors: { debian: "http://mirror.lan/debian" }\n',
        ),
      ),
      errors(config),
    ).toBe(true);
  });

  it('rejects the traps: a version as a number, an unquoted {{ }}, password: for password_hash, a misspelt key', () => {
    expect(catalog(parse(ENTRY.replace('version: "24.10"', 'version: 24.10')))).toBe(false);
    expect(errors(catalog)).toMatch(/\/entries\/0\/versions\/0\/version must be string/);
    expect(catalog(parse(ENTRY.replace('kernel: "{{ version }}/vmlinuz"', 'kernel: {{ version }}')))).toBe(false);
    expect(errors(catalog)).toMatch(/\/entries\/0\/boot/);
    expect(catalog(parse(ENTRY.replace('    trust: checksum\n', '    trust: checksum\n    apend: quiet\n')))).toBe(false);
    expect(hosts(parse(HOSTS.replace('password_hash:', 'password:')))).toBe(false);
    expect(errors(hosts)).toMatch(/must NOT have additional properties/);
    expect(config(parse('catalogDirs: ./site\n'))).toBe(false);
    expect(config(parse('catalogdir: ./site\n'))).toBe(false);
  });
});

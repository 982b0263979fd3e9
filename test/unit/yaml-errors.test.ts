/**
 * Errors that teach: the three traps a new catalog or hosts file falls into get a fix
 * in the message, still with file:line:column and the field.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configError } from '../helpers/errors.js';
import { loadCatalog, parseCatalogFile } from '../../src/catalog/load.js';
import { parseHosts } from '../../src/hosts/load.js';
import { closest } from '../../src/closest.js';

const ENTRY = `entries:
  - id: demo
    label: Demo
    group: Test
    mirror: http://mirror.example/demo
    versions:
      - version: "24.10"
    boot:
      method: linux
      kernel: "v{{ version }}/linux"
    checksum: { kind: sha256sums, path: "v{{ version }}/SHA256SUMS" }
    trust: checksum
`;

describe('a version written as a YAML number', () => {
  it('is refused with the quoted spelling of what was written (24.10 would become 24.1)', () => {
    expect(parseCatalogFile('a.yaml', ENTRY)[0]!.versions[0]!.version).toBe('24.10');
    const e = configError(() => parseCatalogFile('a.yaml', ENTRY.replace('version: "24.10"', 'version: 24.10')));
    expect(e.message).toBe(
      'a.yaml:7:18: field "entries[0].versions[0].version": Invalid input: expected string, received number: YAML reads 24.10 as a number; quote it: version: "24.10"',
    );
  });

  it('in a flow mapping and in hosts.yaml too', () => {
    const e = configError(() => parseCatalogFile('a.yaml', ENTRY.replace('- version: "24.10"', '- { version: 1.0, label: x }')));
    expect(e).toMatchObject({ line: 7, column: 20, field: 'entries[0].versions[0].version' });
    expect(e.message).toMatch(/quote it: version: "1\.0"$/);
    const catalog = loadCatalog(resolve(__dirname, '../../distros'));
    const h = configError(() =>
      parseHosts('hosts.yaml', 'hosts:\n  "52:54:00:00:00:01": { hostname: a, entry: ubuntu, version: 24.04 }\n', catalog),
    );
    expect(h.message).toMatch(/^hosts\.yaml:2:63: field "hosts\.52:54:00:00:00:01\.version": .*quote it: version: "24\.04"$/);
  });
});

describe('an unquoted "{{ … }}"', () => {
  it('that breaks the YAML parse gets the quoted line as the fix', () => {
    const e = configError(() => parseCatalogFile('a.yaml', ENTRY.replace('kernel: "v{{ version }}/linux"', 'kernel: {{ version }}/linux')));
    expect(e.line).toBe(10);
    expect(e.message).toMatch(
      /^a\.yaml:10:\d+: YAML syntax: .*; a value that starts with "\{\{" must be quoted: kernel: "\{\{ version \}\}\/linux"$/,
    );
  });

  it('that parses as a map with a map key gets the same hint (no "expected string, received object")', () => {
    const e = configError(() => parseCatalogFile('a.yaml', ENTRY.replace('kernel: "v{{ version }}/linux"', 'kernel: {{ version }}')));
    expect(e.line).toBe(10);
    expect(e.message).toMatch(/a value that starts with "\{\{" must be quoted: kernel: "\{\{ version \}\}"$/);
  });
});

describe('an unknown key', () => {
  it('names the closest known key of the same object', () => {
    const catalog = loadCatalog(resolve(__dirname, '../../distros'));
    const e = configError(() =>
      parseHosts('hosts.yaml', 'hosts:\n  "52:54:00:00:00:01":\n    hostname: a\n    entry: debian\n    password: "$6$x"\n', catalog),
    );
    expect(e.message).toBe(
      'hosts.yaml:5:5: field "hosts.52:54:00:00:00:01.password": unknown key "password" (did you mean "password_hash"?)',
    );
    const c = configError(() =>
      parseCatalogFile('a.yaml', ENTRY.replace('    trust: checksum\n', '    trust: checksum\n    apend: quiet\n')),
    );
    expect(c.message).toBe('a.yaml:13:5: field "entries[0].apend": unknown key "apend" (did you mean "append"?)');
    const far = configError(() =>
      parseCatalogFile('a.yaml', ENTRY.replace('    trust: checksum\n', '    trust: checksum\n    colour: red\n')),
    );
    expect(far.message).toBe('a.yaml:13:5: field "entries[0].colour": unknown key "colour"');
  });

  it('closest() takes a typo or a prefix, not an unrelated word', () => {
    expect(closest('kernal', ['kernel', 'initrd'])).toBe('kernel');
    expect(closest('password', ['user', 'password_hash'])).toBe('password_hash');
    expect(closest('xyz', ['kernel', 'initrd'])).toBeUndefined();
  });
});

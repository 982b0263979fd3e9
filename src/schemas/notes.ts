/**
 * What each field of a catalog file and of hosts.yaml means, with an example: the
 * text of docs/catalog.md, docs/hosts.md and the JSON Schemas' `description`s
 * (src/schemas/generate.ts). Keys are the field paths the generator derives from the
 * zod schema; it refuses to run when a field has no note or a note names no field.
 */
export interface FieldNote {
  doc: string;
  example?: string;
}

export const CATALOG_NOTES: Record<string, FieldNote> = {
  entries: {
    doc: 'The catalog entries of this file. Ids are unique within a catalog layer; a site layer entry with a shipped id replaces the shipped entry whole.',
  },
  'entries[].id': {
    doc: 'Entry id: tftproot directory `images/<id>/…`, `pxe sync --only <id>`, hosts.yaml `entry`, pxe.yaml `mirrors.<id>`.',
    example: 'id: rescue',
  },
  'entries[].label': { doc: 'Menu label.', example: 'label: SystemRescue' },
  'entries[].group': { doc: 'Menu group (submenu title); entries of one group are listed together.', example: 'group: Tools' },
  'entries[].order': { doc: 'Menu position: groups and entries by ascending order, then by file order.', example: 'order: 50' },
  'entries[].default': { doc: 'The menu default on timeout (only the local-boot entry should set it; pxe.yaml `menu.default` overrides).' },
  'entries[].versions': {
    doc: 'The versions offered; each is synced to `images/<id>/<version>/<arch>/`. Required unless `boot.method` is localboot.',
  },
  'entries[].versions[].version': {
    doc: 'Version string used in paths and `{{ version }}`. Always quote it: unquoted, YAML reads 24.10 as the number 24.1.',
    example: 'version: "24.10"',
  },
  'entries[].versions[].codename': { doc: '`{{ codename }}` in templates (default: the version).', example: 'codename: bookworm' },
  'entries[].versions[].label': { doc: 'Menu label of this version (default: entry label and version).', example: 'label: Debian 12' },
  'entries[].versions[].architectures': {
    doc: "Restricts the entry's architectures for this version.",
    example: 'architectures: [x86_64]',
  },
  'entries[].versions[].vars': {
    doc: "Template variables for this version (override the entry's `vars`).",
    example: 'vars: { point: "24.04.3" }',
  },
  'entries[].architectures': {
    doc: 'Canonical architectures offered (`{{ arch }}`); matched to clients by DHCP option 93.',
    example: 'architectures: [x86_64, aarch64]',
  },
  'entries[].arch_names': {
    doc: 'Upstream spelling of each architecture (`{{ uarch }}`; default: the canonical name).',
    example: 'arch_names: { x86_64: amd64, aarch64: arm64 }',
  },
  'entries[].mirror': {
    doc: 'Upstream base URL every path is relative to; pxe.yaml `mirrors: { <id>: <url> }` replaces it per site. Required unless localboot.',
    example: 'mirror: https://deb.debian.org/debian',
  },
  'entries[].vars': { doc: 'Extra template variables for paths and append lines.', example: 'vars: { flavour: lts }' },
  'entries[].archive': {
    doc: 'The boot files are members of an archive: the archive is downloaded and verified, then `boot` paths are extracted from it.',
  },
  'entries[].archive.path': { doc: 'Archive path (template).', example: 'path: "v{{ version }}/mt86plus_{{ version }}.binaries.zip"' },
  'entries[].archive.format': { doc: 'Archive format.', example: 'format: zip' },
  'entries[].boot': { doc: 'How the entry boots; `method` selects the other fields.' },
  'entries[].boot.method': {
    doc: 'linux: kernel + initrd(s); memdisk: a disk image (BIOS); chain: another network boot program; localboot: the next boot device.',
    example: 'method: linux',
  },
  'entries[].boot.kernel': {
    doc: 'Kernel path (template; an archive member name when `archive` is set).',
    example: 'kernel: "{{ version }}/vmlinuz"',
  },
  'entries[].boot.initrd': {
    doc: 'Initrd path, or a list loaded in order (CPU microcode first).',
    example: 'initrd: "{{ version }}/initrd.img"',
  },
  'entries[].boot.extra': {
    doc: 'More files to sync and serve, by name; append lines reference `{{ files.<name> }}` (their HTTP URL).',
    example: 'extra: { modloop: "v{{ version }}/modloop-lts" }',
  },
  'entries[].boot.image': { doc: 'Disk image path for memdisk.', example: 'image: "{{ version }}/rescue.iso"' },
  'entries[].boot.format': { doc: 'Disk image format for memdisk.', example: 'format: iso' },
  'entries[].boot.file': { doc: 'Network boot program to chain to.', example: 'file: "{{ version }}/pxeboot"' },
  'entries[].checksum': { doc: 'Where upstream publishes the SHA-256 of each file. `kind: none` requires `trust: unverified`.' },
  'entries[].checksum.kind': {
    doc: 'sha256sums: `<hex>  <path>` lines or BSD tags; treeinfo: Fedora/EL `.treeinfo`; suse-checksums: openSUSE CHECKSUMS; sha256-per-file: `<file>.sha256` next to each file; none.',
    example: 'kind: sha256sums',
  },
  'entries[].checksum.path': {
    doc: "Checksum file path (template). Each file's key in it is its path relative to the checksum file's directory.",
    example: 'path: "{{ version }}/SHA256SUMS"',
  },
  'entries[].checksum.suffix': { doc: 'Suffix of the per-file checksum file.', example: 'suffix: .sha256' },
  'entries[].signature': { doc: 'OpenPGP signature over the checksum file; required for `trust: signed`.' },
  'entries[].signature.kind': {
    doc: 'debian-release: a clearsigned InRelease listing the checksum file; gpg-detached: a detached signature of it.',
    example: 'kind: gpg-detached',
  },
  'entries[].signature.inrelease': { doc: 'InRelease path (template).', example: 'inrelease: "dists/{{ codename }}/InRelease"' },
  'entries[].signature.keyring': {
    doc: 'Keyring name in pxe.yaml `keyrings:` (debian and ubuntu default to the packaged archive keyrings).',
    example: 'keyring: debian',
  },
  'entries[].signature.path': { doc: 'Detached signature path (template).', example: 'path: "{{ version }}/SHA256SUMS.gpg"' },
  'entries[].trust': {
    doc: 'The trust `pxe sync` must establish or fail: signed (signature + checksum), checksum, unverified (conditional GETs only).',
    example: 'trust: checksum',
  },
  'entries[].repo': {
    doc: 'Installation tree URL (template, full URL), `{{ repo }}` in append lines and answer files.',
    example: 'repo: "{{ mirror }}/{{ version }}/BaseOS/{{ arch }}/os"',
  },
  'entries[].append': { doc: 'Kernel command line (template).', example: 'append: "console=ttyS0 quiet"' },
  'entries[].automation': {
    doc: 'Kernel arguments that start the unattended install, rendered only for hosts (template with `{{ automation_url }}`).',
    example: 'automation: "auto=true url={{ automation_url }}"',
  },
  'entries[].unattended': {
    doc: 'Answer file kind served to hosts (`/unattended/<mac>/…`); not none requires `automation`.',
    example: 'unattended: preseed',
  },
  'entries[].notes': { doc: 'Free text shown in `pxe list`.' },
  disable: {
    doc: 'Ids of entries of an earlier layer (the shipped catalog) this site does not offer; an id no earlier layer defines is an error.',
    example: 'disable: [memtest86plus]',
  },
};

const PROFILE: Record<string, FieldNote> = {
  disk: { doc: 'Target disk of the install.', example: 'disk: /dev/vda' },
  user: { doc: 'Account created by the installer.', example: 'user: admin' },
  password_hash: {
    doc: 'crypt(3) hash of its password (`mkpasswd -m sha-512`); never clear text. Unset: the account is locked (SSH keys only).',
    example: 'password_hash: "$6$…"',
  },
  ssh_keys: { doc: 'OpenSSH public keys authorized for the user.', example: 'ssh_keys: ["ssh-ed25519 AAAA… admin@example"]' },
  mirror: { doc: "Package mirror the installed system uses (default: the entry's mirror).", example: 'mirror: http://mirror.lan/debian' },
  locale: { doc: 'Locale.', example: 'locale: en_US.UTF-8' },
  timezone: { doc: 'IANA time zone.', example: 'timezone: Europe/Paris' },
  keyboard: { doc: 'Keyboard layout.', example: 'keyboard: fr' },
  domain: { doc: 'DNS domain (the FQDN is hostname.domain).', example: 'domain: lab.example' },
  append: { doc: "Extra kernel arguments after the entry's own (defaults' and host's are both used).", example: 'append: "console=ttyS0"' },
};

export const HOSTS_NOTES: Record<string, FieldNote> = {
  unknown: {
    doc: 'Clients not listed: menu (the main menu) or ignore (no DHCP answer). Default: pxe.yaml `dhcp.unknownClients`.',
    example: 'unknown: menu',
  },
  defaults: { doc: 'Answers every host inherits.' },
  ...Object.fromEntries(Object.entries(PROFILE).map(([k, v]) => [`defaults.${k}`, v])),
  hosts: { doc: 'Hosts by MAC address (`52:54:00:12:34:56` or `52-54-00-12-34-56`).' },
  ...Object.fromEntries(Object.entries(PROFILE).map(([k, v]) => [`hosts.*.${k}`, v])),
  'hosts.*.hostname': { doc: 'Host name (RFC 1123; a FQDN is allowed).', example: 'hostname: web1' },
  'hosts.*.entry': { doc: 'Catalog entry id the host boots.', example: 'entry: debian' },
  'hosts.*.version': { doc: "Entry version (a quoted string; default: the entry's first version).", example: 'version: "12"' },
  'hosts.*.arch': { doc: "Restrict to one architecture (else the client's firmware decides).", example: 'arch: x86_64' },
  'hosts.*.allow': { doc: 'false: the proxyDHCP ignores this MAC entirely.', example: 'allow: false' },
  'hosts.*.install_once': {
    doc: 'Install once, then boot from the local disk (the state file keeps "installed").',
    example: 'install_once: true',
  },
  'hosts.*.ssh_key': { doc: 'One SSH key, shorthand for `ssh_keys: [key]`.', example: 'ssh_key: "ssh-ed25519 AAAA… admin@example"' },
};

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, loadYamlFile, parseYaml, positionOf } from './yamlfile.js';
import { siteMirrors } from './catalog/schema.js';

/**
 * `pxe.yaml`: server settings. Validated once here; everything inward receives the
 * typed, path-resolved `Config`. With no file at all the embedded defaults below
 * run a working server from the current directory (./tftproot, standard ports).
 */

const ipv4 = z.string().refine((s) => isIP(s) === 4, 'expected an IPv4 address');
const port = z.number().int().min(0).max(65535);
const cidr = z.string().refine((s) => {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (len === undefined) return true;
  const n = Number(len);
  return Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128) && /^\d+$/.test(len);
}, 'expected a network in CIDR form, e.g. 10.0.0.0/8 or fd00::/8');

const bootFile = z.string().min(1).max(127); // header `file` is 128 bytes with its NUL

export const configSchema = z
  .object({
    /** IPv4 address the DHCP/TFTP/HTTP sockets bind to (0.0.0.0: all). */
    listen: ipv4.default('0.0.0.0'),
    /** next-server / HTTP host advertised to clients; derived from interfaces when absent. */
    serverAddress: ipv4.optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Client networks allowed to talk to any service; empty = everyone. */
    allow: z.array(cidr).default([]),
    tftp: z
      .object({
        enabled: z.boolean().default(true),
        root: z.string().default('./tftproot'),
        port: port.default(69),
        /** also listen on [::] (TFTP over IPv6) */
        ipv6: z.boolean().default(true),
        /** RFC 2348: 1468 = 1500-byte Ethernet MTU - 20 (IP) - 8 (UDP) - 4 (TFTP) */
        maxBlksize: z.number().int().min(8).max(65464).default(1468),
        maxWindowsize: z.number().int().min(1).max(65535).default(64),
        timeoutMs: z.number().int().min(100).max(255_000).default(1000),
        maxRetries: z.number().int().min(0).max(50).default(5),
        /**
         * microseconds to busy-poll for the next ACK after a window, while a single
         * transfer runs (backs off by itself on slow peers); 0 = always sleep
         */
        busyPollUs: z.number().int().min(0).max(1000).default(50),
        maxTransfers: z.number().int().min(1).max(100_000).default(500),
        maxTransfersPerClient: z.number().int().min(1).max(10_000).default(16),
        /** worker threads running transfers (default: one per CPU); 0 = all in the main thread */
        workers: z.number().int().min(0).max(64).optional(),
      })
      .strict()
      .prefault({}),
    dhcp: z
      .object({
        enabled: z.boolean().default(true),
        port: port.default(67),
        /** PXE boot-server port (PXE 2.1 spec) where UEFI clients send their ProxyDHCPREQUEST */
        pxePort: port.default(4011),
        /** also answer UEFI HTTP boot clients (option 60 "HTTPClient") */
        httpClient: z.boolean().default(false),
        /** DHCP replies per MAC per second (boot loops and spoofers) */
        ratePerMac: z.number().positive().default(10),
        /** header `sname`, when a site wants it */
        serverName: z.string().max(63).optional(),
        /**
         * BIOS clients running iPXE (option 77 "iPXE", the iPXE ROM of most hypervisors
         * and many NICs) get their boot file as http://<server>:<http.port>/files/<file>
         * when the HTTP server runs. pxelinux.0 loaded over HTTP takes that URL as its
         * path prefix and fetches ldlinux.c32, its config, kernels and initrds through
         * iPXE's file API (PXENV_FILE_*) over TCP instead of lock-step TFTP. Only for
         * pxelinux.0 (and lpxelinux.0/gpxelinux.0); other NBPs keep TFTP.
         */
        ipxeHttp: z.boolean().default(true),
        /**
         * The x64 UEFI PXE chain when bootFiles.efi-x64 is not set: `shim-grub` (Microsoft-signed
         * shim -> Debian-signed GRUB, boots with Secure Boot on), `syslinux` (syslinux.efi,
         * unsigned), or `auto`: shim-grub when `pxe sync` installed shimx64.efi and grubx64.efi
         * in tftproot, else syslinux.
         */
        efiX64Chain: z.enum(['auto', 'shim-grub', 'syslinux']).default('auto'),
        /** what to do with clients that are not in the hosts file */
        unknownClients: z.enum(['boot', 'ignore']).default('boot'),
        /** Boot file per firmware (option 93, IANA processor architecture). null: do not answer. */
        bootFiles: z
          .object({
            bios: bootFile.nullable().default('pxelinux.0'),
            'efi-ia32': bootFile.nullable().default(null),
            /** unset: chosen by dhcp.efiX64Chain (src/boot/chain.ts) */
            'efi-x64': bootFile.nullable().optional(),
            'efi-arm64': bootFile.nullable().default(null),
            'efi-x64-http': z.string().min(1).nullable().default(null),
            'efi-arm64-http': z.string().min(1).nullable().default(null),
            /**
             * iPXE clients (option 77 "iPXE"): null gives them the firmware's file above
             * (pxelinux/syslinux run fine on iPXE's PXE API, and cannot loop back into
             * iPXE); a file name or an http:// script URL otherwise.
             */
            ipxe: z.string().min(1).nullable().default(null),
            /**
             * U-Boot (option 93 = 21/22, vendor class "U-Boot.*"): only `pxe dhcp-config`
             * uses it. U-Boot drops every DHCP reply without an address, proxy offers
             * included, so the site DHCP server must hand it next-server (and this file).
             * boot.scr.uimg is the script U-Boot's distro boot fetches by name; pxe
             * serves one that runs `pxe get; pxe boot` (src/catalog/uboot.ts).
             */
            uboot: bootFile.nullable().default('boot.scr.uimg'),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        enabled: z.boolean().default(true),
        port: port.default(8080),
        ipv6: z.boolean().default(true),
        /** open connections in total (also capped by the descriptor budget: src/http/limits.ts) */
        maxConnections: z.number().int().min(1).max(100_000).default(1000),
        /** open connections per client address */
        maxConnectionsPerClient: z.number().int().min(1).max(100_000).default(64),
        /** a connection with no progress either way for this long is closed */
        idleTimeoutSeconds: z.number().int().min(1).max(3600).default(30),
        /** request line + headers must arrive within this (slow-loris) */
        requestTimeoutSeconds: z.number().int().min(1).max(3600).default(10),
      })
      .strict()
      .prefault({}),
    /** the web dashboard at / on the HTTP port */
    dashboard: z
      .object({
        enabled: z.boolean().default(true),
        /**
         * Needed for the page's actions (sync, reinstall, remove) from anywhere but
         * loopback: sent as "Authorization: Bearer <token>" or through the sign-in form.
         * Without it, actions are allowed from loopback only; viewing needs only `allow:`.
         */
        adminToken: z.string().min(16, 'use at least 16 characters').optional(),
      })
      .strict()
      .prefault({}),
    /** the rendered main menu (pxelinux.cfg/default, boot.ipxe and grub.cfg for unknown clients) */
    menu: z
      .object({
        title: z.string().min(1).max(200).optional(),
        // syslinux TIMEOUT 0 means "wait forever": a menu always times out here
        timeoutSeconds: z.number().int().min(1).max(3600).optional(),
        ui: z.enum(['menu.c32', 'vesamenu.c32']).optional(),
        /** catalog entry id booted on timeout (its first synced version); default: local boot */
        default: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    /** base catalog directory (distros/*.yaml); default: the catalog shipped with pxe. Setting it replaces the shipped catalog. */
    catalogDir: z.string().optional(),
    /**
     * site catalog directories, read after the base catalog, in order: an entry whose id is
     * already defined replaces it (the whole entry), `disable: [id]` in a file removes one
     */
    catalogDirs: z.array(z.string().min(1)).default([]),
    /** nunjucks templates; default: the templates shipped with pxe */
    templatesDir: z.string().optional(),
    /** the boot-event log (<stateDir>/boot-events.jsonl, read by pxe events) */
    eventLog: z
      .object({
        /** rotated to boot-events.jsonl.1 past this size: at most twice this on disk */
        maxMegabytes: z.number().min(1).max(4096).default(16),
      })
      .strict()
      .prefault({}),
    /** unattended installs (answer files under /unattended/, src/hosts/tokens.ts) */
    install: z
      .object({
        /**
         * how long a host's install token (the secret in its answer-file URL) stays
         * valid after its boot config was first rendered for the install; the
         * installer's done callback ends it sooner
         */
        tokenTtlMinutes: z
          .number()
          .int()
          .min(1)
          .max(7 * 24 * 60)
          .default(240),
      })
      .strict()
      .prefault({}),
    /** per-host file (MAC -> entry, answers); missing file = no hosts */
    hostsFile: z.string().default('./hosts.yaml'),
    /** sync state, install-once markers, boot-event log */
    stateDir: z.string().default('./state'),
    /** per-distro-id replacement of the upstream mirror base URL (local mirrors) */
    mirrors: z
      .record(
        z.string(),
        z
          .string()
          .url()
          .refine((s) => /^https?:\/\//.test(s), 'expected an http:// or https:// URL'),
      )
      .default({})
      .transform(siteMirrors),
    /** OpenPGP keyrings (armored public keys) by name, referenced from catalog entries */
    keyrings: z.record(z.string(), z.string()).default({}),
  })
  .strict();

/** The package's own directory (dist/config.js -> ..; src/config.ts under tsx/vitest -> ..). */
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The version in pxe's package.json (`pxe --version`). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

export type Config = Omit<z.infer<typeof configSchema>, 'catalogDir' | 'templatesDir'> & {
  catalogDir: string;
  templatesDir: string;
  /** the file it came from, or "(embedded defaults)" */
  source: string;
  /** why that one: "--config", "$PXE_CONFIG", "./pxe.yaml", "/etc/pxe/pxe.yaml", or what was looked for */
  sourceWhy: string;
};

/**
 * Archive keys that Debian packages ship (debian-archive-keyring, ubuntu-keyring):
 * used for the signed InRelease -> SHA256SUMS chains unless pxe.yaml names others.
 */
const PACKAGED_KEYRINGS: Record<string, string> = {
  debian: '/usr/share/keyrings/debian-archive-keyring.gpg',
  ubuntu: '/usr/share/keyrings/ubuntu-archive-keyring.gpg',
};
function distributionKeyrings(): Record<string, string> {
  return Object.fromEntries(Object.entries(PACKAGED_KEYRINGS).filter(([, path]) => existsSync(path)));
}

/** Paths in the file are relative to the file's directory; with no file, to the cwd. */
function resolvePaths(cfg: z.infer<typeof configSchema>, base: string): Omit<Config, 'source' | 'sourceWhy'> {
  const r = (p: string) => resolve(base, p);
  return {
    ...cfg,
    tftp: { ...cfg.tftp, root: r(cfg.tftp.root) },
    catalogDir: cfg.catalogDir === undefined ? join(PACKAGE_DIR, 'distros') : r(cfg.catalogDir),
    catalogDirs: cfg.catalogDirs.map(r),
    templatesDir: cfg.templatesDir === undefined ? join(PACKAGE_DIR, 'templates') : r(cfg.templatesDir),
    hostsFile: r(cfg.hostsFile),
    stateDir: r(cfg.stateDir),
    keyrings: { ...distributionKeyrings(), ...Object.fromEntries(Object.entries(cfg.keyrings).map(([k, v]) => [k, r(v)])) },
  };
}

export const DEFAULT_CONFIG_FILE = 'pxe.yaml';
/** Where a daemon install keeps its configuration (contrib/systemd units, docs/operations.md). */
export const SYSTEM_CONFIG_FILE = '/etc/pxe/pxe.yaml';
export const EMBEDDED_DEFAULTS = '(embedded defaults)';

export interface ConfigLookup {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** default /etc/pxe/pxe.yaml (tests point it elsewhere) */
  systemFile?: string;
}

/**
 * Which pxe.yaml a command uses, the same way for every command: `--config`, then
 * `$PXE_CONFIG`, then `./pxe.yaml`, then `/etc/pxe/pxe.yaml`; undefined: the
 * embedded defaults. A file named by --config or $PXE_CONFIG must exist (a typo is
 * an error, not a silent fall back to defaults).
 */
export function findConfigFile(flag: string | undefined, lookup: ConfigLookup = {}): { path: string | undefined; why: string } {
  const cwd = lookup.cwd ?? process.cwd();
  const env = lookup.env ?? process.env;
  if (flag) return { path: resolve(cwd, flag), why: '--config' };
  if (env.PXE_CONFIG) return { path: resolve(cwd, env.PXE_CONFIG), why: '$PXE_CONFIG' };
  const local = resolve(cwd, DEFAULT_CONFIG_FILE);
  if (existsSync(local)) return { path: local, why: `./${DEFAULT_CONFIG_FILE}` };
  const system = lookup.systemFile ?? SYSTEM_CONFIG_FILE;
  if (existsSync(system)) return { path: system, why: system };
  return { path: undefined, why: `no --config, $PXE_CONFIG, ./${DEFAULT_CONFIG_FILE} or ${system}` };
}

/**
 * Loads the pxe.yaml `findConfigFile` picks, or the embedded defaults (paths then
 * relative to the current directory). Paths in a file are relative to that file.
 * Throws ConfigError (file, line, field) on any problem; nothing starts half-configured.
 */
export function loadConfig(file?: string, cwd = process.cwd(), lookup: Omit<ConfigLookup, 'cwd'> = {}): Config {
  const found = findConfigFile(file, { ...lookup, cwd });
  if (found.path === undefined) {
    return { ...resolvePaths(parseYaml(EMBEDDED_DEFAULTS, '{}', configSchema), cwd), source: EMBEDDED_DEFAULTS, sourceWhy: found.why };
  }
  const parsed = loadYamlFile(found.path, configSchema);
  const config = resolvePaths(parsed, dirname(found.path));
  checkCatalogDirs(found.path, parsed, config);
  return { ...config, source: found.path, sourceWhy: found.why };
}

/** A catalog directory the file names but that is not there is an error naming the key (it used to give an empty catalog). */
function checkCatalogDirs(file: string, parsed: z.infer<typeof configSchema>, config: Omit<Config, 'source' | 'sourceWhy'>): void {
  const named: Array<[Array<string | number>, string | undefined, string]> = [
    [['catalogDir'], parsed.catalogDir, config.catalogDir],
    ...config.catalogDirs.map((abs, i): [Array<string | number>, string | undefined, string] => [
      ['catalogDirs', i],
      parsed.catalogDirs[i],
      abs,
    ]),
  ];
  for (const [path, given, abs] of named) {
    if (given === undefined || statSync(abs, { throwIfNoEntry: false })?.isDirectory()) continue;
    const pos = positionOf(readFileSync(file, 'utf8'), path);
    const field = path.length === 1 ? String(path[0]) : `${path[0]}[${path[1]}]`;
    throw new ConfigError(file, pos?.line, pos?.col, field, `catalog directory "${given}" does not exist (${abs})`);
  }
}

/** The one stderr line every command prints: which configuration it runs with, and why. */
export function describeConfigSource(config: Config): string {
  if (config.source === EMBEDDED_DEFAULTS)
    return `pxe: config: embedded defaults (${config.sourceWhy}); state ${config.stateDir}, tftproot ${config.tftp.root}`;
  return `pxe: config: ${config.source} (${config.sourceWhy})`;
}

export const CONFIG_OPTION_HELP = `pxe.yaml to use (default: $PXE_CONFIG, else ./${DEFAULT_CONFIG_FILE}, else ${SYSTEM_CONFIG_FILE}, else embedded defaults)`;

/** loadConfig for a CLI command: also says on stderr which configuration it used. */
export function commandConfig(flag: string | undefined): Config {
  const config = loadConfig(flag);
  process.stderr.write(`${describeConfigSource(config)}\n`);
  return config;
}

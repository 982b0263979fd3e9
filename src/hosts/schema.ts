import { z } from 'zod';
import { ARCHES } from '../catalog/schema.js';

/**
 * `hosts.yaml`: per-MAC boot decisions and installer answers.
 *
 *   unknown: menu            # clients not listed: "menu" (boot pxelinux.cfg/default) or "ignore"
 *   defaults: { user: admin, timezone: Europe/Paris }   # answers every host inherits
 *   hosts:
 *     "52:54:00:12:34:56":
 *       hostname: web1
 *       entry: debian        # catalog entry id
 *       version: "12"        # default: the entry's first version
 *       disk: /dev/vda
 *       ssh_keys: ["ssh-ed25519 AAAA… admin@example"]
 *       install_once: true   # after the installer fetched its answers, boot locally
 *
 * Every answer ends up inside preseed/kickstart/XML/YAML/JSON files, so strings are
 * single-line and constrained per field: a newline in a value would inject a
 * directive into a preseed or a kickstart.
 */

const line = (what: string) =>
  z
    .string()
    .min(1)
    .refine((s) => !/[\r\n\0]/.test(s), `${what} must be a single line`);

/** RFC 1123 host name (labels of letters, digits, hyphens); a FQDN is allowed. */
const hostname = z
  .string()
  .regex(
    /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i,
    'expected an RFC 1123 host name',
  );
const disk = z.string().regex(/^\/dev\/[A-Za-z0-9/_.:-]+$/, 'expected a device path such as /dev/sda or /dev/disk/by-id/…');
const user = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'expected a POSIX user name (lower-case, at most 32 characters)');
/** crypt(3) hashes only ($6$ sha512crypt, $y$ yescrypt, $5$, $2b$): never a clear-text password. */
const passwordHash = z
  .string()
  .regex(/^\$(?:1|2[abxy]?|5|6|y|gy|7)\$[./A-Za-z0-9$=,]+$/, 'expected a crypt(3) hash such as "$6$…" (mkpasswd -m sha-512)');
// The comment is restricted because keys are written into shell (preseed late_command)
// and kickstart quoted strings.
const sshKey = z
  .string()
  .regex(
    /^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+(?: [A-Za-z0-9@._+:=, -]*)?$/,
    'expected an OpenSSH public key line ("ssh-ed25519 AAAA… comment"; the comment without quotes or shell characters)',
  );
const locale = z.string().regex(/^[A-Za-z]{2,3}(?:_[A-Z]{2})?(?:\.[A-Za-z0-9-]+)?(?:@[a-z]+)?$/, 'expected a locale such as en_US.UTF-8');
const timezone = z
  .string()
  .regex(/^(?:UTC|[A-Z][A-Za-z_+-]*(?:\/[A-Za-z0-9_+-]+){0,2})$/, 'expected an IANA time zone such as Europe/Paris');
const keyboard = z.string().regex(/^[a-z]{2,8}(?:[-_][a-z0-9]+)?$/, 'expected a keyboard layout such as us or fr');
const httpUrl = z
  .string()
  .url()
  .refine((s) => /^https?:\/\//.test(s), 'expected an http:// or https:// URL');
const appendArgs = line('append');

/** Answers a host can set and inherit from `defaults`. */
export const profileSchema = z
  .object({
    disk: disk.optional(),
    user: user.optional(),
    password_hash: passwordHash.optional(),
    ssh_keys: z.array(sshKey).optional(),
    /** package mirror the installed system uses (preseed mirror, kickstart url, AutoYAST/autoinstall repo) */
    mirror: httpUrl.optional(),
    locale: locale.optional(),
    timezone: timezone.optional(),
    keyboard: keyboard.optional(),
    domain: hostname.optional(),
    /** extra kernel arguments appended after the entry's own */
    append: appendArgs.optional(),
  })
  .strict();

export const hostSchema = profileSchema
  .extend({
    hostname,
    entry: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a catalog entry id'),
    /** a string: YAML reads `version: 24.10` as the number 24.1 (the loader says "quote it") */
    version: z.string().optional(),
    /** restrict to one architecture (else the client's firmware decides) */
    arch: z.enum(ARCHES).optional(),
    /** false: the proxyDHCP ignores this MAC entirely */
    allow: z.boolean().default(true),
    /** install once, then boot from the local disk (state file keeps "installed") */
    install_once: z.boolean().default(false),
    /** one ssh key as a shorthand for ssh_keys: [key] */
    ssh_key: sshKey.optional(),
  })
  .strict();

const MAC_KEY = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$/;

export const hostsFileSchema = z
  .object({
    unknown: z.enum(['menu', 'ignore']).optional(),
    defaults: profileSchema.optional(),
    hosts: z
      // Keys are checked in superRefine: zod's record-key error says only "Invalid key in record".
      .record(z.string(), hostSchema)
      .default({}),
  })
  .strict()
  .superRefine((f, ctx) => {
    const seen = new Map<string, string>();
    for (const key of Object.keys(f.hosts)) {
      if (!MAC_KEY.test(key)) {
        ctx.addIssue({ code: 'custom', path: ['hosts', key], message: `"${key}" is not a MAC address (expected e.g. 52:54:00:12:34:56)` });
        continue;
      }
      const mac = normalizeMacKey(key);
      const prev = seen.get(mac);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['hosts', key], message: `same MAC as "${prev}"` });
      seen.set(mac, key);
    }
  });

export type HostsFile = z.infer<typeof hostsFileSchema>;
export type HostSpec = z.infer<typeof hostSchema>;

/** "52-54-00-AB-CD-EF" -> "52:54:00:ab:cd:ef" */
export function normalizeMacKey(key: string): string {
  return key.toLowerCase().replace(/-/g, ':');
}

/** A host with defaults applied: every answer present (empty string = not set) so templates can test it. */
export interface Host {
  mac: string;
  hostname: string;
  /** "" when not set */
  domain: string;
  entry: string;
  /** undefined: the entry's first version */
  version: string | undefined;
  arch: (typeof ARCHES)[number] | undefined;
  allow: boolean;
  install_once: boolean;
  disk: string;
  user: string;
  /** "" when not set: the account is created locked (SSH keys only) */
  password_hash: string;
  ssh_keys: string[];
  /** "" when not set: the entry's mirror is used */
  mirror: string;
  locale: string;
  timezone: string;
  keyboard: string;
  append: string;
}

export const HOST_DEFAULTS = {
  disk: '/dev/sda',
  user: 'admin',
  locale: 'en_US.UTF-8',
  timezone: 'Etc/UTC',
  keyboard: 'us',
} as const;

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { JsonStore } from './jsonstore.js';
import { normalizeMacKey } from './schema.js';
import { InstallState } from './state.js';

/** 128 random bits, hex: what goes into /unattended/<mac>/<token>/<file>. */
export const TOKEN_RE = /^[0-9a-f]{32}$/;
/**
 * What a URL carries where a token would be when files are rendered for display
 * (`pxe which`, `pxe render`): never a valid token, so such a file is refused.
 */
export const NO_TOKEN = 'no-token';

const tokenSchema = z.record(z.string(), z.object({ token: z.string().regex(TOKEN_RE), issued: z.string(), expires: z.string() }).strict());
export type TokenRecord = z.infer<typeof tokenSchema>[string];

export type TokenCheck = { ok: true; record: TokenRecord } | { ok: false; reason: string };

/** Default lifetime of an install token: long enough for a slow install, short enough to close the window. */
export const DEFAULT_TOKEN_TTL_MINUTES = 240;

/**
 * Per-host install tokens (`<stateDir>/install-tokens.json`, mode 0600).
 *
 * MACs are no secret on a LAN (every DISCOVER is broadcast), so an answer file (password
 * hash, SSH keys) and the "install finished" callback are only served with the token
 * that the host's own rendered boot config puts in its answer-file URL. A token is
 * issued when a host's boot config is first rendered for an install, lives for `ttlMs`
 * from then, and ends early when the installer reports done (or `pxe host reinstall`
 * starts a new install). A boot after expiry gets a new token: one install attempt,
 * one token. What this does not stop (docs/operations.md): a machine that spoofs the
 * MAC and replays the boot chain (TFTP config -> URL) while the token is live.
 */
export class InstallTokens {
  private readonly store: JsonStore<Record<string, TokenRecord>>;

  constructor(
    readonly file: string,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.store = new JsonStore(file, tokenSchema);
  }

  static inDir(stateDir: string, ttlMinutes = DEFAULT_TOKEN_TTL_MINUTES): InstallTokens {
    return new InstallTokens(join(stateDir, 'install-tokens.json'), ttlMinutes * 60_000);
  }

  get(mac: string): TokenRecord | undefined {
    return this.store.read()[normalizeMacKey(mac)];
  }

  private live(rec: TokenRecord): boolean {
    return Date.parse(rec.expires) > this.now();
  }

  /** The host's live token; a new one when it has none or it expired (a new install attempt). */
  current(mac: string): string {
    const rec = this.get(mac);
    if (rec && this.live(rec)) return rec.token;
    return this.issue(mac);
  }

  /** A new token for the host, replacing any other. */
  issue(mac: string): string {
    const token = randomBytes(16).toString('hex');
    const now = this.now();
    this.store.update((data) => {
      data[normalizeMacKey(mac)] = { token, issued: new Date(now).toISOString(), expires: new Date(now + this.ttlMs).toISOString() };
    });
    return token;
  }

  /** Is `token` the host's live token? (compared in constant time) */
  check(mac: string, token: string): TokenCheck {
    const rec = this.get(mac);
    if (!TOKEN_RE.test(token)) return { ok: false, reason: 'no install token in the URL' };
    if (!rec) return { ok: false, reason: 'no install in progress for this host' };
    if (!timingSafeEqual(Buffer.from(rec.token), Buffer.from(token))) return { ok: false, reason: 'wrong install token' };
    if (!this.live(rec)) return { ok: false, reason: `install token expired at ${rec.expires}` };
    return { ok: true, record: rec };
  }

  /** Ends the host's token (install done, or a new install starts). Returns whether there was one. */
  revoke(mac: string): boolean {
    const key = normalizeMacKey(mac);
    if (!(key in this.store.read())) return false;
    this.store.update((data) => {
      delete data[key];
    });
    return true;
  }
}

/**
 * `pxe host reinstall`: a new install for the host: the install-once marker is
 * cleared and a new token replaces the old one (the old URL stops working at once).
 * Returns the new token.
 */
export function startInstall(
  stateDir: string,
  mac: string,
  ttlMinutes = DEFAULT_TOKEN_TTL_MINUTES,
): { token: string; wasInstalled: boolean } {
  const wasInstalled = InstallState.inDir(stateDir).clear(mac);
  const token = InstallTokens.inDir(stateDir, ttlMinutes).issue(mac);
  return { token, wasInstalled };
}

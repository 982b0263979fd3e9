/**
 * OpenPGP verification of upstream checksum manifests (Debian/Ubuntu `InRelease`,
 * `Release`+`Release.gpg`, openSUSE `CHECKSUMS`+`CHECKSUMS.asc`).
 *
 * Keyrings are read from disk (paths from pxe.yaml `keyrings`): armored
 * (`-----BEGIN PGP PUBLIC KEY BLOCK-----`, possibly several blocks) or binary
 * (`/usr/share/keyrings/debian-archive-keyring.gpg` is a plain concatenation of
 * transferable public keys, RFC 4880 §11.1, which `readKeys({binaryKeys})` accepts).
 */
import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';

export type PublicKey = openpgp.PublicKey;

export async function loadKeyring(path: string): Promise<PublicKey[]> {
  const buf = await readFile(path);
  const head = buf.subarray(0, 64).toString('latin1');
  if (head.includes('-----BEGIN PGP')) {
    const text = buf.toString('utf8');
    // readKeys only parses one armored block; keyrings exported by hand often hold several.
    const blocks = text.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g) ?? [];
    const keys: PublicKey[] = [];
    for (const b of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys: b })).map((k) => k.toPublic()));
    return keys;
  }
  const keys = await openpgp.readKeys({ binaryKeys: new Uint8Array(buf) });
  return keys.map((k) => k.toPublic());
}

export async function loadKeyrings(paths: readonly string[]): Promise<PublicKey[]> {
  const all: PublicKey[] = [];
  for (const p of paths) all.push(...(await loadKeyring(p)));
  return all;
}

export class SignatureError extends Error {
  override name = 'SignatureError';
}

/**
 * Verify a clearsigned document and return the signed text (which is what must be
 * parsed afterwards: never parse the envelope, or text outside the signed part
 * could smuggle in checksums). Throws SignatureError unless at least one signature
 * verifies against `keys`.
 */
export async function verifyClearsigned(armored: string, keys: PublicKey[]): Promise<string> {
  if (keys.length === 0) throw new SignatureError('no verification keys configured');
  let msg: openpgp.CleartextMessage;
  try {
    msg = await openpgp.readCleartextMessage({ cleartextMessage: armored });
  } catch (e) {
    throw new SignatureError(`not a clearsigned message: ${(e as Error).message}`);
  }
  try {
    const res = await openpgp.verify({ message: msg, verificationKeys: keys, expectSigned: true });
    return String(res.data);
  } catch (e) {
    throw new SignatureError(`bad signature: ${(e as Error).message}`);
  }
}

/** Verify a detached signature (armored or binary) over `data`. */
export async function verifyDetached(data: Uint8Array, signature: Uint8Array, keys: PublicKey[]): Promise<void> {
  if (keys.length === 0) throw new SignatureError('no verification keys configured');
  let sig: openpgp.Signature;
  try {
    const head = Buffer.from(signature.subarray(0, 64)).toString('latin1');
    sig = head.includes('-----BEGIN PGP')
      ? await openpgp.readSignature({ armoredSignature: Buffer.from(signature).toString('utf8') })
      : await openpgp.readSignature({ binarySignature: signature });
  } catch (e) {
    throw new SignatureError(`unreadable signature: ${(e as Error).message}`);
  }
  try {
    const message = await openpgp.createMessage({ binary: data });
    await openpgp.verify({ message, signature: sig, verificationKeys: keys, expectSigned: true });
  } catch (e) {
    throw new SignatureError(`bad signature: ${(e as Error).message}`);
  }
}

// Refresh and access tokens are encrypted at rest with AES-256-GCM. node:crypto does the cipher;
// this file only fixes the envelope, the key ring and the associated data, because those choices
// are what make a copied, swapped or re-keyed token fail loudly instead of decrypting wrongly.
//
// Envelope (text, so no binary column is needed): v1.<keyId>.<iv b64url>.<tag b64url>.<ct b64url>
// keyId = first 16 hex of SHA-256(key): stable, not secret, and needs no naming scheme.
// AAD   = gmail-sync/<purpose>/<accountId>: a ciphertext moved to another row does not decrypt.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { TokenDecryptError, TokenKeyError } from "./errors.ts";

export interface KeyRing {
  /** The key new ciphertexts are written with (the first one configured). */
  readonly activeKeyId: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

export type TokenPurpose = "refresh_token" | "access_token";

function keyIdOf(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

/** Parses TOKEN_ENCRYPTION_KEY: base64 keys of exactly 32 bytes, comma-separated, active first. */
export function parseKeyRing(value: string | undefined): KeyRing {
  if (value === undefined || value.trim() === "") {
    throw new TokenKeyError("TOKEN_ENCRYPTION_KEY is not set: generate one with `openssl rand -base64 32`");
  }
  const keys = new Map<string, Buffer>();
  const parts = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  parts.forEach((part, i) => {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(part)) {
      throw new TokenKeyError(`TOKEN_ENCRYPTION_KEY entry ${i + 1} is not base64`);
    }
    const key = Buffer.from(part, "base64");
    if (key.length !== 32) {
      throw new TokenKeyError(
        `TOKEN_ENCRYPTION_KEY entry ${i + 1} decodes to ${key.length} bytes; it must be 32 (openssl rand -base64 32)`,
      );
    }
    keys.set(keyIdOf(key), key);
  });
  const first = parts[0];
  if (first === undefined) throw new TokenKeyError("TOKEN_ENCRYPTION_KEY is empty");
  return { activeKeyId: keyIdOf(Buffer.from(first, "base64")), keys };
}

function aad(purpose: TokenPurpose, accountId: number): Buffer {
  return Buffer.from(`gmail-sync/${purpose}/${accountId}`, "utf8");
}

export function encryptToken(ring: KeyRing, purpose: TokenPurpose, accountId: number, plaintext: string): string {
  const key = ring.keys.get(ring.activeKeyId);
  if (key === undefined) throw new TokenKeyError("active key missing from key ring");
  const iv = randomBytes(12); // 96-bit random IV, NIST SP 800-38D
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
  cipher.setAAD(aad(purpose, accountId));
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  const tag = cipher.getAuthTag();
  return ["v1", ring.activeKeyId, iv.toString("base64url"), tag.toString("base64url"), ct.toString("base64url")].join(
    ".",
  );
}

/** The key id a stored ciphertext was written with, without decrypting it. */
export function keyIdOfCiphertext(envelope: string): string | undefined {
  const parts = envelope.split(".");
  return parts[0] === "v1" && parts.length === 5 ? parts[1] : undefined;
}

/** Decrypts or throws TokenDecryptError; never returns the input as if it were plaintext. */
export function decryptToken(ring: KeyRing, purpose: TokenPurpose, accountId: number, envelope: string): string {
  const parts = envelope.split(".");
  if (parts.length !== 5 || parts[0] !== "v1") {
    throw new TokenDecryptError(`stored ${purpose} of account ${accountId} is not a v1 ciphertext`);
  }
  const [, keyId, ivText, tagText, ctText] = parts as [string, string, string, string, string];
  const key = ring.keys.get(keyId);
  if (key === undefined) {
    throw new TokenDecryptError(
      `stored ${purpose} of account ${accountId} was encrypted with key ${keyId}, which is not in TOKEN_ENCRYPTION_KEY`,
    );
  }
  const iv = Buffer.from(ivText, "base64url");
  const tag = Buffer.from(tagText, "base64url");
  if (iv.length !== 12 || tag.length !== 16) {
    throw new TokenDecryptError(`stored ${purpose} of account ${accountId} has a malformed envelope`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
    decipher.setAAD(aad(purpose, accountId));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(ctText, "base64url")), decipher.final()]).toString("utf8");
  } catch {
    throw new TokenDecryptError(
      `stored ${purpose} of account ${accountId} failed authentication (wrong key, tampered, or copied from another account)`,
    );
  }
}

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TokenDecryptError, TokenKeyError } from "../../src/errors.ts";
import { decryptToken, encryptToken, keyIdOfCiphertext, parseKeyRing } from "../../src/token-crypto.ts";

const key = () => randomBytes(32).toString("base64");

describe("token encryption", () => {
  it("round-trips and never stores the plaintext", () => {
    const ring = parseKeyRing(key());
    const secret = `1//0gRefreshTokenCanary-${randomBytes(8).toString("hex")}`;
    const ct = encryptToken(ring, "refresh_token", 7, secret);
    expect(ct).not.toContain(secret);
    expect(ct.startsWith(`v1.${ring.activeKeyId}.`)).toBe(true);
    expect(decryptToken(ring, "refresh_token", 7, ct)).toBe(secret);
    // random IV: the same token encrypts differently each time
    expect(encryptToken(ring, "refresh_token", 7, secret)).not.toBe(ct);
  });

  it("fails cleanly with a wrong key, never returning the input", () => {
    const ct = encryptToken(parseKeyRing(key()), "refresh_token", 1, "secret");
    const other = parseKeyRing(key());
    expect(() => decryptToken(other, "refresh_token", 1, ct)).toThrow(TokenDecryptError);
    expect(() => decryptToken(other, "refresh_token", 1, ct)).toThrow(/not in TOKEN_ENCRYPTION_KEY/);
  });

  it("binds the ciphertext to its account and purpose", () => {
    const ring = parseKeyRing(key());
    const ct = encryptToken(ring, "refresh_token", 1, "secret");
    expect(() => decryptToken(ring, "refresh_token", 2, ct)).toThrow(/failed authentication/);
    expect(() => decryptToken(ring, "access_token", 1, ct)).toThrow(/failed authentication/);
  });

  it("detects tampering and rejects plaintext stored by mistake", () => {
    const ring = parseKeyRing(key());
    const ct = encryptToken(ring, "refresh_token", 1, "secret");
    const parts = ct.split(".");
    const body = Buffer.from(parts[4]!, "base64url");
    body[0] = body[0]! ^ 1;
    parts[4] = body.toString("base64url");
    expect(() => decryptToken(ring, "refresh_token", 1, parts.join("."))).toThrow(TokenDecryptError);
    expect(() => decryptToken(ring, "refresh_token", 1, "1//plain-refresh-token")).toThrow(/not a v1 ciphertext/);
  });

  it("rotates: old keys still decrypt, new writes use the first key", () => {
    const oldKey = key();
    const newKey = key();
    const oldRing = parseKeyRing(oldKey);
    const ct = encryptToken(oldRing, "refresh_token", 3, "old-secret");
    const rotated = parseKeyRing(`${newKey},${oldKey}`);
    expect(decryptToken(rotated, "refresh_token", 3, ct)).toBe("old-secret");
    const fresh = encryptToken(rotated, "refresh_token", 3, "new-secret");
    expect(keyIdOfCiphertext(fresh)).toBe(rotated.activeKeyId);
    expect(keyIdOfCiphertext(fresh)).not.toBe(oldRing.activeKeyId);
  });

  it("refuses missing, non-base64 and wrong-length keys with a clear message", () => {
    expect(() => parseKeyRing(undefined)).toThrow(TokenKeyError);
    expect(() => parseKeyRing("")).toThrow(/not set/);
    expect(() => parseKeyRing("not base64!!")).toThrow(/not base64/);
    expect(() => parseKeyRing(randomBytes(16).toString("base64"))).toThrow(/decodes to 16 bytes; it must be 32/);
    expect(() => parseKeyRing(`${key()},${randomBytes(31).toString("base64")}`)).toThrow(/entry 2/);
  });
});

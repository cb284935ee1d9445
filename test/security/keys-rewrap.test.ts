// Key rotation: with the new key first and the old one after it, `keys rewrap` re-encrypts every
// stored token under the new key, so the old key can be dropped; a second run changes nothing.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decryptToken, keyIdOfCiphertext, parseKeyRing } from "../../src/token-crypto.ts";
import { runCli } from "../helpers/cli.ts";
import { connectTestAccount, type Harness, startHarness } from "../sync/harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: ["rotate@example.com"], messages: 1, seed: 2, attachments: false } });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

it("re-encrypts every token under the first key; the old key can then go", { timeout: 60_000 }, async () => {
  const id = await connectTestAccount(h, "rotate@example.com");
  const oldKey = h.env.TOKEN_ENCRYPTION_KEY as string;
  const newKey = randomBytes(32).toString("base64");
  const stored = async () =>
    await h.app.db
      .selectFrom("accounts")
      .select(["refresh_token_encrypted", "token_key_id"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
  const before = await stored();
  const plaintext = decryptToken(parseKeyRing(oldKey), "refresh_token", id, before.refresh_token_encrypted as string);
  const onlyNew = parseKeyRing(newKey);
  expect(() => decryptToken(onlyNew, "refresh_token", id, before.refresh_token_encrypted as string)).toThrow(
    /not in TOKEN_ENCRYPTION_KEY/,
  );

  const r = await runCli(["keys", "rewrap", "--json"], { ...h.env, TOKEN_ENCRYPTION_KEY: `${newKey},${oldKey}` });
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout.trim().split("\n").pop() as string)).toMatchObject({
    accounts: 1,
    rewrapped: 1,
    alreadyCurrent: 0,
  });
  const after = await stored();
  expect(keyIdOfCiphertext(after.refresh_token_encrypted as string)).toBe(onlyNew.activeKeyId);
  expect(after.token_key_id).toBe(onlyNew.activeKeyId);
  expect(decryptToken(onlyNew, "refresh_token", id, after.refresh_token_encrypted as string)).toBe(plaintext);

  const again = await runCli(["keys", "rewrap", "--json"], { ...h.env, TOKEN_ENCRYPTION_KEY: `${newKey},${oldKey}` });
  expect(JSON.parse(again.stdout.trim().split("\n").pop() as string)).toMatchObject({
    rewrapped: 0,
    alreadyCurrent: 1,
  });
});

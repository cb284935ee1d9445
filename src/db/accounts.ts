// Account rows: lookup, the connect upsert, token saves with compare-and-set, and status changes.
// Tokens arrive here already encrypted (src/token-crypto.ts); this file never sees plaintext.
import { sql } from "kysely";
import type { AccountStatus, Db } from "./database.ts";

export interface AccountRow {
  id: number;
  email: string;
  status: AccountStatus;
  status_reason: string | null;
  scopes: string[];
  refresh_token_encrypted: string | null;
  access_token_encrypted: string | null;
  access_token_expires_at: Date | null;
  token_key_id: string | null;
  created_at: Date;
  updated_at: Date;
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export async function findAccountByEmail(db: Db, email: string): Promise<AccountRow | undefined> {
  return db.selectFrom("accounts").selectAll().where("email", "=", normalizeEmail(email)).executeTakeFirst();
}

export async function getAccount(db: Db, id: number): Promise<AccountRow | undefined> {
  return db.selectFrom("accounts").selectAll().where("id", "=", id).executeTakeFirst();
}

export async function listAccounts(db: Db, filter: { status?: AccountStatus | AccountStatus[] } = {}): Promise<AccountRow[]> {
  let q = db.selectFrom("accounts").selectAll().orderBy("id");
  if (filter.status !== undefined) {
    const statuses = Array.isArray(filter.status) ? filter.status : [filter.status];
    q = q.where("status", "in", statuses);
  }
  return q.execute();
}

export interface ConnectedAccount {
  email: string;
  scopes: string[];
  /** Encrypts for the row's id (the AAD binds a ciphertext to its account). */
  encrypt: (accountId: number) => {
    refreshTokenEncrypted: string | null;
    accessTokenEncrypted: string | null;
    keyId: string;
  };
  accessTokenExpiresAt: Date | null;
}

/**
 * Inserts or reconnects an account: status active, tokens replaced. The row id must exist before
 * the tokens can be encrypted (their associated data names it), so this runs in one transaction:
 * upsert the row, then write the ciphertexts. A reconnect without a new refresh token (Google
 * issues one only on consent) keeps the stored one.
 */
export async function upsertConnectedAccount(db: Db, a: ConnectedAccount): Promise<AccountRow> {
  return db.transaction().execute(async (trx) => {
    const email = normalizeEmail(a.email);
    const row = await trx
      .insertInto("accounts")
      .values({ email, status: "active", scopes: a.scopes })
      .onConflict((oc) => oc.column("email").doUpdateSet({ status: "active", status_reason: null, scopes: a.scopes, updated_at: sql`now()` }))
      .returning(["id"])
      .executeTakeFirstOrThrow();
    const enc = a.encrypt(row.id);
    const update: Record<string, unknown> = {
      access_token_encrypted: enc.accessTokenEncrypted,
      access_token_expires_at: a.accessTokenExpiresAt,
      token_key_id: enc.keyId,
      updated_at: sql`now()`,
    };
    if (enc.refreshTokenEncrypted !== null) update.refresh_token_encrypted = enc.refreshTokenEncrypted;
    return trx.updateTable("accounts").set(update).where("id", "=", row.id).returningAll().executeTakeFirstOrThrow();
  });
}

/**
 * Saves a refreshed access token only if no newer one was saved meanwhile: the write succeeds when
 * the stored expiry is still the one this refresher started from, or older than the new one.
 * Returns false when another refresher already stored a token that lives longer.
 */
export async function saveAccessToken(
  db: Db,
  args: { accountId: number; accessTokenEncrypted: string; expiresAt: Date; keyId: string; previousExpiresAt: Date | null; refreshTokenEncrypted?: string },
): Promise<boolean> {
  const set: Record<string, unknown> = {
    access_token_encrypted: args.accessTokenEncrypted,
    access_token_expires_at: args.expiresAt,
    token_key_id: args.keyId,
    updated_at: sql`now()`,
  };
  if (args.refreshTokenEncrypted !== undefined) set.refresh_token_encrypted = args.refreshTokenEncrypted;
  const res = await db
    .updateTable("accounts")
    .set(set)
    .where("id", "=", args.accountId)
    .where("status", "=", "active")
    .where((eb) =>
      eb.or([
        eb("access_token_expires_at", "is", null),
        eb("access_token_expires_at", "<", args.expiresAt),
        args.previousExpiresAt === null ? eb.val(false) : eb("access_token_expires_at", "=", args.previousExpiresAt),
      ]),
    )
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** The refresh token no longer works (revoked, expired, scope missing): stop using the account. */
export async function markReauthRequired(db: Db, accountId: number, reason: string): Promise<boolean> {
  const res = await db
    .updateTable("accounts")
    .set({ status: "reauth_required", status_reason: reason, access_token_encrypted: null, access_token_expires_at: null, updated_at: sql`now()` })
    .where("id", "=", accountId)
    .where("status", "=", "active")
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function setAccountStatus(db: Db, id: number, status: AccountStatus, reason?: string): Promise<void> {
  await db
    .updateTable("accounts")
    .set({ status, status_reason: reason ?? null, updated_at: sql`now()` })
    .where("id", "=", id)
    .execute();
}

export interface StoredTokens {
  id: number;
  email: string;
  refreshTokenEncrypted: string | null;
  accessTokenEncrypted: string | null;
}

/** Every account holding an encrypted token (for re-encryption under a new key). */
export async function accountsWithTokens(db: Db): Promise<StoredTokens[]> {
  const rows = await db
    .selectFrom("accounts")
    .select(["id", "email", "refresh_token_encrypted", "access_token_encrypted"])
    .where((eb) => eb.or([eb("refresh_token_encrypted", "is not", null), eb("access_token_encrypted", "is not", null)]))
    .orderBy("id")
    .execute();
  return rows.map((r) => ({ id: r.id, email: r.email, refreshTokenEncrypted: r.refresh_token_encrypted, accessTokenEncrypted: r.access_token_encrypted }));
}

/**
 * Replaces an account's ciphertexts if they are still the ones read (compare-and-set: a token
 * refresh saved meanwhile wins, and is already under the active key). Returns whether it replaced.
 */
export async function replaceTokenCiphertexts(db: Db, before: StoredTokens, after: { refresh: string | null; access: string | null; keyId: string }): Promise<boolean> {
  const r = await db
    .updateTable("accounts")
    .set({ refresh_token_encrypted: after.refresh, access_token_encrypted: after.access, token_key_id: after.keyId, updated_at: sql`now()` })
    .where("id", "=", before.id)
    .where(sql<boolean>`refresh_token_encrypted IS NOT DISTINCT FROM ${before.refreshTokenEncrypted}`)
    .where(sql<boolean>`access_token_encrypted IS NOT DISTINCT FROM ${before.accessTokenEncrypted}`)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

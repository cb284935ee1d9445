// Account rows: lookup, the connect upsert, token saves with compare-and-set, status changes,
// disconnect and deletion.
// Tokens arrive here already encrypted (src/token-crypto.ts); this file never sees plaintext.
import { type Selectable, sql } from "kysely";
import { appendChanges, inTransaction } from "./changes.ts";
import type { AccountStatus, AccountsTable, Db, Executor } from "./database.ts";

export type AccountRow = Selectable<AccountsTable>;

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export async function findAccountByEmail(db: Executor, email: string): Promise<AccountRow | undefined> {
  return db.selectFrom("accounts").selectAll().where("email", "=", normalizeEmail(email)).executeTakeFirst();
}

/** The id of the account stored under exactly `email` (no normalising: the caller decides). */
export async function findAccountIdByEmail(db: Executor, email: string): Promise<number | undefined> {
  const row = await db.selectFrom("accounts").select("id").where("email", "=", email).executeTakeFirst();
  return row?.id;
}

/** Ids of the accounts stored under these exact addresses. */
export async function findAccountIdsByEmail(
  db: Executor,
  emails: readonly string[],
): Promise<Array<Pick<AccountRow, "id" | "email">>> {
  return db.selectFrom("accounts").select(["id", "email"]).where("email", "in", emails).execute();
}

export async function getAccount(db: Executor, id: number): Promise<AccountRow | undefined> {
  return db.selectFrom("accounts").selectAll().where("id", "=", id).executeTakeFirst();
}

/** Just what deciding whether to talk to Gmail for the account needs (no token columns). */
export async function getAccountEmailAndStatus(
  db: Executor,
  id: number,
): Promise<Pick<AccountRow, "id" | "email" | "status"> | undefined> {
  return db.selectFrom("accounts").select(["id", "email", "status"]).where("id", "=", id).executeTakeFirst();
}

export async function listAccounts(
  db: Executor,
  filter: { status?: AccountStatus | AccountStatus[] } = {},
): Promise<AccountRow[]> {
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
 * issues one only on consent) keeps the stored one. A new account, or one that was not active,
 * is an account.status_changed in the change feed (reason connected / reconnected).
 */
export async function upsertConnectedAccount(db: Db, a: ConnectedAccount): Promise<AccountRow> {
  return db.transaction().execute(async (trx) => {
    const email = normalizeEmail(a.email);
    const before = await trx
      .selectFrom("accounts")
      .select("status")
      .where("email", "=", email)
      .forUpdate()
      .executeTakeFirst();
    const row = await trx
      .insertInto("accounts")
      .values({ email, status: "active", scopes: a.scopes })
      .onConflict((oc) =>
        oc
          .column("email")
          .doUpdateSet({ status: "active", status_reason: null, scopes: a.scopes, updated_at: sql`now()` }),
      )
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
    const saved = await trx
      .updateTable("accounts")
      .set(update)
      .where("id", "=", row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (before?.status !== "active")
      await appendChanges(trx, [
        {
          accountId: row.id,
          kind: "account.status_changed",
          historic: false,
          status: "active",
          reason: before === undefined ? "connected" : "reconnected",
        },
      ]);
    return saved;
  });
}

/**
 * Saves a refreshed access token only if no newer one was saved meanwhile: the write succeeds when
 * the stored expiry is still the one this refresher started from, or older than the new one.
 * Returns false when another refresher already stored a token that lives longer.
 */
export async function saveAccessToken(
  db: Executor,
  args: {
    accountId: number;
    accessTokenEncrypted: string;
    expiresAt: Date;
    keyId: string;
    previousExpiresAt: Date | null;
    refreshTokenEncrypted?: string;
  },
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

/**
 * The refresh token no longer works (revoked, expired, scope missing): stop using the account.
 * The first caller to see it (the worker, a token refresh) changes the status, and reports
 * account.status_changed to the change feed in the same transaction; later callers change nothing.
 */
export async function markReauthRequired(db: Executor, accountId: number, reason: string): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    const res = await trx
      .updateTable("accounts")
      .set({
        status: "reauth_required",
        status_reason: reason,
        access_token_encrypted: null,
        access_token_expires_at: null,
        updated_at: sql`now()`,
      })
      .where("id", "=", accountId)
      .where("status", "=", "active")
      .executeTakeFirst();
    const changed = Number(res.numUpdatedRows) === 1;
    if (changed)
      await appendChanges(trx, [
        { accountId, kind: "account.status_changed", historic: false, status: "reauth_required", reason },
      ]);
    return changed;
  });
}

/** Sets the status (and its reason); a status that really changed is an account.status_changed in the feed. */
export async function setAccountStatus(
  db: Executor,
  id: number,
  status: AccountStatus,
  reason?: string,
): Promise<void> {
  await inTransaction(db, async (trx) => {
    const before = await trx
      .selectFrom("accounts")
      .select("status")
      .where("id", "=", id)
      .forUpdate()
      .executeTakeFirst();
    await trx
      .updateTable("accounts")
      .set({ status, status_reason: reason ?? null, updated_at: sql`now()` })
      .where("id", "=", id)
      .execute();
    if (before !== undefined && before.status !== status)
      await appendChanges(trx, [
        { accountId: id, kind: "account.status_changed", historic: false, status, reason: reason ?? null },
      ]);
  });
}

export interface StoredTokens {
  id: number;
  email: string;
  refreshTokenEncrypted: string | null;
  accessTokenEncrypted: string | null;
}

/** Every account holding an encrypted token (for re-encryption under a new key). */
export async function accountsWithTokens(db: Executor): Promise<StoredTokens[]> {
  const rows = await db
    .selectFrom("accounts")
    .select(["id", "email", "refresh_token_encrypted", "access_token_encrypted"])
    .where((eb) => eb.or([eb("refresh_token_encrypted", "is not", null), eb("access_token_encrypted", "is not", null)]))
    .orderBy("id")
    .execute();
  return rows.map((r) => ({
    id: r.id,
    email: r.email,
    refreshTokenEncrypted: r.refresh_token_encrypted,
    accessTokenEncrypted: r.access_token_encrypted,
  }));
}

/**
 * Replaces an account's ciphertexts if they are still the ones read (compare-and-set: a token
 * refresh saved meanwhile wins, and is already under the active key). Returns whether it replaced.
 */
export async function replaceTokenCiphertexts(
  db: Executor,
  before: StoredTokens,
  after: { refresh: string | null; access: string | null; keyId: string },
): Promise<boolean> {
  const r = await db
    .updateTable("accounts")
    .set({
      refresh_token_encrypted: after.refresh,
      access_token_encrypted: after.access,
      token_key_id: after.keyId,
      updated_at: sql`now()`,
    })
    .where("id", "=", before.id)
    .where(sql<boolean>`refresh_token_encrypted IS NOT DISTINCT FROM ${before.refreshTokenEncrypted}`)
    .where(sql<boolean>`access_token_encrypted IS NOT DISTINCT FROM ${before.accessTokenEncrypted}`)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * `disconnect`: the account stays (its mail is kept) but is disabled, its tokens forgotten, and its
 * watch with them — both rows in one transaction, so no sync sees tokens gone but a watch kept;
 * an account that was not disabled yet is an account.status_changed in the change feed.
 */
export async function disconnectAccount(db: Db, accountId: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const before = await trx
      .selectFrom("accounts")
      .select("status")
      .where("id", "=", accountId)
      .forUpdate()
      .executeTakeFirst();
    await trx
      .updateTable("accounts")
      .set({
        status: "disabled",
        status_reason: "disconnected",
        refresh_token_encrypted: null,
        access_token_encrypted: null,
        access_token_expires_at: null,
        updated_at: sql`now()`,
      })
      .where("id", "=", accountId)
      .execute();
    await trx
      .updateTable("sync_state")
      .set({ watch_expiration: null, watch_history_id: null, updated_at: sql`now()` })
      .where("account_id", "=", accountId)
      .execute();
    if (before !== undefined && before.status !== "disabled")
      await appendChanges(trx, [
        { accountId, kind: "account.status_changed", historic: false, status: "disabled", reason: "disconnected" },
      ]);
  });
}

/**
 * Deletes the account; its sync state, messages, attachments and ledger rows go with it (ON DELETE
 * CASCADE). The change feed keeps its changes and gets a last one: status `purged` (consumers drop
 * what they hold of it).
 */
export async function deleteAccount(db: Executor, accountId: number): Promise<void> {
  await inTransaction(db, async (trx) => {
    const gone = await trx.deleteFrom("accounts").where("id", "=", accountId).executeTakeFirst();
    if (Number(gone.numDeletedRows) === 1)
      await appendChanges(trx, [
        { accountId, kind: "account.status_changed", historic: false, status: "purged", reason: "purged" },
      ]);
  });
}

/** Deletes the accounts stored under these exact addresses, with everything they own. */
export async function deleteAccountsByEmail(db: Executor, emails: readonly string[]): Promise<void> {
  await db.deleteFrom("accounts").where("email", "in", emails).execute();
}

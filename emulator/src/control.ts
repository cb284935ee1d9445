// The emulator's own control API (JSON, under {origin}/emulator, never under Gmail's paths) and
// a thin HTTP client for it, so tests, the demo, worker child processes and benchmarks drive the
// emulator the same way.
import type { FastifyInstance } from "fastify";
import { plainBodyText } from "./body-text.ts";
import { attachmentsOf } from "./format.ts";
import type { Mailbox, StoredMessage } from "./mailbox.ts";
import { DEFAULT_SETTINGS, type EmulatorState, type Settings } from "./state.ts";
import type { EmulatorStats } from "./stats.ts";

export interface DeliverRequest {
  raw?: Buffer | string;
  labelIds?: string[];
  /** When Gmail accepted it (ms since epoch; default now): sets list order and after:/before:. */
  internalDate?: number;
  /** For a generated message (no raw): true → one attachment, false → none, unset → the seed decides (~20%). */
  attachments?: boolean;
}

export interface MailboxSnapshot {
  historyId: string;
  messages: Array<{
    id: string;
    threadId: string;
    labelIds: string[];
    attachments: Array<{ partId: string; filename: string | null; size: number }>;
    /** With `{ bodies: true }`: the message's own text/plain body as its sender wrote it — decoded by its declared charset, mislabelled UTF-8 as UTF-8 (body-text.ts; null: none). */
    bodyText?: string | null;
  }>;
}

export type SettingsUpdate = Partial<Settings>;

/** One label change for many messages: pick them by `ids`, by `labelIds` (messages having all of them) or `all`. */
export interface BulkLabelChange {
  add?: string[];
  remove?: string[];
  ids?: string[];
  labelIds?: string[];
  all?: boolean;
}

export interface EmulatorControl {
  deliver(email: string, msg?: DeliverRequest): Promise<{ id: string; threadId: string; historyId: string }>;
  deleteMessage(email: string, id: string): Promise<void>;
  modifyLabels(email: string, id: string, change: { add?: string[]; remove?: string[] }): Promise<void>;
  /** Applies one label change to many messages at once (a bulk "mark all read"); history records cover up to 1000 messages each. */
  bulkModifyLabels(email: string, change: BulkLabelChange): Promise<{ historyId: string; changed: number }>;
  /** Saves a draft again as Gmail does: a new message id (same thread, DRAFT kept) is added and the old one deleted. `raw` replaces the content (default: unchanged). */
  editDraft(
    email: string,
    id: string,
    raw?: Buffer | string,
  ): Promise<{ id: string; threadId: string; historyId: string }>;
  /** messages.get of this id (plain or in a batch) answers `status` (Gmail's envelope; 500 = backendError), `times` times or always; status 0 clears. */
  failMessage(
    email: string,
    id: string,
    opts: { status: number; times?: number; target?: "get" | "attachments" },
  ): Promise<void>;
  expireHistory(email: string): Promise<void>;
  revoke(email: string): Promise<void>;
  updateSettings(s: SettingsUpdate): Promise<void>;
  stats(): Promise<EmulatorStats>;
  /** Ground truth for equality assertions: live messages (id, threadId, labelIds, attachment partIds with size) and current historyId. */
  mailbox(email: string, opts?: { bodies?: boolean }): Promise<MailboxSnapshot>;
  /** Successful messages.get answers (plain or batch part) per message id of the account: a sync that fetches a message twice shows here. */
  messageGets(email: string): Promise<Record<string, number>>;
  /** Mints a refresh token for an account without the consent flow (tests that do not exercise OAuth). */
  issueRefreshToken(email: string, scopes?: string[]): Promise<string>;
}

export const DEFAULT_TEST_SCOPES = ["https://www.googleapis.com/auth/gmail.readonly"];

/** Produces a message for a delivery with no raw body (the seeded generator). */
export type MessageSource = (email: string, attachments?: boolean) => Promise<{ raw: Buffer; labelIds: string[] }>;

export function registerControlRoutes(
  app: FastifyInstance,
  state: EmulatorState,
  source: MessageSource,
  applySettings: (s: SettingsUpdate) => void,
): void {
  const mailboxOf = (email: string): Mailbox | undefined => state.mailboxes.get(email.toLowerCase());
  const notFound = { error: "no such mailbox or message" };

  app.post("/emulator/users/:email/messages", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    const body = (req.body ?? {}) as {
      raw?: string;
      labelIds?: string[];
      internalDate?: number;
      attachments?: boolean;
    };
    if (body.internalDate !== undefined && (!Number.isInteger(body.internalDate) || body.internalDate < 0))
      return reply.code(400).send({ error: "internalDate must be epoch milliseconds" });
    if (body.raw !== undefined && (typeof body.raw !== "string" || !/^[A-Za-z0-9_+/=-]*$/.test(body.raw)))
      return reply.code(400).send({ error: "raw must be base64url" });
    const generated =
      body.raw === undefined
        ? await source(mb.email, typeof body.attachments === "boolean" ? body.attachments : undefined)
        : undefined;
    const raw = body.raw !== undefined ? Buffer.from(body.raw, "base64url") : (generated?.raw as Buffer);
    const labelIds = body.labelIds ?? generated?.labelIds ?? ["INBOX", "UNREAD"];
    const msg = mb.insert(raw, labelIds, body.internalDate ?? Date.now(), true);
    return { id: msg.id, threadId: msg.threadId, historyId: String(msg.historyId) };
  });

  app.delete("/emulator/users/:email/messages/:id", async (req, reply) => {
    const { email, id } = req.params as { email: string; id: string };
    const mb = mailboxOf(email);
    if (!mb?.delete(id)) return reply.code(404).send(notFound);
    return reply.code(204).send();
  });

  app.post("/emulator/users/:email/messages/:id/labels", async (req, reply) => {
    const { email, id } = req.params as { email: string; id: string };
    const body = (req.body ?? {}) as { add?: string[]; remove?: string[] };
    const mb = mailboxOf(email);
    if (!mb?.modifyLabels(id, body.add ?? [], body.remove ?? [])) return reply.code(404).send(notFound);
    return { historyId: String(mb.historyId) };
  });

  app.post("/emulator/users/:email/labels/bulk", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    const body = (req.body ?? {}) as BulkLabelChange;
    const strings = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((x) => typeof x === "string"));
    if (!strings(body.add) || !strings(body.remove) || !strings(body.ids) || !strings(body.labelIds))
      return reply.code(400).send({ error: "add, remove, ids and labelIds must be lists of strings" });
    const pickers = [body.ids !== undefined, body.labelIds !== undefined, body.all === true].filter(Boolean).length;
    if (pickers !== 1) return reply.code(400).send({ error: "give exactly one of ids, labelIds or all: true" });
    let targets: Iterable<StoredMessage>;
    if (body.ids !== undefined) {
      targets = body.ids
        .map((id) => mb.messages.get(id.toLowerCase().padStart(16, "0")))
        .filter((m): m is StoredMessage => m !== undefined);
    } else if (body.labelIds !== undefined) {
      const wanted = body.labelIds.map((l) => mb.findLabel(l)?.id ?? `\u0000${l}`);
      targets = mb.sortedMessages().filter((m) => wanted.every((l) => m.labelIds.has(l)));
    } else targets = mb.sortedMessages();
    const changed = mb.bulkModify(targets, body.add ?? [], body.remove ?? []);
    return { historyId: String(mb.historyId), changed };
  });

  app.post("/emulator/users/:email/drafts/:id/edit", async (req, reply) => {
    const { email, id } = req.params as { email: string; id: string };
    const mb = mailboxOf(email);
    if (!mb) return reply.code(404).send(notFound);
    const body = (req.body ?? {}) as { raw?: unknown };
    if (body.raw !== undefined && (typeof body.raw !== "string" || !/^[A-Za-z0-9_+/=-]*$/.test(body.raw)))
      return reply.code(400).send({ error: "raw must be base64url" });
    const old = mb.messages.get(id.toLowerCase().padStart(16, "0"));
    if (!old) return reply.code(404).send(notFound);
    const msg = mb.replaceDraft(
      old.id,
      body.raw !== undefined ? Buffer.from(body.raw as string, "base64url") : undefined,
      Date.now(),
    );
    if (!msg) return reply.code(400).send({ error: "that message is not a draft (no DRAFT label)" });
    return { id: msg.id, threadId: msg.threadId, historyId: String(msg.historyId) };
  });

  app.post("/emulator/users/:email/messages/:id/fail", async (req, reply) => {
    const { email, id } = req.params as { email: string; id: string };
    const body = (req.body ?? {}) as { status?: unknown; times?: unknown; target?: unknown };
    const mb = mailboxOf(email);
    if (!mb || !/^[0-9a-fA-F]{1,16}$/.test(id)) return reply.code(404).send(notFound);
    if (
      typeof body.status !== "number" ||
      !(body.status === 0 || (Number.isInteger(body.status) && body.status >= 400 && body.status <= 599))
    )
      return reply.code(400).send({ error: "status must be 0 (clear) or an HTTP error status 400-599" });
    if (body.times !== undefined && (typeof body.times !== "number" || !Number.isInteger(body.times) || body.times < 0))
      return reply.code(400).send({ error: "times must be a non-negative integer" });
    if (body.target !== undefined && body.target !== "get" && body.target !== "attachments")
      return reply.code(400).send({ error: 'target must be "get" or "attachments"' });
    // The id may name a message not delivered yet; it is matched in Gmail's 16-digit form.
    state.messageFailures.set(
      mb.email,
      id.toLowerCase().padStart(16, "0"),
      body.status,
      body.times as number | undefined,
      body.target ?? "get",
    );
    return {};
  });

  app.post("/emulator/users/:email/history/expire", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    mb.expireHistory();
    return { historyId: String(mb.historyId) };
  });

  app.post("/emulator/users/:email/revoke", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    state.tokens.revoke(mb.email);
    return {};
  });

  app.post("/emulator/users/:email/refresh-tokens", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    const scopes = ((req.body ?? {}) as { scopes?: string[] }).scopes ?? DEFAULT_TEST_SCOPES;
    return { refreshToken: state.tokens.issueRefreshToken(mb.email, scopes) };
  });

  app.get("/emulator/users/:email/mailbox", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    // ?bodies=true adds each message's own text/plain body as its sender wrote it (costly: opt-in).
    const bodies = (req.query as { bodies?: string }).bodies === "true";
    const snapshot: MailboxSnapshot = {
      historyId: String(mb.historyId),
      messages: mb.sortedMessages().map((m) => ({
        id: m.id,
        threadId: m.threadId,
        labelIds: [...m.labelIds],
        attachments: attachmentsOf(mb, m, state.attachmentIds),
        ...(bodies ? { bodyText: plainBodyText(mb, m) } : {}),
      })),
    };
    return snapshot;
  });

  app.get("/emulator/users/:email/message-gets", async (req, reply) => {
    const mb = mailboxOf((req.params as { email: string }).email);
    if (!mb) return reply.code(404).send(notFound);
    return state.stats.messageGets(mb.email);
  });

  app.put("/emulator/settings", async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const problem = settingsProblem(body);
    if (problem) return reply.code(400).send({ error: problem });
    applySettings(body as SettingsUpdate);
    return publicSettings(state.settings);
  });

  app.get("/emulator/settings", async () => publicSettings(state.settings));

  app.get("/emulator/stats", async () => ({
    ...state.stats.snapshot(state.quota.spent),
    injectedFailures: state.messageFailures.snapshot(),
  }));
}

const CHOICES: Partial<Record<keyof Settings, readonly unknown[]>> = {
  quotaErrorForms: ["gmail", "retry-after"],
  quotaErrorStatus: [429, 403],
  batchFailureStatus: [404, 502],
};
const RATES = new Set<keyof Settings>([
  "faultRate",
  "pushDropRate",
  "pushDuplicateRate",
  "historyMessagesOnlyRate",
  "addedNotFoundRate",
  "batchFailureRate",
]);

/** Checks a settings update against the defaults' types; returns what is wrong, or undefined. */
export function settingsProblem(body: Record<string, unknown>): string | undefined {
  for (const [k, v] of Object.entries(body)) {
    if (v === undefined) continue;
    if (!(k in DEFAULT_SETTINGS)) return `unknown setting ${k}`;
    const key = k as keyof Settings;
    const dflt = DEFAULT_SETTINGS[key];
    const choices = CHOICES[key];
    if (choices) {
      if (!choices.includes(v)) return `${k} must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`;
    } else if (key === "pushEndpoint" || key === "pushAudience") {
      if (v !== null && typeof v !== "string") return `${k} must be a string or null`;
    } else if (Array.isArray(dflt)) {
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) return `${k} must be a list of strings`;
    } else if (typeof dflt === "boolean") {
      if (typeof v !== "boolean") return `${k} must be true or false`;
    } else if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (RATES.has(key) && v > 1)) {
      return RATES.has(key) ? `${k} must be between 0 and 1` : `${k} must be a non-negative number`;
    }
  }
  return undefined;
}

function publicSettings(s: Settings): Settings {
  return { ...s };
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: body !== undefined ? { "content-type": "application/json" } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`emulator control ${method} ${url}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A control handle over HTTP for any process that knows the control URL. */
export function createControlClient(controlUrl: string): EmulatorControl {
  const base = controlUrl.replace(/\/$/, "");
  const user = (email: string) => `${base}/users/${encodeURIComponent(email)}`;
  return {
    deliver: (email, msg = {}) =>
      call("POST", `${user(email)}/messages`, {
        ...(msg.raw !== undefined ? { raw: Buffer.isBuffer(msg.raw) ? msg.raw.toString("base64url") : msg.raw } : {}),
        ...(msg.labelIds ? { labelIds: msg.labelIds } : {}),
        ...(msg.internalDate !== undefined ? { internalDate: msg.internalDate } : {}),
        ...(msg.attachments !== undefined ? { attachments: msg.attachments } : {}),
      }),
    deleteMessage: async (email, id) =>
      void (await call("DELETE", `${user(email)}/messages/${encodeURIComponent(id)}`)),
    modifyLabels: async (email, id, change) =>
      void (await call("POST", `${user(email)}/messages/${encodeURIComponent(id)}/labels`, change)),
    bulkModifyLabels: (email, change) => call("POST", `${user(email)}/labels/bulk`, change),
    editDraft: (email, id, raw) =>
      call(
        "POST",
        `${user(email)}/drafts/${encodeURIComponent(id)}/edit`,
        raw !== undefined ? { raw: Buffer.isBuffer(raw) ? raw.toString("base64url") : raw } : {},
      ),
    failMessage: async (email, id, opts) =>
      void (await call("POST", `${user(email)}/messages/${encodeURIComponent(id)}/fail`, opts)),
    expireHistory: async (email) => void (await call("POST", `${user(email)}/history/expire`, {})),
    revoke: async (email) => void (await call("POST", `${user(email)}/revoke`, {})),
    updateSettings: async (s) => void (await call("PUT", `${base}/settings`, s)),
    stats: () => call("GET", `${base}/stats`),
    mailbox: (email, opts) => call("GET", `${user(email)}/mailbox${opts?.bodies ? "?bodies=true" : ""}`),
    messageGets: (email) => call("GET", `${user(email)}/message-gets`),
    issueRefreshToken: async (email, scopes) =>
      (await call<{ refreshToken: string }>("POST", `${user(email)}/refresh-tokens`, scopes ? { scopes } : {}))
        .refreshToken,
  };
}

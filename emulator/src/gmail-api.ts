// Gmail API v1 routes at the origin root (/gmail/v1/users/{userId}/…), each passing through the
// same gate Gmail applies: latency, injected faults, Bearer token, userId ("me" or the address),
// scope, per-user quota charge and concurrency cap. Batch parts are dispatched into these same
// routes (src/batch.ts), so each part is authenticated and charged on its own.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { answersNotFoundYet } from "./added-race.ts";
import { ApiError, errors } from "./errors.ts";
import {
  attachmentsOf,
  base64urlPadded,
  messageJsonText,
  messageSummary,
  partBytes,
  RawJson,
  threadJsonText,
  type MessageFormat,
} from "./format.ts";
import { HISTORY_TYPES, historyPage } from "./history-list.ts";
import { HIDDEN_SYSTEM_LABELS, type HistoryType, type LabelDef, type Mailbox, type StoredMessage } from "./mailbox.ts";
import { gmailJson, wantsPretty } from "./json.ts";
import { GMAIL_SCOPES, type AccessSession } from "./oauth.ts";
import { compileQuery, resultSizeEstimate } from "./query.ts";
import { METHOD_COST } from "./quota.ts";
import type { EmulatorState } from "./state.ts";

const READ_SCOPES = [GMAIL_SCOPES.full, GMAIL_SCOPES.modify, GMAIL_SCOPES.readonly, GMAIL_SCOPES.metadata];
const WRITE_SCOPES = [GMAIL_SCOPES.full, GMAIL_SCOPES.modify];

export const INNER_HEADER = "x-emulator-batch-part";

interface Ctx {
  mailbox: Mailbox;
  session: AccessSession;
  query: Record<string, string | string[] | undefined>;
  params: Record<string, string>;
  body: unknown;
  /** Token carries gmail.metadata: q and format full/raw are refused, even alongside readonly. */
  metadataOnly: boolean;
  /** Answer JSON pretty-printed as Gmail's (settings.prettyJson, unless the request says prettyPrint=false). */
  pretty: boolean;
}

type Handler = (ctx: Ctx) => unknown;

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[v.length - 1] : v;
}

function many(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function boolParam(v: string | string[] | undefined): boolean {
  return one(v) === "true" || one(v) === "1";
}

function maxResults(v: string | string[] | undefined, dflt: number): number {
  const s = one(v);
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw errors.badRequest(`Invalid value for maxResults: ${s}`, "maxResults");
  // Gmail caps at 500 silently; 0 behaves as the default.
  return n === 0 ? dflt : Math.min(n, 500);
}

/** Message/thread ids: hex below 2^63, else 400 "Invalid id value". */
export function normalizeId(id: string): string {
  if (!/^[0-9a-fA-F]{1,16}$/.test(id) || BigInt(`0x${id}`) >= 1n << 63n) throw errors.invalidId();
  return id.toLowerCase().padStart(16, "0");
}

function encodeToken(s: string): string {
  return Buffer.from(s).toString("base64url");
}

function decodeToken(t: string | undefined): string | undefined {
  if (t === undefined || t === "") return undefined;
  const s = Buffer.from(t, "base64url").toString();
  if (!/^[\w:.-]+$/.test(s)) throw errors.badRequest("Invalid pageToken", "pageToken");
  return s;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends Gmail's error envelope (pretty-printed like every Gmail answer unless `pretty` is false). */
export function sendApiError(reply: FastifyReply, err: ApiError, pretty = true): FastifyReply {
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  return reply.code(err.status).type("application/json; charset=UTF-8").send(gmailJson(err.toJSON(), pretty));
}

/** Yields to the event loop once (after pending I/O and microtasks). */
function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export function registerGmailRoutes(app: FastifyInstance, state: EmulatorState): void {
  const { settings } = state;

  const route = (method: "GET" | "POST" | "DELETE", path: string, name: string, scopes: string[], handler: Handler) => {
    const cost = METHOD_COST[name] ?? 5;
    app.route({
      method,
      url: `/gmail/v1/users/:userId${path}`,
      config: { name },
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        const inner = req.headers[INNER_HEADER] === state.innerSecret;
        const q = req.query as Record<string, string | string[] | undefined>;
        const pretty = wantsPretty(settings.prettyJson, q);
        const fail = (err: ApiError) => sendApiError(reply, err, pretty);
        const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? one(q.access_token);
        if (bearer === undefined) return fail(errors.missingCredentials(name));
        const session = state.tokens.session(bearer);
        if (!session) return fail(errors.invalidCredentials());
        const { userId } = req.params as { userId: string };
        if (userId !== "me" && userId.toLowerCase() !== session.email.toLowerCase())
          return fail(errors.delegationDenied(session.email));
        const mailbox = state.mailboxes.get(session.email.toLowerCase());
        if (!mailbox) return fail(errors.invalidCredentials());
        if (!scopes.some((s) => session.scopes.has(s))) return fail(errors.insufficientScope(scopes.join(" "), name));
        let release: () => void = () => {};
        try {
          // The concurrency cap, then the user's and the project's quota windows; a refused request
          // is not charged. An admitted one counts as in flight until answered, latency included.
          release = state.quota.admit(mailbox.email, cost);
          // Gmail fans a batch's parts out at once: every part of a wave takes its place in flight
          // before any of them is answered (src/batch.ts).
          if (inner) await nextTurn();
          if (!inner && settings.latencyMs > 0) await sleep(settings.latencyMs);
          if (settings.faultRate > 0 && state.random.next() < settings.faultRate) {
            const kind = state.random.int(5);
            if (kind === 0 && !inner) {
              // A dropped connection: the client sees a socket reset, no HTTP answer.
              state.stats.count(name, "dropped");
              reply.hijack();
              req.raw.socket.destroy();
              return;
            }
            throw kind <= 2 ? errors.backendError() : errors.unavailable();
          }
          const result = await handler({
            mailbox,
            session,
            query: q,
            params: req.params as Record<string, string>,
            body: req.body,
            metadataOnly: session.scopes.has(GMAIL_SCOPES.metadata),
            pretty,
          });
          if (result === undefined) return reply.code(204).send();
          // RawJson is serialized already (format.ts, honouring ctx.pretty).
          return reply
            .type("application/json; charset=UTF-8")
            .send(result instanceof RawJson ? result.text : gmailJson(result, pretty));
        } catch (err) {
          if (err instanceof ApiError) {
            if (err.refusal) state.stats.countRefusal(err.refusal);
            return fail(err);
          }
          throw err;
        } finally {
          release();
        }
      },
    });
  };

  /** A message just added that still answers 404 (Gmail's post-push race, src/added-race.ts); counted. */
  const racing = (m: StoredMessage): boolean => {
    if (!answersNotFoundYet(settings, state.seed, m)) return false;
    state.stats.countAddedNotFound();
    return true;
  };

  const getMessage = (mailbox: Mailbox, rawId: string): StoredMessage => {
    const msg = mailbox.messages.get(normalizeId(rawId));
    if (!msg) throw errors.notFound();
    return msg;
  };

  const readFormat = (ctx: Ctx, allowed: MessageFormat[]): MessageFormat => {
    const f = (one(ctx.query.format) ?? "full").toLowerCase() as MessageFormat;
    if (!allowed.includes(f)) throw errors.badRequest(`Invalid value at 'format' (${one(ctx.query.format)})`, "format");
    if (ctx.metadataOnly && (f === "full" || f === "raw"))
      throw errors.forbidden(`Metadata scope doesn't allow format ${f.toUpperCase()}`);
    return f;
  };

  /** Messages matching list parameters (labelIds AND, q, includeSpamTrash), newest first. */
  const matching = (ctx: Ctx): StoredMessage[] => {
    const { mailbox } = ctx;
    const q = one(ctx.query.q);
    if (ctx.metadataOnly && q !== undefined) throw errors.forbidden("Metadata scope does not support 'q' parameter");
    const labelIds = many(ctx.query.labelIds).map((l) => mailbox.findLabel(l)?.id ?? `\u0000${l}`);
    const filter = compileQuery(
      mailbox,
      q,
      (m) => attachmentsOf(mailbox, m, state.attachmentIds).length > 0,
      (m) => messageSummary(mailbox, m, state.attachmentIds).snippet,
    );
    const excludeSpamTrash =
      !boolParam(ctx.query.includeSpamTrash) &&
      !filter.mentionsSpamTrash &&
      !labelIds.includes("SPAM") &&
      !labelIds.includes("TRASH");
    return mailbox.sortedMessages().filter((m) => {
      if (excludeSpamTrash && (m.labelIds.has("SPAM") || m.labelIds.has("TRASH"))) return false;
      for (const l of labelIds) if (!m.labelIds.has(l)) return false;
      return q === undefined || filter(m);
    });
  };

  route("GET", "/profile", "gmail.users.getProfile", [...READ_SCOPES, GMAIL_SCOPES.compose], ({ mailbox }) => ({
    emailAddress: mailbox.email,
    messagesTotal: mailbox.messages.size,
    threadsTotal: mailbox.threads.size,
    historyId: String(mailbox.historyId),
  }));

  route("GET", "/labels", "gmail.users.labels.list", [...READ_SCOPES, GMAIL_SCOPES.labels], ({ mailbox }) => ({
    labels: [...mailbox.labels.values()].map(labelJson),
  }));

  route(
    "GET",
    "/labels/:id",
    "gmail.users.labels.get",
    [...READ_SCOPES, GMAIL_SCOPES.labels],
    ({ mailbox, params }) => {
      const l = mailbox.labels.get(params.id as string);
      if (!l) throw errors.notFound();
      const msgs = [...mailbox.messages.values()].filter((m) => m.labelIds.has(l.id));
      const threads = new Set(msgs.map((m) => m.threadId));
      const unreadThreads = new Set(msgs.filter((m) => m.labelIds.has("UNREAD")).map((m) => m.threadId));
      return {
        ...labelJson(l),
        messagesTotal: msgs.length,
        messagesUnread: msgs.filter((m) => m.labelIds.has("UNREAD")).length,
        threadsTotal: threads.size,
        threadsUnread: unreadThreads.size,
      };
    },
  );

  route("GET", "/messages", "gmail.users.messages.list", READ_SCOPES, (ctx) => {
    const all = matching(ctx);
    const limit = maxResults(ctx.query.maxResults, 100);
    const cursor = decodeToken(one(ctx.query.pageToken));
    let start = 0;
    if (cursor !== undefined) {
      const [date, id] = cursor.split(":");
      const d = Number(date);
      start = all.findIndex((m) => m.internalDate < d || (m.internalDate === d && m.id < (id as string)));
      if (start === -1) start = all.length;
    }
    const page = all.slice(start, start + limit);
    const out: Record<string, unknown> = {};
    if (page.length > 0) out.messages = page.map((m) => ({ id: m.id, threadId: m.threadId }));
    const last = page[page.length - 1];
    if (last && start + limit < all.length) out.nextPageToken = encodeToken(`${last.internalDate}:${last.id}`);
    out.resultSizeEstimate = settings.approximateResultSizeEstimate
      ? resultSizeEstimate(all.length, start, limit, one(ctx.query.q))
      : all.length;
    return out;
  });

  route("GET", "/messages/:id", "gmail.users.messages.get", [...READ_SCOPES], (ctx) => {
    const format = readFormat(ctx, ["minimal", "metadata", "full", "raw"]);
    const msg = getMessage(ctx.mailbox, ctx.params.id as string);
    if (racing(msg)) throw errors.notFound();
    const injected = state.messageFailures.take(ctx.mailbox.email, msg.id);
    if (injected) throw injected;
    state.stats.countMessageGet(ctx.mailbox.email, msg.id);
    return messageJsonText(ctx.mailbox, msg, format, state, ctx.pretty, many(ctx.query.metadataHeaders));
  });

  route(
    "GET",
    "/messages/:messageId/attachments/:id",
    "gmail.users.messages.attachments.get",
    [GMAIL_SCOPES.full, GMAIL_SCOPES.modify, GMAIL_SCOPES.readonly],
    (ctx) => {
      const msg = getMessage(ctx.mailbox, ctx.params.messageId as string);
      if (racing(msg)) throw errors.notFound();
      const partId = state.attachmentIds.decode(msg.id, ctx.params.id as string);
      if (partId === undefined) throw errors.badRequest("Invalid attachment token", "id");
      const injected = state.messageFailures.take(ctx.mailbox.email, msg.id, "attachments");
      if (injected) throw injected;
      const data = partBytes(ctx.mailbox, msg, partId);
      if (!data) throw errors.notFound();
      return { size: data.length, data: base64urlPadded(data) };
    },
  );

  /** A modify request's label lists, checked as Gmail checks them (an unknown label, SENT or DRAFT cannot be added). */
  const labelChange = (ctx: Ctx): { add: string[]; remove: string[] } => {
    const body = (ctx.body ?? {}) as { addLabelIds?: unknown; removeLabelIds?: unknown };
    const list = (v: unknown, field: string): string[] => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
        throw errors.badRequest(`Invalid value at '${field}'`, field);
      return v as string[];
    };
    const add = list(body.addLabelIds, "add_label_ids");
    for (const l of add)
      if (!ctx.mailbox.labels.has(l) || l === "SENT" || l === "DRAFT") throw errors.badRequest(`Invalid label: ${l}`);
    return { add, remove: list(body.removeLabelIds, "remove_label_ids") };
  };

  /** The Message Gmail returns from modify and untrash: no payload (messages_modify_response.json, messages_untrash_response.json). */
  const changedMessageJson = (mailbox: Mailbox, m: StoredMessage): Record<string, unknown> => ({
    id: m.id,
    threadId: m.threadId,
    ...(m.labelIds.size > 0 ? { labelIds: [...m.labelIds] } : {}),
    snippet: messageSummary(mailbox, m, state.attachmentIds).snippet,
    sizeEstimate: m.raw.length,
    historyId: String(m.historyId),
    internalDate: String(m.internalDate),
  });

  /** The short form trash answers with: id, threadId, labelIds (messages_trash_response.json, threads_trash_response.json). */
  const trashedMessageJson = (m: StoredMessage): Record<string, unknown> => ({
    id: m.id,
    threadId: m.threadId,
    ...(m.labelIds.size > 0 ? { labelIds: [...m.labelIds] } : {}),
  });

  route("POST", "/messages/:id/modify", "gmail.users.messages.modify", WRITE_SCOPES, (ctx) => {
    const msg = getMessage(ctx.mailbox, ctx.params.id as string);
    const { add, remove } = labelChange(ctx);
    ctx.mailbox.modify([msg], add, remove);
    return changedMessageJson(ctx.mailbox, msg);
  });

  route("POST", "/messages/:id/trash", "gmail.users.messages.trash", WRITE_SCOPES, (ctx) => {
    const msg = getMessage(ctx.mailbox, ctx.params.id as string);
    ctx.mailbox.trash([msg]);
    return trashedMessageJson(msg);
  });

  route("POST", "/messages/:id/untrash", "gmail.users.messages.untrash", WRITE_SCOPES, (ctx) => {
    const msg = getMessage(ctx.mailbox, ctx.params.id as string);
    ctx.mailbox.untrash([msg]);
    return changedMessageJson(ctx.mailbox, msg);
  });

  route("POST", "/messages/batchModify", "gmail.users.messages.batchModify", WRITE_SCOPES, (ctx) => {
    const body = (ctx.body ?? {}) as { ids?: unknown };
    if (!Array.isArray(body.ids) || body.ids.length === 0 || body.ids.some((x) => typeof x !== "string"))
      throw errors.badRequest("ids: at least one message id is required", "ids");
    // The discovery document: "There is a limit of 1000 ids per request."
    if (body.ids.length > 1000) throw errors.badRequest(`Too many ids: ${body.ids.length}, limit 1000`, "ids");
    const { add, remove } = labelChange(ctx);
    // Malformed ids are refused; well-formed ids of no message are skipped (as a bulk change would).
    const ids = [...new Set((body.ids as string[]).map(normalizeId))];
    const msgs = ids.map((id) => ctx.mailbox.messages.get(id)).filter((m): m is StoredMessage => m !== undefined);
    // One record for the whole request, like a thread operation.
    ctx.mailbox.modify(msgs, add, remove);
    return undefined;
  });

  route("DELETE", "/messages/:id", "gmail.users.messages.delete", [GMAIL_SCOPES.full], (ctx) => {
    const msg = getMessage(ctx.mailbox, ctx.params.id as string);
    ctx.mailbox.delete(msg.id);
    return undefined;
  });

  route("GET", "/threads", "gmail.users.threads.list", READ_SCOPES, (ctx) => {
    const msgs = matching(ctx);
    // Threads in the order of their newest matching message.
    const order = [...new Set(msgs.map((m) => m.threadId))];
    const limit = maxResults(ctx.query.maxResults, 100);
    const cursor = decodeToken(one(ctx.query.pageToken));
    let start = cursor !== undefined ? order.indexOf(cursor) + 1 : 0;
    if (cursor !== undefined && start === 0) start = order.length;
    const page = order.slice(start, start + limit);
    const out: Record<string, unknown> = {};
    if (page.length > 0) {
      out.threads = page.map((t) => {
        const members = ctx.mailbox.threadMessages(t);
        const newest = members[members.length - 1] as StoredMessage;
        return {
          id: t,
          snippet: messageSummary(ctx.mailbox, newest, state.attachmentIds).snippet,
          historyId: String(Math.max(...members.map((m) => m.historyId))),
        };
      });
    }
    if (start + limit < order.length) out.nextPageToken = encodeToken(page[page.length - 1] as string);
    out.resultSizeEstimate = settings.approximateResultSizeEstimate
      ? resultSizeEstimate(order.length, start, limit, one(ctx.query.q))
      : order.length;
    return out;
  });

  route("GET", "/threads/:id", "gmail.users.threads.get", READ_SCOPES, (ctx) => {
    const format = readFormat(ctx, ["minimal", "metadata", "full"]);
    const id = normalizeId(ctx.params.id as string);
    // A message still racing is left out of its thread (a thread of only such messages is 404).
    const members = ctx.mailbox.threadMessages(id).filter((m) => !racing(m));
    if (members.length === 0) throw errors.notFound();
    // A message that cannot be served cannot be served inside its thread either.
    for (const m of members) {
      const injected = state.messageFailures.take(ctx.mailbox.email, m.id);
      if (injected) throw injected;
    }
    return threadJsonText(
      ctx.mailbox,
      id,
      members,
      format as Exclude<MessageFormat, "raw">,
      state,
      ctx.pretty,
      many(ctx.query.metadataHeaders),
    );
  });

  const getThread = (ctx: Ctx): { id: string; members: StoredMessage[] } => {
    const id = normalizeId(ctx.params.id as string);
    const members = ctx.mailbox.threadMessages(id);
    if (members.length === 0) throw errors.notFound();
    return { id, members };
  };

  /** threads.modify / threads.untrash answer: the thread with its messages as modify shows them (threads_modify_response.json). */
  const changedThreadJson = (mailbox: Mailbox, id: string, members: StoredMessage[]): Record<string, unknown> => ({
    id,
    historyId: String(Math.max(...members.map((m) => m.historyId))),
    messages: members.map((m) => changedMessageJson(mailbox, m)),
  });

  // Thread operations change every message of the thread in one record per step (history_list_thread_ops.json).
  route("POST", "/threads/:id/modify", "gmail.users.threads.modify", WRITE_SCOPES, (ctx) => {
    const { id, members } = getThread(ctx);
    const { add, remove } = labelChange(ctx);
    ctx.mailbox.modify(members, add, remove);
    return changedThreadJson(ctx.mailbox, id, members);
  });

  route("POST", "/threads/:id/trash", "gmail.users.threads.trash", WRITE_SCOPES, (ctx) => {
    const { id, members } = getThread(ctx);
    ctx.mailbox.trash(members);
    // No historyId, short messages (threads_trash_response.json).
    return { id, messages: members.map(trashedMessageJson) };
  });

  route("POST", "/threads/:id/untrash", "gmail.users.threads.untrash", WRITE_SCOPES, (ctx) => {
    const { id, members } = getThread(ctx);
    ctx.mailbox.untrash(members);
    // Not recorded; shaped like messages.untrash's longer answer (messages_untrash_response.json).
    return changedThreadJson(ctx.mailbox, id, members);
  });

  route("GET", "/history", "gmail.users.history.list", READ_SCOPES, (ctx) => {
    const { mailbox } = ctx;
    const startRaw = one(ctx.query.startHistoryId);
    if (startRaw === undefined || !/^\d{1,20}$/.test(startRaw))
      throw errors.badRequest("Missing/invalid parameter: startHistoryId", "startHistoryId");
    const start = Number(startRaw);
    if (start < mailbox.prune()) throw errors.notFound();
    const types = new Set(many(ctx.query.historyTypes) as HistoryType[]);
    for (const t of types)
      if (!HISTORY_TYPES.includes(t))
        throw errors.badRequest(`Invalid value at 'history_types' (${t})`, "historyTypes");
    const labelId = one(ctx.query.labelId);
    const limit = maxResults(ctx.query.maxResults, 100);
    const cursor = decodeToken(one(ctx.query.pageToken));
    const after = cursor !== undefined ? Math.max(start, Number(cursor)) : start;
    const page = historyPage(mailbox, after, limit, { types, labelId });
    const out: Record<string, unknown> = {};
    if (page.history.length > 0) out.history = page.history;
    if (page.continueAfter !== undefined) out.nextPageToken = encodeToken(String(page.continueAfter));
    out.historyId = String(mailbox.historyId);
    return out;
  });

  route("POST", "/watch", "gmail.users.watch", READ_SCOPES, (ctx) => {
    const body = (ctx.body ?? {}) as {
      topicName?: string;
      labelIds?: string[];
      labelFilterBehavior?: string;
      labelFilterAction?: string;
    };
    if (typeof body.topicName !== "string" || !/^projects\/[^/]+\/topics\/[^/]+$/.test(body.topicName)) {
      throw errors.badRequest("Invalid topicName does not match projects/emulator/topics/*", "topicName");
    }
    // A topic without the publisher grant for gmail-api-push@system.gserviceaccount.com (error_403_watch_pubsub_not_authorized.json).
    if (settings.unauthorizedTopics.includes(body.topicName)) throw errors.pubsubNotAuthorized(body.topicName);
    const behavior = (body.labelFilterBehavior ?? body.labelFilterAction ?? "include").toLowerCase();
    if (behavior !== "include" && behavior !== "exclude")
      throw errors.badRequest(`Invalid value at 'label_filter_behavior' (${behavior})`);
    return state.push.watch(ctx.mailbox, { topicName: body.topicName, labelIds: body.labelIds ?? [], behavior });
  });

  route("POST", "/stop", "gmail.users.stop", READ_SCOPES, (ctx) => {
    state.push.stop(ctx.mailbox);
    return undefined;
  });
}

/** A label as labels.list/get show it: hidden system labels and user labels carry visibility fields (labels_list.json, labels_get_INBOX.json). */
function labelJson(l: LabelDef): Record<string, unknown> {
  if (l.type === "user")
    return { id: l.id, name: l.name, messageListVisibility: "show", labelListVisibility: "labelShow", type: l.type };
  if (HIDDEN_SYSTEM_LABELS.has(l.id))
    return { id: l.id, name: l.name, messageListVisibility: "hide", labelListVisibility: "labelHide", type: l.type };
  return { id: l.id, name: l.name, type: l.type };
}

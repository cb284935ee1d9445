// The emulator's command line (`gmail-emulator`, and `gmail-sync emulator` which hands its arguments
// here): runs the Gmail API, OAuth2, Pub/Sub push and control API until SIGINT/SIGTERM, printing one
// JSON line with its URLs when it is ready. Exit 1 with one line on stderr for a bad option.
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { startEmulator } from "./server.ts";
import { DEFAULT_SETTINGS } from "./state.ts";

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`--${name} must be a non-negative integer`);
    return n;
  };
}

function rate(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`--${name} must be between 0 and 1`);
    return n;
  };
}

function choice<T extends string>(name: string, allowed: readonly T[]) {
  return (v: string): T => {
    if (!(allowed as readonly string[]).includes(v))
      throw new InvalidArgumentError(`--${name} must be one of ${allowed.join(", ")}`);
    return v as T;
  };
}

interface EmulatorCliOptions {
  port: number;
  host: string;
  seed: number;
  messages: number;
  accounts: string;
  attachments: boolean;
  largeAttachment?: boolean;
  hostile: boolean;
  quotaUnitsPerSecond: number;
  userQuotaPerMinute: number;
  projectQuotaPerMinute: number;
  maxConcurrent: number;
  quotaErrorForms: "gmail" | "retry-after";
  batchPartParallelism: number;
  charsetConversion: boolean;
  rfc822Opaque?: boolean;
  bodyByReferenceBytes: number;
  stableAttachmentIds?: boolean;
  compactJson?: boolean;
  exactResultSizeEstimate?: boolean;
  combinedHistory: boolean;
  historyMessagesOnlyRate: number;
  addedNotFoundRate: number;
  addedNotFoundWindowMs: number;
  batchFailureRate: number;
  batchFailureStatus: number;
  legacyCharsets: boolean;
  forwardedMessages: boolean;
  largeBodies: boolean;
  drafts: boolean;
  threadIdsAreMessageIds?: boolean;
  historyRetentionHours: number;
  latencyMs: number;
  faultRate: number;
  unauthorizedTopics?: string;
  pushEndpoint?: string;
  pushAudience?: string;
  pushDropRate: number;
  pushDuplicateRate: number;
  pushDelayMs: number;
  publicUrl?: string;
}

/** The command, named as the caller is invoked (`gmail-emulator` or `gmail-sync emulator`). */
export function buildEmulatorProgram(name = "gmail-emulator"): Command {
  return new Command()
    .name(name)
    .description("run the local Gmail emulator (Gmail API v1, OAuth2, Pub/Sub push, control API)")
    .option("--port <n>", "port to listen on", int("port"), 8085)
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--public-url <url>", "origin clients use to reach it, for the printed URLs (default http://<host>:<port>)")
    .option("--seed <n>", "seed for generated mail, ids and faults", int("seed"), 1)
    .option("--messages <n>", "messages generated per account at start", int("messages"), 0)
    .option("--accounts <list>", "comma-separated mailbox addresses", "alice@example.com")
    .option("--no-attachments", "generated mail has no attachments")
    .option("--no-hostile", "generated mail has only ordinary attachments (no timeout PDF, zip bomb…)")
    .option("--large-attachment", "generated mailboxes include one 60 MB attachment")
    .option(
      "--user-quota-per-minute <n>",
      "per-user units in any 60 s window (0 = off)",
      int("user-quota-per-minute"),
      DEFAULT_SETTINGS.userQuotaUnitsPerMinute,
    )
    .option(
      "--project-quota-per-minute <n>",
      "units of all users together in any 60 s window (0 = off)",
      int("project-quota-per-minute"),
      DEFAULT_SETTINGS.projectQuotaUnitsPerMinute,
    )
    .option(
      "--quota-units-per-second <n>",
      "strict per-second per-user bucket instead of the minute window (0 = minute window)",
      int("quota-units-per-second"),
      0,
    )
    .option(
      "--max-concurrent <n>",
      "requests in flight per user, batch parts included (0 = no cap)",
      int("max-concurrent"),
      DEFAULT_SETTINGS.maxConcurrentPerUser,
    )
    .option(
      "--quota-error-forms <forms>",
      "gmail (every recorded refusal form) or retry-after (always 429 with Retry-After)",
      choice("quota-error-forms", ["gmail", "retry-after"]),
      DEFAULT_SETTINGS.quotaErrorForms,
    )
    .option(
      "--batch-part-parallelism <n>",
      "batch parts answered at once",
      int("batch-part-parallelism"),
      DEFAULT_SETTINGS.batchPartParallelism,
    )
    .option("--no-charset-conversion", "serve text bodies in their original charset (Gmail converts them to UTF-8)")
    .option("--rfc822-opaque", "serve message/rfc822 parts as leaves (Gmail expands them)")
    .option(
      "--body-by-reference-bytes <n>",
      "text bodies above this size are served by attachmentId (0 = never)",
      int("body-by-reference-bytes"),
      DEFAULT_SETTINGS.bodyByReferenceBytes,
    )
    .option("--stable-attachment-ids", "the same attachmentId on every fetch (Gmail's differ)")
    .option("--compact-json", "compact JSON (Gmail pretty-prints)")
    .option("--exact-result-size-estimate", "exact resultSizeEstimate (Gmail's is approximate)")
    .option("--no-combined-history", "one history record per message and change type (Gmail combines)")
    .option(
      "--history-messages-only-rate <r>",
      "share of deliveries that also write a messages-only history record",
      rate("history-messages-only-rate"),
      DEFAULT_SETTINGS.historyMessagesOnlyRate,
    )
    .option(
      "--added-not-found-rate <r>",
      "share of new messages that answer 404 for a moment after they are added",
      rate("added-not-found-rate"),
      DEFAULT_SETTINGS.addedNotFoundRate,
    )
    .option(
      "--added-not-found-window-ms <n>",
      "how long such a message answers 404",
      int("added-not-found-window-ms"),
      DEFAULT_SETTINGS.addedNotFoundWindowMs,
    )
    .option(
      "--batch-failure-rate <r>",
      "share of batch POSTs answered with an HTML error page",
      rate("batch-failure-rate"),
      0,
    )
    .option(
      "--batch-failure-status <n>",
      "status of those pages: 404 or 502",
      choice("batch-failure-status", ["404", "502"]),
      "404",
    )
    .option("--no-legacy-charsets", "generated mail is UTF-8 only")
    .option("--no-forwarded-messages", "generated mail has no attached messages")
    .option("--no-large-bodies", "generated mail has no body above --body-by-reference-bytes")
    .option("--no-drafts", "generated mailboxes have no drafts")
    .option("--thread-ids-are-message-ids", "a thread's id is its first message's id")
    .option("--history-retention-hours <n>", "how long history records are kept", int("history-retention-hours"), 168)
    .option("--latency-ms <n>", "delay added to every answer", int("latency-ms"), 0)
    .option("--fault-rate <r>", "share of Gmail requests answered 500/503 or dropped", rate("fault-rate"), 0)
    .option(
      "--unauthorized-topics <list>",
      "comma-separated Pub/Sub topics lacking the publisher grant: watch on them answers 403",
    )
    .option("--push-endpoint <url>", "where Pub/Sub push notifications are POSTed")
    .option("--push-audience <aud>", "aud claim of push tokens (default: the push endpoint)")
    .option("--push-drop-rate <r>", "share of notifications never delivered", rate("push-drop-rate"), 0)
    .option("--push-duplicate-rate <r>", "share of notifications delivered twice", rate("push-duplicate-rate"), 0)
    .option("--push-delay-ms <n>", "delay before a notification's first delivery", int("push-delay-ms"), 0)
    .action(async (opts: EmulatorCliOptions) => {
      const started = performance.now();
      const emu = await startEmulator({
        port: opts.port,
        host: opts.host,
        seed: opts.seed,
        messages: opts.messages,
        accounts: opts.accounts
          .split(",")
          .map((a) => a.trim())
          .filter(Boolean),
        attachments: opts.attachments,
        hostile: opts.hostile,
        largeAttachment: opts.largeAttachment ?? false,
        quotaUnitsPerSecond: opts.quotaUnitsPerSecond,
        userQuotaUnitsPerMinute: opts.userQuotaPerMinute,
        projectQuotaUnitsPerMinute: opts.projectQuotaPerMinute,
        maxConcurrentPerUser: opts.maxConcurrent,
        quotaErrorForms: opts.quotaErrorForms,
        batchPartParallelism: Math.max(1, opts.batchPartParallelism),
        charsetConversion: opts.charsetConversion,
        rfc822Expanded: !(opts.rfc822Opaque ?? false),
        bodyByReferenceBytes: opts.bodyByReferenceBytes,
        attachmentIdsVary: !(opts.stableAttachmentIds ?? false),
        prettyJson: !(opts.compactJson ?? false),
        approximateResultSizeEstimate: !(opts.exactResultSizeEstimate ?? false),
        historyCombinedRecords: opts.combinedHistory,
        historyMessagesOnlyRate: opts.historyMessagesOnlyRate,
        addedNotFoundRate: opts.addedNotFoundRate,
        addedNotFoundWindowMs: opts.addedNotFoundWindowMs,
        batchFailureRate: opts.batchFailureRate,
        batchFailureStatus: Number(opts.batchFailureStatus) === 502 ? 502 : 404,
        legacyCharsets: opts.legacyCharsets,
        forwardedMessages: opts.forwardedMessages,
        largeBodies: opts.largeBodies,
        drafts: opts.drafts,
        threadIdsAreMessageIds: opts.threadIdsAreMessageIds ?? false,
        historyRetentionHours: opts.historyRetentionHours,
        latencyMs: opts.latencyMs,
        faultRate: opts.faultRate,
        unauthorizedTopics: (opts.unauthorizedTopics ?? "")
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean),
        pushDropRate: opts.pushDropRate,
        pushDuplicateRate: opts.pushDuplicateRate,
        pushDelayMs: opts.pushDelayMs,
        ...(opts.pushEndpoint !== undefined ? { pushEndpoint: opts.pushEndpoint } : {}),
        ...(opts.pushAudience !== undefined ? { pushAudience: opts.pushAudience } : {}),
        ...(opts.publicUrl !== undefined ? { publicUrl: opts.publicUrl } : {}),
      });
      const { control: _control, close, ...info } = emu;
      const stopped = new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void close().then(resolve, resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      // The handlers are in place before the ready line: a caller may signal as soon as it reads it
      // (a write to a pipe is synchronous, so the reader can run before the next statement here).
      console.log(JSON.stringify({ ...info, readyMs: Math.round(performance.now() - started) }));
      await stopped;
    });
}

/** Parses argv (without node and the script), runs the emulator until a signal, returns the exit code. */
export async function runEmulatorCli(argv: string[], name = "gmail-emulator"): Promise<number> {
  const program = buildEmulatorProgram(name)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

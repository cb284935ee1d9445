// Per-message injected failures (the control API's POST …/messages/{id}/fail): messages.get of that
// id — plain or inside a batch part — and threads.get of its thread answer the given status with
// Gmail's error envelope, `times` times or for ever, so tests can build a poison message that no
// retry gets past. With target "attachments", the message itself is served and every
// attachments.get of it fails instead (a download that keeps failing).
import { ApiError, errors } from "./errors.ts";

interface Failure {
  status: number;
  /** Answers still to fail; undefined = always. */
  remaining: number | undefined;
}

export type FailureTarget = "get" | "attachments";

export function createMessageFailures() {
  const failures = new Map<string, Failure>();
  /** user → message id → failure answers sent (kept after the failure is cleared, for assertions). */
  const served = new Map<string, Map<string, number>>();
  const key = (email: string, id: string, target: FailureTarget) =>
    `${email.toLowerCase()}\u0000${id}${target === "get" ? "" : `\u0000${target}`}`;
  return {
    /** status 0 clears; times undefined = every request. */
    set(email: string, id: string, status: number, times?: number, target: FailureTarget = "get"): void {
      if (status === 0 || times === 0) failures.delete(key(email, id, target));
      else failures.set(key(email, id, target), { status, remaining: times });
    },
    /** The error to answer for this messages.get, if one is injected (counts it). */
    take(email: string, id: string, target: FailureTarget = "get"): ApiError | undefined {
      const k = key(email, id, target);
      const f = failures.get(k);
      if (!f) return undefined;
      if (f.remaining !== undefined && --f.remaining <= 0) failures.delete(k);
      const user = email.toLowerCase();
      let byId = served.get(user);
      if (!byId) served.set(user, (byId = new Map()));
      byId.set(id, (byId.get(id) ?? 0) + 1);
      return errorFor(f.status);
    },
    snapshot(): Record<string, Record<string, number>> {
      return Object.fromEntries([...served].map(([u, m]) => [u, Object.fromEntries(m)]));
    },
  };
}

export type MessageFailures = ReturnType<typeof createMessageFailures>;

function errorFor(status: number): ApiError {
  switch (status) {
    case 500:
      return errors.backendError();
    case 503:
      return errors.unavailable();
    case 404:
      return errors.notFound();
    case 400:
      return errors.badRequest("Precondition check failed.");
    case 403:
      return errors.forbidden("Forbidden");
    default:
      return new ApiError(status, "Backend Error", { reason: "backendError" });
  }
}

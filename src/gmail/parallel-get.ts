// The parallel strategy of getMessages / getThreads: one plain GET per id, `concurrency` at a time,
// each a full call (call.ts). An id's own failure is its outcome; account-level failures
// (auth_revoked, rate_limited past the inline wait) are thrown, once the GETs already running have
// settled into `out` (get-by-ids.ts keeps them).
import { isGmailError } from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import { callGmail } from "./call.ts";
import type { GetById, Got } from "./get-by-ids.ts";
import { pool } from "./pool.ts";

export async function getParallel<T>(
  ctx: CallContext,
  spec: GetById<T>,
  ids: string[],
  concurrency: number,
  out: Map<string, Got<T>>,
): Promise<void> {
  await pool(ids, concurrency, async (id) => {
    out.set(id, await getOne(ctx, spec, id));
  });
}

async function getOne<T>(ctx: CallContext, spec: GetById<T>, id: string): Promise<Got<T>> {
  try {
    return { id, value: await callGmail(ctx, spec.method, () => spec.get(id), ctx.fetchQuotaWaitMs) };
  } catch (err) {
    if (isGmailError(err) && (err.kind === "not_found" || err.kind === "permanent" || err.kind === "transient")) {
      return { id, error: err };
    }
    throw err;
  }
}

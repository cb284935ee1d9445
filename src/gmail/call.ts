// One Gmail API call (a single HTTP request): charge its documented quota cost to the shared
// governor, hold one in-flight permit, send with the client's own retry off, classify any failure
// (classify-error.ts), refresh the token once on a 401 (refresh-on-401.ts), retry per retry.ts and
// count metrics. auth_revoked is latched for the whole port (call-context.ts).
import { isGmailError } from "../errors.ts";
import { apiQuotaUnitsTotal, apiRequestDurationSeconds, apiRequestsTotal } from "../metrics.ts";
import {
  authRevoked,
  cost,
  failure,
  isLocalWait,
  runInFlight,
  throwIfRevoked,
  type CallContext,
} from "./call-context.ts";
import { createRefreshOn401 } from "./refresh-on-401.ts";
import { withRetry } from "./retry.ts";

export async function callGmail<T>(
  ctx: CallContext,
  method: string,
  send: () => Promise<{ data: T }>,
  quotaWaitMs = ctx.maxQuotaWaitMs,
): Promise<T> {
  throwIfRevoked(ctx);
  const on401 = createRefreshOn401(ctx.auth, ctx.tokenUrl);
  try {
    return await withRetry(async () => {
      for (;;) {
        const units = cost(method);
        await ctx.quota.acquire(ctx.accountId, units, { maxWaitMs: quotaWaitMs });
        apiQuotaUnitsTotal.inc({ method }, units);
        const end = apiRequestDurationSeconds.startTimer({ method });
        try {
          const res = await runInFlight(ctx, 1, quotaWaitMs, send);
          apiRequestsTotal.inc({ method, code: "2xx" });
          return res.data;
        } catch (raw) {
          if (isLocalWait(raw)) throw raw; // our own cap, not Gmail's answer: no penalty
          const err = await failure(ctx, raw, method);
          if (on401.curable(err, raw)) {
            on401.refresh(); // an access token rejected before its expiry: refresh once
            continue;
          }
          throw on401.settle(err);
        } finally {
          end();
        }
      }
    }, ctx.policy);
  } catch (err) {
    if (isGmailError(err, "auth_revoked")) return authRevoked(ctx, err);
    throw err;
  }
}

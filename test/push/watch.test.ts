// Watch lifecycle against the emulator: users.watch stores the expiry (even before the first
// backfill made the sync_state row), pushes flow while watched and stop after users.stop, an
// inactive account is never watched, and a revoked token ends as a failed renewal with the account
// marked reauth_required — never an exception that would retry-storm.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { watchRenewalsTotal } from "../../src/metrics.ts";
import { renewWatch, stopWatch, type WatchDeps } from "../../src/watch.ts";
import { connectTestAccount, type Harness, startHarness, waitFor } from "../sync/harness.ts";

let h: Harness;
let capture: Server;
let pushes = 0;
let deps: WatchDeps;

beforeAll(async () => {
  capture = createServer((_req, res) => {
    pushes++;
    res.writeHead(204).end();
  });
  await new Promise<void>((res) => capture.listen(0, "127.0.0.1", res));
  const pushEndpoint = `http://127.0.0.1:${(capture.address() as AddressInfo).port}/push`;
  h = await startHarness({
    emulator: {
      accounts: ["alice@example.com", "bob@example.com", "carol@example.com"],
      messages: 2,
      attachments: false,
      pushEndpoint,
    },
    env: { PUBSUB_TOPIC: "projects/p/topics/gmail" },
  });
  deps = { db: h.app.db, config: h.app.config, log: h.app.log, gmailFactory: h.app.gmailFactory };
});
afterAll(async () => {
  await h?.close();
  capture?.close();
});

const failedRenewals = async () =>
  (await watchRenewalsTotal.get()).values.find((v) => v.labels.outcome === "failed")?.value ?? 0;

describe("watch lifecycle", () => {
  it("does nothing without PUBSUB_TOPIC", async () => {
    const id = await connectTestAccount(h, "carol@example.com");
    const config = loadConfig({ ...h.env, PUBSUB_TOPIC: undefined });
    expect(await renewWatch({ ...deps, config }, id)).toBe("not_configured");
  });

  it("watches, stores the expiry even before sync_state exists, and pushes flow until users.stop", async () => {
    const id = await connectTestAccount(h, "alice@example.com");
    await h.app.db.deleteFrom("sync_state").where("account_id", "=", id).execute();
    expect(await renewWatch(deps, id)).toBe("renewed");
    const state = await h.app.db
      .selectFrom("sync_state")
      .select(["watch_expiration", "watch_history_id"])
      .where("account_id", "=", id)
      .executeTakeFirstOrThrow();
    const days = ((state.watch_expiration?.getTime() ?? 0) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThanOrEqual(7);
    expect(state.watch_history_id).toMatch(/^\d+$/);

    const before = pushes;
    await h.emulator.control.deliver("alice@example.com", {});
    await waitFor("a push", async () => pushes > before);

    await stopWatch(deps, id);
    expect(
      (
        await h.app.db
          .selectFrom("sync_state")
          .select("watch_expiration")
          .where("account_id", "=", id)
          .executeTakeFirstOrThrow()
      ).watch_expiration,
    ).toBeNull();
    const sentBefore = (await h.emulator.control.stats()).pushes.sent;
    await h.emulator.control.deliver("alice@example.com", {});
    await new Promise((r) => setTimeout(r, 1500)); // past the emulator's one-push-per-second window
    expect((await h.emulator.control.stats()).pushes.sent).toBe(sentBefore);
  });

  it("never watches an account that is not active", async () => {
    const id = await connectTestAccount(h, "bob@example.com");
    await h.app.db.updateTable("accounts").set({ status: "disabled" }).where("id", "=", id).execute();
    const calls = async () =>
      Object.values((await h.emulator.control.stats()).requests["gmail.users.watch"] ?? {}).reduce((a, b) => a + b, 0);
    const before = await calls();
    expect(await renewWatch(deps, id)).toBe("inactive");
    expect(await calls()).toBe(before);
    await h.app.db.updateTable("accounts").set({ status: "active" }).where("id", "=", id).execute();
  });

  it("a revoked token: renewal fails cleanly and the account turns reauth_required", async () => {
    const id = (
      await h.app.db
        .selectFrom("accounts")
        .select("id")
        .where("email", "=", "bob@example.com")
        .executeTakeFirstOrThrow()
    ).id;
    await h.emulator.control.revoke("bob@example.com");
    const failedBefore = await failedRenewals();
    expect(await renewWatch(deps, id)).toBe("failed");
    expect(await failedRenewals()).toBe(failedBefore + 1);
    const account = await h.app.db
      .selectFrom("accounts")
      .select(["status", "status_reason"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
    expect(account.status).toBe("reauth_required");
    // …and from then on it is left alone.
    expect(await renewWatch(deps, id)).toBe("inactive");
  });
});

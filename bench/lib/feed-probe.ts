// The follower side of bench:feed, in a process of its own (the benchmark's own event loop also
// runs workers and the emulator, so it would time lines late): runs `gmail-sync changes --follow
// --json`, prints each of its lines prefixed with the epoch milliseconds it was read at, and
// meanwhile commits PROBE_COUNT probe changes, one every PROBE_EVERY_MS, each in a transaction of
// its own through the feed's own write path (appendChanges), timing each from the moment its COMMIT
// is sent (and, apart, from the moment the commit was acknowledged) to the moment the follower's
// line for it is read. Ends the follower with SIGTERM and
// prints `PROBE {json}` last: the latencies and the follower's exit code.
//   env: DATABASE_URL, PROBE_ACCOUNT_ID, PROBE_COUNT (default 200), PROBE_EVERY_MS (default 50)
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { appendChanges } from "../../src/db/changes.ts";
import { createDb } from "../../src/db/database.ts";

const databaseUrl = process.env.DATABASE_URL as string;
const accountId = Number(process.env.PROBE_ACCOUNT_ID);
const count = Number(process.env.PROBE_COUNT ?? 200);
const everyMs = Number(process.env.PROBE_EVERY_MS ?? 50);
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/gmail-sync.js");

const follower = spawn(process.execPath, [cli, "changes", "--follow", "--json"], {
  env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" },
  stdio: ["ignore", "pipe", "inherit"],
});
const exited = new Promise<number | null>((r) => follower.on("exit", (code) => r(code)));
const seen = new Map<string, number>();
let lines = 0;
let buf = "";
follower.stdout.on("data", (d: Buffer) => {
  const at = performance.now();
  const now = Date.now();
  buf += d.toString();
  let out = "";
  for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    lines++;
    const id = /"gmailId":"(probe-\d+)"/.exec(line)?.[1];
    if (id !== undefined) seen.set(id, at);
    else out += `${now} ${line}\n`;
  }
  if (out !== "") process.stdout.write(out);
});

const db = createDb(databaseUrl, 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The follower is listening once it has printed what the feed held at its start, and a moment more.
while (lines === 0) await sleep(10);
await sleep(1000);
const latencies: number[] = [];
const afterAck: number[] = [];
const commits: number[] = [];
let lost = 0;
for (let i = 0; i < count; i++) {
  const id = `probe-${i}`;
  let sent = 0;
  await db.transaction().execute(async (trx) => {
    await appendChanges(trx, [
      { accountId, kind: "message.labels_changed", historic: false, gmailId: id, labelsAdded: ["PROBE"] },
    ]);
    sent = performance.now(); // the COMMIT goes out when this callback returns
  });
  const acked = performance.now();
  const until = acked + 10_000;
  while (!seen.has(id) && performance.now() < until) await sleep(1);
  const at = seen.get(id);
  if (at === undefined) lost++;
  else {
    latencies.push(at - sent);
    afterAck.push(Math.max(0, at - acked));
    commits.push(acked - sent);
  }
  await sleep(everyMs);
}
await db.destroy();
follower.kill("SIGTERM");
const code = await exited;
process.stdout.write(`PROBE ${JSON.stringify({ latencies, afterAck, commits, lost, followerExitCode: code })}\n`);
process.exit(0);

// bull-board (MIT) for the three queues, read-only, under /operator/queues on the internal listener.
// Registered inside the operator scope (src/operator/routes.ts), so the operator's authentication
// runs before any of its routes. Read-only twice over: every queue adapter is in bull-board's
// readOnlyMode (the UI hides retry, clean, remove, pause, add… and its API refuses them with 405),
// and this scope answers 405 to any method but GET and HEAD before bull-board sees the request.
import { createRequire } from "node:module";
import path from "node:path";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import type { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";

export const QUEUES_PATH = "/operator/queues";

/**
 * The board's CSP: its own scripts, styles and images from this origin (its React bundle sets
 * inline style attributes, hence 'unsafe-inline' for styles only), API calls to this origin, and
 * nothing from anywhere else — its template's Google Fonts stylesheet is refused (the page falls
 * back to system fonts; no request leaves the operator's machine).
 */
export const QUEUES_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Mounts the board under QUEUES_PATH of `scope` (which must carry the /operator prefix). */
export async function registerQueueBoard(
  scope: FastifyInstance,
  queues: { backfill: Queue; incremental: Queue; maintenance: Queue },
): Promise<void> {
  const serverAdapter = new FastifyAdapter().setBasePath(QUEUES_PATH);
  createBullBoard({
    queues: [queues.backfill, queues.incremental, queues.maintenance].map(
      (q) => new BullMQAdapter(q, { readOnlyMode: true, allowRetries: false }),
    ),
    serverAdapter,
    options: {
      // Named here: bull-board otherwise finds its UI package with an eval'd require.resolve.
      uiBasePath: path.dirname(createRequire(import.meta.url).resolve("@bull-board/ui/package.json")),
      uiConfig: {
        boardTitle: "gmail-sync queues",
        hideDocsLink: true,
        miscLinks: [{ text: "Accounts", url: "/operator/accounts" }],
      },
    },
  });
  await scope.register(
    async (board) => {
      board.addHook("onRequest", async (req, reply) => {
        if (req.method !== "GET" && req.method !== "HEAD")
          return reply.code(405).header("allow", "GET, HEAD").send({ error: "the queue page is read-only" });
      });
      await board.register(serverAdapter.registerPlugin());
    },
    // The board polls its API every few seconds: log its requests only when something goes wrong.
    { prefix: "/queues", logLevel: "warn" },
  );
}

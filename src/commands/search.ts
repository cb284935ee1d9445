// `gmail-sync search QUERY`: ranked full-text search over stored mail and attachment text.
import { type Command, InvalidArgumentError } from "commander";
import { findAccountIdByEmail } from "../db/accounts.ts";
import { searchMessages } from "../db/search.ts";
import { withStoreApp } from "./cli-app.ts";
import { printable } from "./printable.ts";

const BOLD = { start: "\u001b[1m", stop: "\u001b[22m" };

export function registerSearchCommand(program: Command): void {
  program
    .command("search")
    .description(
      'full-text search over message subject, sender, body and attachment text (web-search syntax: "phrase", -not, or)',
    )
    .argument("<query>", "what to look for")
    .option("--account <email>", "only this account")
    .option(
      "--limit <n>",
      "at most this many messages",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 1000)
          throw new InvalidArgumentError(`must be an integer from 1 to 1000, got ${JSON.stringify(v)}`);
        return n;
      },
      20,
    )
    .option("--include-spam-trash", "also search mail in Spam and Trash (left out by default, as in Gmail)")
    .option("--json", "print the hits as a JSON array")
    .action(
      async (query: string, opts: { account?: string; limit: number; includeSpamTrash?: boolean; json?: boolean }) => {
        await withStoreApp(async ({ db }) => {
          let accountId: number | undefined;
          if (opts.account !== undefined) {
            accountId = await findAccountIdByEmail(db, opts.account.toLowerCase());
            if (accountId === undefined) throw new Error(`unknown account ${opts.account}`);
          }
          const tty = process.stdout.isTTY === true && !opts.json;
          const hits = await searchMessages(db, query, {
            accountId,
            limit: opts.limit,
            includeSpamTrash: opts.includeSpamTrash === true,
            highlight: tty ? BOLD : { start: "**", stop: "**" },
          });
          if (opts.json) {
            console.log(JSON.stringify(hits));
            return;
          }
          if (hits.length === 0) console.log("no matches");
          for (const h of hits) {
            const where = h.attachment !== null ? `  [attachment: ${h.attachment}]` : "";
            console.log(
              printable(
                `${h.date?.slice(0, 10) ?? "          "}  ${h.from ?? "(no sender)"}  ${h.subject ?? "(no subject)"}${where}`,
              ),
            );
            // The snippet's own highlight markers are ours; everything between them is mail.
            const marker = tty ? BOLD : { start: "**", stop: "**" };
            console.log(
              `    ${h.snippet
                .split(marker.start)
                .map((part) => part.split(marker.stop).map(printable).join(marker.stop))
                .join(marker.start)}`,
            );
          }
        });
      },
    );
}

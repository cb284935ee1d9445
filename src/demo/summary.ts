// The demo's closing summary, for people (a short table) or machines (one JSON line).
import type { DemoSummary } from "./run-demo.ts";

export function formatSummary(s: DemoSummary): string {
  const lines = ["", "summary"];
  for (const a of s.accounts) {
    lines.push(
      `  ${a.email.padEnd(20)} mailbox ${String(a.mailboxMessages).padStart(6)}  database ${String(a.storedMessages).padStart(6)}  ${a.match ? "match" : "MISMATCH"}` +
        `  attachments ${a.attachments}  bodies ${a.bodiesChecked - a.bodyMismatchCount}/${a.bodiesChecked}  dead letters ${a.deadLetters}`,
    );
    if (!a.match) {
      lines.push(
        `    missing ${a.missing.join(" ") || "-"}; extra ${a.extra.join(" ") || "-"}; labels differ ${a.labelMismatches.join(" ") || "-"}; attachments differ ${a.attachmentMismatches.join(" ") || "-"}; bodies differ ${a.bodyMismatches.join(" ") || "-"}`,
      );
    }
  }
  const reasons =
    Object.entries(s.skippedReasons)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ") || "none";
  // Routes say how the bytes travelled (skipped = never downloaded); reasons count every skipped
  // extraction on any route, so they are their own line rather than a breakdown of "skipped".
  lines.push(
    `  attachments by route  memory ${s.attachments.memory}, temp_file ${s.attachments.temp_file}, not downloaded ${s.attachments.skipped}`,
  );
  lines.push(`  text not extracted    ${reasons}`);
  lines.push(`  temp files left       ${s.tempFilesLeft}`);
  lines.push(`  quota units spent     ${s.quotaUnits} (${s.quotaUnitsPerSecond}/s on average)`);
  lines.push(`  backfill              ${s.messagesPerSecond} messages/s (${s.backfillSeconds} s)`);
  lines.push(
    `  push → stored         p50 ${s.pushToStoredMs.p50 ?? "-"} ms, p99 ${s.pushToStoredMs.p99 ?? "-"} ms over ${s.pushToStoredMs.samples} ordinary deliveries`,
  );
  lines.push(
    `  search "${s.searchExample.query}"     ${s.searchExample.hits} attachment hits (try: npx gmail-sync search ${s.searchExample.query})`,
  );
  lines.push(`  metrics               ${s.metricsUrl}`);
  return lines.join("\n");
}

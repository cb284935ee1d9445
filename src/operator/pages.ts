// The operator page's HTML: server-rendered strings, no framework and no script. Every value that
// comes from the database, the request or the config goes through esc(). The one stylesheet is a
// constant whose hash is the page's CSP style-src, so nothing else can style (or script) the page.
import { createHash } from "node:crypto";
import type { DeadLetterRow } from "../db/dead-letters.ts";
import type { AccountStatusView } from "../sync/status.ts";

export function esc(v: unknown): string {
  return String(v ?? "")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{display:flex;gap:1.5rem;align-items:center;padding:.7rem 1.5rem;background:#1d2330;color:#fff}
header a{color:#cfe0ff;text-decoration:none}header strong{margin-right:auto}
header form{margin:0}header button{background:none;border:1px solid #8fa3c4;color:#fff}
main{padding:1rem 1.5rem;max-width:80rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #e2e5ea;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{font-weight:600;background:#eef0f4}
.status{font-weight:600}.s-active{color:#1a7f37}.s-backfilling,.s-resyncing{color:#0b5cad}
.s-throttled{color:#9a6700}.s-reauth_required,.s-disabled,.error{color:#b42318}
.muted{color:#667085;font-size:.9em}progress{width:10rem}
.actions{white-space:nowrap}.actions form{display:inline;margin:0 .3rem .3rem 0}
button{font:inherit;padding:.25rem .7rem;border-radius:4px;border:1px solid #98a2b3;background:#fff;cursor:pointer}
button:disabled{opacity:.45;cursor:not-allowed}
.notice{padding:.6rem .9rem;border-radius:4px;background:#e6f4ea;border:1px solid #a6d8b5;margin:.5rem 0 1rem}
.notice.bad{background:#fdecea;border-color:#f3b4ae}
.login{max-width:24rem;margin:4rem auto;background:#fff;padding:1.5rem;border-radius:6px;border:1px solid #e2e5ea}
.login label{display:block;margin:.6rem 0 .2rem}.login input{width:100%;box-sizing:border-box;padding:.4rem}
.login button{margin-top:1rem}.login hr{border:0;border-top:1px solid #e2e5ea;margin:1.2rem 0}
code{font-size:.9em}
`;

/** The CSP of the operator's own pages: this stylesheet, forms to this origin, nothing else. */
export const PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash("sha256").update(STYLE).digest("base64")}'`,
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

function layout(title: string, body: string, opts: { csrf?: string } = {}): string {
  const nav =
    opts.csrf === undefined
      ? ""
      : `<a href="/operator/accounts">Accounts</a><a href="/operator/queues/">Queues</a>
<form method="post" action="/operator/logout"><input type="hidden" name="csrf" value="${esc(opts.csrf)}"><button>Log out</button></form>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · gmail-sync</title><style>${STYLE}</style></head>
<body><header><strong>gmail-sync operator</strong>${nav}</header>
<main>${body}</main></body></html>
`;
}

export function loginPage(opts: { token: boolean; basic: boolean; next: string; error?: string }): string {
  const tokenForm = opts.token
    ? `<label for="token">Operator token</label><input id="token" name="token" type="password" autocomplete="current-password">`
    : "";
  const basicForm = opts.basic
    ? `${opts.token ? '<hr><p class="muted">or</p>' : ""}<label for="user">User</label><input id="user" name="user" autocomplete="username">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">`
    : "";
  return layout(
    "Log in",
    `<form class="login" method="post" action="/operator/login">
<h1>Log in</h1>${opts.error ? `<p class="error" role="alert">${esc(opts.error)}</p>` : ""}
<input type="hidden" name="next" value="${esc(opts.next)}">
${tokenForm}${basicForm}
<button type="submit">Log in</button></form>`,
  );
}

export function messagePage(title: string, text: string, csrf?: string): string {
  return layout(
    title,
    `<h1>${esc(title)}</h1><p>${esc(text)}</p><p><a href="/operator/accounts">Back to the accounts</a></p>`,
    csrf === undefined ? {} : { csrf },
  );
}

/** "42 s", "7 min", "3 h 05 min", "2 d 4 h". */
export function age(seconds: number | null): string {
  if (seconds === null) return "no cursor";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172_800) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function when(iso: string | null): string {
  return iso === null ? `<span class="muted">never</span>` : `<time datetime="${esc(iso)}">${esc(iso)}</time>`;
}

function statusCell(a: AccountStatusView): string {
  const detail =
    a.status === "throttled"
      ? `until ${a.throttledUntil ?? ""}`
      : a.status === "resyncing"
        ? (a.resyncReason ?? "")
        : a.status === "reauth_required" || a.status === "disabled"
          ? (a.statusReason ?? "")
          : "";
  return `<span class="status s-${esc(a.status)}">${esc(a.status)}</span>${detail ? `<div class="muted">${esc(detail)}</div>` : ""}`;
}

function progressCell(a: AccountStatusView): string {
  const b = a.backfill;
  if (b.phase === "pending") return `<span class="muted">not started</span>`;
  const max = b.done ? Math.max(1, b.stored) : Math.max(1, b.estimate ?? b.listed, b.stored);
  const of = b.estimate !== null ? ` / ~${esc(b.estimate)}` : "";
  const pct = b.estimate ? ` (${Math.min(100, Math.floor((100 * b.stored) / Math.max(1, b.estimate)))}%)` : "";
  return `<progress value="${esc(b.done ? max : b.stored)}" max="${esc(max)}"></progress>
<div class="backfill">${b.done ? "done" : esc(b.phase)}: ${esc(b.stored)}${of} stored${b.done ? "" : pct}</div>
<div class="muted">${esc(b.listed)} listed, ${esc(b.pages)} page(s)${b.finishedAt ? `, finished ${esc(b.finishedAt)}` : b.startedAt ? `, started ${esc(b.startedAt)}` : ""}</div>`;
}

function actionForm(accountId: number, action: string, label: string, csrf: string, disabledWhy: string | null) {
  const disabled = disabledWhy === null ? "" : ` disabled title="${esc(disabledWhy)}"`;
  return `<form method="post" action="/operator/accounts/${esc(accountId)}/${esc(action)}"><input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit" data-action="${esc(action)}"${disabled}>${esc(label)}</button></form>`;
}

function actionsCell(a: AccountStatusView, csrf: string): string {
  const inactive = a.status === "reauth_required" || a.status === "disabled" ? `${a.email} is ${a.status}` : null;
  return [
    actionForm(
      a.id,
      "sync",
      "Sync now",
      csrf,
      inactive ?? (a.historyId === null ? "no cursor yet: the first backfill has not started" : null),
    ),
    actionForm(a.id, "backfill", "Backfill", csrf, inactive),
    actionForm(
      a.id,
      "retry-dead-letters",
      "Retry dead letters",
      csrf,
      inactive ?? (a.deadLetters === 0 ? "no dead letters" : null),
    ),
  ].join("");
}

export interface AccountsPageData {
  accounts: AccountStatusView[];
  deadLetters: DeadLetterRow[];
  csrf: string;
  notice?: { text: string; bad?: boolean };
  generatedAt: Date;
}

export function accountsPage(d: AccountsPageData): string {
  const notice = d.notice
    ? `<p class="notice${d.notice.bad ? " bad" : ""}" role="status">${esc(d.notice.text)}</p>`
    : "";
  const rows = d.accounts
    .map(
      (a) => `<tr data-account="${esc(a.email)}">
<td><strong>${esc(a.email)}</strong><div class="muted">id ${esc(a.id)}</div></td>
<td>${statusCell(a)}</td>
<td>${progressCell(a)}</td>
<td>${esc(a.messages)} messages<div class="muted">${esc(a.attachments)} attachments</div></td>
<td>last sync ${when(a.lastSyncAt)}<div class="muted">cursor age ${esc(age(a.cursorAgeSeconds))}${a.historyId ? ` (history ${esc(a.historyId)})` : ""}</div><div class="muted">watch until ${a.watchExpiration ? esc(a.watchExpiration) : "none"}</div></td>
<td>${a.lastError ? `<span class="error">${esc(a.lastError.kind ?? "error")}</span>: ${esc(a.lastError.message)}<div class="muted">${esc(a.lastError.at ?? "")}</div>` : `<span class="muted">none</span>`}</td>
<td class="dead-letters">${esc(a.deadLetters)} dead<div class="muted">${esc(a.retryingMessages)} retrying</div></td>
<td class="actions">${actionsCell(a, d.csrf)}</td>
</tr>`,
    )
    .join("\n");
  const accountsTable =
    d.accounts.length === 0
      ? `<p>No accounts yet: connect one with <code>gmail-sync auth --link</code>.</p>`
      : `<table id="accounts"><thead><tr><th>Account</th><th>Status</th><th>Backfill</th><th>Stored</th><th>Sync</th><th>Last error</th><th>Dead letters</th><th>Actions</th></tr></thead>
<tbody>${rows}</tbody></table>`;
  const dead =
    d.deadLetters.length === 0
      ? `<p class="muted">No dead letters.</p>`
      : `<table id="dead-letters"><thead><tr><th>Account</th><th>Gmail id</th><th>Reason</th><th>Attempts</th><th>Failing since</th><th>Next try</th><th>Detail</th></tr></thead><tbody>
${d.deadLetters
  .map(
    (r) =>
      `<tr><td>${esc(r.email)}</td><td><code>${esc(r.gmailId)}</code></td><td>${esc(r.reason)}</td><td>${esc(r.attempts)}</td><td>${esc(r.firstFailedAt.toISOString())}</td><td>${esc(r.nextAttemptAt?.toISOString() ?? "")}</td><td class="muted">${esc(r.detail ?? "")}</td></tr>`,
  )
  .join("\n")}</tbody></table>`;
  return layout(
    "Accounts",
    `<h1>Accounts</h1>${notice}${accountsTable}
<h2>Dead letters</h2>${dead}
<p class="muted">As of ${esc(d.generatedAt.toISOString())} · <a href="/operator/accounts">refresh</a> · <a href="/operator/queues/">queues</a></p>`,
    { csrf: d.csrf },
  );
}

// The HTML error pages Google's front end answers with when a request never reaches an API: an
// unknown path ("Error 404 (Not Found)!!1") or a bad gateway ("Error 502 (Server Error)!!1"). A
// client that expects JSON must cope with text/html here; batch clients met the 404 when the
// global batch endpoint was retired ("Discontinuing support for JSON-RPC and global HTTP batch
// endpoints", https://developers.googleblog.com/2018/03/discontinuing-support-for-json-rpc-and.html,
// with error-injection windows through 2020). The pages here are shortened (no style block), with
// Google's title and wording.

function page(status: number, title: string, body: string): string {
  return [
    "<!DOCTYPE html>",
    "<html lang=en>",
    "  <meta charset=utf-8>",
    '  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">',
    `  <title>Error ${status} (${title})!!1</title>`,
    "  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>",
    `  <p><b>${status}.</b> <ins>That\u2019s an error.</ins>`,
    `  <p>${body}  <ins>That\u2019s all we know.</ins>`,
    "",
  ].join("\n");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Google's 404 page for a path no API serves. */
export function notFoundPage(path: string): string {
  return page(
    404,
    "Not Found",
    `The requested URL <code>${escapeHtml(path.split("?")[0] ?? path)}</code> was not found on this server.`,
  );
}

/** Google's 502 page. */
export function badGatewayPage(): string {
  return page(
    502,
    "Server Error",
    "The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.",
  );
}

export const HTML_CONTENT_TYPE = "text/html; charset=UTF-8";

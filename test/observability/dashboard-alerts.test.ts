// The dashboard and the alert rules: every query parses as PromQL and names only metrics the app
// declares; the dashboard covers every panel the issue asks for and every app metric; the
// Prometheus config, the rules and their unit tests pass promtool.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { registry } from "../../src/metrics.ts";
import {
  alertQueries,
  allPanels,
  dashboardQueries,
  loadDashboard,
  parsePromql,
  substituteGrafanaMacros,
} from "./promql.ts";
import { hasBinary, rel, run, skipNotice } from "./tools.ts";

// Series Prometheus makes itself rather than scraping them from the app.
const PROMETHEUS_SYNTHETIC = new Set(["up"]);

let declared: Set<string>;
let appMetrics: string[];

beforeAll(async () => {
  declared = new Set();
  appMetrics = [];
  for (const m of await registry.getMetricsAsJSON()) {
    declared.add(m.name);
    if (String(m.type) === "histogram") for (const s of ["_bucket", "_sum", "_count"]) declared.add(m.name + s);
    if (!m.name.startsWith("process_") && !m.name.startsWith("nodejs_")) appMetrics.push(m.name);
  }
});

function check(queries: { where: string; expr: string }[]): { problems: string[]; names: Set<string> } {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const q of queries) {
    const parsed = parsePromql(substituteGrafanaMacros(q.expr));
    for (const e of parsed.errors) problems.push(`${q.where}: ${e} in ${q.expr}`);
    if (parsed.metricNames.length === 0) problems.push(`${q.where}: selects no metric: ${q.expr}`);
    for (const n of parsed.metricNames) {
      names.add(n);
      if (!declared.has(n) && !PROMETHEUS_SYNTHETIC.has(n)) problems.push(`${q.where}: unknown metric ${n}`);
    }
  }
  return { problems, names };
}

describe("PromQL checker", () => {
  it("flags syntax errors, unsubstituted macros and unknown metric names (so the checks below can fail)", () => {
    expect(parsePromql("sum(rate(gmail_sync_messages_total[5m])").errors.length).toBeGreaterThan(0);
    expect(parsePromql("rate(gmail_sync_messages_total[$__rate_interval])").errors.length).toBeGreaterThan(0);
    expect(parsePromql(substituteGrafanaMacros("rate(gmail_sync_messages_total[$__rate_interval])")).errors).toEqual(
      [],
    );
    expect(check([{ where: "t", expr: 'sum(gmail_sync_no_such_metric{a="$var"})' }]).problems).toEqual([
      "t: unknown metric gmail_sync_no_such_metric",
    ]);
    expect(
      parsePromql(
        'histogram_quantile(0.9, sum by (le) (rate(x_bucket[1m]))) / on() y and {__name__="z"}',
      ).metricNames.sort(),
    ).toEqual(["x_bucket", "y", "z"]);
  });
});

describe("grafana dashboard", () => {
  const dashboard = loadDashboard();

  it("every query parses and names only declared metrics", () => {
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(30);
    expect(check(queries).problems).toEqual([]);
  });

  it("shows every metric the app declares (except the per-account opt-in series and build info)", () => {
    const used = check(dashboardQueries(dashboard)).names;
    const usedBase = new Set([...used].map((n) => n.replace(/_(bucket|sum|count)$/, "")));
    const notShown = appMetrics.filter(
      (m) =>
        !usedBase.has(m) &&
        !used.has(m) &&
        ![
          "gmail_sync_account_cursor_age_seconds",
          "gmail_sync_account_last_success_age_seconds",
          "gmail_sync_metrics_accounts_truncated",
          "gmail_sync_build_info",
        ].includes(m),
    );
    expect(notShown).toEqual([]);
  });

  it("has every panel the issue lists", () => {
    const titles = allPanels(dashboard).map((p) => (p.title ?? "").toLowerCase());
    const required = [
      "sync throughput by direction",
      "errors by type",
      "api request rate by method and code",
      "quota units/s vs configured limit",
      "429s",
      "queue depth",
      "job duration",
      "sync lag",
      "cursor age",
      "push outcomes",
      "watch expiry",
      "accounts by status",
      "attachments by route",
      "skipped attachments by reason",
      "heatmap",
      "temp files and orphans",
    ];
    expect(required.filter((r) => !titles.some((t) => t.includes(r)))).toEqual([]);
    expect(allPanels(dashboard).some((p) => p.type === "heatmap")).toBe(true);
  });

  it("is provisioned: stable uid, unique panel ids, the provisioned datasource uid, classic schema", () => {
    const ds = parseYaml(readFileSync(rel("grafana/provisioning/datasources/prometheus.yml"), "utf8")) as {
      datasources: Array<{ uid: string; type: string }>;
    };
    const provider = parseYaml(readFileSync(rel("grafana/provisioning/dashboards/provider.yml"), "utf8")) as {
      providers: Array<{ options: { path: string } }>;
    };
    const uid = ds.datasources[0]?.uid;
    expect(ds.datasources[0]?.type).toBe("prometheus");
    expect(provider.providers[0]?.options.path).toBe("/var/lib/grafana/dashboards");
    expect(dashboard.uid).toBe("gmail-sync");
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const panels = allPanels(dashboard);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels.filter((x) => x.type !== "row")) {
      expect(p.datasource?.uid, `panel ${p.title}`).toBe(uid);
      for (const t of p.targets ?? []) expect(t.datasource?.uid ?? uid, `panel ${p.title}`).toBe(uid);
    }
  });
});

describe("prometheus config and alert rules", () => {
  it("every alert expression parses and names only declared metrics", () => {
    const queries = alertQueries();
    expect(queries.map((q) => q.where).sort()).toEqual(
      [
        "AccountNotSyncedRecently",
        "AccountReauthRequired",
        "CursorAgeNearHistoryRetention",
        "GmailQuotaNearProjectLimit",
        "GmailRateLimitedSustained",
        "GmailSyncDown",
        "OrphanedTempFiles",
        "RetryLedgerNotDraining",
        "SyncBacklogGrowing",
        "SyncErrorRateRising",
        "WatchExpiringSoon",
      ].map((a) => `rule ${a}`),
    );
    expect(check(queries).problems).toEqual([]);
  });

  it("every alert has a firing case in alerts.test.yml", () => {
    const tests = parseYaml(readFileSync(rel("prometheus/alerts.test.yml"), "utf8")) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
    };
    const firing = new Set(
      tests.tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname),
      ),
    );
    const alerts = alertQueries().map((q) => q.where.replace(/^rule /, ""));
    expect(alerts.filter((a) => !firing.has(a))).toEqual([]);
  });

  describe("promtool", () => {
    beforeAll(() => skipNotice("promtool", "prometheus"));
    it.skipIf(!hasBinary("promtool"))("check config prometheus/prometheus.yml (and the rule file it names)", () => {
      const r = run("promtool", ["check", "config", "prometheus/prometheus.yml"]);
      expect(r.stderr + r.stdout).toContain("SUCCESS");
      expect(r.status, r.stderr + r.stdout).toBe(0);
    });
    it.skipIf(!hasBinary("promtool"))("check rules prometheus/alerts.yml", () => {
      const r = run("promtool", ["check", "rules", "prometheus/alerts.yml"]);
      expect(r.status, r.stderr + r.stdout).toBe(0);
    });
    it.skipIf(!hasBinary("promtool"))("test rules prometheus/alerts.test.yml", () => {
      const r = run("promtool", ["test", "rules", "prometheus/alerts.test.yml"]);
      expect(r.status, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toContain("SUCCESS");
    });
  });
});

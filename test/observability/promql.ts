// PromQL in the dashboard and the alert rules, parsed with Prometheus's own grammar
// (@prometheus-io/lezer-promql) after replacing Grafana's macros, and the metric names it selects.
import { readFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";
import { parse as parseYaml } from "yaml";
import { rel } from "./tools.ts";

export interface Query {
  where: string;
  expr: string;
}

/** Grafana replaces these before sending a query; a bare `[$__rate_interval]` is not PromQL. */
export function substituteGrafanaMacros(expr: string): string {
  return expr
    .replace(/\$\{?__rate_interval\}?/g, "1m")
    .replace(/\$\{?__interval\}?/g, "15s")
    .replace(/\$\{?__range\}?/g, "1h")
    .replace(/\$\{?__range_s\}?/g, "3600")
    .replace(/\$\{?(\w+)(:\w+)?\}?/g, "x"); // template variables (only ever used inside label values)
}

export interface Parsed {
  errors: string[];
  metricNames: string[];
}

export function parsePromql(expr: string): Parsed {
  const tree = parser.parse(expr);
  const errors: string[] = [];
  const names = new Set<string>();
  tree.iterate({
    enter(node) {
      if (node.type.isError)
        errors.push(`syntax error at ${node.from}: …${expr.slice(Math.max(0, node.from - 10), node.to + 10)}…`);
      if (node.type.name === "Identifier" && node.node.parent?.type.name === "VectorSelector") {
        names.add(expr.slice(node.from, node.to));
      }
      if (node.type.name === "UnquotedLabelMatcher") {
        // {__name__="x"} selects a metric too.
        const m = /^__name__\s*=\s*"([^"]+)"$/.exec(expr.slice(node.from, node.to));
        if (m) names.add(m[1] as string);
      }
    },
  });
  return { errors, metricNames: [...names] };
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ expr?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(rel("grafana/dashboards/gmail-sync.json"), "utf8")) as Dashboard;
}

export function allPanels(d: { panels?: Panel[] }): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...allPanels(p)]);
}

export function dashboardQueries(d: Dashboard = loadDashboard()): Query[] {
  return allPanels(d).flatMap((p) =>
    (p.targets ?? [])
      .filter((t) => t.expr !== undefined)
      .map((t) => ({ where: `panel "${p.title}"`, expr: t.expr as string })),
  );
}

export function alertQueries(file = "prometheus/alerts.yml"): Query[] {
  const doc = parseYaml(readFileSync(rel(file), "utf8")) as {
    groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }>;
  };
  return doc.groups.flatMap((g) =>
    g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) })),
  );
}

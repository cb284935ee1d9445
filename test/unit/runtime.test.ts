import { expect, it } from "vitest";

it("runs on Node 24 from the `node` devDependency, not the machine's Node 20", () => {
  expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(24);
});

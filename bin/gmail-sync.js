#!/usr/bin/env node
// npm puts node_modules/.bin first on PATH for npx and npm scripts, so `env node` is the Node 24
// from the `node` devDependency; src/ is TypeScript run through Node's built-in type stripping.
const [major] = process.versions.node.split(".").map(Number);
if (major < 22) {
  console.error(
    `gmail-sync needs Node >= 22 (this is ${process.version}); run it through npx or npm scripts so node_modules/.bin/node (Node 24) is used`,
  );
  process.exit(1);
}
const { runAndExit } = await import("../src/cli.ts");
await runAndExit(process.argv.slice(2));

#!/usr/bin/env node
// The emulator's source is TypeScript run through Node's built-in type stripping (Node >= 22.18).
const { runEmulatorCli } = await import("../src/cli.ts");
process.exitCode = await runEmulatorCli(process.argv.slice(2));

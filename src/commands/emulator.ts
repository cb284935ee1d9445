// `gmail-sync emulator …`: hands its arguments to the emulator package's own CLI
// (emulator/README.md). Loaded only when asked: the production image does not contain the emulator,
// and `serve` and `worker` never load it.
import type { Command } from "commander";

export function registerEmulatorCommand(program: Command): void {
  program
    .command("emulator")
    .description(
      "run the local Gmail emulator (Gmail API v1, OAuth2, Pub/Sub push, control API); --help for its options",
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[options...]")
    .action(async (args: string[]) => {
      let cli: typeof import("@gmail-sync/emulator/cli");
      try {
        cli = await import("@gmail-sync/emulator/cli");
      } catch (err) {
        if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
        throw new Error(
          "the emulator is not installed here (the production image leaves it out; use the demo image or a clone with `npm ci`)",
        );
      }
      const code = await cli.runEmulatorCli(args, "gmail-sync emulator");
      if (code !== 0) process.exit(code);
    });
}

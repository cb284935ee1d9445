// The emulator's programmatic API: start one in-process (port 0 in tests), drive it through its
// control client, and read the settings its realism defaults come from. The mail generator and the
// attachment builders are the package's second entry point, "@gmail-sync/emulator/generate".
export {
  startEmulator,
  createControlClient,
  DEFAULT_CLIENT_ID,
  DEFAULT_CLIENT_SECRET,
  DEFAULT_PUSH_SERVICE_ACCOUNT,
  type Emulator,
  type EmulatorControl,
  type EmulatorOptions,
  type EmulatorStats,
} from "./server.ts";
export { DEFAULT_SETTINGS, type Settings } from "./state.ts";
export {
  DEFAULT_TEST_SCOPES,
  type BulkLabelChange,
  type DeliverRequest,
  type MailboxSnapshot,
  type SettingsUpdate,
} from "./control.ts";
// Which new messages answer 404 for a moment after they are added: exported so a benchmark can tell
// the raced messages from the rest without asking the emulator.
export { answersNotFoundYet, unitHash } from "./added-race.ts";

// Where generated mail comes from: the seeded mailbox generator (src/generate/), for the mailboxes
// made at start and for control deliveries with body {} (a fresh seed each call).
import {
  GENERATED_USER_LABELS,
  generateMailbox,
  generateMessage,
  type GenerateMailboxOptions,
} from "./generate/index.ts";

export interface GeneratedMessage {
  raw: Buffer;
  labelIds: string[];
  internalDate: number;
}

/** What a generated mailbox holds besides plain mail (each default true but `large`). */
export type MailboxContent = Omit<GenerateMailboxOptions, "seed" | "count" | "email">;

export interface MessageSource {
  mailbox(opts: { seed: number; count: number; email: string } & MailboxContent): Promise<GeneratedMessage[]>;
  /** One new message for a control delivery with body {} (a fresh seed each call). */
  message(email: string, attachments?: boolean): Promise<GeneratedMessage>;
  /** User labels the generated mail uses (id → display name). */
  userLabels: ReadonlyArray<{ id: string; name: string }>;
}

export function createMessageSource(seed: number): MessageSource {
  let deliveries = 0;
  return {
    mailbox: async (o) => generateMailbox(o),
    message: async (email, attachments) =>
      generateMessage({
        seed: seed * 1_000_003 + ++deliveries,
        email,
        date: Date.now(),
        ...(attachments !== undefined ? { attachments } : {}),
      }),
    userLabels: GENERATED_USER_LABELS,
  };
}

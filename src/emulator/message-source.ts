// Where generated mail comes from: the seeded mailbox generator (src/emulator/generate/) when it
// is present, else a plain fallback so the server still starts with --messages N.
import { existsSync } from "node:fs";

export interface GeneratedMessage {
  raw: Buffer;
  labelIds: string[];
  internalDate: number;
}

/** What a generated mailbox holds besides plain mail (each default true but `large`). */
export interface MailboxContent {
  attachments?: boolean;
  hostile?: boolean;
  large?: boolean;
  legacyCharsets?: boolean;
  forwarded?: boolean;
  largeBodies?: boolean;
  drafts?: boolean;
}

export interface MessageSource {
  mailbox(opts: { seed: number; count: number; email: string } & MailboxContent): Promise<GeneratedMessage[]>;
  /** One new message for a control delivery with body {} (a fresh seed each call). */
  message(email: string, attachments?: boolean): Promise<GeneratedMessage>;
  /** User labels the generated mail uses (id → display name). */
  userLabels: ReadonlyArray<{ id: string; name: string }>;
}

// The generator may build attachments asynchronously; accept either form.
interface GeneratorModule {
  generateMailbox(opts: { seed: number; count: number; email: string } & MailboxContent): GeneratedMessage[] | Promise<GeneratedMessage[]>;
  generateMessage(opts: { seed: number; email: string; date?: number; attachments?: boolean }): GeneratedMessage | Promise<GeneratedMessage>;
  GENERATED_USER_LABELS?: ReadonlyArray<{ id: string; name: string }>;
}

/** Files of src/emulator/generate/ that may export the generator, in order of preference. */
const GENERATOR_FILES = ["./generate/index.ts", "./generate/mailbox.ts", "./generate/generate.ts"];

export async function loadMessageSource(seed: number): Promise<MessageSource> {
  let deliveries = 0;
  for (const file of GENERATOR_FILES) {
    const url = new URL(file, import.meta.url);
    if (!existsSync(url)) continue;
    const mod = (await import(url.href)) as Partial<GeneratorModule>;
    if (typeof mod.generateMailbox === "function" && typeof mod.generateMessage === "function") {
      const gen = mod as GeneratorModule;
      return {
        mailbox: async (o) => gen.generateMailbox(o),
        message: async (email, attachments) => gen.generateMessage({ seed: seed * 1_000_003 + ++deliveries, email, date: Date.now(), ...(attachments !== undefined ? { attachments } : {}) }),
        userLabels: gen.GENERATED_USER_LABELS ?? [],
      };
    }
  }
  return {
    mailbox: async ({ count, email }) => {
      const now = Date.now();
      return Array.from({ length: count }, (_, i) => plainMessage(email, `Message ${i + 1}`, now - (count - i) * 3_600_000));
    },
    message: async (email) => plainMessage(email, `Delivery ${++deliveries}`, Date.now()),
    userLabels: [],
  };
}

function plainMessage(email: string, subject: string, date: number): GeneratedMessage {
  const id = `<${date}.${subject.replace(/\W+/g, "-")}@emulator.invalid>`;
  const raw = Buffer.from(
    [`From: Sender <sender@example.net>`, `To: ${email}`, `Subject: ${subject}`, `Date: ${new Date(date).toUTCString()}`, `Message-ID: ${id}`, "MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"', "", `Body of ${subject}.`, ""].join("\r\n"),
  );
  return { raw, labelIds: ["INBOX", "UNREAD"], internalDate: date };
}

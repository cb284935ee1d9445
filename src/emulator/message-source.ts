// Where generated mail comes from: the seeded mailbox generator (src/emulator/generate/) when it
// is present, else a plain fallback so the server still starts with --messages N.
import { existsSync } from "node:fs";

export interface GeneratedMessage {
  raw: Buffer;
  labelIds: string[];
  internalDate: number;
}

export interface MessageSource {
  mailbox(opts: { seed: number; count: number; email: string; attachments?: boolean }): GeneratedMessage[];
  /** One new message for a control delivery with body {} (a fresh seed each call). */
  message(email: string): GeneratedMessage;
}

interface GeneratorModule {
  generateMailbox(opts: { seed: number; count: number; email: string; attachments?: boolean; large?: boolean }): GeneratedMessage[];
  generateMessage(seed: number, email: string): GeneratedMessage;
}

export async function loadMessageSource(seed: number): Promise<MessageSource> {
  let deliveries = 0;
  const url = new URL("./generate/index.ts", import.meta.url);
  if (existsSync(url)) {
    const mod = (await import(url.href)) as Partial<GeneratorModule>;
    if (typeof mod.generateMailbox === "function" && typeof mod.generateMessage === "function") {
      const gen = mod as GeneratorModule;
      return {
        mailbox: (o) => gen.generateMailbox(o),
        message: (email) => ({ ...gen.generateMessage(seed * 1_000_003 + ++deliveries, email), internalDate: Date.now() }),
      };
    }
  }
  return {
    mailbox: ({ count, email }) => {
      const now = Date.now();
      return Array.from({ length: count }, (_, i) => plainMessage(email, `Message ${i + 1}`, now - (count - i) * 3_600_000));
    },
    message: (email) => plainMessage(email, `Delivery ${++deliveries}`, Date.now()),
  };
}

function plainMessage(email: string, subject: string, date: number): GeneratedMessage {
  const id = `<${date}.${Math.random().toString(36).slice(2)}@emulator.invalid>`;
  const raw = Buffer.from(
    [`From: Sender <sender@example.net>`, `To: ${email}`, `Subject: ${subject}`, `Date: ${new Date(date).toUTCString()}`, `Message-ID: ${id}`, "MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"', "", `Body of ${subject}.`, ""].join("\r\n"),
  );
  return { raw, labelIds: ["INBOX", "UNREAD"], internalDate: date };
}

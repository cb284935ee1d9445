// Words, names and sentences for generated mail. Non-ASCII names and subjects are deliberate:
// they exercise RFC 2047 decoding all the way to Postgres.
import type { Rng } from "./prng.ts";

const FIRST_NAMES = [
  "Alice",
  "Bob",
  "Carmen",
  "David",
  "Emma",
  "Farid",
  "Grace",
  "Hiroshi",
  "Ingrid",
  "Jonas",
  "Zoë",
  "José",
  "Søren",
  "Łukasz",
  "Élodie",
  "Björn",
  "Ana",
  "Mateo",
  "Priya",
  "Chen",
  "Ελένη",
  "Иван",
  "太郎",
  "Nguyễn",
  "François",
  "Ayşe",
  "Dvořák",
  "Siobhán",
  "Kwame",
  "Olga",
];
const LAST_NAMES = [
  "Smith",
  "Johnson",
  "García",
  "Müller",
  "Dubois",
  "Rossi",
  "Kowalski",
  "Nakamura",
  "Olsen",
  "Silva",
  "Núñez",
  "Østergaard",
  "Παπαδοπούλου",
  "Петров",
  "田中",
  "Öztürk",
  "Fernández",
  "O'Brien",
  "Lee",
  "Patel",
];
const DOMAINS = [
  "example.com",
  "example.org",
  "example.net",
  "mail.example.com",
  "corp.example.org",
  "lists.example.net",
];
const ZONES = [0, 60, 120, -300, -240, -480, 330, 540, 600, -180];

export interface Contact {
  name: string;
  email: string;
  /** Minutes east of UTC, for the Date header. */
  zone: number;
}

const ascii = (text: string): string =>
  text
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^A-Za-z0-9]/g, "")
    .toLowerCase();

export function makeContacts(rng: Rng, count: number): Contact[] {
  const contacts: Contact[] = [];
  for (let i = 0; i < count; i++) {
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    // Non-Latin names transliterate to nothing: fall back to a numbered mailbox.
    const local = [ascii(first), ascii(last)].filter(Boolean).join(".") || "contact";
    contacts.push({ name: `${first} ${last}`, email: `${local}${i}@${rng.pick(DOMAINS)}`, zone: rng.pick(ZONES) });
  }
  return contacts;
}

export function ownerName(email: string): string {
  const local = email.split("@")[0] ?? email;
  return local
    .split(/[._+-]/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join(" ");
}

const TOPICS = [
  "budget",
  "roadmap",
  "offsite",
  "migration",
  "invoice",
  "contract",
  "hiring plan",
  "release",
  "audit",
  "design review",
  "quarterly report",
  "onboarding",
  "server upgrade",
  "newsletter",
  "workshop",
];
const PLACES = ["Lisbon", "Kyoto", "München", "Reykjavík", "São Paulo", "Zürich", "Kraków", "Montréal"];
const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

export function makeSubject(rng: Rng): string {
  const topic = rng.pick(TOPICS);
  const place = rng.pick(PLACES);
  const day = rng.pick(WEEKDAYS);
  const num = rng.int(100, 9999);
  const templates = [
    () => `${topic[0]!.toUpperCase()}${topic.slice(1)} update`,
    () => `Agenda for ${day}`,
    () => `Invoice #${num}`,
    () => `Notes from the ${topic} meeting`,
    () => `Photos from ${place}`,
    () => `Question about the ${topic}`,
    () => `Your receipt ${num}`,
    () => `Draft ${topic} for review`,
    () => `Réunion : ${topic}`,
    () => `Grüße aus ${place}`,
    () => `会議の議事録 ${num}`,
    () => `Предложение по проекту ${num}`,
    () => `¿Nos vemos el ${day}?`,
    () => `🎉 Celebration on ${day}`,
  ];
  return rng.pick(templates)();
}

const SENTENCES = [
  "I had a look at the numbers and they mostly add up.",
  "Could you check the attached version before Friday?",
  "The committee asked for a shorter summary this time.",
  "Let me know if the new schedule works for your team.",
  "We moved the call to the afternoon because of the outage.",
  "Thanks again for the quick turnaround on this.",
  "The vendor confirmed the delivery window yesterday.",
  "I think we should keep the second option on the table.",
  "Merci pour votre retour, c'est très utile.",
  "Die Unterlagen liegen im gemeinsamen Ordner.",
  "よろしくお願いします。",
  "Спасибо, всё получил.",
];
const CLOSINGS = ["Best", "Cheers", "Thanks", "Regards", "Talk soon", "Viele Grüße"];

export function makeParagraphs(rng: Rng, token: string): string[] {
  const first = Array.from({ length: rng.int(1, 3) }, () => rng.pick(SENTENCES)).join(" ");
  const second = `${rng.pick(SENTENCES)} The reference word for this one is ${token}.`;
  return rng.chance(0.5) ? [first, second] : [second, first];
}

export const closing = (rng: Rng): string => rng.pick(CLOSINGS);

const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "ne",
  "ru",
  "ta",
  "vo",
  "zi",
  "bre",
  "dra",
  "fli",
  "gro",
  "plu",
  "qua",
  "stra",
  "tho",
  "vel",
  "wim",
  "xan",
  "yor",
  "zep",
  "mar",
  "nix",
  "oph",
];

/** A made-up word, unique per `index`: the search tests' handle on one message. */
export function makeToken(rng: Rng, index: number): string {
  let word = "";
  for (let i = rng.int(3, 4); i > 0; i--) word += rng.pick(SYLLABLES);
  let n = index;
  let suffix = "";
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26);
  } while (n > 0);
  return `${word}${suffix}`;
}

export const CATEGORIES = [
  ["CATEGORY_PERSONAL", 0.5],
  ["CATEGORY_UPDATES", 0.2],
  ["CATEGORY_PROMOTIONS", 0.15],
  ["CATEGORY_SOCIAL", 0.1],
  ["CATEGORY_FORUMS", 0.05],
] as const;

/** The user labels generated mailboxes use (ids as Gmail makes them, names for labels.list). */
export const GENERATED_USER_LABELS: readonly { id: string; name: string }[] = [
  { id: "Label_1", name: "Receipts" },
  { id: "Label_2", name: "Travel" },
  { id: "Label_3", name: "Projects/Atlas" },
  { id: "Label_4", name: "Family" },
  { id: "Label_5", name: "Ünïcödé ✓" },
];

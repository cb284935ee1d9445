// The Gmail port: what sync code needs from Gmail, for one account. src/gmail/client.ts implements
// it over @googleapis/gmail (with quota, retries, classification and metrics); sync code depends
// only on this interface. Every method throws GmailError (src/errors.ts) on failure.
import type { gmail_v1 } from "@googleapis/gmail";

export type GmailMessage = gmail_v1.Schema$Message;
export type GmailHistory = gmail_v1.Schema$History;

export interface MessageRef {
  id: string;
  threadId: string;
}

export interface Profile {
  emailAddress: string;
  messagesTotal: number;
  threadsTotal: number;
  historyId: string;
}

export interface ListMessagesOptions {
  pageToken?: string;
  q?: string;
  labelIds?: string[];
  includeSpamTrash?: boolean;
  maxResults?: number;
}

export interface ListMessagesPage {
  messages: MessageRef[];
  nextPageToken?: string;
  resultSizeEstimate: number;
}

/** One id's outcome in getMessages: a message, or the classified error for that id alone. */
export type FetchedMessage =
  | { id: string; message: GmailMessage; error?: undefined }
  | { id: string; message?: undefined; error: import("../errors.ts").GmailError };

/** One thread id's outcome in getThreads: the thread's messages (format full), or its error. */
export type FetchedThread =
  | { id: string; messages: GmailMessage[]; error?: undefined }
  | { id: string; messages?: undefined; error: import("../errors.ts").GmailError };

/** A thread as threads.list gives it: its id and the id of the last history record that changed it. */
export interface ThreadRef {
  id: string;
  historyId: string;
}

export interface ListThreadsPage {
  threads: ThreadRef[];
  nextPageToken?: string;
}

export interface ListHistoryOptions {
  startHistoryId: string;
  pageToken?: string;
  historyTypes?: Array<"messageAdded" | "messageDeleted" | "labelAdded" | "labelRemoved">;
  maxResults?: number;
}

export interface HistoryPage {
  history: GmailHistory[];
  nextPageToken?: string;
  /** The mailbox's current history id at the time of the call. */
  historyId: string;
}

export interface WatchRequest {
  topicName: string;
  labelIds?: string[];
  labelFilterBehavior?: "include" | "exclude";
}

export interface GmailPort {
  getProfile(): Promise<Profile>;
  listMessages(opts: ListMessagesOptions): Promise<ListMessagesPage>;
  /**
   * Full-format messages, fetched in bounded parallel / batches; per-id outcomes, in input order.
   * Per-id errors are not_found, permanent, or transient (retries used up); account-level ones
   * (rate_limited past the inline wait, auth_revoked) are thrown instead.
   */
  getMessages(ids: string[]): Promise<FetchedMessage[]>;
  /**
   * Whole threads, format full (threads.get: 10 units for every message of the thread, where
   * messages.get costs 5 a message), with the same batching, retries and per-id outcomes as
   * getMessages.
   */
  getThreads(threadIds: string[]): Promise<FetchedThread[]>;
  /** threads.list (10 units a page of up to 500 threads), in the same scope options as listMessages. */
  listThreads(opts: ListMessagesOptions): Promise<ListThreadsPage>;
  /**
   * Whole threads in format minimal (threads.get, 10 units a thread): each message's id, labelIds
   * and historyId, no content; per-id outcomes as getThreads.
   */
  getThreadLabels(threadIds: string[]): Promise<FetchedThread[]>;
  /** Decoded bytes of one attachment (messages.attachments.get). */
  getAttachment(messageId: string, attachmentId: string): Promise<Buffer>;
  listHistory(opts: ListHistoryOptions): Promise<HistoryPage>;
  watch(req: WatchRequest): Promise<{ historyId: string; expiration: string }>;
  stop(): Promise<void>;
}

export interface AccountRef {
  id: number;
  email: string;
}

/** Builds the port for one account (loads and refreshes its tokens as needed). */
export type GmailFactory = (account: AccountRef) => Promise<GmailPort>;

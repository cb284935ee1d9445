// netHistory: a window of history records reduced to what must be fetched, soft-deleted and
// relabelled. Pure; the integration tests cover the same rules against the emulator.
import { describe, expect, it } from "vitest";
import { groupLabelChanges, netHistory, sliceWindow } from "../../src/sync/incremental.ts";

const msg = (id: string) => ({ message: { id, threadId: id } });

describe("netHistory", () => {
  it("nets out a message added and deleted in the same window, keeps deletions of older ones", () => {
    const net = netHistory([
      { id: "102", messagesDeleted: [msg("old")] },
      { id: "100", messagesAdded: [msg("a"), msg("b")] },
      { id: "101", messagesDeleted: [msg("b")] },
    ]);
    expect([...net.added.keys()]).toEqual(["a"]);
    expect(net.added.get("a")).toBe("100");
    expect([...net.deleted.entries()]).toEqual([
      ["b", "101"],
      ["old", "102"],
    ]);
    expect(net.maxRecordId).toBe(102n);
  });

  it("keeps label records in history order, except for deleted messages", () => {
    const net = netHistory([
      { id: "7", labelsRemoved: [{ ...msg("x"), labelIds: ["UNREAD"] }] },
      {
        id: "5",
        labelsAdded: [
          { ...msg("x"), labelIds: ["STARRED"] },
          { ...msg("gone"), labelIds: ["INBOX"] },
        ],
      },
      { id: "6", messagesAdded: [msg("y")], labelsAdded: [{ ...msg("y"), labelIds: ["IMPORTANT"] }] },
      { id: "8", messagesDeleted: [msg("gone")] },
    ]);
    expect(net.labels).toEqual([
      { gmailId: "x", historyId: "5", added: ["STARRED"], removed: [] },
      { gmailId: "y", historyId: "6", added: ["IMPORTANT"], removed: [] },
      { gmailId: "x", historyId: "7", added: [], removed: ["UNREAD"] },
    ]);
  });

  it("merges a record's labelsAdded and labelsRemoved for one message into one change (Move to, thread operations)", () => {
    // As Gmail writes them (gmail-real-samples/history_list_thread_ops.json): one record, every
    // message of the thread, adds and removes together.
    const net = netHistory([
      {
        id: "40",
        messages: [msg("m1").message, msg("m2").message],
        labelsAdded: [
          { ...msg("m1"), labelIds: ["Label_7"] },
          { ...msg("m2"), labelIds: ["Label_7"] },
        ],
        labelsRemoved: [
          { ...msg("m1"), labelIds: ["INBOX"] },
          { ...msg("m2"), labelIds: ["INBOX", "UNREAD"] },
        ],
      },
      { id: "41", messages: [msg("m1").message] },
    ]);
    expect(net.labels).toEqual([
      { gmailId: "m1", historyId: "40", added: ["Label_7"], removed: ["INBOX"] },
      { gmailId: "m2", historyId: "40", added: ["Label_7"], removed: ["INBOX", "UNREAD"] },
    ]);
    expect(net.maxRecordId).toBe(41n);
  });

  it("compares history ids as integers, not strings, beyond 2^53", () => {
    const net = netHistory([
      { id: "18446744073709551610", messagesAdded: [msg("big")] },
      { id: "9", messagesAdded: [msg("small")] },
    ]);
    expect(net.maxRecordId).toBe(18446744073709551610n);
  });

  it("handles an empty window (a page with a token but no history)", () => {
    const net = netHistory([]);
    expect(net.added.size + net.deleted.size + net.labels.length).toBe(0);
    expect(net.maxRecordId).toBe(0n);
  });
});

describe("sliceWindow", () => {
  it("cuts a window into history-ordered slices of bounded additions", () => {
    const adds = (id: string, n: number) => ({
      id,
      messagesAdded: Array.from({ length: n }, (_, i) => msg(`${id}-${i}`)),
    });
    const slices = sliceWindow([adds("3", 2), adds("1", 3), { id: "2", messagesDeleted: [msg("d")] }, adds("4", 4)], 5);
    expect(slices.map((s) => s.map((r) => r.id))).toEqual([["1", "2", "3"], ["4"]]);
  });
  it("also bounds a slice by entries of any kind (a bulk change), never splitting a record", () => {
    const labels = (id: string, n: number) => ({
      id,
      labelsRemoved: Array.from({ length: n }, (_, i) => ({ ...msg(`${id}-${i}`), labelIds: ["UNREAD"] })),
    });
    const slices = sliceWindow(
      [
        labels("1", 1000),
        labels("2", 1000),
        labels("3", 1000),
        { id: "4", messagesAdded: [msg("a")] },
        labels("5", 3000),
      ],
      500,
      2500,
    );
    expect(slices.map((sl) => sl.map((r) => r.id))).toEqual([["1", "2"], ["3", "4"], ["5"]]);
  });
  it("keeps an empty window as one empty slice", () => {
    expect(sliceWindow([], 5)).toEqual([[]]);
  });
});

describe("groupLabelChanges", () => {
  it("groups consecutive changes of one record with one delta, keeping history order", () => {
    const change = (gmailId: string, historyId: string, added: string[], removed: string[]) => ({
      gmailId,
      historyId,
      added,
      removed,
    });
    expect(
      groupLabelChanges([
        change("a", "10", [], ["UNREAD"]),
        change("b", "10", [], ["UNREAD"]),
        change("c", "10", ["Label_1"], ["INBOX"]),
        change("a", "11", ["UNREAD"], []),
        change("d", "12", [], ["UNREAD"]),
      ]),
    ).toEqual([
      { gmailIds: ["a", "b"], historyId: "10", added: [], removed: ["UNREAD"] },
      { gmailIds: ["c"], historyId: "10", added: ["Label_1"], removed: ["INBOX"] },
      { gmailIds: ["a"], historyId: "11", added: ["UNREAD"], removed: [] },
      { gmailIds: ["d"], historyId: "12", added: [], removed: ["UNREAD"] },
    ]);
  });
});

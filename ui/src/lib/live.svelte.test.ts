// The live model's folding of events, on an in-memory transport that serves
// what a controller would and lets the test push events. (The real
// transports are driven end to end by tests/browser.mjs and tests/window.mjs.)
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BotView, CoreEvent, FlowCounts, StateCount, Transition } from "../bindings";
import { usd } from "./format";
import { FLUSH_MS, Live, flowRates } from "./live.svelte";
import type { Transport } from "./transport";

function transport(counts: StateCount[]) {
  let push: (e: CoreEvent) => void = () => {};
  const t = {
    label: "test",
    resyncs: 0,
    health: async () => ({ ok: true, store: "sqlite", bots_live: 1, version: "0" }),
    counts: async () => {
      t.resyncs++;
      return counts;
    },
    bots: async () => [],
    events(on: (e: CoreEvent) => void, status: (live: boolean) => void) {
      push = on;
      status(true);
      return () => {};
    },
    push: (e: CoreEvent) => push(e),
  };
  return t as unknown as Transport & { push: (e: CoreEvent) => void; resyncs: number };
}

const tr = (ticket: string, from: Transition["from"], to: Transition["to"], bot: string | null = null): Transition => ({
  ticket, tenant: "default", seq: 1, from, to, attempt: 1, bot, reason: "test", at_ms: 0,
  correlation_id: ticket, causation_id: null,
});

describe("Live", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("starts from the controller's counts and moves them with each transition", async () => {
    const t = transport([{ state: "queued", count: 2 }, { state: "running", count: 0 }] as StateCount[]);
    const live = new Live(t);
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(live.connected).toBe(true);
    expect(live.counts.queued).toBe(2);

    t.push({ type: "tickets_transitioned", transitions: [tr("a", "queued", "running", "bot-01"), tr("a", "running", "succeeded", "bot-01")] });
    t.push({ type: "tickets_transitioned", transitions: [tr("b", "queued", "running", "bot-02")] });
    // Heard, not yet said: the views hear of them together, once.
    expect(live.counts.queued).toBe(2);
    expect(live.batches).toBe(0);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.counts).toMatchObject({ queued: 0, running: 1, succeeded: 1 });
    expect(live.recent.map((r) => [r.ticket, r.to])).toEqual([["b", "running"], ["a", "succeeded"], ["a", "running"]]);
    expect(live.batches).toBe(1);
    live.dispose();
  });

  it("counts a resync's read as it is, not moved again by what was heard before it", async () => {
    const t = transport([{ state: "queued", count: 0 }, { state: "running", count: 1 }] as StateCount[]);
    const live = new Live(t);
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    // The store's read already counts this move: heard, then read.
    t.push({ type: "tickets_transitioned", transitions: [tr("a", "queued", "running")] });
    await live.resync();
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.counts).toMatchObject({ queued: 0, running: 1 });
    expect(live.recent.map((r) => r.ticket)).toEqual(["a"]);
    live.dispose();
  });

  it("never counts below zero when events arrive before a resync", async () => {
    const t = transport([]);
    const live = new Live(t);
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    t.push({ type: "tickets_transitioned", transitions: [tr("b", "routed", "running")] });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.counts.routed).toBe(0);
    expect(live.counts.running).toBe(1);
    live.dispose();
  });

  it("turns each second into a sample of finished tickets, spend and per-bot rates", async () => {
    const t = transport([]);
    const live = new Live(t);
    live.start();
    t.push({ type: "tickets_transitioned", transitions: [tr("c", "running", "succeeded", "bot-02"), tr("d", "running", "dead", "bot-02")] });
    t.push({ type: "cost_captured", entries: [{ cost_nusd: 1500 }, { cost_nusd: 500 }] } as unknown as CoreEvent);
    await vi.advanceTimersByTimeAsync(1000);
    expect(live.series.at(-1)).toMatchObject({ finished: 2, costNusd: 2000 });
    expect(live.rates).toEqual({ "bot-02": 2 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(live.series.at(-1)).toMatchObject({ finished: 0, costNusd: 0 });
    live.dispose();
  });

  it("folds the bots' changes in place: new ones appended, gone ones removed", async () => {
    const t = transport([]);
    const live = new Live(t);
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    const bot = (id: string, in_flight: number) =>
      ({ id, skills: ["chat"], model: "builtin", node: null, live: true, cordoned: false, in_flight,
         succeeded: 0, failed: 0, attempt_ms: null, lane: null }) as unknown as BotView;
    t.push({ type: "bots_changed", changed: [bot("a", 0), bot("b", 0), bot("c", 0)], gone: [] });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.bots.map((b) => b.id)).toEqual(["a", "b", "c"]);
    t.push({ type: "bots_changed", changed: [bot("b", 4)], gone: [] });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.bots.map((b) => [b.id, b.in_flight])).toEqual([["a", 0], ["b", 4], ["c", 0]]);
    t.push({ type: "bots_changed", changed: [bot("d", 1), bot("c", 2)], gone: ["a"] });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.bots.map((b) => [b.id, b.in_flight])).toEqual([["b", 4], ["c", 2], ["d", 1]]);
    expect(live.botsLive).toBe(3);
    t.push({ type: "bots_changed", changed: [{ ...bot("c", 0), live: false }], gone: [] });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.botsLive).toBe(2);
    // A whole list (a feed's first word) replaces them all.
    t.push({ type: "bots_updated", bots: [bot("z", 0)] });
    t.push({ type: "bots_changed", changed: [bot("y", 0)], gone: [] });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.bots.map((b) => b.id)).toEqual(["z", "y"]);
    // A fleet said in parts within one flush: one new list, drawn once.
    const parts = Array.from({ length: 4 }, (_, p) => Array.from({ length: 500 }, (_, i) => bot(`n${p}-bot-${i}`, 0)));
    t.push({ type: "bots_updated", bots: parts[0] });
    for (const part of parts.slice(1)) t.push({ type: "bots_changed", changed: part, gone: [] });
    // Nothing folded per message: the parts wait for the flush.
    expect(live.bots.map((b) => b.id)).toEqual(["z", "y"]);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.bots.length).toBe(2000);
    expect(live.bots[1999].id).toBe("n3-bot-499");
    expect(live.botsLive).toBe(2000);
    live.dispose();
  });

  it("keeps the feed's bots over a resync, and drops a read the feed overtook", async () => {
    const t = transport([]);
    const bot = (id: string, in_flight: number) =>
      ({ id, skills: ["chat"], model: "builtin", node: null, live: true, cordoned: false, in_flight,
         succeeded: 0, failed: 0, attempt_ms: null, lane: null }) as unknown as BotView;
    // The first read of the bots answers only when the test says so.
    let answer: (b: BotView[]) => void = () => {};
    let reads = 0;
    t.bots = () => {
      reads++;
      return new Promise<BotView[]>((r) => (answer = r));
    };
    const live = new Live(t);
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    t.push({ type: "bots_updated", bots: [bot("a", 1)] });
    answer([bot("stale", 0)]);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(live.bots.map((b) => b.id)).toEqual(["a"]);
    // Fed since it connected: the periodic resync leaves the bots to the feed.
    await vi.advanceTimersByTimeAsync(5000);
    expect(reads).toBe(1);
    live.dispose();
  });

  it("resyncs when it has fallen behind, and every 5 s regardless", async () => {
    const t = transport([]);
    const live = new Live(t);
    live.start();
    await vi.advanceTimersByTimeAsync(0);
    const first = t.resyncs;
    t.push({ type: "lagged", missed: 12 });
    await vi.advanceTimersByTimeAsync(0);
    expect(t.resyncs).toBe(first + 1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(t.resyncs).toBe(first + 2);
    live.dispose();
  });
});

describe("usd", () => {
  it("shows micro-amounts with six decimals and larger ones with four", () => {
    expect(usd(2550)).toBe("$0.000003");
    expect(usd(0)).toBe("$0.0000");
    expect(usd(12_340_000_000)).toBe("$12.3400");
  });
});

describe("flowRates", () => {
  const counts = (at_ms: number, n: number, tools = true): FlowCounts => ({
    at_ms, surface: "http", gate: { admitted: n * 2, refused: 1 }, submitted: n, refused: 0, routed: n, results: n - 1,
    commits: n / 10, committed_rows: n * 7, tools: tools ? { allowed: n / 2, refused: 0, sent: n / 4, served: 0 } : null,
  });

  it("turns two reads into each edge's own rate per second", () => {
    const r = flowRates(counts(1000, 100), counts(3000, 500))!;
    expect(r.gate).toEqual({ admitted: 400, refused: 0 });
    expect([r.submitted, r.routed, r.results, r.commits, r.rows]).toEqual([200, 200, 200, 20, 1400]);
    expect(r.tools).toEqual({ allowed: 100, refused: 0, sent: 50, served: 0 });
  });

  it("knows no rate without time between the reads, across a restart, or for what one read lacks", () => {
    expect(flowRates(counts(1000, 100), counts(1000, 200))).toBeNull();
    expect(flowRates(counts(1000, 500), counts(2000, 10))).toBeNull();
    expect(flowRates(counts(1000, 100, false), counts(2000, 200))!.tools).toBeNull();
    const ipc = { ...counts(2000, 200), surface: "ipc" as const, gate: null };
    expect(flowRates(counts(1000, 100), ipc)!.gate).toBeNull();
  });
});

// The live model every view draws from: bots and their lanes, ticket counts
// per state, recent transitions, and per-second series for the charts.
// Fed by the event stream, with a periodic resync so a missed event
// (`lagged`) heals itself.
import type { BotView, ControlView, CoreEvent, FleetSummary, FlowCounts, FlowSurface, Health, IntegrationView, MeshView, TicketState, Transition } from "../bindings";
import { ServerError, type Transport } from "./transport";

export const STATES: TicketState[] = [
  "awaiting_approval",
  "queued",
  "routed",
  "running",
  "succeeded",
  "failed",
  "dead",
  "cancelled",
];

/** The states a ticket ends in. */
export const ENDED: TicketState[] = ["succeeded", "dead", "cancelled"];

export interface Sample {
  t: number;
  finished: number;
  costNusd: number;
}

/** Per-second rates along each edge of the architecture. */
export interface FlowRates {
  surface: FlowSurface;
  /** Requests the gate admitted and refused (`null` over IPC: no gate). */
  gate: { admitted: number; refused: number } | null;
  submitted: number;
  refused: number;
  routed: number;
  results: number;
  commits: number;
  rows: number;
  /** Tool calls through the broker (`null`: no connectors). */
  tools: { allowed: number; refused: number; sent: number; served: number } | null;
}

/** The rates between two reads of the flow counts: `null` when they are
 * not two reads of one run (no time between them, or a counter went back:
 * the controller restarted). */
export function flowRates(prev: FlowCounts, next: FlowCounts): FlowRates | null {
  const dt = (next.at_ms - prev.at_ms) / 1000;
  if (dt <= 0) return null;
  let back = false;
  const rate = (a: number, b: number) => {
    if (b < a) back = true;
    return Math.round(((b - a) / dt) * 10) / 10;
  };
  const out: FlowRates = {
    surface: next.surface,
    gate: prev.gate && next.gate ? { admitted: rate(prev.gate.admitted, next.gate.admitted), refused: rate(prev.gate.refused, next.gate.refused) } : null,
    submitted: rate(prev.submitted, next.submitted),
    refused: rate(prev.refused, next.refused),
    routed: rate(prev.routed, next.routed),
    results: rate(prev.results, next.results),
    commits: rate(prev.commits, next.commits),
    rows: rate(prev.committed_rows, next.committed_rows),
    tools:
      prev.tools && next.tools
        ? {
            allowed: rate(prev.tools.allowed, next.tools.allowed),
            refused: rate(prev.tools.refused, next.tools.refused),
            sent: rate(prev.tools.sent, next.tools.sent),
            served: rate(prev.tools.served, next.tools.served),
          }
        : null,
  };
  return back ? null : out;
}

/** How long transitions and the bots' parts gather before the views hear
 * of them: a feed of thousands of transitions a second, and a fleet of
 * 10,000 bots said in twenty parts, reach them at most ten times a second,
 * not once per message. */
export const FLUSH_MS = 100;

type BotsEvent = Extract<CoreEvent, { type: "bots_updated" | "bots_changed" }>;

export class Live {
  /** Every bot, in the fleet's order. Replaced whole on each change (not a
   * deep proxy: 10,000 bots would be 100,000 signals read each second). */
  bots = $state.raw<BotView[]>([]);
  /** How many of `bots` are live, counted with each change. */
  botsLive = $state(0);
  /** Where each bot sits in `bots`, so a change lands in place. */
  private botAt = new Map<string, number>();
  /** Whether the event feed has said the bots since it last connected
   * (a browser's socket reports its drops; the desktop's bridge opens a
   * dropped fleet feed again, whose first word is the whole list): it then
   * keeps them (the whole list first, then what changed), and a resync
   * does not read them again. */
  private botsFed = false;
  /** Bots events seen: a read of the bots begun before one is stale. */
  private botsSeq = 0;
  counts = $state.raw<Record<string, number>>({});
  health = $state<Health | null>(null);
  connected = $state(false);
  recent = $state.raw<Transition[]>([]);
  /** Flushes of transitions so far (at most one per `FLUSH_MS`): views
   * refresh when it moves. */
  batches = $state(0);
  series = $state.raw<Sample[]>([]);
  /** Transitions seen per bot in the last second, for edge rates. */
  rates = $state.raw<Record<string, number>>({});
  error = $state<string | null>(null);
  /** Connectors, grants, recent audit and effects (refreshed with each resync). */
  integrations = $state<IntegrationView | null>(null);
  /** Why there are none (a fleet controller has no connectors yet). */
  integrationsUnavailable = $state<string | null>(null);
  /** The Security Center's preventive controls (refreshed with each resync). */
  security = $state<ControlView[] | null>(null);
  /** The mesh as the controller last read it (refreshed with each resync);
   * `null` when it cannot be read (a tenant's token, an older controller). */
  mesh = $state<MeshView | null>(null);
  /** Every controller this surface knows, read at each resync. */
  overview = $state<FleetSummary[]>([]);
  /** Whether the counts per state have been read from the store (until
   * then, and while they cannot be, they are unknown, not 0). */
  countsKnown = $state(false);
  /** Whether the bots can be read: a tenant's token may not see the
   * fleet's, and then they are unknown, not none. */
  botsKnown = $state(true);
  /** Each edge's rate over the last second; `null` until two reads (one
   * read is no rate) or while the counts cannot be read. */
  flow = $state<FlowRates | null>(null);
  /** How this surface reaches the controller, once read. */
  surface = $state<FlowSurface | null>(null);
  /** Why the flow cannot be read (a tenant's token). */
  flowUnavailable = $state<string | null>(null);
  private lastFlow: FlowCounts | null = null;
  /** Views drawing the flow: it is read only while one is open. */
  private flowWatchers = 0;
  /** This token may not read the flow: it is not asked again. */
  private flowForbidden = false;

  /** Transitions heard and not yet folded into `counts` and `recent`. */
  private heard: Transition[][] = [];
  /** The bots' events heard and not yet folded into `bots`, in order. */
  private heardBots: BotsEvent[] = [];
  private flushing: ReturnType<typeof setTimeout> | null = null;
  private finishedThisSecond = 0;
  private costThisSecond = 0;
  private perBot: Record<string, number> = {};
  private stop: (() => void) | null = null;
  private timers: ReturnType<typeof setInterval>[] = [];

  constructor(readonly transport: Transport) {}

  start() {
    this.stop = this.transport.events(
      (e) => this.apply(e),
      (up) => {
        this.connected = up;
        if (!up) this.botsFed = false;
      },
    );
    this.resync();
    void this.backfill();
    this.timers.push(setInterval(() => this.resync(), 5000));
    this.timers.push(setInterval(() => this.tick(), 1000));
  }

  dispose() {
    this.stop?.();
    this.timers.forEach(clearInterval);
    if (this.flushing) clearTimeout(this.flushing);
  }

  async resync() {
    try {
      const seq = this.botsSeq;
      const [counts, bots, health] = await Promise.all([
        this.transport.counts(),
        this.botsFed
          ? undefined
          : // A tenant's token may not see the fleet's bots: unknown, not an error.
            this.transport.bots().catch((e) => {
              if (e instanceof ServerError && e.body.kind === "forbidden") return null;
              throw e;
            }),
        this.transport.health(),
      ]);
      // What was heard before this read is in it: folded first, then
      // replaced, so it is not counted twice.
      if (this.flushing) {
        clearTimeout(this.flushing);
        this.flush();
      }
      this.counts = Object.fromEntries(counts.map((c) => [c.state, c.count]));
      this.countsKnown = true;
      // What the feed said meanwhile is newer than this read.
      if (bots !== undefined && seq === this.botsSeq) {
        this.setBots(bots ?? []);
        this.botsKnown = bots != null;
      }
      this.health = health;
      this.error = null;
    } catch (e) {
      this.error = (e as Error).message;
      this.countsKnown = false;
    }
    await Promise.all([this.loadIntegrations(), this.loadSecurity(), this.loadMesh(), this.loadOverview()]);
  }

  /** The charts start from what the controller committed in the last two
   * minutes, not from zero (a page opened after the work finished). */
  async backfill() {
    try {
      const seconds = await this.transport.seconds();
      // Seconds the live ticks already hold are theirs; the rest go before.
      const held = this.series.length;
      const before = seconds.slice(0, Math.max(0, seconds.length - held));
      this.series = [...before.map((s) => ({ t: s.t_ms, finished: s.finished, costNusd: s.cost_nusd })), ...this.series].slice(-120);
    } catch {
      // Not readable (a tenant's token): the charts start from now.
    }
  }

  /** A view drawing the flow is open; call the answer when it closes. */
  watchFlow(): () => void {
    this.flowWatchers++;
    if (!this.flowForbidden) void this.loadFlow();
    return () => {
      this.flowWatchers--;
      this.lastFlow = null;
      this.flow = null;
    };
  }

  async loadFlow() {
    try {
      const next = await this.transport.flow();
      this.flow = this.lastFlow ? flowRates(this.lastFlow, next) : null;
      this.lastFlow = next;
      this.surface = next.surface;
      this.flowUnavailable = null;
    } catch (e) {
      this.flow = null;
      this.lastFlow = null;
      this.flowUnavailable = (e as Error).message;
      // A token that may not read it will not be let next second either.
      if (e instanceof ServerError && e.body.kind === "forbidden") this.flowForbidden = true;
    }
  }

  async loadOverview() {
    try {
      this.overview = await this.transport.overview();
    } catch {
      this.overview = [];
    }
  }

  async loadMesh() {
    try {
      this.mesh = await this.transport.mesh();
    } catch {
      this.mesh = null;
    }
  }

  async loadSecurity() {
    try {
      this.security = await this.transport.securityControls();
    } catch {
      this.security = null;
    }
  }

  async loadIntegrations() {
    try {
      this.integrations = await this.transport.integrations();
      this.integrationsUnavailable = null;
    } catch (e) {
      this.integrations = null;
      this.integrationsUnavailable = (e as Error).message;
    }
  }

  private apply(e: CoreEvent) {
    switch (e.type) {
      case "tickets_transitioned": {
        for (const t of e.transitions) {
          if (t.to === "succeeded" || t.to === "dead" || t.to === "cancelled") this.finishedThisSecond++;
          if (t.bot) this.perBot[t.bot] = (this.perBot[t.bot] ?? 0) + 1;
        }
        this.heard.push(e.transitions);
        this.flushing ??= setTimeout(() => this.flush(), FLUSH_MS);
        break;
      }
      case "cost_captured":
        for (const l of e.entries) this.costThisSecond += l.cost_nusd;
        break;
      case "bots_updated":
      case "bots_changed":
        // Said now (a read of the bots begun before is stale), folded in
        // with the next flush.
        this.heardBots.push(e);
        this.botsFed = true;
        this.botsSeq++;
        this.flushing ??= setTimeout(() => this.flush(), FLUSH_MS);
        break;
      case "lagged":
        this.resync();
        break;
    }
  }

  /** What was heard since the last flush, folded in at once: the views
   *  redraw once for it all. */
  private flush() {
    this.flushing = null;
    if (this.heardBots.length) this.foldBots(this.heardBots.splice(0));
    if (this.heard.length) this.foldTransitions(this.heard.splice(0));
  }

  private foldTransitions(heard: Transition[][]) {
    const counts = { ...this.counts };
    let recent = this.recent;
    for (const batch of heard) {
      for (const t of batch) {
        if (t.from) counts[t.from] = Math.max(0, (counts[t.from] ?? 0) - 1);
        counts[t.to] = (counts[t.to] ?? 0) + 1;
      }
      recent = [...batch.slice(-50).reverse(), ...recent].slice(0, 200);
    }
    this.counts = counts;
    this.recent = recent;
    this.batches++;
  }

  private setBots(bots: BotView[], at = new Map(bots.map((b, i) => [b.id, i]))) {
    this.bots = bots;
    this.botAt = at;
    this.botsLive = bots.reduce((n, b) => n + (b.live ? 1 : 0), 0);
  }

  /** The bots' events since the last flush, in order, into one new list:
   *  a whole list replaces, then each changed bot is replaced at its place
   *  (a new one appended, until the next whole list puts it in the fleet's
   *  order) and those gone leave. About once a second, never per
   *  transition. */
  private foldBots(heard: BotsEvent[]) {
    let bots = this.bots.slice();
    let at = this.botAt;
    for (const e of heard) {
      if (e.type === "bots_updated") {
        this.botsKnown = true;
        bots = e.bots.slice();
        at = new Map(bots.map((b, i) => [b.id, i]));
        continue;
      }
      for (const b of e.changed) {
        const i = at.get(b.id);
        if (i === undefined) {
          at.set(b.id, bots.length);
          bots.push(b);
        } else {
          bots[i] = b;
        }
      }
      if (e.gone.length > 0) {
        const leaving = new Set(e.gone);
        bots = bots.filter((b) => !leaving.has(b.id));
        at = new Map(bots.map((b, i) => [b.id, i]));
      }
    }
    this.setBots(bots, at);
  }

  private tick() {
    const s: Sample = { t: Date.now(), finished: this.finishedThisSecond, costNusd: this.costThisSecond };
    this.series = [...this.series, s].slice(-120);
    this.rates = this.perBot;
    this.perBot = {};
    this.finishedThisSecond = 0;
    this.costThisSecond = 0;
    if (this.flowWatchers > 0 && !this.flowForbidden) void this.loadFlow();
  }
}

// The live model every view draws from: bots and their lanes, ticket counts
// per state, recent transitions, and per-second series for the charts.
// Fed by the event stream, with a periodic resync so a missed event
// (`lagged`) heals itself.
import type { BotView, ControlView, CoreEvent, FleetSummary, Health, IntegrationView, MeshView, TicketState, Transition } from "../bindings";
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

export interface Sample {
  t: number;
  finished: number;
  costNusd: number;
}

export class Live {
  bots = $state<BotView[]>([]);
  counts = $state<Record<string, number>>({});
  health = $state<Health | null>(null);
  connected = $state(false);
  recent = $state<Transition[]>([]);
  /** Batches of transitions seen so far: views refresh when it moves. */
  batches = $state(0);
  series = $state<Sample[]>([]);
  /** Transitions seen per bot in the last second, for edge rates. */
  rates = $state<Record<string, number>>({});
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

  private finishedThisSecond = 0;
  private costThisSecond = 0;
  private perBot: Record<string, number> = {};
  private stop: (() => void) | null = null;
  private timers: ReturnType<typeof setInterval>[] = [];

  constructor(readonly transport: Transport) {}

  start() {
    this.stop = this.transport.events(
      (e) => this.apply(e),
      (up) => (this.connected = up),
    );
    this.resync();
    this.timers.push(setInterval(() => this.resync(), 5000));
    this.timers.push(setInterval(() => this.tick(), 1000));
  }

  dispose() {
    this.stop?.();
    this.timers.forEach(clearInterval);
  }

  async resync() {
    try {
      const [counts, bots, health] = await Promise.all([
        this.transport.counts(),
        // A tenant's token may not see the fleet's bots: none shown, not an error.
        this.transport.bots().catch((e) => {
          if (e instanceof ServerError && e.body.kind === "forbidden") return [];
          throw e;
        }),
        this.transport.health(),
      ]);
      this.counts = Object.fromEntries(counts.map((c) => [c.state, c.count]));
      this.bots = bots;
      this.health = health;
      this.error = null;
    } catch (e) {
      this.error = (e as Error).message;
    }
    await Promise.all([this.loadIntegrations(), this.loadSecurity(), this.loadMesh(), this.loadOverview()]);
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
        const counts = { ...this.counts };
        for (const t of e.transitions) {
          if (t.from) counts[t.from] = Math.max(0, (counts[t.from] ?? 0) - 1);
          counts[t.to] = (counts[t.to] ?? 0) + 1;
          if (t.to === "succeeded" || t.to === "dead" || t.to === "cancelled") this.finishedThisSecond++;
          if (t.bot) this.perBot[t.bot] = (this.perBot[t.bot] ?? 0) + 1;
        }
        this.counts = counts;
        this.recent = [...e.transitions.slice(-50).reverse(), ...this.recent].slice(0, 200);
        this.batches++;
        break;
      }
      case "cost_captured":
        for (const l of e.entries) this.costThisSecond += l.cost_nusd;
        break;
      case "bots_updated":
        this.bots = e.bots;
        break;
      case "lagged":
        this.resync();
        break;
    }
  }

  private tick() {
    const s: Sample = { t: Date.now(), finished: this.finishedThisSecond, costNusd: this.costThisSecond };
    this.series = [...this.series, s].slice(-120);
    this.rates = this.perBot;
    this.perBot = {};
    this.finishedThisSecond = 0;
    this.costThisSecond = 0;
  }
}

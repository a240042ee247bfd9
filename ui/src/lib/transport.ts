// How the UI reaches the controller: in the desktop app, the generated
// Tauri commands (`TauriTransport`); in a browser, the HTTP and WebSocket API
// of `oshal serve` (`HttpTransport`). Both implement one interface with the
// generated types: nothing here restates a Rust type or a command name.
import { Channel } from "@tauri-apps/api/core";
import { commands } from "../bindings";
import type {
  BotHold,
  ApiError,
  Blotter,
  BotView,
  BulkReport,
  Cleared,
  BulkRequest,
  CloseRequest,
  ControlView,
  CoreEvent,
  CostSummary,
  Decision,
  DefinitionDiff,
  DefinitionView,
  GenerateRequest,
  Generated,
  HistoryEntry,
  NewDefinition,
  UpgradeRequest,
  UpgradeView,
  NewRun,
  PendingApproval,
  RetryRequest,
  RunSummary,
  RunView,
  Shape,
  SpecSource,
  StopRequest,
  Validation,
  Alert,
  AlertRow,
  AlertState,
  IncidentSummary,
  IncidentView,
  MoveIncident,
  Postmortem,
  PostmortemEdit,
  HealDecision,
  SettingsView,
  Finding,
  FindingState,
  Health,
  IntegrationView,
  KillRequest,
  KillView,
  FleetSummary,
  MeshView,
  NewFleet,
  NewSession,
  NewTicket,
  OrderView,
  RecapView,
  ScanReport,
  SessionView,
  StateChangeView,
  StateRequest,
  StateCount,
  Submitted,
  FlowCounts,
  Second,
  SuppressRequest,
  TicketFilter,
  TicketPage,
  TicketView,
} from "../bindings";

export type { TicketFilter };

export interface Transport {
  /** What the header shows: where this UI is attached. */
  readonly label: string;
  health(): Promise<Health>;
  counts(): Promise<StateCount[]>;
  tickets(filter: TicketFilter): Promise<TicketPage>;
  ticket(id: string): Promise<TicketView>;
  submit(ticket: NewTicket): Promise<Submitted>;
  cancel(id: string): Promise<TicketView>;
  /** Cancel or retry every ticket a filter matches (dry-run for the count). */
  bulk(request: BulkRequest): Promise<BulkReport>;
  /** Clears a walk-through's tickets by its tag (`tour:<id>:`): the
   * unfinished cancelled, the ended removed where the store allows it. */
  clearTour(tag: string): Promise<Cleared>;
  bots(): Promise<BotView[]>;
  /** Drains a bot (routed nothing more; what waits in its lane goes to
   * other bots, what it holds finishes on it), or lets it work again. */
  drainBot(bot: string): Promise<BotHold>;
  uncordonBot(bot: string): Promise<BotHold>;
  /** The mesh the controller reads (Headscale, tailscaled), live. */
  mesh(): Promise<MeshView>;
  /** What has flowed along each edge of the architecture since start. */
  flow(): Promise<FlowCounts>;
  /** The last two minutes as the controller committed them. */
  seconds(): Promise<Second[]>;
  /** Every controller this surface knows, each read now: the window's
   * embedded one and its saved fleets; a browser, its one controller. */
  overview(): Promise<FleetSummary[]>;
  cost(): Promise<CostSummary>;
  /** Connectors, grants, the recent audit trail and effects. */
  integrations(): Promise<IntegrationView>;
  /** The Security Center: controls proven live, findings, scan, suppress. */
  securityControls(): Promise<ControlView[]>;
  securityFindings(state: FindingState | null): Promise<Finding[]>;
  securityScan(): Promise<ScanReport>;
  securitySuppress(id: string, request: SuppressRequest): Promise<Finding>;
  /** The trading desk: paper sessions, their blotter and recap, the kill switch. */
  deskSessions(): Promise<SessionView[]>;
  deskSession(id: string): Promise<SessionView>;
  deskBlotter(id: string): Promise<Blotter>;
  deskRecap(id: string): Promise<RecapView>;
  deskOpen(spec: NewSession): Promise<SessionView>;
  deskKill(id: string, request: KillRequest): Promise<KillView>;
  deskState(id: string, request: StateRequest): Promise<StateChangeView>;
  deskOrders(id: string, order: string | null): Promise<OrderView[]>;
  deskClose(id: string, request: CloseRequest): Promise<SessionView>;
  /** Workflows: the shipped shapes, runs, their history, approvals, retry and stop. */
  workflowShapes(): Promise<Shape[]>;
  workflowValidate(source: SpecSource): Promise<Validation>;
  workflowStart(run: NewRun): Promise<RunView>;
  workflowRuns(): Promise<RunSummary[]>;
  workflowRun(id: string): Promise<RunView>;
  workflowHistory(id: string): Promise<HistoryEntry[]>;
  workflowApprovals(): Promise<PendingApproval[]>;
  workflowDecide(id: string, decision: Decision): Promise<RunView>;
  workflowRetry(id: string, request: RetryRequest): Promise<RunView>;
  workflowStop(id: string, request: StopRequest): Promise<RunView>;
  /** The generator (a preview, never applied) and published definitions. */
  workflowGenerate(request: GenerateRequest): Promise<Generated>;
  workflowCompare(definition: NewDefinition): Promise<DefinitionDiff>;
  workflowPublish(definition: NewDefinition): Promise<DefinitionView>;
  workflowDefinitions(): Promise<DefinitionView[]>;
  workflowUpgrade(id: string, request: UpgradeRequest): Promise<UpgradeView>;
  /** The operations loop: alerts, incidents and their moves, the monitor's settings. */
  opsAlerts(state: AlertState | null): Promise<AlertRow[]>;
  opsAcknowledge(fingerprint: string, tenant: string | null): Promise<Alert>;
  opsIncidents(): Promise<IncidentSummary[]>;
  opsIncident(id: string, tenant: string | null): Promise<IncidentView>;
  opsMove(id: string, request: MoveIncident): Promise<IncidentView>;
  opsPostmortem(id: string, tenant: string | null): Promise<Postmortem>;
  /** Edits the draft's prose, or publishes it when `edit` is null. */
  opsWritePostmortem(id: string, tenant: string | null, edit: PostmortemEdit | null): Promise<Postmortem>;
  opsSettings(tenant: string | null): Promise<SettingsView>;
  /** Approves or denies an incident's pending heal. */
  opsDecideHeal(id: string, tenant: string | null, decision: HealDecision): Promise<IncidentView>;
  opsInvestigate(id: string, tenant: string | null): Promise<IncidentView>;
  /** Calls `on` for every event until the returned function is called. */
  events(on: (e: CoreEvent) => void, status: (live: boolean) => void): () => void;
}

/** `?tenant=…` for a tenant named, nothing for the default. */
const tenantQuery = (tenant: string | null) => (tenant ? `?tenant=${encodeURIComponent(tenant)}` : "");

/** An error as the server phrased it (kind, message, field, limit). */
export class ServerError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.field ? `${body.message} (${body.field})` : body.message);
  }
}

export class HttpTransport implements Transport {
  readonly label: string;

  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {
    this.label = new URL(base).host;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await fetch(this.base + path, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    const json = text ? JSON.parse(text) : null;
    if (!r.ok) {
      const err: ApiError = json?.error ?? { kind: "internal", message: `HTTP ${r.status}` };
      throw new ServerError(r.status, err);
    }
    return json as T;
  }

  health = async (): Promise<Health> => {
    // Health answers 503 with the same body when the store is down.
    const r = await fetch(this.base + "/api/v1/health");
    return (await r.json()) as Health;
  };
  counts = () => this.call<StateCount[]>("GET", "/api/v1/tickets/counts");
  tickets = (f: TicketFilter) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    return this.call<TicketPage>("GET", `/api/v1/tickets?${q}`);
  };
  ticket = (id: string) => this.call<TicketView>("GET", `/api/v1/tickets/${encodeURIComponent(id)}`);
  submit = (t: NewTicket) => this.call<Submitted>("POST", "/api/v1/tickets", t);
  cancel = (id: string) =>
    this.call<TicketView>("POST", `/api/v1/tickets/${encodeURIComponent(id)}/cancel`);
  drainBot = (bot: string) => this.call<BotHold>("POST", `/api/v1/bots/${encodeURIComponent(bot)}/drain`);
  uncordonBot = (bot: string) => this.call<BotHold>("POST", `/api/v1/bots/${encodeURIComponent(bot)}/uncordon`);
  bulk = (r: BulkRequest) => this.call<BulkReport>("POST", "/api/v1/tickets/bulk", r);
  clearTour = (tag: string) => this.call<Cleared>("DELETE", `/api/v1/tickets?tag=${encodeURIComponent(tag)}`);
  bots = () => this.call<BotView[]>("GET", "/api/v1/bots");
  mesh = () => this.call<MeshView>("GET", "/api/v1/mesh");
  flow = () => this.call<FlowCounts>("GET", "/api/v1/flow");
  seconds = () => this.call<Second[]>("GET", "/api/v1/series");
  overview = async (): Promise<FleetSummary[]> => {
    const row: FleetSummary = { name: new URL(this.base, location.href).host, url: this.base, current: true, error: null, figures: null };
    try {
      const [bots, cost] = await Promise.all([this.bots(), this.cost()]);
      row.figures = {
        bots: bots.length,
        bots_live: bots.filter((b) => b.live).length,
        nodes: new Set(bots.map((b) => b.node ?? "")).size,
        lanes_read: bots.filter((b) => b.lane).length,
        in_flight: bots.reduce((n, b) => n + b.in_flight, 0),
        spend_nusd: cost.total.cost_nusd,
      };
    } catch (e) {
      row.error = (e as Error).message;
    }
    return [row];
  };
  cost = () => this.call<CostSummary>("GET", "/api/v1/cost/summary");
  integrations = () => this.call<IntegrationView>("GET", "/api/v1/integrations");
  securityControls = () => this.call<ControlView[]>("GET", "/api/v1/security/controls");
  securityFindings = (state: FindingState | null) =>
    this.call<Finding[]>("GET", `/api/v1/security/findings${state ? `?state=${state}` : ""}`);
  securityScan = () => this.call<ScanReport>("POST", "/api/v1/security/scans");
  securitySuppress = (id: string, request: SuppressRequest) =>
    this.call<Finding>("POST", `/api/v1/security/findings/${encodeURIComponent(id)}/suppress`, request);
  deskSessions = () => this.call<SessionView[]>("GET", "/api/v1/trading/sessions");
  deskSession = (id: string) => this.call<SessionView>("GET", `/api/v1/trading/sessions/${encodeURIComponent(id)}`);
  deskBlotter = (id: string) => this.call<Blotter>("GET", `/api/v1/trading/sessions/${encodeURIComponent(id)}/blotter`);
  deskRecap = (id: string) => this.call<RecapView>("GET", `/api/v1/trading/sessions/${encodeURIComponent(id)}/recap`);
  deskOpen = (spec: NewSession) => this.call<SessionView>("POST", "/api/v1/trading/sessions", spec);
  deskKill = (id: string, request: KillRequest) =>
    this.call<KillView>("POST", `/api/v1/trading/sessions/${encodeURIComponent(id)}/kill`, request);
  deskState = (id: string, request: StateRequest) =>
    this.call<StateChangeView>("POST", `/api/v1/trading/sessions/${encodeURIComponent(id)}/state`, request);
  deskClose = (id: string, request: CloseRequest) =>
    this.call<SessionView>("POST", `/api/v1/trading/sessions/${encodeURIComponent(id)}/close`, request);
  workflowShapes = () => this.call<Shape[]>("GET", "/api/v1/workflows/shapes");
  workflowValidate = (source: SpecSource) => this.call<Validation>("POST", "/api/v1/workflows/validate", source);
  workflowStart = (run: NewRun) => this.call<RunView>("POST", "/api/v1/workflows/runs", run);
  workflowRuns = () => this.call<RunSummary[]>("GET", "/api/v1/workflows/runs");
  workflowRun = (id: string) => this.call<RunView>("GET", `/api/v1/workflows/runs/${encodeURIComponent(id)}`);
  workflowHistory = (id: string) =>
    this.call<HistoryEntry[]>("GET", `/api/v1/workflows/runs/${encodeURIComponent(id)}/history`);
  workflowApprovals = () => this.call<PendingApproval[]>("GET", "/api/v1/workflows/approvals");
  workflowDecide = (id: string, decision: Decision) =>
    this.call<RunView>("POST", `/api/v1/workflows/runs/${encodeURIComponent(id)}/decide`, decision);
  workflowRetry = (id: string, request: RetryRequest) =>
    this.call<RunView>("POST", `/api/v1/workflows/runs/${encodeURIComponent(id)}/retry`, request);
  workflowStop = (id: string, request: StopRequest) =>
    this.call<RunView>("POST", `/api/v1/workflows/runs/${encodeURIComponent(id)}/stop`, request);
  workflowGenerate = (request: GenerateRequest) => this.call<Generated>("POST", "/api/v1/workflows/generate", request);
  workflowCompare = (definition: NewDefinition) =>
    this.call<DefinitionDiff>("POST", "/api/v1/workflows/compare", definition);
  workflowPublish = (definition: NewDefinition) =>
    this.call<DefinitionView>("POST", "/api/v1/workflows/definitions", definition);
  workflowDefinitions = () => this.call<DefinitionView[]>("GET", "/api/v1/workflows/definitions");
  workflowUpgrade = (id: string, request: UpgradeRequest) =>
    this.call<UpgradeView>("POST", `/api/v1/workflows/runs/${encodeURIComponent(id)}/upgrade`, request);
  opsAlerts = (state: AlertState | null) =>
    this.call<AlertRow[]>("GET", `/api/v1/ops/alerts${state ? `?state=${state}` : ""}`);
  opsAcknowledge = (fingerprint: string, tenant: string | null) =>
    this.call<Alert>("POST", `/api/v1/ops/alerts/${encodeURIComponent(fingerprint)}/acknowledge` + tenantQuery(tenant));
  opsIncidents = () => this.call<IncidentSummary[]>("GET", "/api/v1/ops/incidents");
  opsIncident = (id: string, tenant: string | null) =>
    this.call<IncidentView>("GET", `/api/v1/ops/incidents/${encodeURIComponent(id)}` + tenantQuery(tenant));
  opsMove = (id: string, request: MoveIncident) =>
    this.call<IncidentView>("POST", `/api/v1/ops/incidents/${encodeURIComponent(id)}/move`, request);
  opsPostmortem = (id: string, tenant: string | null) =>
    this.call<Postmortem>("GET", `/api/v1/ops/incidents/${encodeURIComponent(id)}/postmortem` + tenantQuery(tenant));
  opsWritePostmortem = (id: string, tenant: string | null, edit: PostmortemEdit | null) =>
    edit
      ? this.call<Postmortem>("PUT", `/api/v1/ops/incidents/${encodeURIComponent(id)}/postmortem` + tenantQuery(tenant), edit)
      : this.call<Postmortem>("POST", `/api/v1/ops/incidents/${encodeURIComponent(id)}/postmortem/publish` + tenantQuery(tenant));
  opsSettings = (tenant: string | null) => this.call<SettingsView>("GET", "/api/v1/ops/settings" + tenantQuery(tenant));
  opsDecideHeal = (id: string, tenant: string | null, decision: HealDecision) =>
    this.call<IncidentView>("POST", `/api/v1/ops/incidents/${encodeURIComponent(id)}/heal` + tenantQuery(tenant), decision);
  opsInvestigate = (id: string, tenant: string | null) =>
    this.call<IncidentView>("POST", `/api/v1/ops/incidents/${encodeURIComponent(id)}/investigate` + tenantQuery(tenant));
  deskOrders = (id: string, order: string | null) =>
    this.call<OrderView[]>(
      "GET",
      `/api/v1/trading/sessions/${encodeURIComponent(id)}/orders${order ? `?order=${encodeURIComponent(order)}` : ""}`,
    );

  events(on: (e: CoreEvent) => void, status: (live: boolean) => void): () => void {
    let closed = false;
    let socket: WebSocket | null = null;
    let retry = 250;
    const open = () => {
      const url = new URL("/api/v1/events", this.base);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("token", this.token);
      socket = new WebSocket(url);
      socket.onopen = () => {
        retry = 250;
        status(true);
      };
      socket.onmessage = (m) => on(JSON.parse(m.data) as CoreEvent);
      socket.onclose = () => {
        status(false);
        if (!closed) setTimeout(open, (retry = Math.min(retry * 2, 5000)));
      };
    };
    open();
    return () => {
      closed = true;
      socket?.close();
    };
  }
}

/**
 * The browser's connection: the page is served by the controller, and the
 * token arrives in the URL fragment (never sent to a server, never logged),
 * then lives in this tab's session storage only.
 */
export function browserTransport(): Transport | null {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromHash = hash.get("token");
  if (fromHash) history.replaceState(null, "", location.pathname + location.search);
  const token = fromHash ?? sessionStorage.getItem("oshal.token");
  return token ? attach(location.origin, token) : null;
}

/** Attaches to the controller at `base` with `token`, kept for this tab only. */
export function attach(base: string, token: string): Transport {
  sessionStorage.setItem("oshal.token", token);
  return new HttpTransport(base, token);
}

/** A command's answer, as tauri-specta types it. */
type Answer<T, E> = { status: "ok"; data: T } | { status: "error"; error: E };

async function answer<T, E>(call: Promise<Answer<T, E>>): Promise<T> {
  const a = await call;
  if (a.status === "ok") return a.data;
  const error = (a.error as ApiError | null) ?? { kind: "internal", message: "the command failed" };
  throw new ServerError(0, error);
}

/**
 * The desktop app, through the app's commands: the embedded controller, or
 * the fleet the window is attached to (the app holds the fleet's token; the
 * page never sees it).
 */
export class TauriTransport implements Transport {
  constructor(readonly label = "local") {}

  health = () => answer(commands.health());
  counts = () => answer(commands.counts());
  tickets = (f: TicketFilter) => answer(commands.tickets(f));
  ticket = (id: string) => answer(commands.ticket(id));
  submit = (t: NewTicket) => answer(commands.submit(t));
  cancel = (id: string) => answer(commands.cancel(id));
  drainBot = (bot: string) => answer(commands.drainBot(bot));
  uncordonBot = (bot: string) => answer(commands.uncordonBot(bot));
  bulk = (r: BulkRequest) => answer(commands.bulk(r));
  clearTour = (tag: string) => answer(commands.clearTour({ tag, tenant: null }));
  bots = () => answer(commands.bots());
  mesh = () => answer(commands.mesh());
  flow = () => answer(commands.flow());
  seconds = () => answer(commands.series());
  overview = () => answer(commands.overview());
  cost = () => answer(commands.cost());
  integrations = () => answer(commands.integrations());
  securityControls = () => answer(commands.securityControls());
  securityFindings = (state: FindingState | null) => answer(commands.securityFindings(state));
  securityScan = () => answer(commands.securityScan());
  securitySuppress = (id: string, request: SuppressRequest) => answer(commands.securitySuppress(id, request));
  deskSessions = () => answer(commands.deskSessions());
  deskSession = (id: string) => answer(commands.deskSession(id));
  deskBlotter = (id: string) => answer(commands.deskBlotter(id));
  deskRecap = (id: string) => answer(commands.deskRecap(id));
  deskOpen = (spec: NewSession) => answer(commands.deskOpen(spec));
  deskKill = (id: string, request: KillRequest) => answer(commands.deskKill(id, request));
  deskState = (id: string, request: StateRequest) => answer(commands.deskState(id, request));
  deskOrders = (id: string, order: string | null) => answer(commands.deskOrders(id, order));
  deskClose = (id: string, request: CloseRequest) => answer(commands.deskClose(id, request));
  workflowShapes = () => answer(commands.workflowShapes());
  workflowValidate = (source: SpecSource) => answer(commands.workflowValidate(source));
  workflowStart = (run: NewRun) => answer(commands.workflowStart(run));
  workflowRuns = () => answer(commands.workflowRuns());
  workflowRun = (id: string) => answer(commands.workflowRun(id));
  workflowHistory = (id: string) => answer(commands.workflowHistory(id));
  workflowApprovals = () => answer(commands.workflowApprovals());
  workflowDecide = (id: string, decision: Decision) => answer(commands.workflowDecide(id, decision));
  workflowRetry = (id: string, request: RetryRequest) => answer(commands.workflowRetry(id, request));
  workflowStop = (id: string, request: StopRequest) => answer(commands.workflowStop(id, request));
  workflowGenerate = (request: GenerateRequest) => answer(commands.workflowGenerate(request));
  workflowCompare = (definition: NewDefinition) => answer(commands.workflowCompare(definition));
  workflowPublish = (definition: NewDefinition) => answer(commands.workflowPublish(definition));
  workflowDefinitions = () => answer(commands.workflowDefinitions());
  workflowUpgrade = (id: string, request: UpgradeRequest) => answer(commands.workflowUpgrade(id, request));
  opsAlerts = (state: AlertState | null) => answer(commands.opsAlerts(state));
  opsAcknowledge = (fingerprint: string, tenant: string | null) => answer(commands.opsAcknowledge(fingerprint, tenant));
  opsIncidents = () => answer(commands.opsIncidents());
  opsIncident = (id: string, tenant: string | null) => answer(commands.opsIncident(id, tenant));
  opsMove = (id: string, request: MoveIncident) => answer(commands.opsMove(id, request));
  opsPostmortem = (id: string, tenant: string | null) => answer(commands.opsPostmortem(id, tenant));
  opsWritePostmortem = (id: string, tenant: string | null, edit: PostmortemEdit | null) =>
    answer(commands.opsWritePostmortem(id, tenant, edit));
  opsSettings = (tenant: string | null) => answer(commands.opsSettings(tenant));
  opsDecideHeal = (id: string, tenant: string | null, decision: HealDecision) =>
    answer(commands.opsDecideHeal(id, tenant, decision));
  opsInvestigate = (id: string, tenant: string | null) => answer(commands.opsInvestigate(id, tenant));

  events(on: (e: CoreEvent) => void, status: (live: boolean) => void): () => void {
    let open = true;
    const channel = new Channel<CoreEvent>();
    channel.onmessage = (e) => open && on(e);
    answer(commands.events(channel)).then(
      () => status(true),
      () => status(false),
    );
    return () => {
      open = false;
    };
  }
}

/** The fleets the desktop app knows, and switching between them. */
export const fleets = {
  list: () => answer(commands.fleets()),
  add: (f: NewFleet) => answer(commands.addFleet(f)),
  /** `null`: the embedded controller. */
  attach: (name: string | null) => answer(commands.attach(name)),
  remove: (name: string) => answer(commands.removeFleet(name)),
  current: () => commands.connection(),
};

/** Inside the desktop app's window? */
export function tauriTransport(): Transport | null {
  return "__TAURI_INTERNALS__" in window ? new TauriTransport() : null;
}

// The walk-through: one step per layer the seeds name, each on its live
// view. A step points at the element it explains, says what it is, and may
// run a real action on the attached controller and say what happened.
// Nothing runs unless a step's action is pressed, and the actions are the
// ones the views offer (the isolation step runs the Security Center's scan,
// as its "Scan now" does); the trading, operations and workflows steps
// only read, and say plainly what is not there or cannot be read. The
// tour's tickets carry idempotency keys under its tag (`tour:<id>:`), so
// they can be told apart and cleared. Where it stands is kept in local
// storage, so it resumes where it was left.
import { ENDED, type Live } from "./live.svelte";
import { ServerError, type Transport } from "./transport";
import type { NewTicket, NodeOutline, TicketView, ToolStatus } from "../bindings";
import { short, time, usd } from "./format";

export type View = "architecture" | "topology" | "tickets" | "routing" | "integrations" | "security" | "trading" | "workflows" | "operations";

/** What a step's action can reach. */
export interface TourContext {
  transport: Transport;
  live: Live;
  /** The idempotency key of the tour's next ticket for `step`. */
  key(step: string): string;
  /** Opens a ticket: in the routing view (its journey) or the tickets view. */
  open(view: "routing" | "tickets", ticket: string): void;
  /** Says what a long action has seen so far, while it goes on. */
  say(lines: string[]): void;
  /** Whether the step is still the one shown: a long action stops
   *  following once it is not (moved on, left). */
  shown(): boolean;
}

/** What an action did: lines to show, and the element to point at now. */
export interface Effect {
  lines: string[];
  target?: string;
}

export interface Step {
  id: string;
  view: View;
  title: string;
  /** Selectors of the live element, the first present wins. */
  targets: string[];
  text: string;
  action?: { label: string; run(ctx: TourContext): Promise<Effect> };
}

/** Where a walk-through stands: its id (its tickets' tag), the step, how
 * many tickets it has made, and whether it is open. */
export interface TourState {
  id: string;
  step: number;
  made: number;
  open: boolean;
}

const STORAGE = "oshal.tour";

/** A UUIDv7 (time first, like the platform's ticket ids): a tour's id. */
export function uuidv7(now = Date.now(), random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n))): string {
  const b = random(16);
  for (let i = 0; i < 6; i++) b[i] = Math.floor(now / 2 ** (8 * (5 - i))) & 0xff;
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The tag every ticket of the tour `id` is keyed under. */
export const tagOf = (id: string) => `tour:${id}:`;

export function fresh(): TourState {
  return { id: uuidv7(), step: 0, made: 0, open: true };
}

/** The saved walk-through, if one is saved and whole. */
export function load(storage: Pick<Storage, "getItem"> = localStorage): TourState | null {
  try {
    const s = JSON.parse(storage.getItem(STORAGE) ?? "null");
    const ok = s && typeof s.id === "string" && /^[0-9a-f-]{36}$/.test(s.id) && Number.isInteger(s.step) && s.step >= 0 && s.step < STEPS.length && Number.isInteger(s.made) && typeof s.open === "boolean";
    return ok ? (s as TourState) : null;
  } catch {
    return null;
  }
}

export function save(state: TourState | null, storage: Pick<Storage, "setItem" | "removeItem"> = localStorage) {
  if (state) storage.setItem(STORAGE, JSON.stringify(state));
  else storage.removeItem(STORAGE);
}

/** The first step on `view` (a view's own walk-through starts there). */
export const stepOn = (view: View) => Math.max(0, STEPS.findIndex((s) => s.view === view));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads a ticket until `done` holds, `ms` pass or `shown` no longer
 * holds; the last read. Each read that does not end the wait is given to
 * `seen`. */
async function until(t: Transport, id: string, done: (v: TicketView) => boolean, ms: number, every = 100, seen?: (v: TicketView) => void, shown?: () => boolean): Promise<TicketView> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await t.ticket(id);
    if (done(v) || Date.now() > end || (shown && !shown())) return v;
    seen?.(v);
    await sleep(every);
  }
}

/** How long the routing step follows its ticket: behind the deployment's
 * twenty on a busy model it can wait its turn for a while, and the step
 * says where it is meanwhile. */
export const FOLLOW_MS = 180_000;

const ended = (v: TicketView) => ENDED.includes(v.state);
const chat = (key: string, prompt: string, max_tokens: number): NewTicket => ({
  kind: "chat",
  payload: { prompt, max_tokens },
  idempotency_key: key,
});

/** A read, or the sentence that says why it could not be made. */
type Read<T> = { value: T } | { unread: string };

/** Reads `what`. What cannot be read (a controller without the feature, a
 * token refused, a store down) is said in a sentence, never shown as a
 * zero, and never escapes as an exception. */
async function read<T>(what: string, call: () => Promise<T>): Promise<Read<T>> {
  try {
    return { value: await call() };
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).replace(/\.$/, "");
    if (e instanceof ServerError && e.body.kind === "forbidden") return { unread: `This token may not read ${what} (${why}).` };
    return { unread: `${what[0].toUpperCase()}${what.slice(1)} could not be read: ${why}.` };
  }
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The newest paper session's newest fill, traced down as the desk's trace
 * panel does: its order in NautilusTrader's states with its postings, the
 * signal it came from with its risk checks, and the ticket and model call
 * that made the signal. Reads only. */
async function traceFill(t: Transport): Promise<Effect> {
  const sessions = await read("the desk's sessions", () => t.deskSessions());
  if ("unread" in sessions) return { lines: [sessions.unread] };
  // Newest first, as the desk lists them (and shows the first).
  const session = sessions.value[0];
  if (!session) {
    return {
      lines: ["No paper session has been opened here yet, so there is no fill to trace. Open one above: its signals are made by the bots as tickets, and each fill then traces to its order, its signal and the model call behind it."],
      target: '[data-testid="desk-open"]',
    };
  }
  const blotter = await read(`session ${session.id}'s blotter`, () => t.deskBlotter(session.id));
  if ("unread" in blotter) return { lines: [blotter.unread] };
  const f = session.flow;
  const about = `Session ${session.id} (${session.spec.instrument}, ${session.status})`;
  const fill = blotter.value.fills.at(-1);
  if (!fill) {
    return {
      lines: [`${about} has no fill yet: ${plural(f.signals, "signal")} from the bots, ${f.no_trade} needing no trade, ${f.denied} denied by risk, ${f.in_flight} in flight.`],
      target: "ol.flow",
    };
  }
  const lines = [`${about}: ${plural(f.fills, "fill")}. The newest, ${fill.trade_id}: ${fill.side} ${fill.quantity} @ ${fill.price} (${fill.liquidity_side}, slippage ${fill.slippage} per unit).`];
  const orders = await read(`order ${fill.order}`, () => t.deskOrders(session.id, fill.order));
  if ("unread" in orders) lines.push(orders.unread);
  else {
    const o = orders.value.find((x) => x.id === fill.order);
    lines.push(
      o
        ? `Its order ${o.id}, ${o.side} ${o.filled} of ${o.quantity} filled, is ${o.status} in NautilusTrader's states; the ledger posted ${o.postings.map((p) => p.reason).join(", ") || "nothing"} for it.`
        : `Its order ${fill.order} is not among the session's orders.`,
    );
  }
  const signal = blotter.value.signals.find((s) => s.id === fill.signal);
  if (!signal) {
    lines.push(fill.signal.startsWith("K-") ? `It is the kill switch's closing order (${fill.signal}): no signal and no model call are behind it.` : `Its signal ${fill.signal} is not in the blotter.`);
    return { lines, target: '[data-testid="fill-row"]' };
  }
  const failed = signal.checks.filter((c) => !c.pass).length;
  const confidence = signal.confidence === null ? "" : ` (confidence ${signal.confidence.toFixed(2)})`;
  lines.push(`It came from signal ${signal.id} at bar ${signal.bars}: ${signal.source} said ${signal.direction}${confidence} from ${signal.reference_price}; ${plural(signal.checks.length, "risk check")}, ${failed ? `${failed} failed` : "all passed"}.`);
  const ticket = await read(`signal ${signal.id}'s ticket`, () => t.ticket(signal.ticket));
  if ("unread" in ticket) lines.push(ticket.unread);
  else {
    const v = ticket.value;
    const call = v.ledger.at(-1);
    const model = call ? `its model call: ${call.model}, ${call.input_tokens} tokens in and ${call.output_tokens} out, ${call.unpriced ? "unpriced" : usd(call.cost_nusd)}` : "no model call is charged to it";
    lines.push(`The signal is ticket ${short(v.id)}, ${v.state}${v.bot ? ` on ${v.bot}` : ""}; ${model}.`);
  }
  return { lines, target: '[data-testid="fill-row"]' };
}

/** The newest incident, opened: its tool calls by outcome, and how many of
 * its newest diagnosis' claims cite evidence on record. With none, what
 * the loop watches here. Reads only. */
async function weighIncident(t: Transport): Promise<Effect> {
  const list = await read("the incidents", () => t.opsIncidents());
  if ("unread" in list) return { lines: [list.unread] };
  // Newest first, as the view lists them.
  const newest = list.value[0];
  if (!newest) return watching(t);
  const got = await read(`incident ${newest.id}`, () => t.opsIncident(newest.id, newest.tenant));
  if ("unread" in got) return { lines: [got.unread] };
  const { incident, investigations, alerts, tenant } = got.value;
  const lines = [`${incident.id} “${incident.title}” (${tenant}): ${incident.status}, ${incident.severity}, opened by rule ${incident.rule} from ${plural(alerts.length, "alert")}.`];
  const evidence = investigations.flatMap((i) => i.evidence);
  const last = investigations.at(-1);
  if (!last) {
    lines.push("No investigation ran for it: none runs where the platform has no connector runtime, where the tenant's settings turn them off, or where no runbook's tool is enabled for the tenant.");
  } else {
    const by = (s: ToolStatus) => evidence.filter((e) => e.status === s).length;
    lines.push(`${plural(investigations.length, "investigation")}, ${plural(evidence.length, "read-only tool call")} kept as evidence: ${by("success")} success, ${by("error")} error, ${by("no_data")} no_data, ${by("approval_required")} approval_required.`);
    const d = investigations.findLast((i) => i.diagnosis)?.diagnosis;
    if (d) {
      const known = new Set(evidence.map((e) => e.id));
      const claims = [...d.findings, ...d.causes.flatMap((c) => [...c.supports, ...c.against])];
      const backed = claims.filter((c) => c.evidence.length > 0 && c.evidence.every((id) => known.has(id))).length;
      const top = d.inconclusive || !d.causes[0] ? "inconclusive" : `${d.causes[0].kind}: ${d.causes[0].subject}`;
      lines.push(`Its newest diagnosis (${top}) makes ${plural(claims.length, "claim")}; ${backed} of them cite evidence on record${backed < claims.length ? `, ${claims.length - backed} do not` : ""}.`);
    } else {
      lines.push(last.phase === "Running" ? "No diagnosis yet: its investigation is still gathering." : `No diagnosis: ${last.error ?? last.stopped ?? "its investigation ended without one"}.`);
    }
  }
  if (newest.heals) lines.push(`${plural(newest.heals, "heal")} proposed, ${newest.heals_pending} awaiting a person's approval.`);
  return { lines, target: '[data-testid="incident-row"]' };
}

/** No incident yet: said plainly, with what the loop watches as this
 * controller has it set. */
async function watching(t: Transport): Promise<Effect> {
  const lines = [
    "No incident has opened here yet.",
    "The loop watches the platform's own signals (a node lost, a lane lagging, tickets failing for good, spend outrunning a budget, a secret found, the store down) and the alerts Alertmanager and PagerDuty post to /api/v1/ops/alertmanager and /api/v1/ops/pagerduty.",
  ];
  const [alerts, settings] = await Promise.all([read("the alerts", () => t.opsAlerts(null)), read("the monitor's settings", () => t.opsSettings(null))]);
  if ("unread" in alerts) lines.push(alerts.unread);
  else if (!alerts.value.length) lines.push("No alert is on record.");
  else lines.push(`The newest ${plural(alerts.value.length, "alert")} on record: ${alerts.value.filter((a) => a.state === "FIRING").length} firing; none has opened an incident.`);
  if ("unread" in settings) lines.push(settings.unread);
  else {
    const s = settings.value.settings;
    const investigated = s.investigate === false ? "investigations are turned off" : "each incident opened is investigated";
    lines.push(s.rules.length ? `${plural(s.rules.length, "correlation rule")} (${s.rules.map((r) => r.name).join(", ")}) ${s.rules.length === 1 ? "decides" : "decide"} which alerts open one; ${investigated}.` : "No correlation rule is set, so no alert opens an incident.");
    const heal = s.heal ?? [];
    lines.push(heal.length ? `${plural(heal.length, "heal rule")} may propose a fix (${heal.map((r) => r.action.action).filter((a, i, all) => all.indexOf(a) === i).join(", ")}); none writes before a person approves it.` : "No heal rule is set: incidents are diagnosed, never healed.");
  }
  return { lines, target: '[data-testid="stage-monitor"]' };
}

/** The longest chain of waits through a checked DAG, first to last (the
 * first of equal ones in the spec's order). */
function longestChain(nodes: NodeOutline[]): string[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const best = new Map<string, string[]>();
  const longer = (a: string[], b: string[]) => (b.length > a.length ? b : a);
  const to = (name: string): string[] => {
    const known = best.get(name);
    if (known) return known;
    best.set(name, [name]); // a cycle (which the check refuses) stops here
    const chain = [...(byName.get(name)?.upstream ?? []).map(to).reduce(longer, []), name];
    best.set(name, chain);
    return chain;
  };
  return nodes.map((n) => to(n.name)).reduce(longer, []);
}

/** The build shape (or the first shipped) checked here now: its nodes as
 * the check answers them and their longest chain; then its newest run's
 * critical path, end and spend, which come from runs, not from the check.
 * A check writes nothing. */
async function checkShape(t: Transport): Promise<Effect> {
  const shapes = await read("the shipped shapes", () => t.workflowShapes());
  if ("unread" in shapes) return { lines: [shapes.unread] };
  const shape = shapes.value.find((s) => s.name === "build") ?? shapes.value[0];
  if (!shape) return { lines: ["This controller lists no shipped shape to check."] };
  const target = `[data-testid="shape-${shape.name}"]`;
  const checked = await read(`the check of ${shape.name}`, () => t.workflowValidate({ spec: shape.spec }));
  if ("unread" in checked) return { lines: [checked.unread], target };
  const v = checked.value;
  const name = v.name ?? shape.name;
  if (!v.valid) return { lines: [`${name} is refused here: ${plural(v.errors.length, "problem")}.`, ...v.errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`)], target };
  const chain = longestChain(v.nodes);
  const lines = [
    `${name} is valid here${v.hash ? `, pinned to ${v.hash.slice(0, 19)}…` : ""}: ${plural(v.nodes.length, "node")}, ${v.nodes.map((n) => `${n.name} (${[n.kind, n.fan_out].filter(Boolean).join(", ")})`).join(", ")}.`,
    `Its longest chain of waits: ${chain.join(" → ")}, ${chain.length} of ${v.nodes.length} nodes. The check gives no time or cost: a run's critical path and end come from what earlier runs took, its spend from the ledger.`,
  ];
  const runs = await read("the runs", () => t.workflowRuns());
  if ("unread" in runs) return { lines: [...lines, runs.unread], target };
  // Newest first, as the view lists them.
  const newest = runs.value.find((r) => r.workflow === name);
  if (!newest) return { lines: [...lines, `No run of ${name} yet, so nothing to estimate from: start one above.`], target };
  const got = await read(`run ${newest.id}`, () => t.workflowRun(newest.id));
  if ("unread" in got) return { lines: [...lines, got.unread], target };
  const r = got.value;
  const path = r.critical_path.length ? r.critical_path.join(" → ") : "not known yet (a node on it has never run)";
  const end = r.finished_at_ms !== null ? `ended ${time(r.finished_at_ms)}` : r.ends_at_ms !== null ? `ends about ${time(r.ends_at_ms)}` : "its end not known yet";
  lines.push(`Its newest run ${r.id}${r.dry_run ? " (a dry run)" : ""}: ${r.state}, ${r.done}/${r.total} units, ${usd(r.cost_nusd)} spent, ${end}; critical path ${path}.`);
  return { lines, target };
}

export const STEPS: Step[] = [
  {
    id: "deployment",
    view: "architecture",
    title: "The real deployment",
    targets: ['[data-testid="architecture"]'],
    text: "Work flows down from a surface to the controller, which stores every ticket before anything happens to it, routes it to one bot's own lane, and lands results and cost in the store. Each edge carries its own rate, measured from the controller's counters each second; what cannot be read is shown as unknown.",
    action: {
      label: "Send 20 tickets through it",
      async run(ctx) {
        const sent = await Promise.all(Array.from({ length: 20 }, () => ctx.transport.submit(chat(ctx.key("deployment"), "A walk-through ticket: say hello.", 8))));
        return { lines: [`${sent.length} tickets admitted; the edges above move with them within a second or two.`] };
      },
    },
  },
  {
    id: "topology",
    view: "topology",
    title: "Lanes, one per bot",
    targets: ['[data-testid="topology"]'],
    text: "Every bot consumes only its own lane (on a fleet, its own Redis stream), so one slow bot never holds up another. Each bot shows its lane's depth, what is pending and its lag; find one by name, and drain or uncordon it from its row.",
  },
  {
    id: "routing",
    view: "routing",
    title: "The routing, hop by hop",
    targets: ['[data-testid="journey"]', '[data-testid="routing"]'],
    text: "A ticket's real journey: the surface, the auth gate, durable as queued at the controller, routed to a lane, run by the bot's model, and back with its cost captured once. The times are the ones recorded, to the millisecond, with the gap between hops.",
    action: {
      label: "Submit a ticket and follow it",
      async run(ctx) {
        const s = await ctx.transport.submit(chat(ctx.key("routing"), "A walk-through ticket: where do I go?", 16));
        ctx.open("routing", s.id);
        const target = '[data-testid="journey"]';
        const where = (v: TicketView) => `Ticket ${short(s.id)} ${v.state}${v.bot ? ` on ${v.bot}` : ""}, ${plural(v.events.length, "recorded move")}`;
        // Followed to its end, saying where it is meanwhile: a ticket
        // behind others in its lane waits its turn.
        const v = await until(ctx.transport, s.id, ended, FOLLOW_MS, 250, (v) => ctx.say([`${where(v)} so far; following it to its end…`]), ctx.shown);
        // Not ended within the bound, or the step was left meanwhile.
        if (!ended(v)) return { lines: [`${where(v)}: not ended yet. The journey below goes on following it.`], target };
        return { lines: [`${where(v)}.`], target };
      },
    },
  },
  {
    id: "isolation",
    view: "security",
    title: "The isolation",
    targets: ['[data-control="tenant-isolation"]', '[data-testid="security"]'],
    text: "Tenants are isolated in the store itself: on a fleet's PostgreSQL, row-level security is enabled and forced on every tenant table, and a canary reads across tenants as the controller's own role and must see 0 rows. The checks run live against the platform, not from a document.",
    action: {
      label: "Run the Security Center's scan now",
      async run(ctx) {
        await ctx.transport.securityScan();
        const controls = await ctx.transport.securityControls();
        const control = controls.find((c) => c.id === "tenant-isolation");
        if (!control) return { lines: ["This controller has no tenant-isolation control to show."] };
        const canary = control.checks.find((c) => c.id === "pg.canary-cross-tenant");
        const lines = [`${control.title}: ${control.status.replace("_", " ")}.`];
        if (canary?.status === "passed") lines.push(`The canary: ${canary.evidence}.`);
        else if (canary?.status === "skipped") lines.push(`The canary did not run here: ${canary.evidence ?? "this store has no row-level security"}. On a fleet's PostgreSQL it reads across tenants and must see 0 rows.`);
        else if (canary) lines.push(`The canary ${canary.status ?? "never ran"}: ${canary.evidence ?? "no evidence"}.`);
        return { lines, target: '[data-control="tenant-isolation"]' };
      },
    },
  },
  {
    id: "security",
    view: "integrations",
    title: "The security model: deny by default",
    targets: ['[data-testid="integrations"] .trail', '[data-testid="integrations"]'],
    text: "A bot reaches an outside system only through the auth gate and a brokered connector, and only with a grant: an operation, scopes, a rate and a budget. Without one, the call is refused before anything leaves, and the refusal is in the audit trail.",
    action: {
      label: "Make a bot call a tool it has no grant for",
      async run(ctx) {
        const view = await ctx.transport.integrations();
        const granted = new Set(view.grants.flatMap((g) => g.operations.map((o) => `${g.connector}.${o}`)));
        // A read: nothing would change outside even were it let through.
        const reads = view.connectors.flatMap((c) => c.operations.filter((o) => o.effect === "read").map((o) => ({ connector: c.id, operation: o.id })));
        const pick = reads.find((c) => !granted.has(`${c.connector}.${c.operation}`));
        if (!pick) return { lines: ["Every read of every connector is granted here: nothing to be refused."] };
        const s = await ctx.transport.submit({ kind: "tool", payload: { connector: pick.connector, operation: pick.operation, params: {} }, idempotency_key: ctx.key("security"), max_attempts: 1 });
        const v = await until(ctx.transport, s.id, ended, 15_000);
        await ctx.live.loadIntegrations();
        const denial = ctx.live.integrations?.audit.find((a) => a.ticket === s.id && a.kind === "decision");
        const lines = [`Ticket ${short(s.id)} asked for ${pick.connector}.${pick.operation}: ${v.state}.`];
        lines.push(denial ? `The gate ${denial.allowed ? "allowed it" : "denied it"} for ${denial.actor ?? "the bot"}: ${denial.reason}` : "No decision of the gate is in the audit trail yet.");
        return { lines, target: `[data-testid="audit-row"][data-ticket="${s.id}"]` };
      },
    },
  },
  {
    id: "connectors",
    view: "integrations",
    title: "Brokered connectors",
    targets: ['[data-testid="integrations"] .diagram'],
    text: "Each bot's actual grants run through the gate, the connector runtime (every write kept in the effect ledger) and the token broker, which holds the credentials in the OS keyring or a Vault: a bot never sees a secret, only the answer.",
  },
  {
    id: "lifecycle",
    view: "tickets",
    title: "The ticket lifecycle",
    targets: ['[data-testid="detail"]', 'svg[aria-label="Ticket lifecycle"]'],
    text: "The lifecycle is drawn from the state machine in the code, with live counts per state. A cancel reaches a running ticket's bot at once and aborts its model call; an attempt is charged once, when it ends, and a cancelled attempt's call was aborted, so nothing more is charged for it.",
    action: {
      label: "Start a long ticket and cancel it while it runs",
      async run(ctx) {
        const s = await ctx.transport.submit(chat(ctx.key("lifecycle"), "Write a long essay about queues, lanes and bots, in many paragraphs.", 2048));
        ctx.open("tickets", s.id);
        const seen = await until(ctx.transport, s.id, (v) => v.state === "running" || ended(v), 15_000, 20);
        if (seen.state !== "running") {
          return { lines: [`It ${seen.state} before it could be seen running: this controller's model answers at once. Its spend: ${usd(seen.cost.cost_nusd)}, captured once.`], target: '[data-testid="detail"]' };
        }
        const ran = seen.events.findLast((e) => e.to === "running")?.at_ms ?? Date.now();
        const cancelled = await ctx.transport.cancel(s.id);
        const at = cancelled.cost.cost_nusd;
        // A reply that still arrived would be charged: wait, then read again.
        await sleep(3000);
        const after = await ctx.transport.ticket(s.id);
        return {
          lines: [
            `Running on ${seen.bot}; cancelled ${Math.max(0, (cancelled.events.at(-1)?.at_ms ?? ran) - ran)} ms later: ${cancelled.state}.`,
            `Its spend at the cancel: ${usd(at)}; three seconds later: ${usd(after.cost.cost_nusd)}, ${after.ledger.length} attempts charged — ${after.cost.cost_nusd === at ? "stopped" : "a late reply was charged"}.`,
          ],
          target: '[data-testid="detail"]',
        };
      },
    },
  },
  {
    id: "trading",
    view: "trading",
    title: "The trading desk",
    targets: ['ol.flow', '[data-testid="trading"]'],
    text: "Paper sessions run Signal → Risk → Execute → Ledger → Recap with live counts. Orders carry NautilusTrader's states, every fill posts to a double-entry ledger, and a fill traces down to its signal, its ticket and the model call that made it. The kill switch is always in reach.",
    action: { label: "Trace the newest fill to its model call", run: (ctx) => traceFill(ctx.transport) },
  },
  {
    id: "operations",
    view: "operations",
    title: "The operations loop",
    targets: ['[data-testid="operations"] .loop', '[data-testid="operations"]'],
    text: "Monitor → Gather → Diagnose → Heal → Report: alerts from the platform's own signals and from Alertmanager open incidents; investigations run read-only tools inside a box, every call kept as evidence; any write waits for an approval.",
    action: { label: "Open the newest incident and weigh its evidence", run: (ctx) => weighIncident(ctx.transport) },
  },
  {
    id: "workflows",
    view: "workflows",
    title: "Workflows",
    targets: ['[data-testid="workflows"] .shapes', '[data-testid="workflows"]'],
    text: "The shipped shapes (build, ticket, video) run as DAGs of real tickets: each node's phase, progress and cost, the critical path, approvals in an inbox, and a failed node retried from where it failed.",
    action: { label: "Check the build shape here and read its DAG", run: (ctx) => checkShape(ctx.transport) },
  },
];

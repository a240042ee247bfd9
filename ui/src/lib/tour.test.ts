import { describe, expect, it } from "vitest";
import type { ApiError } from "../bindings";
import type { Live } from "./live.svelte";
import { STEPS, load, save, stepOn, tagOf, uuidv7, type TourContext } from "./tour";
import { ServerError, type Transport } from "./transport";

class Memory {
  map = new Map<string, string>();
  getItem = (k: string) => this.map.get(k) ?? null;
  setItem = (k: string, v: string) => void this.map.set(k, v);
  removeItem = (k: string) => void this.map.delete(k);
}

describe("the walk-through", () => {
  it("has an id that is a UUIDv7 of its start, so its tag is one the server takes", () => {
    const id = uuidv7(0x0193a0c41b2c, () => new Uint8Array(16).fill(0xff));
    expect(id).toBe("0193a0c4-1b2c-7fff-bfff-ffffffffffff");
    expect(tagOf(id)).toMatch(/^tour:[a-z0-9:-]{1,59}$/);
    expect(uuidv7()).not.toBe(uuidv7());
  });

  it("is saved and resumed where it was, and a damaged save is no walk-through", () => {
    const m = new Memory();
    expect(load(m)).toBeNull();
    const state = { id: uuidv7(), step: 3, made: 7, open: false };
    save(state, m);
    expect(load(m)).toEqual(state);
    for (const bad of ["{", "[]", JSON.stringify({ ...state, step: STEPS.length }), JSON.stringify({ ...state, id: "x" }), JSON.stringify({ ...state, made: "7" })]) {
      m.setItem("oshal.tour", bad);
      expect(load(m)).toBeNull();
    }
    save(null, m);
    expect(m.map.size).toBe(0);
  });

  it("covers each layer the seeds name, and each view starts at its own step", () => {
    const ids = STEPS.map((s) => s.id);
    for (const layer of ["deployment", "routing", "isolation", "security", "connectors", "lifecycle", "trading", "operations", "workflows"]) expect(ids).toContain(layer);
    expect(new Set(ids).size).toBe(ids.length);
    expect(STEPS[stepOn("routing")].id).toBe("routing");
    expect(STEPS[stepOn("integrations")].id).toBe("security");
    for (const s of STEPS) expect(s.targets.length).toBeGreaterThan(0);
  });
});

// The last three steps' actions, on a fake transport that answers what a
// controller would and records every call made (each must be a read).
const READS = new Set(["deskSessions", "deskBlotter", "deskOrders", "ticket", "opsIncidents", "opsIncident", "opsAlerts", "opsSettings", "workflowShapes", "workflowValidate", "workflowRuns", "workflowRun"]);

function fake(answers: Record<string, (...args: never[]) => unknown>) {
  const calls: string[] = [];
  const transport = new Proxy(answers, {
    get: (a, name: string) => (...args: never[]) => {
      calls.push(name);
      if (!(name in a)) throw new Error(`the fake has no ${name}`);
      return Promise.resolve().then(() => a[name](...args));
    },
  }) as unknown as Transport;
  const ctx: TourContext = { transport, live: {} as Live, key: (s) => `tour:test:${s}`, open: () => {}, say: () => {}, shown: () => true };
  return { ctx, calls };
}

const act = (id: string) => STEPS.find((s) => s.id === id)!.action!;
const refused = (kind: ApiError["kind"], message: string) => () => {
  throw new ServerError(kind === "forbidden" ? 403 : 404, { kind, message });
};

const flow = { signals: 3, missed: 0, no_trade: 1, checked: 2, denied: 0, in_flight: 0, filled: 2, partly_filled: 0, rejected: 0, killed: 0, expired: 0, canceled: 0, orders: 2, fills: 2 };
const session = { id: "ds-0123456789ab", spec: { instrument: "ETHUSD.SIM" }, status: "running", flow };
const signal = {
  id: "S-2", bars: 21, ticket: "0193a0c4-1b2c-7fff-bfff-00000000abcd", bot: "bot-1", cost_nusd: 12_000, source: "bot-1", direction: "UP", confidence: 0.8,
  reference_price: "2301.50", checks: [{ code: "max_notional", limit: "10000", observed: "2301.5", pass: true }, { code: "max_position", limit: "2", observed: "1", pass: true }],
};
const fill = { ts_ms: 1_260_000, order: "O-2", signal: "S-2", trade_id: "T-2", side: "BUY", quantity: "1.0", price: "2301.62", liquidity_side: "TAKER", slippage: "0.12" };

describe("the routing step's action", () => {
  it("follows its ticket to its end, saying where it is meanwhile", async () => {
    const id = "0193a0c4-1b2c-7fff-bfff-00000000beef";
    const moves = (n: number) => Array.from({ length: n }, () => ({}));
    const reads = [
      { id, state: "queued", bot: null, events: moves(1) },
      { id, state: "routed", bot: "bot-2", events: moves(2) },
      { id, state: "running", bot: "bot-2", events: moves(3) },
      { id, state: "succeeded", bot: "bot-2", events: moves(4) },
    ];
    const { ctx, calls } = fake({ submit: () => ({ id }), ticket: () => reads.shift() });
    const said: string[][] = [];
    const opened: string[] = [];
    const e = await act("routing").run({ ...ctx, say: (lines) => said.push(lines), open: (view, t) => opened.push(`${view}:${t}`) });
    expect(opened).toEqual([`routing:${id}`]);
    expect(said).toEqual([
      ["Ticket 0000beef queued, 1 recorded move so far; following it to its end…"],
      ["Ticket 0000beef routed on bot-2, 2 recorded moves so far; following it to its end…"],
      ["Ticket 0000beef running on bot-2, 3 recorded moves so far; following it to its end…"],
    ]);
    expect(e.lines).toEqual(["Ticket 0000beef succeeded on bot-2, 4 recorded moves."]);
    expect(calls.filter((c) => c === "submit")).toHaveLength(1);
  });

  it("stops following once the step is no longer shown", async () => {
    const id = "0193a0c4-1b2c-7fff-bfff-00000000beef";
    let reads = 0;
    const { ctx } = fake({ submit: () => ({ id }), ticket: () => (reads++, { id, state: "queued", bot: null, events: [{}] }) });
    let shown = true;
    const e = await act("routing").run({ ...ctx, say: () => (shown = false), shown: () => shown });
    expect(reads).toBe(2);
    expect(e.lines).toEqual(["Ticket 0000beef queued, 1 recorded move: not ended yet. The journey below goes on following it."]);
  });
});

describe("the trading step's action", () => {
  it("traces the newest fill of the newest session to its order, signal, ticket and model call", async () => {
    const { ctx, calls } = fake({
      deskSessions: () => [session, { ...session, id: "ds-older" }],
      deskBlotter: () => ({ signals: [signal], missed: [], fills: [{ ...fill, order: "O-1", trade_id: "T-1" }, fill] }),
      deskOrders: () => [{ id: "O-2", side: "BUY", quantity: "1.0", filled: "1.0", status: "FILLED", postings: ["reserve", "trade", "commission", "release"].map((reason) => ({ reason })) }],
      ticket: (id: string) => ({ id, state: "succeeded", bot: "bot-1", ledger: [{ model: "qwen2.5-0.5b", input_tokens: 120, output_tokens: 30, cost_nusd: 12_000, unpriced: false }] }),
    });
    const e = await act("trading").run(ctx);
    expect(e.lines).toEqual([
      "Session ds-0123456789ab (ETHUSD.SIM, running): 2 fills. The newest, T-2: BUY 1.0 @ 2301.62 (TAKER, slippage 0.12 per unit).",
      "Its order O-2, BUY 1.0 of 1.0 filled, is FILLED in NautilusTrader's states; the ledger posted reserve, trade, commission, release for it.",
      "It came from signal S-2 at bar 21: bot-1 said UP (confidence 0.80) from 2301.50; 2 risk checks, all passed.",
      "The signal is ticket 0000abcd, succeeded on bot-1; its model call: qwen2.5-0.5b, 120 tokens in and 30 out, $0.000012.",
    ]);
    expect(e.target).toBe('[data-testid="fill-row"]');
    expect(calls.every((c) => READS.has(c))).toBe(true);
  });

  it("says a kill switch's closing fill has no signal behind it", async () => {
    const { ctx } = fake({
      deskSessions: () => [session],
      deskBlotter: () => ({ signals: [signal], missed: [], fills: [fill, { ...fill, order: "O-3", signal: "K-1", trade_id: "T-3", side: "SELL" }] }),
      deskOrders: () => [],
    });
    const e = await act("trading").run(ctx);
    expect(e.lines.slice(1)).toEqual(["Its order O-3 is not among the session's orders.", "It is the kill switch's closing order (K-1): no signal and no model call are behind it."]);
  });

  it("says plainly that there is no session, or no fill yet, to trace", async () => {
    const none = await act("trading").run(fake({ deskSessions: () => [] }).ctx);
    expect(none.lines).toHaveLength(1);
    expect(none.lines[0]).toMatch(/^No paper session has been opened here yet, so there is no fill to trace/);
    expect(none.target).toBe('[data-testid="desk-open"]');
    const quiet = await act("trading").run(fake({ deskSessions: () => [{ ...session, flow: { ...flow, signals: 1, fills: 0 } }], deskBlotter: () => ({ signals: [], missed: [], fills: [] }) }).ctx);
    expect(quiet.lines).toEqual(["Session ds-0123456789ab (ETHUSD.SIM, running) has no fill yet: 1 signal from the bots, 1 needing no trade, 0 denied by risk, 0 in flight."]);
  });
});

const evidence = (id: string, status: string) => ({ id, tool: "list_bots", status });
const incident = {
  tenant: "default",
  incident: { id: "INC-3", title: "OshalNodeLost n2", rule: "by-alertname-and-tenant", status: "acknowledged", severity: "critical" },
  alerts: [{ fingerprint: "a" }, { fingerprint: "b" }],
  investigations: [
    { phase: "Succeeded", evidence: [evidence("E-1", "success"), evidence("E-2", "error")], diagnosis: null, error: null, stopped: null },
    {
      phase: "Succeeded",
      evidence: [evidence("E-3", "success"), evidence("E-4", "no_data"), evidence("E-5", "approval_required")],
      diagnosis: {
        inconclusive: false,
        findings: [{ text: "n2 has no bot", evidence: ["E-3"] }, { text: "a guess", evidence: [] }],
        causes: [{ kind: "node_down", subject: "n2", supports: [{ text: "its heartbeat stopped", evidence: ["E-1", "E-3"] }], against: [{ text: "cites nothing kept", evidence: ["E-9"] }] }],
      },
    },
  ],
};

describe("the operations step's action", () => {
  it("opens the newest incident: its tool calls by outcome and the claims backed by evidence", async () => {
    const { ctx, calls } = fake({
      opsIncidents: () => [{ id: "INC-3", tenant: "default", heals: 1, heals_pending: 1 }, { id: "INC-2", tenant: "default", heals: 0, heals_pending: 0 }],
      opsIncident: (id: string, tenant: string) => (id === "INC-3" && tenant === "default" ? incident : null),
    });
    const e = await act("operations").run(ctx);
    expect(e.lines).toEqual([
      "INC-3 “OshalNodeLost n2” (default): acknowledged, critical, opened by rule by-alertname-and-tenant from 2 alerts.",
      "2 investigations, 5 read-only tool calls kept as evidence: 2 success, 1 error, 1 no_data, 1 approval_required.",
      "Its newest diagnosis (node_down: n2) makes 4 claims; 2 of them cite evidence on record, 2 do not.",
      "1 heal proposed, 1 awaiting a person's approval.",
    ]);
    expect(e.target).toBe('[data-testid="incident-row"]');
    expect(calls.every((c) => READS.has(c))).toBe(true);
  });

  it("says when no investigation ran, or none has diagnosed yet", async () => {
    const bare = await act("operations").run(fake({ opsIncidents: () => [{ id: "INC-1", tenant: "acme", heals: 0 }], opsIncident: () => ({ ...incident, tenant: "acme", investigations: [] }) }).ctx);
    expect(bare.lines[1]).toMatch(/^No investigation ran for it: none runs where/);
    const running = { phase: "Running", evidence: [evidence("E-1", "success")], diagnosis: null, error: null, stopped: null };
    const gathering = await act("operations").run(fake({ opsIncidents: () => [{ id: "INC-1", tenant: "acme", heals: 0 }], opsIncident: () => ({ ...incident, investigations: [running] }) }).ctx);
    expect(gathering.lines.slice(1)).toEqual(["1 investigation, 1 read-only tool call kept as evidence: 1 success, 0 error, 0 no_data, 0 approval_required.", "No diagnosis yet: its investigation is still gathering."]);
  });

  it("with no incident, says so and what the loop watches here", async () => {
    const { ctx } = fake({
      opsIncidents: () => [],
      opsAlerts: () => [],
      opsSettings: () => ({
        settings: {
          rules: [{ name: "by-alertname-and-tenant", window_secs: 300 }],
          investigate: true,
          heal: [{ action: { action: "drain_node" } }, { action: { action: "drain_bot" } }, { action: { action: "drain_node" } }],
        },
      }),
    });
    const e = await act("operations").run(ctx);
    expect(e.lines[0]).toBe("No incident has opened here yet.");
    expect(e.lines[1]).toMatch(/^The loop watches the platform's own signals .* and the alerts Alertmanager and PagerDuty post/);
    expect(e.lines.slice(2)).toEqual([
      "No alert is on record.",
      "1 correlation rule (by-alertname-and-tenant) decides which alerts open one; each incident opened is investigated.",
      "3 heal rules may propose a fix (drain_node, drain_bot); none writes before a person approves it.",
    ]);
    const unhealed = await act("operations").run(fake({ opsIncidents: () => [], opsAlerts: () => [], opsSettings: () => ({ settings: { rules: [], investigate: false, heal: [] } }) }).ctx);
    expect(unhealed.lines.slice(3)).toEqual(["No correlation rule is set, so no alert opens an incident.", "No heal rule is set: incidents are diagnosed, never healed."]);
    expect(e.target).toBe('[data-testid="stage-monitor"]');
    const resolved = await act("operations").run(fake({ opsIncidents: () => [], opsAlerts: () => [{ state: "RESOLVED" }, { state: "FIRING" }], opsSettings: refused("forbidden", "a tenant's token may not read another tenant's settings") }).ctx);
    expect(resolved.lines.slice(2)).toEqual([
      "The newest 2 alerts on record: 1 firing; none has opened an incident.",
      "This token may not read the monitor's settings (a tenant's token may not read another tenant's settings).",
    ]);
  });
});

const nodes = [
  { name: "checkout", kind: "build", upstream: [], condition: null, fan_out: null },
  { name: "compile", kind: "build", upstream: ["checkout"], condition: null, fan_out: "matrix" },
  { name: "lint", kind: "build", upstream: ["checkout"], condition: null, fan_out: null },
  { name: "test", kind: "build", upstream: ["compile", "lint"], condition: null, fan_out: "with_items" },
  { name: "approve", kind: "approval", upstream: ["test"], condition: null, fan_out: null },
  { name: "deploy", kind: "build", upstream: ["approve"], condition: null, fan_out: null },
];
const shapes = () => [{ name: "support-ticket", spec: "name: support-ticket" }, { name: "build", spec: "name: build" }];
const validate = ({ spec }: { spec: unknown }) => ({ valid: spec === "name: build", name: "build", hash: "sha256:0123456789abcdef", nodes, errors: [] });

describe("the workflows step's action", () => {
  it("checks the build shape here, its nodes and longest chain, then reads its newest run", async () => {
    const { ctx, calls } = fake({
      workflowShapes: shapes,
      workflowValidate: validate,
      workflowRuns: () => [{ id: "r-video", workflow: "video" }, { id: "r-2", workflow: "build" }, { id: "r-1", workflow: "build" }],
      workflowRun: (id: string) => ({ id, state: "Running", dry_run: true, done: 3, total: 9, cost_nusd: 2_500_000_000, finished_at_ms: null, ends_at_ms: null, critical_path: ["checkout", "compile"] }),
    });
    const e = await act("workflows").run(ctx);
    expect(e.lines).toEqual([
      "build is valid here, pinned to sha256:0123456789ab…: 6 nodes, checkout (build), compile (build, matrix), lint (build), test (build, with_items), approve (approval), deploy (build).",
      "Its longest chain of waits: checkout → compile → test → approve → deploy, 5 of 6 nodes. The check gives no time or cost: a run's critical path and end come from what earlier runs took, its spend from the ledger.",
      "Its newest run r-2 (a dry run): Running, 3/9 units, $2.5000 spent, its end not known yet; critical path checkout → compile.",
    ]);
    expect(e.target).toBe('[data-testid="shape-build"]');
    expect(calls).toEqual(["workflowShapes", "workflowValidate", "workflowRuns", "workflowRun"]);
  });

  it("says there is no run to estimate from yet, and what a refused spec's problems are", async () => {
    const fresh = await act("workflows").run(fake({ workflowShapes: shapes, workflowValidate: validate, workflowRuns: () => [] }).ctx);
    expect(fresh.lines[2]).toBe("No run of build yet, so nothing to estimate from: start one above.");
    const refusedSpec = await act("workflows").run(
      fake({ workflowShapes: shapes, workflowValidate: () => ({ valid: false, name: "build", hash: null, nodes: [], errors: [{ path: "$.nodes[2].depends", code: "cycle", message: "a cycle: test → test" }] }) }).ctx,
    );
    expect(refusedSpec.lines).toEqual(["build is refused here: 1 problem.", "$.nodes[2].depends: a cycle: test → test"]);
    const none = await act("workflows").run(fake({ workflowShapes: () => [] }).ctx);
    expect(none.lines).toEqual(["This controller lists no shipped shape to check."]);
  });
});

describe("what the last three steps cannot read", () => {
  it("is said as such, never as a zero, and never escapes as an exception", async () => {
    const lacking = { deskSessions: refused("not_found", "this controller runs no trading desk"), opsIncidents: refused("not_found", "this controller runs no operations loop"), workflowShapes: refused("not_found", "this controller runs no workflows") };
    expect((await act("trading").run(fake(lacking).ctx)).lines).toEqual(["The desk's sessions could not be read: this controller runs no trading desk."]);
    expect((await act("operations").run(fake(lacking).ctx)).lines).toEqual(["The incidents could not be read: this controller runs no operations loop."]);
    expect((await act("workflows").run(fake(lacking).ctx)).lines).toEqual(["The shipped shapes could not be read: this controller runs no workflows."]);
    // A tenant's token refused part way: the rest is still said.
    const e = await act("trading").run(fake({ deskSessions: () => [session], deskBlotter: () => ({ signals: [signal], missed: [], fills: [fill] }), deskOrders: refused("forbidden", "not this tenant's session."), ticket: () => Promise.reject(new Error("unreachable")) }).ctx);
    expect(e.lines[1]).toBe("This token may not read order O-2 (not this tenant's session).");
    expect(e.lines[3]).toBe("Signal S-2's ticket could not be read: unreachable.");
  });
});

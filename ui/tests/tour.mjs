// The walk-through in a real browser (Debian's Chromium, driven by
// playwright-core) against a real `oshal serve` whose bots run a real
// model: node tests/tour.mjs URL TOKEN
// It is opened from the command palette and runs every step: each points
// at its live element, and each action runs for real (tickets sent through
// the architecture, one followed hop by hop, the isolation checks run, a
// tool call with no grant denied and found in the audit, a running ticket
// cancelled with its spend stopped; then reads only: the trading desk and
// the operations loop say plainly that a fresh controller has no session
// and no incident yet, and the build shape is checked with its five nodes
// and no run to estimate from). The keys move it (→, ←, Esc); it
// resumes after a reload where it was left, and each view opens its own
// step. Cleared at the end, it leaves nothing behind: no ticket of its tag,
// the counts, grants, bots and tenants as they were, and the operator's own
// ticket (submitted before it) untouched (the audit trail keeps the denial,
// as an audit must). With `fleet`, the steps a fleet's controller shows.
import { open } from "./chromium.mjs";

const [url, token, mode] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node tests/tour.mjs URL TOKEN [fleet]");
  process.exit(2);
}
const get = async (path) => {
  const r = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
const post = async (path, body) => {
  const r = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
/** What the tour must leave as it found it. */
const snapshot = async () => {
  const counts = Object.fromEntries((await get("/api/v1/tickets/counts")).map((c) => [c.state, c.count]));
  const grants = (await get("/api/v1/grants")).map((g) => g.id).sort();
  const bots = (await get("/api/v1/bots")).map((b) => `${b.id}:${b.cordoned}`).sort();
  const tenants = (await get("/api/v1/tenants")).map((t) => JSON.stringify(t)).sort();
  return JSON.stringify({ counts, grants, bots, tenants });
};

const { browser, page, problems, step } = await open({ width: 1400, height: 1000, timeout: 30000 });
try {
  const tour = page.getByTestId("tour");
  const at = async (id, position) => {
    await page.locator(`[data-testid="tour"][data-step="${id}"]`).waitFor();
    if (position) await tour.getByTestId("tour-position").getByText(position).waitFor();
    // The ring is drawn around the step's live element.
    await page.getByTestId("tour-ring").waitFor();
  };
  const palette = async (label) => {
    await page.keyboard.press("Control+K");
    await page.getByTestId("palette-input").fill(label);
    await page.keyboard.press("Enter");
  };
  const run = async (says, timeout = 60000) => {
    await tour.getByTestId("tour-run").click();
    await tour.getByTestId("tour-effect").filter({ hasText: says }).waitFor({ timeout });
    if (await tour.getByTestId("tour-failed").count()) throw new Error(await tour.getByTestId("tour-failed").innerText());
    console.log(`${await tour.getAttribute("data-step")}: ${(await tour.getByTestId("tour-effect").innerText()).replace(/\n/g, " | ")}`);
  };
  const said = () => tour.getByTestId("tour-effect").innerText();
  /** A read's lines name no field that was not there. */
  const sane = (text) => {
    if (/undefined|NaN|\[object/.test(text)) throw new Error(`a line shows what was not read: ${text}`);
  };
  /** The ring is drawn around `selector` (its first element), within 10 px. */
  const ringed = (selector) =>
    page.waitForFunction((sel) => {
      const ring = document.querySelector('[data-testid="tour-ring"]')?.getBoundingClientRect();
      const el = document.querySelector(sel)?.getBoundingClientRect();
      if (!ring || !el) return false;
      const near = (outer, inner, sign) => sign * (inner - outer) >= 0 && sign * (inner - outer) <= 10;
      return near(ring.left, el.left, 1) && near(ring.top, el.top, 1) && near(ring.right, el.right, -1) && near(ring.bottom, el.bottom, -1);
    }, selector, { timeout: 5000 });
  const next = async () => {
    await tour.locator("h3").click(); // off any input: the keys are the tour's
    await page.keyboard.press("ArrowRight");
  };

  if (mode === "fleet") {
    // On a fleet's controller (PostgreSQL, Redis, a node): the isolation
    // step's canary reads 0 rows across real tenants, and the routing
    // step's ticket, cleared, is kept (the history is append-only), tagged.
    await step("attach to the fleet's controller", async () => {
      await page.goto(`${url}/#token=${token}`);
      await page.getByTestId("connection").getByText("live").waitFor();
    });
    await step("isolation on PostgreSQL: the canary reads 0 rows", async () => {
      await palette("Walk-through: The isolation");
      await at("isolation", "4 / 10");
      await run(/The canary: canary 0 rows/);
    });
    await step("routing on the fleet, then cleared: kept, tagged, none left running", async () => {
      await palette("Walk-through: The routing");
      await at("routing", "3 / 10");
      await run(/Ticket \w+ succeeded on /);
      await tour.getByTestId("tour-clear").click();
      await tour.getByTestId("tour-cleared").filter({ hasText: "0 cancelled, 0 removed, 1 kept (this fleet's history is append-only)." }).waitFor();
    });
  }

  if (mode !== "fleet") {
    let before, mine;
    await step("attach; the operator's own ticket, and what is there before the tour", async () => {
      mine = (await post("/api/v1/tickets", { kind: "chat", payload: { prompt: "The operator's own.", max_tokens: 8 } })).id;
      for (let i = 0; i < 300 && (await get(`/api/v1/tickets/${mine}`)).state !== "succeeded"; i++) await new Promise((r) => setTimeout(r, 100));
      await page.goto(`${url}/#token=${token}`);
      await page.getByTestId("connection").getByText("live").waitFor();
      before = await snapshot();
      if (!before.includes('"succeeded":1')) throw new Error(`the operator's ticket did not succeed: ${before}`);
    });

    await step("the palette starts the walk-through at the deployment", async () => {
      await palette("Start the walk-through");
      await at("deployment", "1 / 10");
      await page.getByTestId("architecture").waitFor();
      await run(/20 tickets admitted/);
    });

    await step("→ moves on: the topology, no action", async () => {
      await next();
      await at("topology", "2 / 10");
      if (await tour.getByTestId("tour-run").count()) throw new Error("the topology step acts");
    });

    await step("← goes back, → forward again", async () => {
      await page.keyboard.press("ArrowLeft");
      await at("deployment", "1 / 10");
      await page.keyboard.press("ArrowRight");
      await at("topology", "2 / 10");
    });

    await step("routing: a ticket submitted and followed hop by hop", async () => {
      await next();
      await at("routing", "3 / 10");
      // Behind the deployment's twenty on a model that shares two cores
      // with the rest of the suite, it may wait its turn: it is followed to
      // its end (the step's own bound is three minutes).
      await run(/Ticket \w+ succeeded on bot-\d+, \d+ recorded moves/, 200000);
      await page.getByTestId("journey").waitFor();
      const times = await page.getByTestId("hop-time").allInnerTexts();
      if (!times.some((t) => /\+\d+ ms/.test(t))) throw new Error(`no hop has its gap: ${times}`);
    });

    await step("isolation: the checks run live and say what the canary did", async () => {
      await next();
      await at("isolation", "4 / 10");
      await run(/canary/i);
      await page.locator('[data-control="tenant-isolation"]').waitFor();
    });

    await step("security: a tool call with no grant is denied, and the denial is in the audit", async () => {
      await next();
      await at("security", "5 / 10");
      await run(/The gate denied it/);
      // Its own denial, pointed at by the ring: the row of the tour's ticket.
      const short = (await tour.getByTestId("tour-effect").innerText()).match(/Ticket (\w{8}) asked/)[1];
      await page.locator(`[data-testid="audit-row"].denied[data-ticket$="${short}"]`).waitFor();
    });

    await step("leave with Esc; a reload keeps it closed, and the palette resumes it where it was", async () => {
      await tour.locator("h3").click();
      await page.keyboard.press("Escape");
      await tour.waitFor({ state: "detached" });
      await page.reload();
      await page.getByTestId("connection").getByText("live").waitFor();
      if (await tour.count()) throw new Error("a left walk-through opened itself again");
      await palette("Resume the walk-through (step 5 of 10)");
      await at("security", "5 / 10");
    });

    await step("connectors, no action", async () => {
      await next();
      await at("connectors", "6 / 10");
    });

    await step("lifecycle: a running ticket cancelled, its spend stopped", async () => {
      await next();
      await at("lifecycle", "7 / 10");
      await run(/cancelled[\s\S]*stopped/);
      await page.getByTestId("detail-state").getByText("cancelled").waitFor();
    });

    await step("trading: its live view, pointed at; no session yet, said so, and the ring on Open", async () => {
      await next();
      await at("trading", "8 / 10");
      await run(/No paper session has been opened here yet, so there is no fill to trace\. Open one above/);
      sane(await said());
      await page.getByTestId("desk-empty").waitFor();
      await ringed('[data-testid="desk-open"]');
    });

    await step("operations: its live view, pointed at; no incident yet, said so, with what the loop watches", async () => {
      await next();
      await at("operations", "9 / 10");
      await run(/No incident has opened here yet\.|INC-\d+ “/);
      const text = await said();
      sane(text);
      if (/No incident has opened here yet\./.test(text)) {
        for (const want of [
          /The loop watches the platform's own signals \(.+\) and the alerts Alertmanager and PagerDuty post/,
          /No alert is on record\.|The newest \d+ alerts? on record: \d+ firing; none has opened an incident\./,
          /\d+ correlation rules? \(.+\) decides? which alerts open one; each incident opened is investigated\./,
          /\d+ heal rules? may propose a fix \(.*rotate_credential.*\); none writes before a person approves it\./,
        ]) if (!want.test(text)) throw new Error(`not said: ${want} in ${text}`);
        await page.getByTestId("no-incidents").waitFor();
        await ringed('[data-testid="stage-monitor"]');
      } else {
        // An alert of the platform's own opened one meanwhile: it is weighed.
        if (!/read-only tool calls? kept as evidence: \d+ success, \d+ error, \d+ no_data, \d+ approval_required\.|No investigation ran for it/.test(text)) throw new Error(text);
        await ringed('[data-testid="incident-row"]');
      }
    });

    await step("workflows: its live view, pointed at; the build shape checked here, five nodes, no run yet", async () => {
      await next();
      await at("workflows", "10 / 10");
      await run(/build is valid here, pinned to sha256:[0-9a-f]{12}…: 5 nodes, checkout \(build\), compile \(build, matrix\), test \(build, with_items\), approve \(approval\), deploy \(build\)\./);
      const text = await said();
      sane(text);
      for (const want of ["Its longest chain of waits: checkout → compile → test → approve → deploy, 5 of 5 nodes.", "No run of build yet, so nothing to estimate from"]) {
        if (!text.includes(want)) throw new Error(`not said: ${want} in ${text}`);
      }
      await page.getByTestId("no-runs").waitFor();
      await ringed('[data-testid="shape-build"]');
    });

    await step("each view opens its own step", async () => {
      await page.getByTestId("nav-topology").click();
      await page.getByTestId("tour-here").click();
      await at("topology", "2 / 10");
    });

    await step("cleared, it leaves nothing behind", async () => {
      const id = await page.evaluate(() => JSON.parse(localStorage.getItem("oshal.tour")).id);
      await tour.getByTestId("tour-clear").click();
      await tour.getByTestId("tour-cleared").filter({ hasText: /removed/ }).waitFor();
      const said = await tour.getByTestId("tour-cleared").innerText();
      const removed = Number(said.match(/(\d+) removed/)?.[1]);
      // 20 + 1 + 1 + 1 tickets: the deployment's, the routing's, the tool call, the cancelled one.
      if (removed !== 23 || /unfinished/.test(said)) throw new Error(said);
      const left = await get(`/api/v1/tickets?tag=${encodeURIComponent(`tour:${id}:`)}`);
      if (left.tickets.length) throw new Error(`${left.tickets.length} tickets of the tour are left`);
      const after = await snapshot();
      if (after !== before) throw new Error(`before ${before}\nafter ${after}`);
      if ((await get(`/api/v1/tickets/${mine}`)).state !== "succeeded") throw new Error("the operator's ticket was touched");
    });
  }

  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  if (csp.length) throw new Error(csp.join("\n"));
  console.log(`walk-through${mode === "fleet" ? " on a fleet" : ""}: all steps passed`);
} catch (e) {
  console.error(`walk-through test failed at ${e.message}`);
  if (process.env.OSHAL_SHOT_ON_FAILURE) {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: process.env.OSHAL_SHOT_ON_FAILURE, fullPage: true });
  }
  for (const p of problems) console.error(p);
  process.exitCode = 1;
} finally {
  await browser.close();
}

// The control center in a real browser (Debian's Chromium, driven by
// playwright-core) against a real `oshal serve`: node tests/browser.mjs URL TOKEN [SHOT.png]
// Exits non-zero with the failing step on stderr.
import { open } from "./chromium.mjs";

const [url, token, shot] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node tests/browser.mjs URL TOKEN [SHOT.png]");
  process.exit(2);
}
const { browser, page, problems, step } = await open({ width: 1280, height: 800, timeout: 20000 });
try {

  await step("a wrong token shows the server's refusal", async () => {
    await page.goto(`${url}/#token=not-the-token-0000`);
    await page.getByText(/token/i).first().waitFor();
    await page.locator("header").getByText(/missing or wrong|unauthor|token/i).waitFor();
  });

  await step("the right token attaches, live, and drops the token from the URL", async () => {
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(`${url}/#token=${token}`);
    await page.getByTestId("connection").getByText("live").waitFor();
    if (page.url().includes(token)) throw new Error("token left in the address bar");
  });

  let id;
  await step("submit a ticket and watch it succeed, with its result and cost", async () => {
    await page.getByTestId("prompt").fill("What is the state of the fleet?");
    await page.getByTestId("submit").click();
    await page.getByTestId("detail-state").getByText("succeeded").waitFor();
    await page.getByTestId("result").waitFor();
    id = (await page.getByTestId("detail").locator("h3").innerText()).trim();
    // The counts fold the event stream's transitions at their next flush,
    // which a busy machine may run after the detail's own read: wait for it.
    const counted = () => Number(document.querySelector('[data-testid="count-succeeded"]')?.textContent) >= 1;
    await page.waitForFunction(counted, null, { timeout: 15000 }).catch(async () => {
      throw new Error(`succeeded count ${await page.getByTestId("count-succeeded").textContent()}`);
    });
    await page.getByTestId("ticket-row").first().waitFor();
  });

  await step("the lifecycle diagram draws the state machine's moves, no more and no fewer", async () => {
    const want = (process.env.OSHAL_LIFECYCLE ?? "").split(",").filter(Boolean).sort();
    if (want.length < 10) throw new Error(`OSHAL_LIFECYCLE holds ${want.length} moves`);
    const drawn = (await page.locator("[data-edge]").evaluateAll((es) => es.map((e) => e.getAttribute("data-edge")))).sort();
    if (JSON.stringify(drawn) !== JSON.stringify(want)) throw new Error(`drawn ${drawn}, the machine has ${want}`);
  });

  await step("filter by a state from the lifecycle diagram", async () => {
    await page.locator('[data-state="dead"]').click();
    await page.getByTestId("empty").waitFor();
    await page.locator('[data-state="dead"]').click();
    await page.getByTestId("ticket-row").first().waitFor();
  });

  await step("filter by tenant: a tenant with no tickets shows the empty state", async () => {
    await page.getByTestId("filter-tenant").fill("nobody-here");
    await page.getByTestId("empty").waitFor();
    await page.getByTestId("filter-tenant").fill("default");
    await page.getByTestId("ticket-row").first().waitFor();
  });

  await step("a bulk cancel counts first (a dry run) and waits for confirmation", async () => {
    await page.getByTestId("bulk-cancel").click();
    await page.getByTestId("bulk-count").filter({ hasText: /tickets match; 0\s+unfinished would be cancelled/ }).waitFor();
    if (!(await page.getByTestId("bulk-go").isDisabled())) throw new Error("nothing to cancel, yet the button is live");
    await page.getByTestId("bulk-confirm").getByRole("button", { name: "Dismiss" }).click();
    await page.getByTestId("filter-tenant").fill("");
  });

  await step("topology draws every live bot with its lane", async () => {
    await page.getByTestId("nav-topology").click();
    await page.locator(".svelte-flow__node", { hasText: "lane depth" }).first().waitFor();
    const bots = await page.locator(".svelte-flow__node", { hasText: "lane depth" }).count();
    if (bots !== 2) throw new Error(`${bots} bots drawn, want 2`);
  });

  await step("a bot is found by name with its lane, and opens its tickets", async () => {
    const search = page.getByTestId("bot-search");
    await search.fill("no-such-bot");
    await page.getByTestId("bot-search-none").waitFor();
    // A bot that has run a ticket, so its tickets open on a row.
    const ran = page.locator(".svelte-flow__node", { hasText: "ok 1" }).first();
    await ran.waitFor();
    const first = (await ran.textContent()).trim().split("\n")[0].trim();
    await search.fill(first.toUpperCase());
    const row = page.getByTestId("bot-match");
    await row.first().waitFor();
    if ((await row.count()) !== 1) throw new Error(`${await row.count()} bots match ${first}, want 1`);
    const cells = await row.locator("td").allTextContents();
    if (cells[0] !== first || cells[2] !== "live" || !/^\d+ \/ \d+$/.test(cells[4]) || !/ ms$/.test(cells[6])) {
      throw new Error(`the match reads ${JSON.stringify(cells)}`);
    }
    // A drain asks to be confirmed: kept, nothing changes; confirmed, it
    // says so once the feed has it; then back.
    await row.getByTestId("bot-drain").click();
    await row.getByTestId("bot-drain-keep").click();
    await row.getByTestId("bot-drain").waitFor();
    if ((await page.getByTestId("bot-hold-said").count()) !== 0) throw new Error("kept, yet something was said");
    await row.getByTestId("bot-drain").click();
    await row.getByTestId("bot-drain-confirm").click();
    await page.getByTestId("bot-hold-said").filter({ hasText: `${first} drained` }).waitFor();
    await row.locator("td", { hasText: "drained" }).waitFor();
    await row.getByTestId("bot-uncordon").click();
    await page.getByTestId("bot-hold-said").filter({ hasText: `${first} uncordoned` }).waitFor();
    await row.locator("td", { hasText: /^live$/ }).waitFor();
    await row.getByRole("button", { name: first }).click();
    await page.getByTestId("ticket-row").first().waitFor();
    const picked = await page.getByLabel("bot").inputValue();
    if (picked !== first) throw new Error(`filtered by ${picked}, want ${first}`);
    await page.getByTestId("nav-topology").click();
    await search.fill("");
  });

  await step("clicking a bot on the topology opens its tickets", async () => {
    // textContent, not innerText: SvelteFlow hides a node while it measures
    // it again, and innerText of a hidden node is empty.
    const node = page.locator(".svelte-flow__node", { hasText: "ok 1" }).first();
    await node.waitFor();
    const bot = (await node.textContent()).trim().split("\n")[0].trim();
    if (!bot) throw new Error("the bot's node has no name");
    await node.click();
    await page.getByTestId("ticket-row").first().waitFor();
    const picked = await page.getByLabel("bot").inputValue();
    if (picked !== bot) throw new Error(`filtered by ${picked}, want ${bot}`);
    await page.getByTestId("ticket-row").filter({ hasText: bot }).first().waitFor();
  });

  await step("the command palette (Ctrl+K) reaches the architecture view", async () => {
    await page.keyboard.press("Control+k");
    await page.getByTestId("palette-input").fill("archi");
    await page.keyboard.press("Enter");
    const arch = page.getByTestId("architecture");
    await arch.locator(".svelte-flow__node", { hasText: "store · tenant-isolated data" }).getByText(/answering/).waitFor();
    await arch.locator(".svelte-flow__node", { hasText: "bots · each on its own lane" }).getByText("2 live of 2 in the local pool").waitFor();
    // The four curated connectors and the operations loop's built-in one.
    await arch.locator(".svelte-flow__node", { hasText: "connector broker" }).getByText(/5 enabled of 5 · 1 grants/).waitFor();
    // Over HTTP the surface is the API behind its gate, never the window.
    await arch.locator(".svelte-flow__node", { hasText: "surface · HTTP API" }).waitFor();
    await arch.locator(".svelte-flow__node", { hasText: "auth gate" }).waitFor();
  });

  await step("each edge carries its own rate: a chat-only load calls no tool, a tool-heavy one does", async () => {
    const arch = page.getByTestId("architecture");
    const edge = (what) => arch.locator(".svelte-flow__edge-label", { hasText: new RegExp(`^${what} `) }).first();
    const rate = async (what) => {
      const m = /([\d.]+)\/s$/.exec(((await edge(what).textContent()) ?? "").trim());
      return m ? Number(m[1]) : null;
    };
    const load = (body, seconds, gap) => page.evaluate(async ({ url, token, body, seconds, gap }) => {
      const until = Date.now() + seconds * 1000;
      while (Date.now() < until) {
        await fetch(`${url}/api/v1/tickets`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
        await new Promise((r) => setTimeout(r, gap));
      }
    }, { url, token, body, seconds, gap });
    // A rate is read while the load runs: poll the labels until they move.
    const during = async (body, gap, check) => {
      const running = load(body, 5, gap);
      let last = "";
      for (let i = 0; i < 50; i++) {
        await page.waitForTimeout(200);
        const r = { routed: await rate("routed"), calls: await rate("tool calls"), admitted: await rate("admitted"), commits: await rate("commits") };
        last = JSON.stringify(r);
        if (check(r)) { await running; return; }
      }
      await running;
      throw new Error(`the edges never read as wanted: ${last}`);
    };
    await during({ kind: "chat", payload: { prompt: "chat only" } }, 40, (r) => r.routed > 0 && r.admitted > 0 && r.commits > 0 && r.calls === 0);
    await during({ kind: "tool", payload: { connector: "shopfront", operation: "get_order", params: { order_id: "A-1" } } }, 250, (r) => r.routed > 0 && r.calls > 0);
  });

  await step("routing replays the ticket's journey with its timestamps", async () => {
    await page.getByTestId("nav-routing").click();
    await page.getByLabel("ticket id").fill(id);
    await page.getByRole("button", { name: "Replay" }).click();
    const hops = page.getByTestId("journey").locator("li");
    await hops.nth(6).waitFor();
    const missing = await page.getByTestId("journey").locator("li.missing").count();
    if (missing !== 0) throw new Error(`${missing} hops not reached for a succeeded ticket`);
    // Submitted over HTTP: the gate's decision has its own recorded time,
    // at or before the controller's admission.
    const gate = await hops.filter({ hasText: "auth gate" }).getByTestId("hop-time").innerText();
    if (!/^\d\d:\d\d:\d\d\.\d{3}$/.test(gate.trim())) throw new Error(`the gate hop reads ${JSON.stringify(gate)}`);
    const controller = await hops.filter({ hasText: "controller" }).getByTestId("hop-time").innerText();
    if (!/\+\d+ ms/.test(controller)) throw new Error(`the controller hop reads ${JSON.stringify(controller)}`);
  });

  await step("integrations draws each bot's grants through the gate, runtime and broker to the connectors", async () => {
    await page.getByTestId("nav-integrations").click();
    const view = page.getByTestId("integrations");
    for (const name of ["Shopfront Orders", "Skyways Flights", "Reelbox Media", "Ledgerly Payments", "auth gate", "token broker"]) {
      await view.locator(".svelte-flow__node", { hasText: name }).first().waitFor();
    }
    await view.locator(".svelte-flow__edge-label", { hasText: "get_order" }).first().waitFor();
    await view.getByTestId("audit-row").filter({ hasText: "grant" }).first().waitFor();
  });

  await step("security: a scan proves the controls live and files the planted key as a finding with a ticket", async () => {
    await page.getByTestId("nav-security").click();
    const view = page.getByTestId("security");
    await view.getByTestId("scan").click();
    const surfaces = view.locator('[data-control="authenticated-surfaces"]');
    await surfaces.getByTestId("control-status").getByText("proven").waitFor();
    // Every gated route of the table, each with no token and a wrong one:
    // all refused (n/n).
    await surfaces.getByText(/\b(\d+)\/\1 unauthenticated probes refused with 401 \(\d+ routes\)/).waitFor();
    await view.locator('[data-control="fail-closed"]').getByText("proven").waitFor();
    await view.locator('[data-control="secret-hygiene"]').getByText("failing").waitFor();
    const row = view.getByTestId("finding-row").filter({ hasText: "aws-access-key-id" });
    await row.waitFor();
    if ((await row.innerText()).includes("AKIAZ7Q4LMNB2XKD3PQR")) throw new Error("the secret is on the page");
    await row.getByTestId("finding-ticket").click();
    await page.getByTestId("detail-state").getByText("succeeded").waitFor();
  });

  await step("the architecture view carries the security layer's numbers", async () => {
    await page.getByTestId("nav-architecture").click();
    const arch = page.getByTestId("architecture");
    await arch.locator(".svelte-flow__node", { hasText: "auth gate" }).getByText(/security: 1 of 1 controls proven · 0 open findings/).waitFor();
    await arch.locator(".svelte-flow__node.bad", { hasText: "connector broker" }).getByText(/security: [0-2] of 2 controls proven · [1-9]\d* open findings/).waitFor();
  });

  await step("security: suppressing a finding needs a justification and takes it off the open list", async () => {
    await page.getByTestId("nav-security").click();
    const view = page.getByTestId("security");
    const row = view.getByTestId("finding-row").filter({ hasText: "aws-access-key-id" });
    await row.getByTestId("suppress").click();
    await row.getByTestId("suppress-reason").fill("test key, rotated");
    await row.getByRole("button", { name: "Suppress", exact: true }).click();
    await view.getByTestId("no-findings").waitFor();
  });

  await step("trading: a paper session trades on the bots' signals; a fill leads to its signal, its risk checks, its ledger postings and its ticket", async () => {
    await page.getByTestId("nav-trading").click();
    const view = page.getByTestId("trading");
    await view.getByTestId("desk-empty").waitFor();
    await view.getByTestId("desk-bars").fill("480");
    await view.getByTestId("desk-open").click();
    await view.getByTestId("desk-status").getByText("finished").waitFor({ timeout: 90000 });
    await view.getByTestId("flow-signal").getByText("459 from bots").waitFor();
    await view.getByTestId("fill-row").first().click();
    const trace = view.getByTestId("fill-trace");
    await trace.getByTestId("trace-signal").waitFor();
    const checks = await trace.getByTestId("check-row").count();
    if (checks < 5) throw new Error(`${checks} risk checks shown, each with its limit`);
    // …and its order's ledger postings: the reservation, the trade, the
    // commission, the release.
    await trace.getByTestId("trace-postings").waitFor();
    const reasons = await trace.getByTestId("posting-row").locator("td:first-child").allInnerTexts();
    for (const want of ["reserve", "trade", "commission"]) {
      if (!reasons.includes(want)) throw new Error(`postings ${reasons.join(", ")} lack ${want}`);
    }
    const ticket = (await trace.getByTestId("trace-ticket").innerText()).replace("ticket ", "").trim();
    await trace.getByTestId("trace-ticket").click();
    await page.getByTestId("detail-state").getByText("succeeded").waitFor();
    const shown = (await page.getByTestId("detail").locator("h3").innerText()).trim();
    if (shown !== ticket) throw new Error(`opened ${shown}, want the signal's ticket ${ticket}`);
  });

  if (shot) {
    await page.getByTestId("nav-topology").click();
    await page.waitForTimeout(500);
    await page.screenshot({ path: shot });
  }
  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  if (csp.length) throw new Error(csp.join("\n"));
  console.log("browser: all steps passed");
} catch (e) {
  console.error(`browser test failed at ${e.message}`);
  for (const p of problems) console.error(p);
  process.exitCode = 1;
} finally {
  await browser.close();
}

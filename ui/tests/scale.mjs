// A fleet of thousands of bots in a real browser (Debian's Chromium, driven
// by playwright-core) against a real fleet controller whose nodes hold
// BOTS bots between them:
//   node tests/scale.mjs URL TOKEN BOTS
// Every bot in the window, drawn on one canvas; the canvas pans and zooms;
// one ticket run, then its bot found by name, its lane's figures read, the
// diagram brought to it ("show") and the bot clicked there, which opens
// its tickets with that ticket among them; a node's name finds its bots.
// Exits non-zero with the failing step.
import { open } from "./chromium.mjs";

const [url, token, want] = process.argv.slice(2);
if (!url || !token || !want) {
  console.error("usage: node tests/scale.mjs URL TOKEN BOTS");
  process.exit(2);
}
const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const api = async (path, init = {}) => {
  const r = await fetch(`${url}/api/v1${path}`, { ...init, headers: auth });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
};

const { browser, page, problems, step } = await open({ width: 1280, height: 800, timeout: 60000 });
try {
  const diagram = page.getByTestId("canvas-diagram");
  const view = async () => (await diagram.getAttribute("data-view")).split(" ").map(Number);

  await step(`all ${want} bots register (their nodes join over Redis)`, async () => {
    let live = 0;
    for (const deadline = Date.now() + 180000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      live = (await api("/bots")).filter((b) => b.live).length;
      if (live >= Number(want)) return;
    }
    throw new Error(`${live} of ${want} bots live after 3 min`);
  });

  await step(`all ${want} bots reach the window, drawn on one canvas`, async () => {
    await page.goto(`${url}/#token=${token}`);
    await page.getByTestId("connection").getByText("live").waitFor();
    await page.getByTestId("nav-topology").click();
    await page.locator("header").getByText(`${want} bots live`).waitFor();
    await diagram.waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="canvas-diagram"]')?.dataset.view);
    if (await page.locator(".svelte-flow__node").count()) throw new Error("elements drawn besides the canvas");
  });

  await step("the canvas pans by dragging and zooms with the wheel", async () => {
    const box = await diagram.boundingBox();
    const [x0, y0, k0] = await view();
    await page.mouse.move(box.x + 400, box.y + 400);
    await page.mouse.down();
    await page.mouse.move(box.x + 300, box.y + 350, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(([x, y]) => {
      const [vx, vy] = document.querySelector('[data-testid="canvas-diagram"]').dataset.view.split(" ").map(Number);
      return Math.abs(vx - (x - 100)) < 1 && Math.abs(vy - (y - 50)) < 1;
    }, [x0, y0]);
    await page.mouse.wheel(0, -400);
    await page.waitForFunction((k) => Number(document.querySelector('[data-testid="canvas-diagram"]').dataset.view.split(" ")[2]) > k * 1.5, k0);
  });

  await step("a pixel ratio change alone sizes the canvas again at the new ratio", async () => {
    // The canvas's pixels against its CSS size times the ratio (within a
    // pixel of rounding).
    const sized = async (ratio) => {
      let seen = null;
      for (const deadline = Date.now() + 10000; Date.now() < deadline; await page.waitForTimeout(100)) {
        seen = await page.evaluate(() => {
          const c = document.querySelector('[data-testid="canvas-diagram"] canvas');
          return { width: c.width, css: c.getBoundingClientRect().width, ratio: window.devicePixelRatio };
        });
        if (seen.ratio === ratio && Math.abs(seen.width - seen.css * ratio) <= ratio) return;
      }
      throw new Error(`at ratio ${ratio}: ${JSON.stringify(seen)}`);
    };
    await sized(1);
    // The screen changes under the window (as a move to a HiDPI screen
    // does); the window's CSS size stays the same.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 800, deviceScaleFactor: 2, mobile: false });
    await sized(2);
    await cdp.send("Emulation.clearDeviceMetricsOverride");
    await sized(1);
  });

  // One real ticket, so the bot it ran on has a ticket to be found by.
  const ticket = await api("/tickets", { method: "POST", body: JSON.stringify({ kind: "chat", payload: { prompt: "which bot am I on?" } }) });
  let bot = null;
  await step("a ticket runs on one of them", async () => {
    for (const deadline = Date.now() + 30000; Date.now() < deadline; await page.waitForTimeout(200)) {
      const t = await api(`/tickets/${ticket.id}`);
      if (t.state === "succeeded") { bot = t.bot; break; }
    }
    if (!bot) throw new Error(`ticket ${ticket.id} did not succeed in 30 s`);
  });

  await step(`${bot} is found by name, with its lane's figures`, async () => {
    await page.getByTestId("bot-search").fill(bot);
    // The bot of that very name comes first (n5-bot-10 before n5-bot-100).
    const row = page.getByTestId("bot-match").first();
    await row.waitFor();
    const first = (await row.locator("td").first().locator("button").first().textContent())?.trim();
    if (first !== bot) throw new Error(`the first match is ${first}, not ${bot}`);
    const text = (await row.textContent()) ?? "";
    if (!/\d+ \/ \d+/.test(text) || !/\d+ ms/.test(text)) throw new Error(`no lane figures: ${text}`);
  });

  await step("“show” brings the diagram to it; clicking it there opens its tickets", async () => {
    await page.getByTestId("bot-show").first().click();
    await page.waitForFunction((id) => document.querySelector('[data-testid="canvas-diagram"]').dataset.focus === id, `bot:${bot}`);
    const [, , k] = await view();
    if (k < 1) throw new Error(`brought to it at scale ${k}: too small to read`);
    const box = await diagram.boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.getByTestId("ticket-row").filter({ hasText: ticket.id.slice(-8) }).first().waitFor();
    const picked = await page.getByLabel("bot").inputValue();
    if (picked !== bot) throw new Error(`the tickets are filtered by ${JSON.stringify(picked)}, not ${bot}`);
  });

  await step("a node's name finds every bot of it", async () => {
    const node = bot.replace(/-bot-\d+$/, "");
    const bots = (await api("/bots")).filter((b) => b.node === node).length;
    await page.getByTestId("nav-topology").click();
    await page.getByTestId("bot-search").fill(node);
    const more = page.getByTestId("bot-search-more");
    await more.getByText(`The first 20 of ${bots}:`).waitFor();
  });

  if (problems.length) throw new Error(problems.join("\n"));
  console.log(`scale: ${want} bots; ${bot} found, shown and opened`);
} finally {
  await browser.close();
}

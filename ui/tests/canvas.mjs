// A large pool's topology, drawn on a canvas, in a real browser: the canvas
// renderer takes over, and clicking a bot on it opens that bot's tickets.
//   node tests/canvas.mjs URL TOKEN
import { chromium } from "playwright-core";

const [url, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(20000);
  await page.goto(`${url}/#token=${token}`);
  await page.getByTestId("connection").getByText("live").waitFor();
  await page.getByTestId("nav-topology").click();
  const diagram = page.getByTestId("canvas-diagram");
  await diagram.waitFor();
  if (await page.locator(".svelte-flow__node").count()) throw new Error("elements drawn besides the canvas");
  await page.waitForFunction(() => document.querySelector('[data-testid="canvas-diagram"]')?.dataset.view);
  const [x, y, k] = (await diagram.getAttribute("data-view")).split(" ").map(Number);
  const box = await diagram.boundingBox();
  // The first bot of the local pool: the grid's top-left cell (180×96 at (0, 260)).
  await page.mouse.click(box.x + x + 90 * k, box.y + y + 308 * k);
  let picked = null;
  for (const deadline = Date.now() + 10000; Date.now() < deadline; await page.waitForTimeout(50)) {
    picked = await page.getByLabel("bot").inputValue({ timeout: 200 }).catch(() => null);
    if (picked === "bot-01") break;
  }
  if (picked !== "bot-01") throw new Error(`clicking the first bot filtered by ${JSON.stringify(picked)}`);
} finally {
  await browser.close();
}

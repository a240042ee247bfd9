// Frame time of the control center under load (a bench, not a test): the
// topology view of a real `oshal serve` open in Debian's Chromium while
// tickets are submitted as fast as RATE asks, so the event feed carries
// thousands of transitions a second. The page records every animation
// frame's interval; the event rate is read off the server's metrics. An
// interval cannot be shorter than the display's frame (16.7 ms at 60 Hz),
// so the page's own work is reported too: the renderer main thread's busy
// time (Chromium's TaskDuration, over CDP) per frame. The same is then
// measured on a blank page for as long, under the same load: the floor a
// machine this busy gives any page (`floor_*`).
//   node tests/frames.mjs URL TOKEN [SECONDS] [RATE_TICKETS_PER_S]
// Prints `bots=N renderer=R events_per_s=E messages_per_s=W frames=F frame_p50_ms=A frame_p95_ms=B dropped_pct=D busy_ms_per_frame=M floor_dropped_pct=FD floor_busy_ms_per_frame=FM`.
import { chromium } from "playwright-core";

const [url, token, seconds = "10", rate = "2500"] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node tests/frames.mjs URL TOKEN [SECONDS] [RATE]");
  process.exit(2);
}
const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const bots = (await (await fetch(`${url}/api/v1/bots`, { headers: auth })).json()).length;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.setDefaultTimeout(60000);
await page.goto(`${url}/#token=${token}`);
await page.getByTestId("connection").getByText("live").waitFor();
await page.getByTestId("nav-topology").click();
// Every bot in the window first (a fleet's list arrives on the feed): the
// renderer is chosen by their number.
await page.locator("header").getByText(`${bots} bots live`).waitFor();
// Large fleets are drawn on a canvas, small ones as elements.
await page.locator('[data-testid="canvas-diagram"], .svelte-flow__node').first().waitFor();
const renderer = (await page.getByTestId("canvas-diagram").count()) ? "canvas" : "elements";

// The feed carries every transition: count them off the server's metrics.
const transitions = async () => {
  const text = await (await fetch(`${url}/metrics`, { headers: auth })).text();
  return Number(/^oshal_transitions_total (\S+)$/m.exec(text)?.[1] ?? NaN);
};

// The load: RATE tickets a second, one batch every 20 ms (a batch is one
// request and one durable commit), 8 batches in flight at most.
// Through the warm-up, the app's seconds and the blank page's.
const stopAt = performance.now() + 2 * Number(seconds) * 1000 + 3000;
let inFlight = 0;
let submitted = 0;
const load = (async () => {
  const perTick = Math.max(1, Math.round(Number(rate) / 50));
  while (performance.now() < stopAt) {
    if (inFlight < 8) {
      inFlight++;
      const tickets = Array.from({ length: perTick }, () => ({
        kind: "chat", payload: { prompt: `frame ${submitted++}` },
      }));
      fetch(`${url}/api/v1/tickets/batch`, {
        method: "POST", headers: auth, body: JSON.stringify({ tickets }),
      }).then((r) => r.arrayBuffer()).catch(() => {}).finally(() => inFlight--);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
})();

// Frames and the renderer's busy time over SECONDS, on whatever the page
// shows now.
const cdp = await page.context().newCDPSession(page);
await cdp.send("Performance.enable");
// Messages the page's feed receives (each one a task of the renderer's).
await cdp.send("Network.enable");
let messages = 0;
cdp.on("Network.webSocketFrameReceived", () => messages++);
const busySeconds = async () =>
  (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration").value;
async function measure(profile) {
  const busyBefore = await busySeconds();
  const messagesBefore = messages;
  if (profile) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.start");
  }
  const frames = await page.evaluate((ms) => new Promise((resolve) => {
    const out = [];
    let last = performance.now();
    const end = last + ms;
    const tick = (now) => {
      out.push(now - last);
      last = now;
      if (now < end) requestAnimationFrame(tick); else resolve(out);
    };
    requestAnimationFrame(tick);
  }), Number(seconds) * 1000);
  const busy = (await busySeconds()) - busyBefore;
  const received = messages - messagesBefore;
  if (profile) {
    const { profile: p } = await cdp.send("Profiler.stop");
    (await import("node:fs")).writeFileSync(profile, JSON.stringify(p));
  }
  const sorted = frames.slice(1).sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  // rAF ticks at the display's rate (60 Hz here: 16.7 ms), so an interval
  // past one and a half of those means at least one frame was dropped.
  const dropped = sorted.filter((ms) => ms > 25).length;
  return {
    frames: sorted.length,
    p50: pct(50).toFixed(1),
    p95: pct(95).toFixed(1),
    dropped: ((100 * dropped) / sorted.length).toFixed(1),
    busy: ((busy * 1000) / frames.length).toFixed(1),
    messagesPerS: Math.round(received / Number(seconds)),
  };
}

// Warm up 2 s, then the app for SECONDS (OSHAL_FRAMES_PROFILE=FILE: the
// renderer's CPU profile of those seconds, a .cpuprofile for DevTools).
await page.waitForTimeout(2000);
const eventsBefore = await transitions();
const t0 = performance.now();
const app = await measure(process.env.OSHAL_FRAMES_PROFILE);
const eventsPerS = Math.round((((await transitions()) - eventsBefore) * 1000) / (performance.now() - t0));
// Then the floor: a blank page, under the same load on the same machine,
// for as long. What the app costs is what it adds to this.
await page.goto("about:blank");
const floor = await measure(null);
await load;
await browser.close();

console.log(
  `bots=${bots} renderer=${renderer} events_per_s=${eventsPerS} messages_per_s=${app.messagesPerS} frames=${app.frames} ` +
  `frame_p50_ms=${app.p50} frame_p95_ms=${app.p95} dropped_pct=${app.dropped} busy_ms_per_frame=${app.busy} ` +
  `floor_dropped_pct=${floor.dropped} floor_busy_ms_per_frame=${floor.busy}`,
);

// Debian's Chromium for the page tests, driven by playwright-core: one
// headless browser and page, the page's console errors and uncaught
// exceptions collected in `problems`, and `step`, which names the step a
// failure happened in.
import { chromium } from "playwright-core";

export async function open({ width = 1280, height = 800, timeout = 20000 } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width, height } });
    page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.setDefaultTimeout(timeout);
    const step = async (name, f) => {
      try { await f(); } catch (e) { throw new Error(`${name}: ${e.message}`); }
    };
    return { browser, page, problems, step };
  } catch (e) {
    await browser.close();
    throw e;
  }
}

// Cold start of the desktop app to its first interactive view, over
// WebDriver: from asking for a session (which launches the app) until the
// header says the window is live on its controller. Prints milliseconds.
//   node tests/startup.mjs DRIVER_URL APP_BINARY
const [driver, app] = process.argv.slice(2);
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
async function wd(method, path, body) {
  const r = await fetch(driver + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json.value ?? json)}`);
  return json.value;
}
const t0 = performance.now();
const { sessionId } = await wd("POST", "/session", {
  capabilities: { alwaysMatch: { browserName: "wry", "tauri:options": { application: app } } },
});
const s = `/session/${sessionId}`;
let ms = null;
while (performance.now() - t0 < 30000) {
  try {
    const el = (await wd("POST", `${s}/element`, { using: "css selector", value: '[data-testid="connection"]' }))[ELEMENT];
    if (/live/.test(await wd("GET", `${s}/element/${el}/text`))) {
      ms = performance.now() - t0;
      break;
    }
  } catch {
    // Not painted yet.
  }
  await new Promise((r) => setTimeout(r, 20));
}
// Idle: let it settle, then the caller reads the processes' memory.
if (process.env.HOLD_MS) await new Promise((r) => setTimeout(r, Number(process.env.HOLD_MS)));
if (process.env.RSS_CMD) {
  const { execSync } = await import("node:child_process");
  console.log(`rss_kb=${execSync(process.env.RSS_CMD).toString().trim()}`);
}
await wd("DELETE", s).catch(() => {});
if (ms === null) {
  console.error("never live");
  process.exit(1);
}
console.log(`start_ms=${ms.toFixed(0)}`);

// Cold start of the desktop app to its first interactive view, over
// WebDriver: from asking for a session (which launches the app) until the
// header says the window is live on its controller. Prints milliseconds.
//   node tests/startup.mjs DRIVER_URL APP_BINARY
import { session } from "./webdriver.mjs";

const [driver, app] = process.argv.slice(2);
const t0 = performance.now();
const { text, close } = await session(driver, app);
let ms = null;
while (performance.now() - t0 < 30000) {
  try {
    if (/live/.test(await text('[data-testid="connection"]'))) {
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
if (process.env.MEM_CMD) {
  // Prints its own `key=value` lines (the memory figures).
  const { execSync } = await import("node:child_process");
  console.log(execSync(process.env.MEM_CMD).toString().trim());
}
await close();
if (ms === null) {
  console.error("never live");
  process.exit(1);
}
console.log(`start_ms=${ms.toFixed(0)}`);

// The desktop app's real window, driven over WebDriver (tauri-driver in
// front of Debian's WebKitWebDriver), in the W3C protocol with plain fetch:
//   node tests/window.mjs DRIVER_URL APP_BINARY FLEET_URL FLEET_TOKEN TENANT_TOKEN SHOT.png
// Flow: the window comes up on the embedded controller; a ticket submitted
// there succeeds; the walk-through runs its routing step (a ticket
// followed hop by hop) over IPC and clears that ticket; the architecture draws the window and IPC (no listener,
// no gate); the window attaches to a fleet (its token goes to the OS
// keyring), shows the fleet's name and its bots, and switches back to local
// in one click; attached again with a tenant's viewer token (acme), the
// header says whose token it is; the topology's overview then reads all
// three controllers at once (the viewer's fleet unknown, not counted in the
// totals). Exits non-zero with the failing step on stderr.
import { writeFileSync } from "node:fs";
import { session } from "./webdriver.mjs";

const [driver, app, fleetUrl, fleetToken, tenantToken, shot] = process.argv.slice(2);
if (!driver || !app || !fleetUrl || !fleetToken || !tenantToken || !shot) {
  console.error("usage: node tests/window.mjs DRIVER_URL APP_BINARY FLEET_URL FLEET_TOKEN TENANT_TOKEN SHOT.png");
  process.exit(2);
}
const { wd, click, type, text, screenshot, close } = await session(driver, app);
/** Polls until `css`'s text matches (the implicit wait covers presence only). */
async function until(css, pattern, ms = 30000) {
  const end = Date.now() + ms;
  let last = "";
  while (Date.now() < end) {
    try {
      last = await text(css);
      if (pattern.test(last)) return last;
    } catch {
      // Not there yet, or re-rendered under us: ask again.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${css} never matched ${pattern} (last: ${JSON.stringify(last)})`);
}
const step = async (name, f) => {
  try {
    await f();
  } catch (e) {
    throw new Error(`${name}: ${e.message}`);
  }
};

let failed = null;
try {
  await wd("POST", "/timeouts", { implicit: 10000 });

  await step("the window is on the embedded controller, live", async () => {
    await until('[data-testid="connection"]', /local · live/);
  });

  await step("a ticket submitted in the window succeeds", async () => {
    await click('[data-testid="nav-tickets"]');
    await type('[data-testid="prompt"]', "What is the state of the fleet?");
    await click('[data-testid="submit"]');
    await until('[data-testid="detail-state"]', /succeeded/);
  });

  await step("the walk-through runs its routing step in the window, and clears its ticket", async () => {
    await click('[data-testid="nav-routing"]');
    await click('[data-testid="tour-here"]');
    await until('[data-testid="tour-position"]', /^3 \/ 10$/);
    await click('[data-testid="tour-run"]');
    await until('[data-testid="tour-effect"]', /Ticket \w+ succeeded on bot-\d+/);
    // Over IPC no gate stands: that hop says so, with no time.
    await until('[data-testid="journey"]', /auth gate\s*none on its way: submitted over IPC[\s\S]*back/);
    await click('[data-testid="tour-clear"]');
    await until('[data-testid="tour-cleared"]', /0 cancelled, 1 removed\./);
    await click('[data-testid="tour-leave"]');
  });

  await step("the architecture draws the window and its IPC, no listener and no gate", async () => {
    await click('[data-testid="nav-architecture"]');
    await until('[data-testid="architecture"]', /surface · this window[\s\S]*IPC to the embedded controller/);
    await until('[data-testid="architecture"]', /tickets over IPC \d/);
    const drawn = await text('[data-testid="architecture"]');
    if (/auth gate|HTTP API/.test(drawn)) throw new Error(`the window draws an HTTP surface: ${drawn}`);
  });

  await step("attaching to a fleet shows its name and its bots", async () => {
    await click('[data-testid="add-fleet"]');
    await type('[data-testid="fleets"] input[placeholder="prod"]', "prod");
    await type('[data-testid="fleets"] input[type="url"]', fleetUrl);
    await type('[data-testid="fleet-token"]', fleetToken);
    await click('[data-testid="fleets"] form button.primary');
    await until('[data-testid="connection"]', /prod · live/);
    await until("header", /2 bots live/);
  });

  await step("one click goes back to local", async () => {
    await click('[data-testid="attach-local"]');
    await until('[data-testid="connection"]', /local · live/);
    await until("header", /4 bots live/);
  });

  await step("a tenant's token attaches and the header says whose it is", async () => {
    await click('[data-testid="add-fleet"]');
    await type('[data-testid="fleets"] input[placeholder="prod"]', "acme");
    await type('[data-testid="fleets"] input[type="url"]', fleetUrl);
    await type('[data-testid="fleet-token"]', tenantToken);
    await click('[data-testid="fleets"] form button.primary');
    await until('[data-testid="connection"]', /acme · live/);
    await until('[data-testid="access"]', /tenant acme · viewer/);
    await click('[data-testid="attach-local"]');
    await until('[data-testid="connection"]', /local · live/);
  });

  await step("the topology's overview reads every controller at once, labelled, with totals", async () => {
    await click('[data-testid="nav-topology"]');
    await until('[data-testid="overview"]', /local \(shown\)\s*4 \/ 4/);
    await until('[data-testid="overview"]', /prod\s*2 \/ 2/);
    // A viewer's token may not read the fleet's bots: that row is unknown,
    // and the totals say it was not counted.
    await until('[data-testid="overview"]', /acme\s*unknown:/);
    await until('[data-testid="overview-total"]', /all 2 read \(1 unknown, not counted\)\s*6 \/ 6/);
  });
} catch (e) {
  failed = e;
} finally {
  try {
    writeFileSync(shot, await screenshot());
  } catch (e) {
    console.error(`no screenshot: ${e.message}`);
  }
  await close();
}
if (failed) {
  console.error(failed.message);
  process.exit(1);
}
console.log("window flow ok");

// The Operations view in a real browser (Debian's Chromium, driven by
// playwright-core) against a real `oshal serve`:
//   node tests/ops.mjs URL TOKEN
// Alerts arrive as Alertmanager posts them (its webhook payload, version 4):
// the view shows the incident they open with its live counts, opens its
// timeline and its investigation (a finding clicked to the call it was read
// from), acknowledges and resolves it from the page, and the incident's
// alert resolving by itself is on the same timeline; its postmortem is
// drafted, edited and published (then frozen). Then a tenant runs out of
// budget: the loop's own alert opens an incident, its investigation
// diagnoses the budget, a heal is proposed with its dry run and blast
// radius, approved from the view, written under its one grant and
// re-checked. Exits non-zero with the failing step.
import { open } from "./chromium.mjs";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node tests/ops.mjs URL TOKEN");
  process.exit(2);
}
const post = async (path, body) => {
  const r = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
const alert = (bot, status) => ({
  status,
  labels: { alertname: "LaneLagUI", bot, severity: "critical" },
  annotations: { summary: `lane ${bot} lags` },
  startsAt: new Date(Date.now() - 60000).toISOString(),
  endsAt: status === "resolved" ? new Date().toISOString() : "0001-01-01T00:00:00Z",
});
const am = (alerts) => ({ version: "4", status: "firing", receiver: "oshal", alerts });

const { browser, page, problems, step } = await open({ width: 1400, height: 1000, timeout: 30000 });
try {
  const view = page.getByTestId("operations");

  await step("attach and open the Operations view: no incidents yet", async () => {
    await page.goto(`${url}/#token=${token}`);
    await page.getByTestId("connection").getByText("live").waitFor();
    await page.getByTestId("nav-operations").click();
    await view.getByTestId("no-incidents").waitFor();
    const absent = await view.getByTestId("stage-absent").count();
    if (absent !== 0) throw new Error(`${absent} stages marked not running, want none`);
    await view.getByTestId("stage-heal").waitFor();
  });

  let incident;
  await step("Alertmanager posts two alerts: one incident, counted live", async () => {
    const got = await post("/api/v1/ops/alertmanager", am([alert("b1", "firing"), alert("b2", "firing")]));
    if (got.opened.length !== 1) throw new Error(`opened ${JSON.stringify(got.opened)}`);
    incident = got.opened[0];
    const row = view.getByTestId("incident-row").filter({ hasText: incident });
    await row.waitFor();
    await view.getByTestId("firing").getByText("2").waitFor();
    await view.getByTestId("open-incidents").getByText("1").waitFor();
  });

  await step("open it: its timeline names both alerts; acknowledge from the view", async () => {
    await view.getByTestId("incident-row").filter({ hasText: incident }).getByTestId("open-incident").click();
    const detail = view.getByTestId("incident");
    await detail.getByTestId("incident-status").getByText("triggered").waitFor();
    const joined = await detail.locator('[data-moment="alert_joined"]').count();
    if (joined !== 2) throw new Error(`${joined} alert_joined entries, want 2`);
    await detail.getByTestId("move-note").fill("looking at lane b1");
    await detail.getByTestId("move-acknowledge").click();
    await detail.getByTestId("incident-status").getByText("acknowledged").waitFor();
    await detail.locator('[data-moment="status_changed"]').filter({ hasText: "looking at lane b1" }).waitFor();
  });

  await step("the incident was investigated: every finding opens the call it was read from", async () => {
    const detail = view.getByTestId("incident");
    const inv = detail.getByTestId("investigation").first();
    await inv.getByTestId("investigation-phase").getByText("Succeeded").waitFor();
    const calls = await inv.getByTestId("evidence").count();
    if (calls < 2) throw new Error(`${calls} calls kept as evidence, want the plan's (at least 2)`);
    const link = inv.getByTestId("claim-evidence").first();
    const id = await link.getAttribute("data-evidence");
    await link.click();
    const record = inv.locator(`[data-testid="evidence"][data-id="${id}"]`).getByTestId("evidence-record");
    await record.waitFor();
    if (!(await record.textContent()).includes("sha256:")) throw new Error("the record shows no content hash");
    await detail.locator('[data-moment="tool_call"]').first().waitFor();
    await view.getByTestId("stage-gather").waitFor();
  });

  await step("investigate it again from the view: a second investigation beside the first", async () => {
    const detail = view.getByTestId("incident");
    await detail.getByTestId("investigate-again").click();
    await detail.getByTestId("investigation").nth(1).getByTestId("investigation-phase").getByText("Succeeded").waitFor();
    const n = await detail.getByTestId("investigation").count();
    if (n !== 2) throw new Error(`${n} investigations, want 2`);
  });

  await step("one alert resolves by itself: on the timeline; resolve the incident from the view", async () => {
    await post("/api/v1/ops/alertmanager", am([alert("b1", "resolved")]));
    const detail = view.getByTestId("incident");
    await detail.locator('[data-moment="alert_resolved"]').waitFor();
    await detail.getByTestId("move-resolve").click();
    await detail.getByTestId("incident-status").getByText("resolved").waitFor();
    await view.getByTestId("open-incidents").getByText("0").waitFor();
    await view.locator(`[data-testid="incident-row"][data-status="resolved"]`).filter({ hasText: incident }).waitFor();
  });

  await step("draft its postmortem from the record, add a lesson, publish it: frozen", async () => {
    const detail = view.getByTestId("incident");
    await detail.getByTestId("draft-postmortem").click();
    const pm = detail.getByTestId("postmortem");
    await pm.getByTestId("postmortem-status").getByText("draft").waitFor();
    const summary = await pm.getByTestId("pm-summary").inputValue();
    if (!summary.includes("LaneLagUI")) throw new Error(`the draft's summary names no alert: ${summary}`);
    await pm.getByTestId("pm-lucky").fill("it was a quiet hour");
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === "PUT" && r.url().includes("/postmortem")),
      pm.getByTestId("pm-save").click(),
    ]);
    await pm.getByTestId("pm-publish").click();
    await pm.getByTestId("postmortem-status").getByText("published").waitFor();
    const r = await fetch(`${url}/api/v1/ops/incidents/${incident}/postmortem`, { headers: { authorization: `Bearer ${token}` } });
    const got = await r.json();
    if (got.status !== "published" || got.lessons.got_lucky[0] !== "it was a quiet hour") {
      throw new Error(`published: ${JSON.stringify(got).slice(0, 300)}`);
    }
    const again = await fetch(`${url}/api/v1/ops/incidents/${incident}/postmortem`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ summary: "rewritten" }),
    });
    if (again.status !== 409) throw new Error(`an edit after publishing answered ${again.status}, want 409`);
  });

  await step("a tenant out of budget: a heal is proposed with its dry run, approved from the view, and holds", async () => {
    const r = await fetch(`${url}/api/v1/tenants/uiheal`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ budget_usd: 0 }),
    });
    if (!r.ok) throw new Error(`PUT /api/v1/tenants/uiheal: ${r.status} ${await r.text()}`);
    const row = view.getByTestId("incident-row").filter({ hasText: "OshalBudgetExhausted" });
    await row.getByText("heal awaiting approval").waitFor();
    await view.getByTestId("heals-pending").getByText("1").waitFor();
    await row.getByTestId("open-incident").click();
    const heal = view.getByTestId("incident").getByTestId("heal").first();
    await heal.getByTestId("heal-phase").getByText("pending").waitFor();
    const dry = await heal.getByTestId("dry-run").textContent();
    if (!dry.includes("uiheal")) throw new Error(`the dry run names no tenant: ${dry}`);
    const blast = await heal.getByTestId("blast-radius").textContent();
    if (!blast.includes("uiheal")) throw new Error(`the blast radius names no tenant: ${blast}`);
    await heal.getByTestId("heal-note").fill("raise it");
    await heal.getByTestId("heal-approve").click();
    await heal.getByTestId("heal-phase").getByText("succeeded").waitFor();
    await heal.locator('[data-testid="heal-recheck"][data-passed="true"]').waitFor();
    const tenants = await (await fetch(`${url}/api/v1/tenants`, { headers: { authorization: `Bearer ${token}` } })).json();
    const t = tenants.find((x) => x.id === "uiheal");
    if (!t || !(t.budget_nusd > 0)) throw new Error(`uiheal's budget after the heal: ${JSON.stringify(t)}`);
  });

  if (process.env.OSHAL_SHOT) await page.screenshot({ path: process.env.OSHAL_SHOT, fullPage: true });
  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  if (csp.length) throw new Error(csp.join("\n"));
  console.log("operations: all steps passed");
} catch (e) {
  console.error(`operations view test failed at ${e.message}`);
  if (process.env.OSHAL_SHOT_ON_FAILURE) {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: process.env.OSHAL_SHOT_ON_FAILURE, fullPage: true });
  }
  for (const p of problems) console.error(p);
  process.exitCode = 1;
} finally {
  await browser.close();
}

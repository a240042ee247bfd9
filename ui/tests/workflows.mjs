// The Workflow view in a real browser (Debian's Chromium, driven by
// playwright-core) against a real `oshal serve`:
//   node tests/workflows.mjs URL TOKEN CLIP INBOX
// CLIP is a video file; INBOX the server's artifact inbox, where the clip is
// put only after a run that needs it has failed, so the view's "Retry from
// here" has something to find. Exits non-zero with the failing step.
import { open } from "./chromium.mjs";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, token, clip, inbox] = process.argv.slice(2);
if (!url || !token || !clip || !inbox) {
  console.error("usage: node tests/workflows.mjs URL TOKEN CLIP INBOX");
  process.exit(2);
}
const { browser, page, problems, step } = await open({ width: 1400, height: 1000, timeout: 30000 });
try {
  const view = page.getByTestId("workflows");
  const approve = async (node, answer) => {
    const row = view.getByTestId("approval-row").filter({ hasText: node });
    await row.waitFor({ timeout: 90000 });
    if (answer) await row.getByTestId("approval-input").fill(answer);
    await row.getByTestId("approve").click();
    await row.waitFor({ state: "detached" });
  };
  const phase = (node) => view.locator(`[data-testid="node-row"][data-node="${node}"]`).getByTestId("node-phase");

  await step("attach and open the Workflow view: the shipped shapes side by side", async () => {
    await page.goto(`${url}/#token=${token}`);
    await page.getByTestId("connection").getByText("live").waitFor();
    await page.getByTestId("nav-workflows").click();
    await view.getByTestId("shape-video").waitFor();
    await view.getByTestId("shape-support-ticket").waitFor();
    await view.getByTestId("no-runs").waitFor();
  });

  await step("the generator on the built-in model: its reply is no spec, shown refused at $ and never published", async () => {
    const gen = view.getByTestId("generator");
    await gen.getByTestId("gen-request").fill("Draft a weekly report and have it approved");
    await gen.getByTestId("gen-generate").click();
    const errors = gen.getByTestId("gen-errors");
    await errors.waitFor({ timeout: 60000 });
    const text = await errors.innerText();
    if (!text.startsWith("$")) throw new Error(`refusal without its path: ${text}`);
    if (await gen.getByTestId("gen-publish").count()) throw new Error("a refused reply offers Publish");
  });

  await step("a pasted spec is checked, published as version 1 with its diff, and run by name", async () => {
    const gen = view.getByTestId("generator");
    await gen.getByTestId("gen-spec").fill(
      "api_version: oshal.dev/workflow/v1\nname: weekly\nnodes:\n  - { name: draft, timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: draft the report } } }\n",
    );
    await gen.getByTestId("gen-check").click();
    await gen.getByTestId("gen-valid").waitFor();
    const changes = await gen.getByTestId("gen-changes").locator("tr").count();
    if (changes !== 1) throw new Error(`${changes} changes shown for a new definition of one node`);
    await gen.getByTestId("gen-note").fill("first");
    await gen.getByTestId("gen-publish").click();
    const row = gen.getByTestId("definition-row").filter({ hasText: "weekly" });
    await row.waitFor();
    await row.getByTestId("definition-run").click();
    await view.getByTestId("run-state").getByText("Succeeded").waitFor({ timeout: 60000 });
    await view.locator(".run-view").getByText("weekly").first().waitFor();
  });

  await step("the support ticket: started from its shape, assigned and resolved from the inbox", async () => {
    const shape = view.getByTestId("shape-support-ticket");
    await shape.getByTestId("input-subject").fill("cannot log in");
    await shape.getByTestId("input-body").fill("the code never arrives");
    await shape.getByTestId("shape-start").click();
    await approve("assign", '{"assignee": "sam"}');
    await approve("resolve", '{"resolution": "resolved"}');
    await view.getByTestId("run-state").getByText("Succeeded").waitFor({ timeout: 60000 });
    await phase("close").getByText("Succeeded").waitFor();
  });

  await step("the video pipeline fails at ingest without its clip, and is retried from that node once the clip is there", async () => {
    const shape = view.getByTestId("shape-video");
    await shape.getByTestId("input-source").fill("late.mp4");
    await shape.getByTestId("shape-start").click();
    await view.getByTestId("run-state").getByText("Failed").waitFor({ timeout: 60000 });
    // Its retries spent on a missing file: Argo's Error, or Failed.
    await phase("ingest").getByText(/^(Error|Failed)$/).waitFor();
    mkdirSync(inbox, { recursive: true });
    copyFileSync(clip, join(inbox, "late.mp4"));
    await view.locator('[data-testid="node-row"][data-node="ingest"]').getByTestId("retry-node").click();
    await view.getByTestId("run-state").getByText("Running").waitFor();
    // The DAG is the run's: each node drawn with its phase.
    await view.getByTestId("dag").locator('[data-node="transcode"]').waitFor();
    await approve("review", '{"note": "fine"}');
    await view.getByTestId("run-state").getByText("Succeeded").waitFor({ timeout: 120000 });
    await phase("publish").getByText("Succeeded").waitFor();
    const units = await view.locator('[data-testid="node-row"][data-node="transcode"] td').nth(2).innerText();
    if (units.trim() !== "3/3") throw new Error(`transcode units ${units}, want 3/3 (5 s in 2 s segments)`);
  });

  if (process.env.OSHAL_SHOT) await page.screenshot({ path: process.env.OSHAL_SHOT, fullPage: true });
  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  if (csp.length) throw new Error(csp.join("\n"));
  console.log("workflows: all steps passed");
} catch (e) {
  console.error(`workflow view test failed at ${e.message}`);
  if (process.env.OSHAL_SHOT_ON_FAILURE) {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: process.env.OSHAL_SHOT_ON_FAILURE, fullPage: true });
  }
  for (const p of problems) console.error(p);
  process.exitCode = 1;
} finally {
  await browser.close();
}

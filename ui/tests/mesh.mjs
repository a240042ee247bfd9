// The topology's mesh in a real browser (Debian's Chromium, driven by
// playwright-core) against a real `oshal serve` that reads Headscale and
// tailscaled (fixture servers in their documented shapes):
//   node tests/mesh.mjs URL TOKEN
// The mesh box names each source with its state; each host carries what
// the mesh says of it (online or offline, direct or idle, the handshake's
// age, which services the policy lets it reach); a host the two views
// disagree on (the control server lists it, this host does not) says so;
// the deployment's containers (a real Podman engine) each with its image,
// state, health and restarts; the API's edge and the secret backend (Vault
// as it says of itself). Exits non-zero with the failing step.
import { open } from "./chromium.mjs";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node tests/mesh.mjs URL TOKEN");
  process.exit(2);
}

const { browser, page, problems, step } = await open({ width: 1600, height: 1000, timeout: 30000 });
try {
  const node = (text) => page.locator(".svelte-flow__node", { hasText: text }).first();
  const text = async (text) => ((await node(text).textContent()) ?? "").trim();

  await step("the topology draws the mesh and its sources", async () => {
    await page.goto(`${url}/#token=${token}`);
    await page.getByTestId("connection").getByText("live").waitFor();
    await page.getByTestId("nav-topology").click();
    await node("headscale 0.28.0 · ok").waitFor();
    const box = await text("headscale 0.28.0 · ok");
    if (!box.includes("tailscale") || !box.includes("host: Some peers")) throw new Error(`mesh box: ${box}`);
  });

  await step("a host reached directly says so, with its handshake and reach", async () => {
    await node("direct 198.51.100.7:41641").waitFor();
    const n1 = await text("direct 198.51.100.7:41641");
    for (const want of ["n1", "mesh online", "handshake", "may reach controller ✓ · redis ✓"]) {
      if (!n1.includes(want)) throw new Error(`n1 lacks "${want}": ${n1}`);
    }
  });

  await step("an offline host is drawn offline, and a disagreement is named", async () => {
    await node("mesh offline").waitFor();
    const n2 = await text("mesh offline");
    if (!n2.startsWith("n2")) throw new Error(`the offline host: ${n2}`);
    // The control server lists the laptop; this host's tailscaled does not.
    const laptop = await text("disagree: missing locally");
    if (!laptop.startsWith("laptop") || !laptop.includes("not seen from this host")) throw new Error(`the laptop: ${laptop}`);
  });

  await step("each container is drawn with its image, state, health and restarts", async () => {
    await node("containers · ok").waitFor();
    const web = await text("oshal-busybox:test");
    for (const want of ["web", "running (healthy) · restarts 0"]) {
      if (!web.includes(want)) throw new Error(`the container lacks "${want}": ${web}`);
    }
  });

  await step("the edge and the secret backend are drawn as they are", async () => {
    // Plain HTTP on loopback here; Vault (OpenBao) as it says of itself.
    const edge = await text("edge · plain HTTP on 127.0.0.1:");
    if (!edge.includes("loopback only")) throw new Error(`the edge: ${edge}`);
    const vault = await text("secrets · vault");
    if (!vault.includes("· active") || !vault.includes("http://127.0.0.1:")) throw new Error(`the secrets: ${vault}`);
  });

  if (process.env.OSHAL_SHOT) await page.screenshot({ path: process.env.OSHAL_SHOT, fullPage: true });
  const csp = problems.filter((p) => /Content Security Policy/i.test(p));
  if (csp.length) throw new Error(csp.join("\n"));
  console.log("mesh: all steps passed");
} catch (e) {
  console.error(`mesh view test failed at ${e.message}`);
  for (const p of problems) console.error(p);
  process.exitCode = 1;
} finally {
  await browser.close();
}

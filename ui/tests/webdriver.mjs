// A W3C WebDriver session on the desktop app, over plain fetch: what
// tests/window.mjs and tests/startup.mjs share. `session(driverUrl, app)`
// launches the app (tauri-driver in front of WebKitWebDriver).
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

export async function session(driver, app) {
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
  const { sessionId } = await wd("POST", "/session", {
    capabilities: { alwaysMatch: { browserName: "wry", "tauri:options": { application: app } } },
  });
  const s = `/session/${sessionId}`;
  const find = async (css) => (await wd("POST", `${s}/element`, { using: "css selector", value: css }))[ELEMENT];
  return {
    wd: (method, path, body) => wd(method, s + path, body),
    find,
    click: async (css) => wd("POST", `${s}/element/${await find(css)}/click`, {}),
    type: async (css, text) => wd("POST", `${s}/element/${await find(css)}/value`, { text }),
    text: async (css) => wd("GET", `${s}/element/${await find(css)}/text`),
    screenshot: async () => Buffer.from(await wd("GET", `${s}/screenshot`), "base64"),
    close: () => wd("DELETE", s).catch(() => {}),
  };
}

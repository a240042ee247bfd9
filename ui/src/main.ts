import { mount } from "svelte";
import "@xyflow/svelte/dist/style.css";
import "uplot/dist/uPlot.min.css";
import "./app.css";
import App from "./App.svelte";

// A failure before or outside the app's own error handling is shown, not
// swallowed into a blank window.
function fatal(message: string) {
  const banner = document.createElement("pre");
  banner.setAttribute("role", "alert");
  banner.dataset.testid = "fatal";
  banner.style.cssText = "position:fixed;left:0;right:0;bottom:0;margin:0;padding:12px;background:#c92a2a;color:#fff;white-space:pre-wrap;z-index:100";
  banner.textContent = `Oshal hit an error: ${message}`;
  document.body.append(banner);
}
window.addEventListener("error", (e) => fatal(e.message));
window.addEventListener("unhandledrejection", (e) => fatal(String(e.reason)));

try {
  mount(App, { target: document.getElementById("app")! });
} catch (e) {
  fatal(e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e));
}

import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The same build runs in the Tauri window and in a browser served by
// `oshal serve --ui-dir ui/dist`: relative asset paths, no inline scripts.
export default defineConfig({
  base: "./",
  plugins: [svelte()],
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  clearScreen: false,
  server: { port: 5173, strictPort: true },
});

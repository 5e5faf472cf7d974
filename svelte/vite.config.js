// Builds the page into the Python package as one classic script and one stylesheet with fixed
// names: a classic (non-module) script is what Chromium runs from file://, and fixed names let
// Python's template inline them and let CI compare a fresh build with the committed one.
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { fileURLToPath } from "node:url";

const packageStatic = fileURLToPath(new URL("../understanding_rl_vision/render/static", import.meta.url));

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: process.env.RLV_OUT_DIR || packageStatic,
    emptyOutDir: true,
    lib: {
      entry: "src/main.js",
      name: "RLVision",
      formats: ["iife"],
      fileName: () => "app.js",
      cssFileName: "app",
    },
    minify: true,
    sourcemap: false,
  },
});

// Fails when the committed bundle in understanding_rl_vision/render/static differs from a
// fresh build of these sources: run by `make check-frontend` (CI).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const committed = fileURLToPath(new URL("../../understanding_rl_vision/render/static", import.meta.url));
const fresh = mkdtempSync(join(tmpdir(), "rlv-build-"));
try {
  execFileSync("npx", ["vite", "build", "--logLevel", "error"], {
    stdio: "inherit",
    env: { ...process.env, RLV_OUT_DIR: fresh },
  });
  const names = [...new Set([...readdirSync(committed), ...readdirSync(fresh)])].sort();
  const stale = names.filter((name) => {
    try {
      return !readFileSync(join(committed, name)).equals(readFileSync(join(fresh, name)));
    } catch {
      return true;
    }
  });
  if (stale.length) {
    console.error(`error: the committed bundle is stale (${stale.join(", ")}); run \`make frontend\` and commit`);
    process.exit(1);
  }
  console.log(`bundle up to date: ${names.join(", ")}`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}

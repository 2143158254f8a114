// Headless Chromium for page tests: Debian's `chromium` (installed by `npm test`) driven by playwright-core,
// which never downloads a browser of its own.
import { type Browser, chromium } from "playwright-core";

/** The chromium executable on PATH (CHROMIUM_PATH wins). */
function chromiumPath(): string {
  const given = Deno.env.get("CHROMIUM_PATH");
  if (given !== undefined) return given;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not in this directory */ }
    }
  }
  throw new Error("chromium is not installed (apt-get install chromium), or set CHROMIUM_PATH");
}

/** A headless browser that makes no connection of its own (updates, sync, QUIC probes). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// Debian's Chromium, headless, for the browser suites (they bring playwright-core;
// this file imports nothing, the suite passes its `chromium` in).

/** The browser binary: CHROMIUM_BIN, or Debian's. */
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * Flags for a headless Chromium that talks to nothing but loopback: no background
 * traffic of its own (this machine's closed network refuses it, noisily), and
 * every host name other than loopback's fails to resolve.
 */
export const CHROMIUM_ARGS = Object.freeze([
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-domain-reliability', '--no-pings',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
]);

/** Launches `chromium` (playwright-core's) with CHROMIUM_ARGS and `extraArgs`. */
export function launchChromium(chromium, extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    timeout: 30_000,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

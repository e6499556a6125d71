// The shared test harness of authgate's Node suites (no dependencies; Node 20 or later).
// See README.md beside this file.

export { TimeoutError, WAIT_MS, freePort, retryOnPortRace, sleep, waitFor, withTimeout } from './wait.mjs';
export { Log } from './log.mjs';
export { ManagedProcess, registerTempDir, removeTempDir } from './process.mjs';
export { request } from './http.mjs';
export { Redis, respCommand, uniquePrefix } from './redis.mjs';
export { DEFAULT_GATEWAY_BIN, Gateway, gatewayBin } from './gateway.mjs';
export { WebhookReceiver, signature, verifySignature } from './webhook.mjs';
export { selfSignedCertificate } from './tls.mjs';
export { CHROMIUM_ARGS, CHROMIUM_BIN, launchChromium } from './chromium.mjs';

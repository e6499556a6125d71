// The platform's real Web SDK (`voximplant-websdk`, npm) in real Chromium logs in
// against a real authgate gateway over `wss://`: the docs' one-time key flow, then
// login, loginWithToken and tokenRefresh, plus a wrong password, a reused refresh
// token and an unknown user. The gateway serves TLS itself with a self-signed
// certificate this test makes with openssl; Chromium trusts exactly that key.
//
// The page may talk to the gateway and nothing else: every request the page makes
// goes through a route that fails the test for any other origin, every WebSocket
// it opens is checked, and other host names do not even resolve. A first test shows
// the guard at work (the SDK without serverIp calls the vendor's balancer); a last
// one runs examples/web-phone-login against `authgate serve --demo`.
//
// Both gateways run on a real Redis (a private redis-server for this file), each
// under a key prefix of its own. The gateway and Redis processes, the certificate,
// HTTPS requests and the bounded waits are the shared harness's (tests/harness/);
// this file keeps the browser, the guard, the example server and the seeding.
//
// The whole file is bounded: a watchdog ends it after WATCHDOG_MS (90 s); a normal
// run takes under 10 s.
//
//   cd tests/browser && npm ci && npm test
//
// Needs: Debian's `chromium` (apt-get install chromium), `openssl`, `redis-server`
// (apt-get install redis-server) unless AUTHGATE_TEST_REDIS_URL is set, and the
// gateway binary (cargo build -p authgate-gateway). Playwright never downloads a
// browser here.
//
// Environment:
//   AUTHGATE_BIN             gateway binary (default ../../target/debug/authgate)
//   CHROMIUM_BIN             browser (default /usr/bin/chromium)
//   AUTHGATE_TEST_REDIS_URL  run the gateways on this Redis (unique key prefixes,
//                            removed afterwards) instead of a private redis-server
//   AUTHGATE_TEST_VERBOSE=1  print the WebSocket frames, the page's console and the
//                            gateway's log

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

import { chromium } from 'playwright-core';

import {
  CHROMIUM_BIN as CHROMIUM, Gateway, ManagedProcess, Redis, WAIT_MS, freePort, launchChromium, registerTempDir,
  selfSignedCertificate, sleep, waitFor, withTimeout,
} from '../harness/index.mjs';

const require = createRequire(import.meta.url);
const SDK_DIR = path.dirname(require.resolve('voximplant-websdk/package.json'));
const SDK_VERSION = require('voximplant-websdk/package.json').version;
const SDK_FILE = path.join(SDK_DIR, require('voximplant-websdk/package.json').main || 'voximplant.min.js');

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PAGE_DIR = path.join(HERE, 'page');
const EXAMPLE_SERVER = path.resolve(HERE, '../../examples/web-phone-login/server.mjs');
const VERBOSE = !!process.env.AUTHGATE_TEST_VERBOSE;

const CLIENT_ID = 'authgate-browser-test';
const APPLICATION = 'myapp.myaccount';
const USER = 'myuser';
const PASSWORD = 'mypass123';
const DISPLAY_NAME = 'My User';
const USERNAME = `${USER}@${APPLICATION}.voximplant.com`;
const WATCHDOG_MS = 90_000;

const md5 = (s) => createHash('md5').update(s, 'utf8').digest('hex');

// ---------------------------------------------------------------------------
// The gateways: the harness's, serving HTTPS and wss:// with the test's certificate.

// The suite's gateway settings: its own API client, and the platform socket's debug log.
const GATEWAY_ENV = { AUTHGATE_CLIENT_ID: CLIENT_ID, AUTHGATE_LOG: 'info,poem=warn,authgate::platform=debug' };

// Seeds the web phone user through the gateway's own API, as an operator would.
async function seed(gw) {
  const auth = await gw.request('POST', '/oauth/access_token', {
    form: { grant_type: 'client_credentials', client_id: gw.clientId, client_secret: gw.clientSecret },
  });
  assert.equal(auth.status, 200, auth.text);
  const token = auth.body.access_token;
  const settings = await gw.request('GET', '/v2/settings/account-authentication', { token });
  assert.equal(settings.status, 200, settings.text);
  const realm = settings.body.data.relationships.authentication_realm.data.id;
  const profile = await gw.request('POST', `/v2/authentication-realms/${realm}/password-profiles`, {
    token,
    json: { data: { type: 'password_profile', name: 'Web phones', username_format: 'any',
      enable_one_time_password_token: false, voximplant_application: APPLICATION } },
  });
  assert.equal(profile.status, 201, profile.text);
  const user = await gw.request('POST', `/v2/authentication-realms/${realm}/user-authentication-info`, {
    token,
    json: { data: { type: 'user_authentication_info', name: DISPLAY_NAME, email: 'myuser@example.com' } },
  });
  assert.equal(user.status, 201, user.text);
  const credential = await gw.request('POST',
    `/v2/authentication-realms/${realm}/user-authentication-info/${user.body.data.id}/user-authentication-password-profile-info`, {
      token,
      json: { data: { type: 'user_authentication_password_profile_info', password_profile_id: profile.body.data.id,
        username: USER, password: PASSWORD } },
    });
  assert.equal(credential.status, 201, credential.text);
}

// ---------------------------------------------------------------------------
// The browser, and the guard that keeps the page on the gateway.

// The customer's backend of the docs: it keeps only HA1 = MD5(user:voximplant.com:password)
// and answers a key with MD5(key|HA1), a fresh MD5 object per computation.
const BACKEND_HA1 = new Map([[USERNAME, md5(`${USER}:voximplant.com:${PASSWORD}`)]]);

// Routes every request of `context`: the test page and the backend are answered
// here under the gateway's origin, requests to `allowed` origins go on, and
// anything else is recorded in `offHost` and aborted. WebSockets are recorded too:
// the only one allowed is the gateway's /platform.
async function guard(context, gw, offHost, frames, allowed = []) {
  const files = {
    '/__test/index.html': [path.join(PAGE_DIR, 'index.html'), 'text/html; charset=utf-8'],
    '/__test/flow.js': [path.join(PAGE_DIR, 'flow.js'), 'text/javascript; charset=utf-8'],
    '/__test/voximplant.min.js': [SDK_FILE, 'text/javascript; charset=utf-8'],
  };
  await context.route('**/*', async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    if (url.origin !== gw.origin) {
      if (allowed.includes(url.origin)) {
        await route.continue();
      } else {
        offHost.push(`${req.method()} ${req.url()}`);
        await route.abort('blockedbyclient');
      }
      return;
    }
    const file = files[url.pathname];
    if (file) {
      await route.fulfill({ status: 200, contentType: file[1], body: fs.readFileSync(file[0]) });
    } else if (url.pathname === '/__backend/hash' && req.method() === 'POST') {
      const form = new URLSearchParams(req.postData() || '');
      const ha1 = BACKEND_HA1.get(form.get('username')) || md5(`unknown:voximplant.com:${randomBytes(8).toString('hex')}`);
      await route.fulfill({ status: 200, contentType: 'text/plain', body: md5(`${form.get('key')}|${ha1}`) });
    } else {
      await route.continue();
    }
  });
  context.on('page', (page) => watchSockets(page, gw, offHost, frames));
}

function watchSockets(page, gw, offHost, frames) {
  page.on('websocket', (ws) => {
    const url = new URL(ws.url());
    if (url.protocol !== 'wss:' || url.host !== `127.0.0.1:${gw.port}` || url.pathname !== '/platform') {
      offHost.push(`WebSocket ${ws.url()}`);
    }
    frames.push({ dir: 'open', url: ws.url() });
    const record = (dir) => ({ payload }) => {
      let name = null;
      let params = null;
      try {
        ({ name, params } = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8')));
      } catch {
        name = '<not JSON>';
      }
      frames.push({ dir, name, params });
      if (VERBOSE && name !== '__ping' && name !== '__pong') console.log(`ws ${dir} ${name} ${JSON.stringify(params)}`);
    };
    ws.on('framesent', record('sent'));
    ws.on('framereceived', record('received'));
    ws.on('close', () => frames.push({ dir: 'close' }));
  });
}

// The example backend (examples/web-phone-login/server.mjs) on a free port.
class ExampleServer {
  constructor() {
    this.proc = null;
    this.port = 0;
  }

  get origin() {
    return `http://127.0.0.1:${this.port}`;
  }

  get log() {
    return this.proc ? this.proc.log.text() : '';
  }

  async start() {
    this.port = await freePort();
    const proc = new ManagedProcess(process.execPath, [EXAMPLE_SERVER], {
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(this.port), VOXIMPLANT_SDK: SDK_FILE },
      name: 'example-server',
    });
    this.proc = proc;
    const gone = new AbortController();
    proc.exited.then(() => gone.abort(new Error(`it ${proc.describeExit()}`)));
    try {
      await waitFor(`the example server: GET ${this.origin}/`, async ({ signal }) => {
        const r = await fetch(`${this.origin}/`, { signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]) });
        return r.status === 200;
      }, { timeout: WAIT_MS, signal: gone.signal });
    } catch (e) {
      throw new Error(`the example server did not start: ${e.message}\n${proc.log.text()}`, { cause: e });
    }
  }

  async stop() {
    await this.proc?.stop();
  }
}

async function launch(tls, gw) {
  return launchChromium(chromium, [
    // Trust the gateway's self-signed certificate, and only it.
    `--ignore-certificate-errors-spki-list=${tls.spkiHash}`,
    // The page is served by the test under the gateway's origin, without an IP
    // address, so Chromium takes it for a public page; the gateway is public too,
    // as in production (else Local Network Access blocks the socket).
    `--ip-address-space-overrides=127.0.0.1:${gw.port}=public`,
  ]);
}

// ---------------------------------------------------------------------------

// The harness removes this directory, and kills the gateways, redis-server and the
// example server, when this process exits or is signalled.
const tmp = registerTempDir(fs.mkdtempSync(path.join(os.tmpdir(), 'authgate-browser-')));
const redis = new Redis();
let gw = null;
let demo = null;
let example = null;
let browser = null;

before(async () => {
  setTimeout(() => {
    console.error(`watchdog: the browser test ran for ${WATCHDOG_MS} ms; stopping`);
    process.exit(1); // the harness's 'exit' handler kills the gateways, Redis and the example server
  }, WATCHDOG_MS).unref();
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_BIN)`);
  const tls = selfSignedCertificate(tmp);
  gw = new Gateway({ tls, redis, env: GATEWAY_ENV, name: 'gateway' });
  // The demo seeds its users on start; under a prefix of its own on the same Redis.
  demo = new Gateway({ tls, redis, env: GATEWAY_ENV, args: ['serve', '--demo'], name: 'demo' });
  example = new ExampleServer();
  const gateways = redis.start().then(() => Promise.all([gw.start(), demo.start()]));
  await Promise.all([gateways, example.start()]);
  // Both on the Redis, not the embedded store.
  await Promise.all([gw.waitForLog(/store="redis"/), demo.waitForLog(/store="redis"/)]);
  await seed(gw);
  browser = await launch(tls, gw);
}, { timeout: 45_000 });

after(async () => {
  await browser?.close().catch(() => {});
  await Promise.all([gw?.stop(), demo?.stop(), example?.stop()]);
  if (redis.external) await Promise.all([gw, demo].filter(Boolean).map((g) => redis.deleteKeys(g.redisPrefix)));
  await redis.stop();
}, { timeout: 20_000 });

test('the guard catches a page that reaches beyond the gateway (the SDK without serverIp)', { timeout: 20_000 }, async () => {
  const offHost = [];
  const frames = [];
  const context = await browser.newContext();
  try {
    await guard(context, gw, offHost, frames);
    const page = await context.newPage();
    await page.goto(`${gw.origin}/__test/index.html`, { timeout: WAIT_MS });
    // Without serverIp the SDK asks the vendor's balancer for a host first (and,
    // refused, never settles its connect promise: so do not wait for it).
    await page.evaluate(() => { window.flow.connect(undefined); });
    const deadline = Date.now() + WAIT_MS;
    while (!offHost.some((r) => r.includes('balancer.voximplant.com')) && Date.now() < deadline) await sleep(50);
    assert.ok(offHost.some((r) => r.includes('balancer.voximplant.com')), `recorded: ${JSON.stringify(offHost)}`);
    assert.deepEqual(frames, [], 'no socket was opened');
  } finally {
    await context.close();
  }
});

test(`voximplant-websdk ${SDK_VERSION} in Chromium logs in against authgate over wss://`, { timeout: 60_000 }, async (t) => {
  const offHost = [];
  const frames = [];
  const consoleLines = [];
  const context = await browser.newContext();
  let failures = 0;
  const step = (name, fn) => t.test(name, async () => {
    try {
      await fn();
    } catch (e) {
      failures += 1;
      throw e;
    }
  });
  t.after(async () => {
    await context.close().catch(() => {});
    if (failures > 0 || VERBOSE) {
      console.error(`--- WebSocket frames (params of logins elided) ---\n${frames
        .map((f) => `${f.dir} ${f.name ?? ''} ${f.url ?? ''}`).join('\n')}`);
      console.error(`--- page console ---\n${consoleLines.join('\n')}`);
      console.error(`--- gateway log ---\n${gw.log}`);
    }
  });

  await guard(context, gw, offHost, frames);
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${gw.origin}/__test/index.html`, { timeout: WAIT_MS });
  const call = (fn, ...args) => withTimeout(
    page.evaluate(([f, a]) => window.flow[f](...a), [fn, args]), `flow.${fn}`, WAIT_MS + 5_000);
  const sent = (name) => frames.filter((f) => f.dir === 'sent' && f.name === name);
  const received = (name) => frames.filter((f) => f.dir === 'received' && f.name === name);

  let tokens = null;

  await step('init({serverIp}) and connect() open wss://.../platform and get the greeting', async () => {
    const res = await call('connect', `127.0.0.1:${gw.port}`);
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.name, 'ConnectionEstablished');
    const open = frames.find((f) => f.dir === 'open' && f.url.includes('/platform'));
    assert.match(open.url, new RegExp(`^wss://127\\.0\\.0\\.1:${gw.port}/platform\\?version=3&`));
    assert.equal(received('__connectionSuccessful').length, 1);
  });

  await step("the docs' flow: requestOneTimeLoginKey, AuthResult 302, the backend's hash, loginWithOneTimeKey", async () => {
    const res = await call('docsKeyLogin', USERNAME, `${gw.origin}/__backend/hash`);
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.result, true);
    assert.equal(res.value.displayName, DISPLAY_NAME);
    const events = await page.evaluate(() => window.sdkEvents);
    const keyEvent = events.find((e) => e.code === 302);
    assert.ok(keyEvent, JSON.stringify(events));
    assert.equal(keyEvent.result, false);
    assert.match(keyEvent.key, /^[0-9a-f]{32}$/);
    assert.equal(sent('loginGenerateOneTimeKey').length, 1);
    assert.deepEqual(sent('loginGenerateOneTimeKey')[0].params, [USERNAME]);
    assert.equal(sent('loginUsingOneTimeKey').length, 1);
    // The token works at the gateway's forward-auth endpoint.
    const verify = await gw.request('GET', '/v1/auth/verify', { token: res.value.tokens.accessToken });
    assert.equal(verify.status, 200, verify.text);
  });

  await step('login(username, password) returns tokens', async () => {
    const res = await call('login', USERNAME, PASSWORD);
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.result, true);
    assert.equal(res.value.displayName, DISPLAY_NAME);
    const t0 = res.value.tokens;
    assert.equal(t0.accessExpire, 48 * 3600);
    assert.equal(t0.refreshExpire, 30 * 86400);
    assert.ok(t0.accessToken && t0.refreshToken);
    tokens = t0;
  });

  await step('a wrong password is refused with code 401', async () => {
    const res = await call('login', USERNAME, 'not-the-password');
    assert.equal(res.ok, false, JSON.stringify(res));
    assert.equal(res.value.result, false);
    assert.equal(res.value.code, 401);
  });

  await step('loginWithToken(username, accessToken) starts a new session', async () => {
    assert.ok(tokens, 'needs the login step');
    const res = await call('loginWithToken', USERNAME, tokens.accessToken);
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.displayName, DISPLAY_NAME);
    assert.notEqual(res.value.tokens.accessToken, tokens.accessToken);
    const frame = sent('login').at(-1);
    assert.equal(frame.params[1], '', 'the SDK sends an empty password');
    assert.equal(frame.params[2].accessToken, tokens.accessToken);
  });

  await step('tokenRefresh rotates the tokens; the old refresh token is then refused', async () => {
    assert.ok(tokens, 'needs the login step');
    const res = await call('tokenRefresh', USERNAME, tokens.refreshToken);
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.result, true);
    const rotated = res.value.tokens;
    assert.ok(rotated.refreshToken && rotated.refreshToken !== tokens.refreshToken);
    assert.equal(rotated.accessExpire, 48 * 3600);
    // The device-token form of the same call.
    const again = await call('tokenRefresh', USERNAME, rotated.refreshToken, 'device-token-1');
    assert.equal(again.ok, true, JSON.stringify(again));
    assert.deepEqual(Object.keys(sent('refreshOauthToken').at(-1).params[1]).sort(), ['deviceToken', 'refreshToken']);
    const reused = await call('tokenRefresh', USERNAME, tokens.refreshToken);
    assert.equal(reused.ok, false, JSON.stringify(reused));
    assert.equal(reused.value.result, false);
    assert.equal(reused.value.code, 401);
    // Reuse ends the session: the newest tokens stop working too.
    const verify = await gw.request('GET', '/v1/auth/verify', { token: again.value.tokens.accessToken });
    assert.equal(verify.status, 401, verify.text);
  });

  await step('an unknown user: the key request still resolves with 302, the login fails', async () => {
    const nobody = `nobody@${APPLICATION}.voximplant.com`;
    const res = await call('requestOneTimeLoginKey', nobody);
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.code, 302);
    assert.match(res.value.key, /^[0-9a-f]{32}$/);
    const hash = md5(`${res.value.key}|${md5(`nobody:voximplant.com:${PASSWORD}`)}`);
    const login = await call('loginWithOneTimeKey', nobody, hash);
    assert.equal(login.ok, false, JSON.stringify(login));
    assert.equal(login.value.code, 401);
  });

  await step('the SDK keeps the link alive with __ping, each answered with __pong', async () => {
    const deadline = Date.now() + 5_000;
    while (received('__pong').length < 2 && Date.now() < deadline) await sleep(100);
    assert.ok(sent('__ping').length >= 2, `pings: ${sent('__ping').length}`);
    assert.ok(received('__pong').length >= 2, `pongs: ${received('__pong').length}`);
  });

  await step('disconnect() closes the socket', async () => {
    const res = await call('disconnect');
    assert.equal(res.ok, true, JSON.stringify(res));
    assert.equal(res.value.name, 'ConnectionClosed');
  });

  await step('every frame the SDK sent is one the gateway knows, and the page reached only the gateway', async () => {
    const known = new Set(['__ping', 'loginGenerateOneTimeKey', 'loginUsingOneTimeKey', 'login', 'refreshOauthToken']);
    const unknown = frames.filter((f) => f.dir === 'sent' && !known.has(f.name)).map((f) => f.name);
    assert.deepEqual(unknown, [], 'frames the SDK sent that SPEC §1b does not list');
    assert.equal(frames.filter((f) => f.dir === 'open').length, 1, 'one socket');
    assert.deepEqual(offHost, [], 'requests to hosts other than the gateway');
  });
});

test('the example page (examples/web-phone-login) logs the demo user in against `authgate serve --demo`', { timeout: 40_000 }, async (t) => {
  const offHost = [];
  const frames = [];
  const consoleLines = [];
  const context = await browser.newContext();
  t.after(async () => {
    await context.close().catch(() => {});
  });
  await guard(context, demo, offHost, frames, [example.origin]);
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const status = page.locator('#status');
  const log = page.locator('#log');
  const explain = async () => `status: ${await status.textContent()}\nlog:\n${await log.textContent()}\n`
    + `console:\n${consoleLines.join('\n')}\nexample server:\n${example.log}\ngateway:\n${demo.log}`;
  try {
    await page.goto(`${example.origin}/?serverIp=127.0.0.1:${demo.port}`, { timeout: WAIT_MS });
    await page.click('#login');
    await status.filter({ hasText: 'Logged in as' }).waitFor({ timeout: WAIT_MS });
    await page.click('#refresh');
    await log.filter({ hasText: 'RefreshTokenResult: new tokens' }).waitFor({ timeout: WAIT_MS });
    await page.click('#disconnect');
    await log.filter({ hasText: 'connection closed' }).waitFor({ timeout: WAIT_MS });
  } catch (e) {
    e.message += `\n${await explain()}`;
    throw e;
  }
  const names = frames.filter((f) => f.dir === 'sent' && f.name !== '__ping').map((f) => f.name);
  assert.deepEqual(names, ['loginGenerateOneTimeKey', 'loginUsingOneTimeKey', 'refreshOauthToken']);
  assert.deepEqual(offHost, [], 'requests to hosts other than the gateway and the example server');
});

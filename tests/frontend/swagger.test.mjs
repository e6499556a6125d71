// A person works the API from the gateway's own Swagger UI (/docs/) in real Chromium,
// against the real binary on a private Redis:
//
//   1. a web phone user's access token, entered under BearerToken in the Authorize
//      dialog, makes "Try it out" on GET /v1/auth/verify answer 200 (X-Auth-User);
//   2. an implicit client token (BearerToken) plus an account member token got with a
//      reset_password code (AccountManagementToken) make "Try it out" on
//      PUT .../user-authentication-password-profile-info/{id} change the password,
//      which then works at POST /v1/login/password.
//
// The page must stay on the gateway: every request it makes to another origin is
// recorded and aborted (and other host names do not even resolve), and the test
// fails on any such request, any console error, page error, failed or refused
// gateway request, or Content-Security-Policy violation. A last test shows those
// guards catching what they watch for.
//
//   cd tests/frontend && node --test swagger.test.mjs      # 10-30 s (Swagger UI is heavy)
//
// Needs Debian's `chromium` (apt-get install chromium), `redis-server` (or
// AUTHGATE_TEST_REDIS_URL), and the gateway binary (AUTHGATE_BIN, default
// ../../target/debug/authgate). Playwright never downloads a browser here.
//
// Environment:
//   CHROMIUM_BIN             browser (default /usr/bin/chromium)
//   AUTHGATE_TEST_VERBOSE=1  print the page's console, its requests and the gateway's log
//
// Bounded: a watchdog ends the file after WATCHDOG_MS; every wait has a timeout.
// On a failure a screenshot of the page is saved in the OS temp dir (path printed).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import {
  CHROMIUM_BIN as CHROMIUM, Gateway, Redis, WebhookReceiver, launchChromium, request, waitFor, withTimeout,
} from '../harness/index.mjs';

const VERBOSE = !!process.env.AUTHGATE_TEST_VERBOSE;
const WATCHDOG_MS = 90_000;
const WAIT_MS = 10_000;
const RENDER_MS = 20_000;

const APPLICATION = 'swagger.test';
const USER = 'swagger-user';
const USERNAME = `${USER}@${APPLICATION}.voximplant.com`;
const PASSWORD = 'first-password-1';
const NEW_PASSWORD = `new-password-${randomBytes(4).toString('hex')}`;
const HOOK_SECRET = 'swagger-test-webhook-secret';

const VERIFY_OP = '#operations-Token_checks-verify';
const PUT_CREDENTIAL_OP = '#operations-Users-updateUserAuthenticationPasswordProfileInfo';

const md5 = (s) => createHash('md5').update(s, 'utf8').digest('hex');

// ---------------------------------------------------------------------------

const watchdog = setTimeout(() => {
  console.error(`watchdog: swagger.test.mjs ran for ${WATCHDOG_MS} ms; stopping`);
  // The harness SIGKILLs the gateway and Redis at exit; Playwright kills its browser.
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

let redis = null;
let gw = null;
let hook = null;
let browser = null;
/** What the seeding made: ids and tokens. */
const seed = {};
const timings = [];

async function timed(what, fn) {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings.push(`${what}: ${Date.now() - t0} ms`);
  }
}

/** One API call to the gateway that must answer `status`; resolves with the parsed body. */
async function api(method, pathAndQuery, options, status) {
  const r = await request(gw.url(pathAndQuery), { method, ...options });
  assert.equal(r.status, status, `${method} ${pathAndQuery} answered ${r.status}: ${r.text}`);
  return r;
}

async function seedThroughTheApi() {
  const admin = await gw.clientToken('client_credentials');
  const settings = await api('PUT', '/v2/settings/account-authentication', {
    token: admin,
    json: { data: { type: 'account_authentication_settings', account_member_self_management: 'update_only' } },
  }, 200);
  assert.equal(settings.body.data.account_member_self_management, 'update_only');
  const realm = settings.body.data.relationships.authentication_realm.data.id;
  const base = `/v2/authentication-realms/${realm}`;
  const profile = await api('POST', `${base}/password-profiles`, {
    token: admin,
    json: { data: { type: 'password_profile', name: 'Swagger UI test', username_format: 'any',
      enable_one_time_password_token: true, voximplant_application: APPLICATION } },
  }, 201);
  const user = await api('POST', `${base}/user-authentication-info`, {
    token: admin,
    json: { data: { type: 'user_authentication_info', name: 'Swagger User', email: 'swagger-user@example.test' } },
  }, 201);
  const credential = await api('POST',
    `${base}/user-authentication-info/${user.body.data.id}/user-authentication-password-profile-info`, {
      token: admin,
      json: { data: { type: 'user_authentication_password_profile_info', password_profile_id: profile.body.data.id,
        username: USER, password: PASSWORD } },
    }, 201);
  await api('POST', '/v2/integrations', {
    token: admin,
    json: { data: { type: 'integration', name: 'Codes for the Swagger UI test', description: 'webhook receiver of the test',
      integration_type: 'webhook', enabled: true, observes: ['one-time-password-token-request.created'],
      configuration: { url: hook.url, secret_key: HOOK_SECRET } } },
  }, 201);

  // The web phone user logs in with a one-time key (scheme A).
  const key = await api('POST', '/v1/login/one-time-key/request', { json: { username: USERNAME } }, 200);
  assert.equal(key.body.code, 302, key.text);
  const hash = md5(`${key.body.key}|${md5(`${USER}:voximplant.com:${PASSWORD}`)}`);
  const login = await api('POST', '/v1/login/one-time-key', { json: { username: USERNAME, hash } }, 200);
  assert.equal(login.body.result, true, login.text);

  // A reset_password code by webhook, exchanged for an account member token (scheme B).
  const implicit = await gw.clientToken('implicit');
  const mark = hook.mark();
  const asked = await api('POST', `${base}/password-profiles/${profile.body.data.id}/one-time-password-token-request`, {
    token: implicit,
    json: { data: { type: 'one_time_password_token_request', username: USER, purpose: 'reset_password' } },
  }, 202);
  assert.equal(asked.text, '');
  const delivery = await hook.waitFor((d) => d.body?.payload?.purpose === 'reset_password'
    && d.body?.payload?.user_authentication_password_profile_info?.username === USER, { since: mark, timeout: WAIT_MS });
  const code = delivery.body.payload.one_time_password_token;
  assert.match(code, /^[a-z0-9]{6}$/);
  const member = await api('POST', '/v2/account-members/tokens', {
    token: implicit,
    json: { data: { type: 'account_management_authentication_token', authentication_mechanism: 'passwordless',
      password_profile_id: profile.body.data.id, username: USER, one_time_password_token: code } },
  }, 201);

  Object.assign(seed, {
    admin,
    realm,
    profileId: profile.body.data.id,
    userId: user.body.data.id,
    credentialId: credential.body.data.id,
    accessToken: login.body.tokens.accessToken,
    implicit,
    memberToken: member.body.data[0].token,
  });
}

// ---------------------------------------------------------------------------
// The browser and the guards.

function launch() {
  return launchChromium(chromium);
}

/**
 * A browser context whose pages may reach the gateway and nothing else, and that
 * records everything that should make the test fail:
 *   offHost      requests to any other origin (aborted)
 *   problems     console errors, page errors, CSP violations, failed gateway requests,
 *                and gateway answers of 400 or more (the page names its icon inline,
 *                so not even Chromium's own /favicon.ico probe is tolerated)
 */
async function guardedContext() {
  const g = { offHost: [], problems: [], log: [] };
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  await context.route('**/*', async (route) => {
    const req = route.request();
    let origin = null;
    try {
      origin = new URL(req.url()).origin;
    } catch {
      // data: and the like have no origin worth the name
    }
    if (origin === gw.origin) {
      await route.continue();
    } else {
      g.offHost.push(`${req.method()} ${req.url()} (${req.resourceType()})`);
      await route.abort('blockedbyclient');
    }
  });
  // CSP violations as the page sees them (Playwright's bindings and init scripts are
  // not subject to the page's policy).
  await context.exposeBinding('__authgateTestCspViolation', ({ page }, v) => {
    g.problems.push(`CSP violation on ${page?.url()}: ${JSON.stringify(v)}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__authgateTestCspViolation({
        violatedDirective: e.violatedDirective, effectiveDirective: e.effectiveDirective,
        blockedURI: e.blockedURI, sourceFile: e.sourceFile, lineNumber: e.lineNumber, sample: e.sample,
        disposition: e.disposition,
      });
    });
  });
  context.on('page', (page) => watchPage(page, g));
  return { context, g };
}

function watchPage(page, g) {
  page.on('console', (m) => {
    const loc = m.location();
    const line = `console.${m.type()}: ${m.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`;
    g.log.push(line);
    if (VERBOSE) console.error(line);
    if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) {
      g.problems.push(line);
    }
  });
  page.on('pageerror', (e) => {
    g.log.push(`pageerror: ${e.message}`);
    g.problems.push(`page error: ${e.stack || e.message}`);
  });
  page.on('requestfailed', (r) => {
    const line = `request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`;
    g.log.push(line);
    // Off-host requests are aborted on purpose and reported as such.
    if (r.url().startsWith(`${gw.origin}/`)) g.problems.push(line);
  });
  page.on('response', (r) => {
    const req = r.request();
    const line = `${r.status()} ${req.method()} ${r.url()}`;
    g.log.push(line);
    if (VERBOSE) console.error(`response ${line}`);
    // Every request this test makes through Swagger UI is meant to succeed.
    if (r.status() >= 400) g.problems.push(`gateway answered ${line}`);
  });
}

/** Saves a screenshot of `page` in the OS temp dir and prints where. */
async function screenshot(page, label) {
  if (!page || page.isClosed()) return null;
  const file = path.join(os.tmpdir(), `authgate-swagger-${label.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}-${Date.now()}.png`);
  try {
    await withTimeout(page.screenshot({ path: file, timeout: WAIT_MS }), 'screenshot', WAIT_MS + 1000);
    console.error(`screenshot of the page at the failure: ${file}`);
    return file;
  } catch (e) {
    console.error(`could not take a screenshot: ${e.message}`);
    return null;
  }
}

/** Runs `fn` as a subtest; a failure screenshots the page and skips the remaining steps. */
function stepper(t, page) {
  let failed = null;
  return (name, fn) => t.test(name, async (st) => {
    if (failed) {
      st.skip(`an earlier step failed (${failed})`);
      return;
    }
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      failed = name;
      await screenshot(page(), name);
      throw e;
    } finally {
      timings.push(`  ${name}: ${Date.now() - t0} ms`);
    }
  });
}

// ---------------------------------------------------------------------------
// Swagger UI, driven as a person would.

/** Opens /docs (following the redirect) and waits for the operations to render. */
async function openDocs(page) {
  const res = await page.goto(gw.url('/docs'), { waitUntil: 'load' });
  assert.ok(res, 'no response to the navigation');
  assert.equal(res.status(), 200);
  assert.equal(page.url(), gw.url('/docs/'));
  const redirect = res.request().redirectedFrom();
  assert.ok(redirect, 'GET /docs redirects to /docs/');
  assert.equal(redirect.url(), gw.url('/docs'));
  assert.equal((await redirect.response()).status(), 301);
  assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  // The first render parses 1.4 MB of script and a 170 kB document: allow for a slow machine.
  await page.locator(VERIFY_OP).waitFor({ state: 'visible', timeout: RENDER_MS });
  await page.locator(PUT_CREDENTIAL_OP).waitFor({ state: 'visible' });
  await page.locator('.scheme-container .auth-wrapper > button.btn.authorize').waitFor({ state: 'visible' });
}

/** The Authorize dialog's block for one security scheme. */
function schemeBlock(page, scheme) {
  return page.locator('.modal-ux .auth-container')
    .filter({ has: page.locator('h4 code', { hasText: new RegExp(`^${scheme}$`) }) });
}

async function openAuthorizeDialog(page) {
  await page.locator('.scheme-container .auth-wrapper > button.btn.authorize').click();
  await page.locator('.modal-ux').waitFor({ state: 'visible' });
}

async function closeAuthorizeDialog(page) {
  await page.locator('.modal-ux .auth-btn-wrapper .btn-done').first().click();
  await page.locator('.modal-ux').waitFor({ state: 'detached' });
}

/** Enters `value` for `scheme` in the open dialog and applies it. */
async function authorizeScheme(page, scheme, value) {
  const block = schemeBlock(page, scheme);
  await block.waitFor({ state: 'visible' });
  await block.locator('input').fill(value);
  await block.locator('.auth-btn-wrapper button.authorize').click();
  // Authorized: the value gives way to "Authorized", a masked value and a Logout button.
  await block.locator('h6', { hasText: /^Authorized$/ }).waitFor({ state: 'visible' });
  await block.locator('.auth-btn-wrapper button', { hasText: /^Logout$/ }).waitFor({ state: 'visible' });
  await block.locator('input').waitFor({ state: 'detached' });
}

async function logoutScheme(page, scheme) {
  const block = schemeBlock(page, scheme);
  await block.locator('.auth-btn-wrapper button', { hasText: /^Logout$/ }).click();
  await block.locator('input').waitFor({ state: 'visible' });
  await block.locator('h6', { hasText: /^Authorized$/ }).waitFor({ state: 'detached' });
}

/** Expands an operation and presses "Try it out". */
async function tryItOut(page, op) {
  const block = page.locator(op);
  await block.locator('.opblock-summary .opblock-summary-control').click();
  await block.locator('.opblock-body').waitFor({ state: 'visible' });
  await block.locator('.try-out__btn').click();
  await block.locator('.execute').waitFor({ state: 'visible' });
  return block;
}

/**
 * Presses Execute and resolves with the network response of the request it sends
 * (matched by method and exact URL) and the status Swagger UI then shows.
 */
async function execute(page, block, method, url) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && r.url() === url, { timeout: WAIT_MS }),
    block.locator('.execute').click(),
  ]);
  const status = block.locator('.live-responses-table tbody tr.response .response-col_status').first();
  await status.waitFor({ state: 'visible' });
  return { response, shownStatus: (await status.innerText()).trim() };
}

// ---------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_BIN)`);
  const reason = await Redis.unavailableReason();
  assert.equal(reason, null, `no Redis for the gateway: ${reason}`);
  await timed('start Redis, gateway, webhook receiver, Chromium', async () => {
    redis = new Redis();
    hook = new WebhookReceiver();
    await Promise.all([redis.start(), hook.start()]);
    gw = new Gateway({ redis, name: 'swagger' });
    [browser] = await Promise.all([launch(), gw.start()]);
  });
  await timed('seed through the API', () => seedThroughTheApi());
}, { timeout: 45_000 });

after(async () => {
  await browser?.close().catch(() => {});
  await Promise.all([gw?.stop(), hook?.stop()]);
  await redis?.stop();
  console.error(`timings:\n${timings.join('\n')}`);
}, { timeout: 20_000 });

test('Swagger UI at /docs/ works the API: verify a web phone token, reset a password', { timeout: 60_000 }, async (t) => {
  const { context, g } = await guardedContext();
  let page = null;
  const step = stepper(t, () => page);
  t.after(async () => {
    if (VERBOSE || g.problems.length || g.offHost.length) {
      console.error(`--- page log ---\n${g.log.join('\n')}`);
      console.error(`--- gateway log (tail) ---\n${gw.log.slice(-4000)}`);
    }
    await context.close().catch(() => {});
  });
  page = await context.newPage();

  await step('GET /docs redirects to /docs/, which renders the document from /openapi.json', async () => {
    await openDocs(page);
    // The document Swagger UI shows is the one the gateway serves.
    const title = await page.locator('.information-container .title').first().innerText();
    const doc = await api('GET', '/openapi.json', {}, 200);
    assert.ok(title.startsWith(doc.body.info.title), `title ${JSON.stringify(title)} vs ${doc.body.info.title}`);
    const version = await page.evaluate(() => window.versions?.swaggerUI?.version);
    t.diagnostic(`Swagger UI ${version}, document ${doc.body.info.title} ${doc.body.info.version}`);
  });

  await step('Authorize: BearerToken = the web phone user\'s access token', async () => {
    await openAuthorizeDialog(page);
    await authorizeScheme(page, 'BearerToken', seed.accessToken);
    await closeAuthorizeDialog(page);
  });

  await step('GET /v1/auth/verify: Try it out, Execute -> 200 with X-Auth-User', async () => {
    const block = await tryItOut(page, VERIFY_OP);
    const { response, shownStatus } = await execute(page, block, 'GET', gw.url('/v1/auth/verify'));
    const sent = await response.request().allHeaders();
    assert.equal(sent.authorization, `Bearer ${seed.accessToken}`);
    assert.equal(sent['ep-account-management-authentication-token'], undefined);
    assert.equal(response.status(), 200);
    const got = await response.allHeaders();
    assert.match(got['x-auth-user'] ?? '', new RegExp(`^${USER}(@|$)`), `X-Auth-User in ${JSON.stringify(got)}`);
    assert.equal(got['x-auth-scheme'], 'one-time-key');
    assert.equal(shownStatus, '200');
    // Swagger UI shows the headers it received.
    const shownHeaders = await block.locator('.live-responses-table tbody tr.response .response-col_description').first().innerText();
    assert.match(shownHeaders, new RegExp(`x-auth-user: ${got['x-auth-user'].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'i'));
    t.diagnostic(`verify: X-Auth-User ${got['x-auth-user']}, X-Auth-Realm ${got['x-auth-realm']}`);
  });

  await step('Authorize again: Logout of BearerToken; BearerToken = implicit client token, AccountManagementToken = member token', async () => {
    await openAuthorizeDialog(page);
    await logoutScheme(page, 'BearerToken');
    await authorizeScheme(page, 'BearerToken', seed.implicit);
    await authorizeScheme(page, 'AccountManagementToken', seed.memberToken);
    await closeAuthorizeDialog(page);
  });

  await step('PUT .../user-authentication-password-profile-info/{id}: a new password -> 200', async () => {
    const block = await tryItOut(page, PUT_CREDENTIAL_OP);
    await block.locator('tr[data-param-name="realm"] input').fill(seed.realm);
    await block.locator('tr[data-param-name="user"] input').fill(seed.userId);
    await block.locator('tr[data-param-name="id"] input').fill(seed.credentialId);
    const body = JSON.stringify({ data: { type: 'user_authentication_password_profile_info', password: NEW_PASSWORD } }, null, 2);
    const textarea = block.locator('textarea.body-param__text');
    await textarea.fill(body);
    assert.equal(await textarea.inputValue(), body);
    const url = gw.url(`/v2/authentication-realms/${seed.realm}/user-authentication-info/${seed.userId}`
      + `/user-authentication-password-profile-info/${seed.credentialId}`);
    const { response, shownStatus } = await execute(page, block, 'PUT', url);
    const req = response.request();
    const sent = await req.allHeaders();
    assert.equal(sent.authorization, `Bearer ${seed.implicit}`);
    assert.equal(sent['ep-account-management-authentication-token'], seed.memberToken);
    assert.match(sent['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(req.postData() ?? 'null'), JSON.parse(body));
    assert.equal(response.status(), 200, await response.text().catch(() => ''));
    const answer = await response.json();
    assert.equal(answer.data.id, seed.credentialId);
    assert.equal(answer.data.password, undefined, 'the password is never returned');
    assert.equal(shownStatus, '200');
  });

  await step('outside the browser: the new password logs in, the old one no longer does', async () => {
    const ok = await api('POST', '/v1/login/password', { json: { username: USERNAME, password: NEW_PASSWORD } }, 200);
    assert.equal(ok.body.result, true, ok.text);
    const old = await api('POST', '/v1/login/password', { json: { username: USERNAME, password: PASSWORD } }, 401);
    assert.equal(old.body.result, false, old.text);
    // A new password ends the user's sessions: the token verified in the browser is dead.
    await api('GET', '/v1/auth/verify', { token: seed.accessToken }, 401);
  });

  await step('the page stayed on the gateway, without console errors or CSP violations', async () => {
    assert.deepEqual(g.offHost, [], 'requests to other origins');
    assert.deepEqual(g.problems, [], 'console errors, page errors, CSP violations, failed requests');
  });
});

test('the guards catch an off-host request and a CSP violation', { timeout: 30_000 }, async (t) => {
  const { context, g } = await guardedContext();
  let page = null;
  const step = stepper(t, () => page);
  t.after(() => context.close().catch(() => {}));
  page = await context.newPage();
  await step('open /docs/ cleanly', async () => {
    await openDocs(page);
    assert.deepEqual(g.offHost, []);
    assert.deepEqual(g.problems, []);
  });
  await step('an inline script is refused by the page\'s policy and reported', async () => {
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true;';
      document.head.append(s);
    });
    await waitFor('the CSP violation to be reported', () => g.problems.some((p) => p.startsWith('CSP violation')),
      { timeout: WAIT_MS, interval: 25 });
    assert.equal(await page.evaluate(() => window.__inlineRan ?? false), false);
  });
  await step('a navigation to another host is recorded and aborted', async () => {
    await page.goto('http://elsewhere.test/', { timeout: WAIT_MS }).catch(() => {});
    assert.ok(g.offHost.some((r) => r.startsWith('GET http://elsewhere.test/')), JSON.stringify(g.offHost));
  });
});

// authgate's hosted pages (/ui/) in real Chromium, against the real gateway binary
// started with --demo on a private Redis, its code emails going to a real SMTP
// server (./smtp.mjs) that the test reads, as a person reads their inbox:
//
// - sign in: the page asks for a code, the email's link opens "Continue as ...",
//   a mail scanner's plain GETs of the link spend nothing, the click lands on the
//   allow-listed return_to (a small page this file serves) with a token in the
//   fragment that GET /v1/auth/verify accepts;
// - a typed code, without return_to, ends on the signed-in page;
// - reset: the email's link, a new password, then the API logs in with it and
//   refuses the old one;
// - a return_to outside AUTHGATE_UI_RETURN_URLS and a broken link get clear pages;
// - Chromium requests nothing from any other host (every request is recorded, and
//   other host names do not resolve), and axe-core finds no serious or critical
//   violation on any page.
//
//   cd tests/ui && npm ci && npm test
//   AUTHGATE_UI_SCREENSHOTS=1 npm test     # also writes docs/images/ui-*.png
//
// Needs Debian's `chromium`, `redis-server` (unless AUTHGATE_TEST_REDIS_URL is set)
// and the gateway binary (cargo build -p authgate-gateway; AUTHGATE_BIN to use
// another). A watchdog ends the file after two minutes; a run takes about ten seconds.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

import { chromium } from 'playwright-core';

import { Gateway, Redis, launchChromium, request, waitFor } from '../harness/index.mjs';
import { SmtpSink } from './smtp.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = process.env.AUTHGATE_UI_SCREENSHOTS ? path.resolve(HERE, '../../docs/images') : null;
const CUSTOMER = 'john.doe@banks.com'; // the demo's member, password mypass123
const NEW_PASSWORD = 'a-much-longer-passphrase';

setTimeout(() => {
  console.error('tests/ui: watchdog: the suite took over two minutes');
  process.exit(1);
}, 120_000).unref();

let redis;
let smtp;
let gw;
let appServer;
let appOrigin;
let browser;

before(async () => {
  redis = new Redis();
  await redis.start();
  smtp = await new SmtpSink().start();
  // The application a signed-in person returns to: one static page.
  appServer = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'" });
    res.end('<!doctype html><html lang="en"><head><title>The shop</title></head><body><main><h1>The shop</h1></main></body></html>');
  });
  await new Promise((resolve) => appServer.listen(0, '127.0.0.1', resolve));
  appOrigin = `http://127.0.0.1:${appServer.address().port}`;
  gw = new Gateway({
    name: 'ui',
    redis,
    args: ['serve', '--demo'],
    env: {
      AUTHGATE_SMTP_URL: smtp.url,
      AUTHGATE_EMAIL_FROM: 'Demo shop <no-reply@shop.test>',
      AUTHGATE_UI_RETURN_URLS: `${appOrigin}/cb`,
    },
  });
  await gw.start();
  // The demo is seeded just after the gateway answers.
  await waitFor('the demo data', async () => (await gw.request('GET', '/ui/sign-in')).status === 200);
  browser = await launchChromium(chromium);
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  await smtp?.stop();
  await new Promise((resolve) => (appServer ? appServer.close(() => resolve()) : resolve()));
  await redis?.stop();
});

/** A fresh browser context whose every request is recorded, with axe-core ready. */
async function open() {
  const context = await browser.newContext({ viewport: { width: 560, height: 760 }, deviceScaleFactor: 1 });
  // Injected by the browser itself, so the pages' CSP (no script at all) is untouched.
  await context.addInitScript({ content: AXE });
  const seen = [];
  context.on('request', (r) => seen.push(r.url()));
  const page = await context.newPage();
  return { context, page, seen };
}

/** No serious or critical axe-core violation; then a screenshot when asked for. */
async function audit(page, name) {
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(bad, [], `axe-core on ${name}`);
  if (SHOTS) {
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, `ui-${name}.png`), fullPage: true });
  }
}

/** Every request went to the gateway or the application, and the stylesheet loaded. */
function onlyOurHosts(seen) {
  const allowed = new Set([gw.origin, appOrigin]);
  const others = seen.filter((u) => !allowed.has(new URL(u).origin));
  assert.deepEqual(others, [], 'requests to other hosts');
  assert.ok(seen.some((u) => u === `${gw.origin}/ui/style.css`), 'the gateway served the stylesheet');
}

/** The link to the gateway's pages in an email's text. */
function linkIn(text) {
  const m = /https?:\/\/[^\s"<>]+\/ui\/(?:sign-in\/confirm|reset-password)\?[^\s"<>]+/.exec(text);
  assert.ok(m, `a link in: ${text}`);
  return m[0];
}

async function heading(page) {
  return (await page.locator('h1').textContent()).trim();
}

/** The demo's "Customers" profile, and an implicit client token. */
async function customers() {
  const admin = await gw.clientToken();
  const settings = await gw.request('GET', '/v2/settings/account-authentication', { token: admin });
  const realm = settings.body.data.relationships.authentication_realm.data.id;
  const profiles = await gw.request('GET', `/v2/authentication-realms/${realm}/password-profiles`, { token: admin });
  const profile = profiles.body.data.find((p) => p.name === 'Customers').id;
  return { profile, implicit: await gw.clientToken('implicit') };
}

async function passwordLogin(password) {
  const { profile, implicit } = await customers();
  return gw.request('POST', '/v2/account-members/tokens', {
    token: implicit,
    json: { data: { type: 'account_management_authentication_token', authentication_mechanism: 'password',
      password_profile_id: profile, username: CUSTOMER, password } },
  });
}

test('the emailed link survives a scanner and signs in on its POST, back to return_to with a token', async () => {
  const { context, page, seen } = await open();
  const returnTo = `${appOrigin}/cb?state=xyz`;
  await page.goto(`${gw.origin}/ui/sign-in?return_to=${encodeURIComponent(returnTo)}`);
  assert.equal(await heading(page), 'Sign in');
  await audit(page, 'sign-in');
  const sent = smtp.messages.length;
  await page.getByLabel('Username').fill(CUSTOMER);
  await Promise.all([
    page.waitForURL(/\/ui\/sign-in\/code\?/),
    page.getByRole('button', { name: 'Email me a code' }).click(),
  ]);
  assert.equal(await heading(page), 'Check your email');
  await audit(page, 'code');

  const mail = await smtp.message(sent + 1);
  const link = linkIn(mail.text);
  assert.ok(link.startsWith(`${gw.origin}/ui/sign-in/confirm?`), link);
  // A mail scanner fetches the link, twice, and follows nothing: no code is spent.
  for (let i = 0; i < 2; i++) {
    const scan = await request(link);
    assert.equal(scan.status, 200);
    assert.match(scan.text, /Continue as/);
  }

  await page.goto(link);
  assert.equal(await heading(page), `Continue as ${CUSTOMER}`);
  await audit(page, 'confirm');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(appOrigin)),
    page.getByRole('button', { name: `Continue as ${CUSTOMER}` }).click(),
  ]);
  const landed = new URL(page.url());
  assert.equal(`${landed.origin}${landed.pathname}${landed.search}`, returnTo, 'back where the sign-in began');
  const fragment = new URLSearchParams(landed.hash.slice(1));
  assert.equal(fragment.get('token_type'), 'Bearer');
  const verify = await gw.request('GET', '/v1/auth/verify', { token: fragment.get('access_token') });
  assert.equal(verify.status, 200, verify.text);
  assert.equal(verify.headers['x-auth-user'], CUSTOMER);
  // The token reached the application only in the fragment: no request carried it.
  assert.ok(!seen.some((u) => u.includes(fragment.get('access_token'))), 'the token is in no request');
  onlyOurHosts(seen);
  await context.close();
});

test('a typed code without return_to ends on the signed-in page', async () => {
  const { context, page, seen } = await open();
  await page.goto(`${gw.origin}/ui/sign-in`);
  const sent = smtp.messages.length;
  await page.getByLabel('Username').fill(CUSTOMER);
  await Promise.all([page.waitForURL(/\/ui\/sign-in\/code\?/), page.getByRole('button', { name: 'Email me a code' }).click()]);
  const mail = await smtp.message(sent + 1);
  const code = mail.subject.trim().split(' ').pop();
  await page.getByLabel('Code').fill('000000');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await audit(page, 'code-wrong');
  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('h1', { hasText: 'You are signed in' }).waitFor();
  const token = (await page.locator('#access_token').inputValue()).trim();
  assert.equal((await gw.request('GET', '/v1/auth/verify', { token })).status, 200);
  await audit(page, 'signed-in');
  onlyOurHosts(seen);
  await context.close();
});

test('the reset link sets a new password: the API logs in with it and refuses the old one', async () => {
  assert.equal((await passwordLogin('mypass123')).status, 201, 'the demo password works first');
  const { context, page, seen } = await open();
  await page.goto(`${gw.origin}/ui/reset-password/request?return_to=${encodeURIComponent(`${appOrigin}/cb`)}`);
  assert.equal(await heading(page), 'Reset your password');
  await audit(page, 'reset-request');
  const sent = smtp.messages.length;
  await page.getByLabel('Username').fill(CUSTOMER);
  await Promise.all([
    page.waitForURL(/\/ui\/reset-password\?/),
    page.getByRole('button', { name: 'Email me a reset code' }).click(),
  ]);
  await audit(page, 'reset-code');
  const link = linkIn((await smtp.message(sent + 1)).text);
  assert.equal((await request(link)).status, 200, 'a scanner GET');
  await page.goto(link);
  assert.equal(await heading(page), 'Choose a new password');
  await audit(page, 'reset');
  await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel('New password, again').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await page.locator('h1', { hasText: 'Your password is changed' }).waitFor();
  await audit(page, 'reset-done');
  assert.equal(await page.getByRole('link', { name: 'Back to the application' }).getAttribute('href'), `${appOrigin}/cb`);
  onlyOurHosts(seen);
  await context.close();

  assert.equal((await passwordLogin(NEW_PASSWORD)).status, 201, 'the new password logs in');
  assert.equal((await passwordLogin('mypass123')).status, 401, 'the old one does not');
});

test('a return_to outside the allow-list is refused, and a broken link gets a page to start again', async () => {
  const { context, page, seen } = await open();
  const sent = smtp.messages.length;
  await page.goto(`${gw.origin}/ui/sign-in?return_to=${encodeURIComponent(`${appOrigin}.evil.test/cb`)}`);
  assert.equal(await heading(page), 'This application is not allowed');
  assert.ok(page.url().startsWith(gw.origin), 'not sent anywhere');
  await audit(page, 'refused');
  await page.goto(`${gw.origin}/ui/sign-in/confirm?username=${encodeURIComponent(CUSTOMER)}`);
  assert.equal(await heading(page), 'This link does not work');
  await audit(page, 'bad-link');
  await page.getByRole('link', { name: 'Start again' }).click();
  assert.equal(await heading(page), 'Sign in');
  assert.equal(smtp.messages.length, sent, 'nothing was sent');
  onlyOurHosts(seen);
  await context.close();
});

// Clients generated from authgate's OpenAPI document log users in through both
// schemes, against the real gateway binary on a private Redis:
//
// 1. the document the gateway serves is the committed one, byte for byte; Redocly's
//    recommended rules pass with no warning; openapi-typescript and
//    openapi-python-client generate from the served URL with no warning
//    (scripts/generate-clients.sh --strict);
// 2. the TypeScript journey (src/, on openapi-fetch) compiles under tsc --strict
//    against those types, then runs under Node;
// 3. the Python journey (python/flows.py) runs on the generated Python client;
// 4. in Chromium, a page served from another origin, allowed by
//    AUTHGATE_CORS_ALLOWED_ORIGINS, runs the same TypeScript journey; the same page
//    from an origin that is not allowed cannot read a single answer. Neither page
//    reaches any host but its own and the gateway.
//
//   cd tests/frontend && npm ci && npm test
//
// Needs: the gateway binary (cargo build -p authgate-gateway), redis-server,
// openapi-python-client (pip install -r ../../scripts/requirements-clients.txt),
// Debian's chromium. Every wait is bounded; a watchdog ends the file after 3 minutes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

import {
  CHROMIUM_BIN as CHROMIUM, Gateway, Redis, WebhookReceiver, launchChromium, withTimeout,
} from '../harness/index.mjs';

const run = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const GENERATED = path.join(HERE, 'generated');
const WATCHDOG_MS = 180_000;
const HOOK_SECRET = `whsec-${randomBytes(8).toString('hex')}`;

const md5 = (s) => createHash('md5').update(s, 'utf8').digest('hex');
const suffix = () => randomBytes(4).toString('hex');

/** Runs a command; on failure the error carries its output. */
async function sh(file, args, options = {}) {
  try {
    return await run(file, args, { maxBuffer: 16 << 20, timeout: 120_000, ...options });
  } catch (e) {
    e.message += `\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`;
    throw e;
  }
}

// ---------------------------------------------------------------------------
// What a frontend's backend does: hash keys with the HA1 it keeps, and hand over
// the codes its webhook received (each once).

class Backend {
  constructor(hook) {
    this.hook = hook;
    this.ha1 = new Map();
    this.handed = new Set();
  }

  keep(webUsername, user, password) {
    this.ha1.set(webUsername, md5(`${user}:voximplant.com:${password}`));
  }

  hash(username, key) {
    const ha1 = this.ha1.get(username);
    if (!ha1) throw new Error(`the backend knows no ${username}`);
    return md5(`${key}|${ha1}`);
  }

  async code(username, purpose) {
    const d = await this.hook.waitFor((d) => {
      const p = d.body?.payload;
      return !this.handed.has(d) && p?.purpose === purpose
        && p?.user_authentication_password_profile_info?.username === username;
    }, { what: `a ${purpose} code for ${username}` });
    this.handed.add(d);
    return d.body.payload.one_time_password_token;
  }
}

// ---------------------------------------------------------------------------
// A frontend's own origin: the page, its compiled scripts, its backend.

class PageServer {
  constructor(backend, config) {
    this.backend = backend;
    this.config = config;
    const files = {
      '/': [path.join(HERE, 'page/index.html'), 'text/html; charset=utf-8'],
      '/vendor/openapi-fetch.mjs': [path.join(HERE, 'node_modules/openapi-fetch/dist/index.mjs'), 'text/javascript'],
    };
    this.server = http.createServer(async (req, res) => {
      const url = new URL(req.url, 'http://x');
      try {
        if (files[url.pathname]) {
          const [file, type] = files[url.pathname];
          res.writeHead(200, { 'content-type': type }).end(fs.readFileSync(file));
        } else if (url.pathname.startsWith('/app/') && url.pathname.endsWith('.js')) {
          const file = path.join(HERE, 'dist', path.basename(url.pathname));
          res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(file));
        } else if (url.pathname === '/config.json') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.config));
        } else if (req.method === 'POST' && url.pathname.startsWith('/backend/')) {
          const body = JSON.parse(await new Promise((ok) => {
            let s = '';
            req.on('data', (c) => { s += c; });
            req.on('end', () => ok(s));
          }));
          const answer = url.pathname === '/backend/hash'
            ? this.backend.hash(body.username, body.key)
            : await this.backend.code(body.username, body.purpose);
          res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
        } else {
          res.writeHead(404).end();
        }
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
      }
    });
  }

  start() {
    return new Promise((ok) => this.server.listen(0, '127.0.0.1', ok));
  }

  get origin() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  stop() {
    this.server.closeAllConnections?.();
    return new Promise((ok) => this.server.close(ok));
  }
}

// ---------------------------------------------------------------------------

const redis = new Redis();
const hook = new WebhookReceiver();
const backend = new Backend(hook);
const allowedPage = new PageServer(backend, null);
const foreignPage = new PageServer(backend, null);
let gw;
let browser;

before(async () => {
  setTimeout(() => {
    console.error(`watchdog: the frontend tests ran for ${WATCHDOG_MS} ms; stopping`);
    process.exit(1);
  }, WATCHDOG_MS).unref();
  await Promise.all([redis.start(), hook.start(), allowedPage.start(), foreignPage.start()]);
  gw = new Gateway({ redis, name: 'frontend', env: { AUTHGATE_CORS_ALLOWED_ORIGINS: allowedPage.origin } });
  await gw.start();
}, { timeout: 60_000 });

after(async () => {
  await browser?.close().catch(() => {});
  await gw?.stop();
  await Promise.all([hook.stop(), allowedPage.stop(), foreignPage.stop()]);
  await redis.stop();
});

/** A fresh profile, user and webhook, seeded through the generated client. */
async function seeded(flows, api, label) {
  const admin = (await flows.clientToken(api, gw.clientId, gw.clientSecret)).access_token;
  const names = {
    application: `${label}-${suffix()}.frontend`,
    user: `${label}${suffix()}`,
    password: `first-${suffix()}`,
    email: `${label}@example.com`,
  };
  const directory = await flows.seed(api, admin, names, { url: hook.url, secret: HOOK_SECRET });
  backend.keep(`${names.user}@${directory.application}.voximplant.com`, names.user, names.password);
  return { directory, user: names.user, password: names.password, newPassword: `second-${suffix()}` };
}

test('the served document is the committed one, and strict tools accept it', { timeout: 90_000 }, async () => {
  const served = await gw.request('GET', '/openapi.json');
  assert.equal(served.status, 200);
  assert.equal(served.text, fs.readFileSync(path.join(ROOT, 'openapi/openapi.json'), 'utf8'),
    'GET /openapi.json differs from openapi/openapi.json');

  const lint = await sh(path.join(HERE, 'node_modules/.bin/redocly'),
    ['lint', '--config', 'redocly.yaml', '../../openapi/openapi.json'], { cwd: HERE });
  const said = lint.stdout + lint.stderr;
  assert.match(said, /Your API description is valid/, said);
  assert.doesNotMatch(said, /You have \d+ warnings?/, said);

  // Both generators, from the URL the gateway serves, failing on any warning.
  fs.rmSync(GENERATED, { recursive: true, force: true });
  await sh('bash', [path.join(ROOT, 'scripts/generate-clients.sh'), '--strict', '--out', GENERATED,
    gw.url('/openapi.json')]);
  assert.ok(fs.existsSync(path.join(GENERATED, 'typescript/authgate.d.ts')));
  assert.ok(fs.existsSync(path.join(GENERATED, 'python/authgate_client/client.py')));
});

/** The README's TypeScript example, as a module of src/ pointed at this gateway. */
function readmeExample() {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = readme.match(/<!-- frontend-example -->\n```ts\n([\s\S]*?)```\n<!-- \/frontend-example -->/);
  assert.ok(block, 'the README has no frontend example between its markers');
  const lines = block[1].trimEnd().split('\n');
  assert.ok(lines.length <= 12, `the README example has ${lines.length} lines`);
  return block[1]
    .replace('"./authgate.js"', '"../generated/typescript/authgate.js"')
    .replace('"http://127.0.0.1:8080"', JSON.stringify(gw.origin));
}

test('the TypeScript journey compiles under tsc --strict and runs under Node', { timeout: 90_000 }, async () => {
  fs.rmSync(path.join(HERE, 'dist'), { recursive: true, force: true });
  fs.writeFileSync(path.join(HERE, 'src/readme-example.ts'), readmeExample());
  await sh(path.join(HERE, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: HERE });
  const flows = await import(pathToFileURL(path.join(HERE, 'dist/flows.js')).href);
  const { run: journey } = await import(pathToFileURL(path.join(HERE, 'dist/scenario.js')).href);
  const api = flows.connect(gw.origin);
  const who = await seeded(flows, api, 'node');
  const steps = [];
  await journey({
    api,
    clientId: gw.clientId,
    ...who,
    hashFor: async (username, key) => backend.hash(username, key),
    codeFor: (username, purpose) => backend.code(username, purpose),
    step: (s) => steps.push(s),
  });
  // The README's ten lines log a user in too.
  const { signIn } = await import(pathToFileURL(path.join(HERE, 'dist/readme-example.js')).href);
  const readmeUser = await seeded(flows, api, 'readme');
  const webName = `${readmeUser.user}@${readmeUser.directory.application}.voximplant.com`;
  const tokens = await signIn(webName, async (key) => backend.hash(webName, key));
  assert.ok(await flows.verify(api, { bearer: tokens.accessToken }));
  assert.deepEqual(steps, [
    'one-time-key login',
    'verify the access token',
    'refresh and logout',
    'passwordless exchange',
    'password reset with the member token',
  ]);
});

test('the Python journey runs on the generated Python client', { timeout: 90_000 }, async () => {
  const { stdout } = await sh('python3', [path.join(HERE, 'python/flows.py')], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AUTHGATE_URL: gw.origin,
      AUTHGATE_CLIENT_ID: gw.clientId,
      AUTHGATE_CLIENT_SECRET: gw.clientSecret,
      AUTHGATE_PYTHON_CLIENT_DIR: path.join(GENERATED, 'python'),
      AUTHGATE_DOCUMENT: path.join(ROOT, 'openapi/openapi.json'),
    },
  });
  for (let step = 0; step <= 8; step++) assert.match(stdout, new RegExp(`^ok ${step} `, 'm'), stdout);
});

async function launch() {
  browser ??= await launchChromium(chromium);
  return browser;
}

/** Opens `page` in a fresh context whose requests may go to `allowed` origins only. */
async function openGuarded(pageServer, allowed) {
  const context = await (await launch()).newContext();
  const offHost = [];
  await context.route('**/*', (route) => {
    const origin = new URL(route.request().url()).origin;
    if (allowed.includes(origin)) return route.continue();
    offHost.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  const console = [];
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
  await page.goto(`${pageServer.origin}/`);
  const outcome = await withTimeout(
    page.waitForFunction(() => window.journey, null, { timeout: 60_000 }).then((h) => h.jsonValue()),
    'the page journey', 65_000);
  await context.close();
  return { outcome, offHost, console };
}

test('in Chromium, a page on an allowed origin logs in through the generated client', { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_BIN)`);
  assert.ok(fs.existsSync(path.join(HERE, 'dist/page.js')), 'the TypeScript test compiles dist/ first');
  const flows = await import(pathToFileURL(path.join(HERE, 'dist/flows.js')).href);
  const who = await seeded(flows, flows.connect(gw.origin), 'page');
  const config = { gateway: gw.origin, clientId: gw.clientId, ...who };

  allowedPage.config = config;
  const ok = await openGuarded(allowedPage, [allowedPage.origin, gw.origin]);
  assert.deepEqual(ok.offHost, [], 'requests to other hosts');
  assert.equal(ok.outcome.ok, true, `${ok.outcome.error}\n${ok.console.join('\n')}`);
  assert.equal(ok.outcome.steps.length, 5, JSON.stringify(ok.outcome.steps));

  // The same page on an origin the gateway does not allow: the browser refuses to
  // let it read the very first answer.
  foreignPage.config = config;
  const refused = await openGuarded(foreignPage, [foreignPage.origin, gw.origin]);
  assert.deepEqual(refused.offHost, []);
  assert.equal(refused.outcome.ok, false);
  assert.deepEqual(refused.outcome.steps, []);
  assert.match(refused.console.join('\n'), /CORS policy/, refused.console.join('\n'));
});

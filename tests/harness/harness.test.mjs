// The harness's own tests: bounded waits, a private Redis, the webhook receiver, and
// the Gateway lifecycle against a stand-in binary (fixtures/fake-gateway.mjs); the
// real binary too when it has been built (else that test is skipped, saying so).
//
//   node --test tests/harness/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  Gateway, Redis, TimeoutError, WebhookReceiver, freePort, gatewayBin, request, selfSignedCertificate,
  signature, sleep, verifySignature, waitFor, withTimeout,
} from './index.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FAKE = path.join(HERE, 'fixtures', 'fake-gateway.mjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'authgate-harness-test-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const fake = (options = {}) => new Gateway({ bin: process.execPath, args: [FAKE, 'serve'], readyTimeout: 5000, ...options });
const redisMissing = await Redis.unavailableReason();
const haveOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('waitFor returns the first truthy value and quotes the last error on timeout', async () => {
  let n = 0;
  assert.equal(await waitFor('n to reach 3', () => (++n >= 3 ? n : 0), { interval: 1 }), 3);
  const t0 = Date.now();
  await assert.rejects(
    waitFor('never', () => { throw new Error('not yet: 42'); }, { timeout: 150, interval: 10 }),
    (e) => e instanceof TimeoutError && /waiting for never: not yet: 42/.test(e.message));
  assert.ok(Date.now() - t0 < 1000);
});

test('waitFor cuts off a callee that never settles, and aborts its signal', async () => {
  let seen;
  const t0 = Date.now();
  await assert.rejects(waitFor('a hanging callee', ({ signal }) => { seen = signal; return new Promise(() => {}); }, 200),
    TimeoutError);
  assert.ok(Date.now() - t0 < 1000, 'bounded');
  assert.equal(seen.aborted, true);
});

test('waitFor ends at once when its signal aborts', async () => {
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(new Error('gone')), 50);
  const t0 = Date.now();
  await assert.rejects(waitFor('never', () => false, { timeout: 5000, signal: ctl.signal }), /gone/);
  assert.ok(Date.now() - t0 < 1000);
});

test('withTimeout passes a result through and times out otherwise', async () => {
  assert.equal(await withTimeout(Promise.resolve(7), 'seven', 100), 7);
  let aborted = null;
  await assert.rejects(withTimeout((signal) => { aborted = signal; return sleep(5000, null, { ref: false }); }, 'a slow thing', 50),
    /timed out after 50 ms: a slow thing/);
  assert.equal(aborted.aborted, true);
});

test('freePort gives a port that can be bound', async () => {
  const port = await freePort();
  const srv = net.createServer();
  await new Promise((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
  await new Promise((resolve) => srv.close(resolve));
});

test('Redis: a private redis-server answers, keeps nothing on disk, and stops', { skip: redisMissing ?? false }, async () => {
  const redis = new Redis({ url: '' });
  await redis.start();
  try {
    assert.equal(redis.external, false);
    assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await redis.command('PING'), 'PONG');
    const prefix = redis.newPrefix('selftest');
    assert.notEqual(prefix, redis.newPrefix('selftest'));
    assert.equal(await redis.command('SET', `${prefix}k`, 'v é'), 'OK');
    assert.equal(await redis.command('GET', `${prefix}k`), 'v é');
    assert.deepEqual(await redis.command('KEYS', `${prefix}*`), [`${prefix}k`]);
    assert.deepEqual(await redis.keys(prefix), [`${prefix}k`]);
    assert.equal(await redis.command('GET', `${prefix}missing`), null);
    await assert.rejects(redis.command('NOSUCHCOMMAND'), /redis: ERR/);
    assert.equal(await redis.command('CONFIG', 'GET', 'appendonly').then((r) => r[1]), 'no');

    // The same server as an external one (as AUTHGATE_TEST_REDIS_URL would name it).
    const external = new Redis({ url: redis.url });
    await external.start();
    assert.equal(external.external, true);
    assert.equal(await external.command('GET', `${prefix}k`), 'v é');
    await external.stop(); // no-op
    assert.equal(await redis.deleteKeys(prefix), 1);
    assert.deepEqual(await redis.keys(prefix), []);
    assert.equal(await redis.command('PING'), 'PONG');
  } finally {
    const dir = redis.dir;
    const pid = redis.server.pid;
    await redis.stop();
    assert.equal(fs.existsSync(dir), false, 'its directory is removed');
    assert.throws(() => process.kill(pid, 0), 'the server is gone');
  }
});

test('Redis: a missing redis-server fails fast with advice', async () => {
  const redis = new Redis({ url: '', bin: path.join(tmp, 'no-such-redis-server') });
  await assert.rejects(redis.start(), /cannot run .*apt-get install redis-server/);
});

test('WebhookReceiver records deliveries, answers as told, and checks signatures', async () => {
  // The gateway's own test vector (crates/delivery/src/webhook.rs).
  assert.equal(signature('shh', 1700000000, '{"a":1}'),
    't=1700000000,v1=be310eac0f84daf469d630347a950258de768b365563ab68f29f2f783473d547');
  let fail = true;
  const hook = new WebhookReceiver({ reply: () => (fail ? 503 : 204) });
  await hook.start();
  try {
    const body = JSON.stringify({ payload: { purpose: 'reset_password', one_time_password_token: 'abc123' } });
    const t = Math.floor(Date.now() / 1000);
    const send = () => request(hook.url, { method: 'POST', body, headers: {
      'content-type': 'application/json', 'x-authgate-signature': signature('whsec', t, body) } });
    assert.equal((await send()).status, 503);
    fail = false;
    const mark = hook.mark();
    assert.equal((await send()).status, 204);
    const d = await hook.waitFor((x) => x.body?.payload?.purpose === 'reset_password', { since: mark, timeout: 1000 });
    assert.equal(d.status, 204);
    assert.equal(d.url, '/hooks/otp');
    assert.equal(verifySignature(d, 'whsec', { toleranceSecs: 60 }), true);
    assert.equal(verifySignature(d, 'wrong'), false);
    assert.equal(hook.deliveries.length, 2);
    await assert.rejects(hook.waitFor((x) => x.body?.nope, { timeout: 100 }), /2 deliveries recorded/);
  } finally {
    await hook.stop();
  }
});

test('Gateway: starts, hands over a clean environment, and stops with SIGTERM', async () => {
  process.env.AUTHGATE_SHOULD_NOT_LEAK = '1';
  const gw = fake({ env: { AUTHGATE_CLIENT_ID: 'suite-a', AUTHGATE_EXTRA: 'x', AUTHGATE_TOKEN_SECRET: undefined } });
  try {
    await gw.start();
    assert.match(gw.origin, /^http:\/\/127\.0\.0\.1:\d+$/);
    const { body } = await gw.request('GET', '/env');
    assert.deepEqual(body.argv, ['serve']);
    assert.equal(body.env.AUTHGATE_BIND, `127.0.0.1:${gw.port}`);
    assert.equal(body.env.AUTHGATE_CLIENT_ID, 'suite-a');
    assert.equal(body.env.AUTHGATE_CLIENT_SECRET, gw.clientSecret);
    assert.equal(body.env.AUTHGATE_EXTRA, 'x');
    assert.equal(body.env.NO_COLOR, '1');
    assert.equal('AUTHGATE_TOKEN_SECRET' in body.env, false, 'undefined removes a default');
    assert.equal('AUTHGATE_SHOULD_NOT_LEAK' in body.env, false);
    assert.equal('AUTHGATE_REDIS_URL' in body.env, false);
    assert.equal(await gw.clientToken(), 'fake-client_credentials');
    assert.equal(await gw.clientToken('implicit'), 'fake-implicit');
    await gw.waitForLog(/fake authgate listening on 127\.0\.0\.1:\d+ \(serve\)/, { timeout: 1000 });
  } finally {
    delete process.env.AUTHGATE_SHOULD_NOT_LEAK;
    const exit = await gw.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(gw.log, /SIGTERM: shutting down/);
  }
});

test('Gateway: a gateway that exits before it is ready is tried again on another port, 3 times in all', async () => {
  const counter = path.join(tmp, 'starts-a');
  const gw = fake({ env: { FAKE_FAIL_TIMES: '2', FAKE_COUNTER: counter } });
  try {
    await gw.start();
    assert.equal(fs.readFileSync(counter, 'utf8'), '3');
  } finally {
    await gw.stop();
  }
  const counter2 = path.join(tmp, 'starts-b');
  const never = fake({ env: { FAKE_FAIL_TIMES: '9', FAKE_COUNTER: counter2 } });
  await assert.rejects(never.start(), /exited with code 1 before it was ready[\s\S]*Address already in use/);
  assert.equal(fs.readFileSync(counter2, 'utf8'), '3');
});

test('Gateway: one that never gets ready fails once, with its log; a missing binary fails at once', async () => {
  const counter = path.join(tmp, 'starts-c');
  const gw = fake({ readyTimeout: 300, env: { FAKE_NEVER_READY: '1', FAKE_COUNTER: counter } });
  await assert.rejects(gw.start(), /health\/ready[\s\S]*--- gateway log ---[\s\S]*fake authgate listening/);
  assert.equal(fs.readFileSync(counter, 'utf8'), '1');
  assert.equal(gw.running, false);
  const missing = new Gateway({ bin: path.join(tmp, 'no-such-authgate') });
  const t0 = Date.now();
  await assert.rejects(missing.start(), (e) => e.code === 'ENOENT' && /set AUTHGATE_BIN/.test(e.message));
  assert.ok(Date.now() - t0 < 2000);
});

test('Gateway: stop() escalates to SIGKILL when SIGTERM is ignored', async () => {
  const gw = fake({ env: { FAKE_IGNORE_TERM: '1' } });
  await gw.start();
  const t0 = Date.now();
  const exit = await gw.stop({ graceMs: 300 });
  assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
  assert.ok(Date.now() - t0 < 3000);
  assert.match(gw.log, /SIGTERM ignored/);
});

test('Gateway: tls and redis options', { skip: !haveOpenssl && 'openssl is not installed' }, async () => {
  const tlsDir = fs.mkdtempSync(path.join(tmp, 'tls-'));
  const tls = selfSignedCertificate(tlsDir);
  const redis = { url: 'redis://127.0.0.1:1', newPrefix: (label) => `p-${label}:` }; // only its url and prefixes are read
  const a = fake({ tls, redis, name: 'replica-a' });
  const b = fake({ tls, redis, redisPrefix: a.redisPrefix, name: 'replica-b' });
  try {
    await Promise.all([a.start(), b.start()]);
    assert.match(a.origin, /^https:\/\//);
    assert.match(a.wsOrigin, /^wss:\/\//);
    const { body } = await a.request('GET', '/env');
    assert.equal(body.env.AUTHGATE_TLS_CERT, tls.cert);
    assert.equal(body.env.AUTHGATE_REDIS_URL, 'redis://127.0.0.1:1');
    assert.equal(body.env.AUTHGATE_REDIS_PREFIX, 'p-replica-a:');
    assert.equal((await b.request('GET', '/env')).body.env.AUTHGATE_REDIS_PREFIX, 'p-replica-a:', 'shared on request');
    // Without the certificate the connection is refused.
    await assert.rejects(request(`${a.origin}/health/ready`), /self-signed|certificate/);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

const BIN = gatewayBin();
const binMissing = fs.existsSync(BIN) ? false : `no gateway binary at ${BIN} (cargo build -p authgate-gateway, or set AUTHGATE_BIN)`;

test('the real gateway binary starts on the embedded store and stops cleanly', { skip: binMissing, timeout: 30_000 }, async () => {
  const gw = new Gateway();
  try {
    await gw.start();
    assert.equal((await gw.request('GET', '/health/live')).status, 200);
    const doc = await gw.request('GET', '/openapi.json');
    assert.equal(doc.status, 200);
    assert.match(doc.body.openapi, /^3\./);
    assert.ok(await gw.clientToken());
  } finally {
    const exit = await gw.stop();
    assert.equal(exit?.signal, null, `stopped by SIGTERM alone:\n${gw.log}`);
  }
});

test('the real gateway binary runs on Redis (private, or AUTHGATE_TEST_REDIS_URL) under its own prefix', { skip: binMissing || redisMissing || false, timeout: 30_000 }, async () => {
  const redis = new Redis();
  await redis.start();
  const gw = new Gateway({ redis });
  try {
    await gw.start();
    const token = await gw.clientToken();
    assert.ok(token);
    const settings = await gw.request('GET', '/v2/settings/account-authentication', { token });
    assert.equal(settings.status, 200, settings.text);
    assert.ok((await redis.keys(gw.redisPrefix)).length > 0, 'the gateway wrote to Redis under its prefix');
    if (!redis.external) {
      const keys = await redis.command('KEYS', '*');
      assert.deepEqual(keys.filter((k) => !k.startsWith(gw.redisPrefix)), [], `every key under ${gw.redisPrefix}`);
    }
  } finally {
    await gw.stop();
    if (redis.external) await redis.deleteKeys(gw.redisPrefix);
    await redis.stop();
  }
});

test('the real gateway binary serves https:// with a throwaway certificate', { skip: binMissing || (!haveOpenssl && 'openssl is not installed'), timeout: 30_000 }, async () => {
  const tls = selfSignedCertificate(fs.mkdtempSync(path.join(tmp, 'tls-real-')));
  const gw = new Gateway({ tls, args: ['serve', '--demo'] });
  try {
    await gw.start();
    assert.match(gw.origin, /^https:/);
    assert.equal((await gw.request('GET', '/health/live')).status, 200);
  } finally {
    await gw.stop();
  }
});

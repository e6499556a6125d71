// Drives the real `@elasticpath/js-sdk` (npm) against a real authgate gateway on a
// real Redis: one-time password tokens, passwordless login and a password reset,
// through the SDK's own methods only. Everything runs on loopback; every wait is
// bounded. The gateway, the Redis, the webhook receiver and the bounded waits are the
// shared harness's (tests/harness/); this file keeps the SDK and the tests.
//
//   cd tests/js && npm ci && npm test
//
// Needs: `redis-server` (apt-get install redis-server; a private one is started for
// this file) unless AUTHGATE_TEST_REDIS_URL is set, and the gateway binary (cargo
// build -p authgate-gateway).
//
// Environment:
//   AUTHGATE_BIN             gateway binary (default ../../target/debug/authgate)
//   AUTHGATE_TEST_REDIS_URL  run the gateway on this Redis (unique key prefix, removed
//                            afterwards) instead of a private redis-server
//   AUTHGATE_TEST_VERBOSE=1  print every HTTP exchange and the gateway's log

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { gateway as elasticPath, MemoryStorageFactory } from '@elasticpath/js-sdk';

import { Gateway, Redis, WAIT_MS, WebhookReceiver, verifySignature, waitFor, withTimeout } from '../harness/index.mjs';

const require = createRequire(import.meta.url);
const SDK_VERSION = require('@elasticpath/js-sdk/package.json').version;

const VERBOSE = !!process.env.AUTHGATE_TEST_VERBOSE;

const CLIENT_ID = 'authgate-js-sdk';
const HOOK_SECRET = 'whsec-js-sdk-test';
const USERNAME = 'john.doe@banks.com';
const OLD_PASSWORD = 'old-password-1';
const NEW_PASSWORD = 'new-password-2';

// ---------------------------------------------------------------------------
// The SDK, with a recording fetch (the SDK's own `custom_fetch` option) so that
// every HTTP exchange it makes is visible: the SDK resolves with the body only.

const exchanges = [];

async function recordingFetch(url, options = {}) {
  const u = new URL(url);
  const entry = {
    method: options.method || 'GET',
    path: u.pathname + u.search,
    headers: { ...(options.headers || {}) },
    body: typeof options.body === 'string' ? options.body : options.body == null ? null : '<non-string body>',
    status: null,
    responseBody: null,
  };
  exchanges.push(entry);
  const res = await fetch(url, { ...options, signal: AbortSignal.timeout(WAIT_MS) });
  entry.status = res.status;
  // Read the body once here and hand the SDK an equivalent Response.
  const text = await res.text();
  entry.responseBody = text;
  if (VERBOSE) console.log(describe(entry));
  return new Response(res.status === 204 ? null : text, { status: res.status, statusText: res.statusText, headers: res.headers });
}

function describe(e) {
  return `${e.method} ${e.path}\n  request headers: ${JSON.stringify(e.headers)}\n  request body: ${e.body}\n  -> ${e.status} ${e.responseBody}`;
}

// Runs one SDK call; returns what the SDK resolved with and the exchanges it made.
async function sdkCall(what, fn) {
  const from = exchanges.length;
  const value = await withTimeout(fn(), what, 30_000);
  return { value, sent: exchanges.slice(from) };
}

// Runs one SDK call that must fail; returns what the SDK rejected with and the exchanges.
async function sdkRejects(what, fn) {
  const from = exchanges.length;
  let value;
  let rejected = false;
  try {
    value = await withTimeout(fn(), what, 30_000);
  } catch (e) {
    rejected = true;
    value = e;
  }
  const sent = exchanges.slice(from);
  assert.ok(rejected, `${what}: the SDK resolved (${JSON.stringify(value)}) but should have rejected; exchanges:\n${sent.map(describe).join('\n')}`);
  return { error: value, sent };
}

// The last exchange of a call to `pathPart` (the SDK may authenticate first).
function lastTo(sent, method, pathPart) {
  const hits = sent.filter((e) => e.method === method && e.path.includes(pathPart));
  assert.ok(hits.length > 0, `no ${method} ${pathPart} among:\n${sent.map(describe).join('\n')}`);
  return hits[hits.length - 1];
}

function sdk(options) {
  return elasticPath({
    host: `127.0.0.1:${gw.port}`,
    protocol: 'http',
    client_id: CLIENT_ID,
    storage: new MemoryStorageFactory(),
    custom_fetch: recordingFetch,
    disableCart: true,
    // Shorter back-off than the SDK's 1 s default between its own retries of 401/429.
    retryDelay: 100,
    retryJitter: 20,
    ...options,
  });
}

// ---------------------------------------------------------------------------

// The harness kills the gateway and redis-server when this process exits or is signalled.
const redis = new Redis();
const gw = new Gateway({ env: { AUTHGATE_CLIENT_ID: CLIENT_ID }, redis, name: 'js-sdk' });
const hook = new WebhookReceiver();

before(async () => {
  await Promise.all([hook.start(), redis.start()]);
  await gw.start();
  await gw.waitForLog(/store="redis"/); // on the Redis, not the embedded store
});

after(async () => {
  const t0 = Date.now();
  await gw.stop();
  if (VERBOSE) console.log(`gateway stopped in ${Date.now() - t0} ms`);
  await hook.stop();
  if (redis.external) await redis.deleteKeys(gw.redisPrefix);
  await redis.stop();
});

test(`@elasticpath/js-sdk ${SDK_VERSION}: passwordless login and password reset against authgate`, { timeout: 60_000 }, async (t) => {
  // Every step runs (later ones may fail for want of an earlier one's ids); on any
  // failure the SDK's HTTP exchanges and the gateway's log are printed.
  let failures = 0;
  const step = (name, fn) => t.test(name, async (st) => {
    try {
      await fn(st);
    } catch (e) {
      failures += 1;
      throw e;
    }
  });
  t.after(() => {
    if (failures > 0) {
      console.error(`--- HTTP exchanges made by the SDK ---\n${exchanges.map(describe).join('\n')}`);
    }
    if (failures > 0 || VERBOSE) {
      console.error(`--- gateway log ---\n${gw.log}`);
    }
  });

  const admin = sdk({ name: 'admin', client_secret: gw.clientSecret }); // client_credentials
  const shopper = sdk({ name: 'shopper' }); // implicit grant, as a storefront runs it

  let realm, profileId, userId, credentialId, integrationId;

  await step('AccountAuthenticationSettings.Get gives the realm', async () => {
    const { value, sent } = await sdkCall('settings', () => admin.AccountAuthenticationSettings.Get());
    const auth = lastTo(sent, 'POST', '/oauth/access_token');
    assert.equal(auth.status, 200, 'client_credentials token');
    assert.equal(auth.headers['Content-Type'], 'application/x-www-form-urlencoded');
    assert.equal(lastTo(sent, 'GET', '/v2/settings/account-authentication').status, 200);
    assert.equal(value.data.type, 'account_authentication_settings');
    assert.equal(value.data.relationships.authentication_realm.data.type, 'authentication_realm');
    realm = value.data.relationships.authentication_realm.data.id;
    assert.ok(typeof realm === 'string' && realm.length > 0, 'realm id');
  });

  await step('PasswordProfile.Create with enable_one_time_password_token', async () => {
    const { value, sent } = await sdkCall('create profile', () =>
      admin.PasswordProfile.Create(realm, {
        data: { type: 'password_profile', name: 'Customers', username_format: 'email', enable_one_time_password_token: true },
      }));
    assert.equal(lastTo(sent, 'POST', `/v2/authentication-realms/${realm}/password-profiles`).status, 201);
    assert.equal(value.data.type, 'password_profile');
    assert.equal(value.data.name, 'Customers');
    assert.equal(value.data.username_format, 'email');
    assert.equal(value.data.enable_one_time_password_token, true);
    profileId = value.data.id;
    assert.ok(profileId);

    const got = await sdkCall('get profile', () => admin.PasswordProfile.Get({ realmId: realm, profileId }));
    assert.equal(lastTo(got.sent, 'GET', `/password-profiles/${profileId}`).status, 200);
    assert.equal(got.value.data.id, profileId);
  });

  await step('an implicit (storefront) token cannot create a password profile', async () => {
    const { error, sent } = await sdkRejects('shopper creates a profile', () =>
      shopper.PasswordProfile.Create(realm, {
        data: { type: 'password_profile', name: 'Nope', username_format: 'any', enable_one_time_password_token: false },
      }));
    const auth = lastTo(sent, 'POST', '/oauth/access_token');
    assert.match(auth.body, /grant_type=implicit/);
    assert.equal(auth.status, 200, 'implicit token');
    assert.equal(lastTo(sent, 'POST', '/password-profiles').status, 403);
    assert.equal(error.errors[0].status, '403');
  });

  await step('UserAuthenticationInfo.Create and UserAuthenticationPasswordProfile.Create', async () => {
    const user = await sdkCall('create user', () =>
      admin.UserAuthenticationInfo.Create(realm, {
        data: { type: 'user_authentication_info', name: 'John Doe', email: USERNAME },
      }));
    assert.equal(lastTo(user.sent, 'POST', '/user-authentication-info').status, 201);
    assert.equal(user.value.data.type, 'user_authentication_info');
    assert.equal(user.value.data.name, 'John Doe');
    assert.equal(user.value.data.email, USERNAME);
    userId = user.value.data.id;
    assert.ok(userId);

    const cred = await sdkCall('create credential', () =>
      admin.UserAuthenticationPasswordProfile.Create(realm, userId, {
        data: {
          type: 'user_authentication_password_profile_info',
          password_profile_id: profileId,
          username: USERNAME,
          password: OLD_PASSWORD,
        },
      }));
    assert.equal(lastTo(cred.sent, 'POST', '/user-authentication-password-profile-info').status, 201);
    assert.equal(cred.value.data.type, 'user_authentication_password_profile_info');
    assert.equal(cred.value.data.password_profile_id, profileId);
    assert.equal(cred.value.data.username, USERNAME);
    assert.equal(cred.value.data.password, undefined, 'the password is never returned');
    credentialId = cred.value.data.id;
    assert.ok(credentialId);
  });

  await step('Integrations.Create: a webhook observing one-time-password-token-request.created', async () => {
    const { value, sent } = await sdkCall('create integration', () =>
      admin.Integrations.Create({
        name: 'One Time Password notification',
        description: 'Send one time password notification',
        enabled: true,
        integration_type: 'webhook',
        observes: ['one-time-password-token-request.created'],
        configuration: { url: hook.url, secret_key: HOOK_SECRET },
      }));
    const req = lastTo(sent, 'POST', '/v2/integrations');
    assert.equal(JSON.parse(req.body).data.type, 'integration', 'the SDK adds type');
    assert.equal(req.status, 201);
    assert.equal(value.data.type, 'integration');
    assert.equal(value.data.integration_type, 'webhook');
    assert.equal(value.data.enabled, true);
    assert.deepEqual(value.data.observes, ['one-time-password-token-request.created']);
    assert.equal(value.data.configuration.url, hook.url);
    integrationId = value.data.id;
    assert.ok(integrationId);
  });

  await step('AccountAuthenticationSettings.Update: account_member_self_management update_only', async () => {
    const { value, sent } = await sdkCall('update settings', () =>
      admin.AccountAuthenticationSettings.Update({ account_member_self_management: 'update_only' }));
    const req = lastTo(sent, 'PUT', '/v2/settings/account-authentication');
    assert.equal(JSON.parse(req.body).data.type, 'account_authentication_settings', 'the SDK adds type');
    assert.equal(req.status, 200);
    assert.equal(value.data.account_member_self_management, 'update_only');
    assert.equal(value.data.relationships.authentication_realm.data.id, realm);
  });

  async function requestCode(purpose) {
    const skip = hook.mark();
    const { value, sent } = await sdkCall(`request a ${purpose} code`, () =>
      shopper.OneTimePasswordTokenRequest.Create(realm, profileId, {
        type: 'one_time_password_token_request',
        username: USERNAME,
        purpose,
      }));
    const req = lastTo(sent, 'POST', `/password-profiles/${profileId}/one-time-password-token-request`);
    assert.equal(req.status, 202);
    assert.equal(req.responseBody, '', '202 with an empty body');
    // The SDK's parseJSON falls back to the string '{}' for an empty body.
    assert.equal(value, '{}');

    const d = await hook.waitFor((x) => x.body?.payload?.purpose === purpose,
      { since: skip, what: `a webhook delivery with purpose ${purpose}` });
    assert.equal(d.method, 'POST');
    assert.equal(d.headers['x-moltin-secret-key'], HOOK_SECRET);
    assert.ok(verifySignature(d, HOOK_SECRET),
      `X-Authgate-Signature ${d.headers['x-authgate-signature']}: not t=<unix>,v1=<HMAC of "<t>.<body>" keyed by the secret>`);
    const b = d.body;
    assert.equal(b.triggered_by, 'one-time-password-token-request.created');
    assert.equal(b.integration.id, integrationId);
    assert.equal(b.integration.integration_type, 'webhook');
    const p = b.payload;
    assert.equal(p.authentication_realm_id, realm);
    assert.equal(p.password_profile_id, profileId);
    assert.equal(p.purpose, purpose);
    assert.equal(p.user_authentication_info.id, userId);
    assert.equal(p.user_authentication_info.email, USERNAME);
    assert.equal(p.user_authentication_password_profile_info.id, credentialId);
    assert.equal(p.user_authentication_password_profile_info.username, USERNAME);
    assert.match(p.one_time_password_token, /^[a-z0-9]{6}$/);
    return p.one_time_password_token;
  }

  function assertTokenResponse(value) {
    assert.equal(value.data.length, 1);
    const tok = value.data[0];
    assert.equal(tok.type, 'account_management_authentication_token');
    assert.ok(tok.account_id, 'account_id');
    assert.equal(tok.account_name, 'John Doe');
    assert.match(tok.token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
    assert.ok(!Number.isNaN(Date.parse(tok.expires)), 'expires is a date');
    assert.ok(Date.parse(tok.expires) > Date.now());
    assert.equal(value.meta.account_member_id, userId);
    assert.equal(value.meta.results.total, 1);
    const claims = JSON.parse(Buffer.from(tok.token.split('.')[1], 'base64url').toString('utf8'));
    assert.equal(claims.sub, userId);
    assert.equal(claims.realm_id, realm);
    assert.equal(claims.scope, tok.account_id);
    return tok.token;
  }

  function exchangeCode(code) {
    return shopper.AccountMembers.GenerateAccountToken({
      type: 'account_management_authentication_token',
      authentication_mechanism: 'passwordless',
      password_profile_id: profileId,
      username: USERNAME,
      one_time_password_token: code,
    });
  }

  function exchangePassword(password) {
    return shopper.AccountMembers.GenerateAccountToken({
      type: 'account_management_authentication_token',
      authentication_mechanism: 'password',
      password_profile_id: profileId,
      username: USERNAME,
      password,
    });
  }

  await step('passwordless: OneTimePasswordTokenRequest.Create, webhook, AccountMembers.GenerateAccountToken', async () => {
    const code = await requestCode('passwordless_authentication');
    const { value, sent } = await sdkCall('exchange the code', () => exchangeCode(code));
    assert.equal(lastTo(sent, 'POST', '/v2/account-members/tokens').status, 201);
    assertTokenResponse(value);

    // Single use: the same code again is refused.
    const again = await sdkRejects('exchange the same code again', () => exchangeCode(code));
    assert.equal(lastTo(again.sent, 'POST', '/v2/account-members/tokens').status, 401);
    assert.equal(again.error.errors[0].status, '401');
  });

  await step('password reset: reset_password code, exchange, UserAuthenticationPasswordProfile.Update with the token', async () => {
    const code = await requestCode('reset_password');
    const exchanged = await sdkCall('exchange the reset code', () => exchangeCode(code));
    assert.equal(lastTo(exchanged.sent, 'POST', '/v2/account-members/tokens').status, 201);
    const memberToken = assertTokenResponse(exchanged.value);

    const { value, sent } = await sdkCall('update the password', () =>
      shopper.UserAuthenticationPasswordProfile.Update(
        realm,
        userId,
        credentialId,
        { data: { id: credentialId, type: 'user_authentication_password_profile_info', password: NEW_PASSWORD } },
        null,
        memberToken,
      ));
    const req = lastTo(sent, 'PUT', `/user-authentication-info/${userId}/user-authentication-password-profile-info/${credentialId}`);
    assert.equal(req.headers['EP-Account-Management-Authentication-Token'], memberToken, 'the SDK sends the member token header');
    assert.equal(req.status, 200);
    assert.equal(value.data.id, credentialId);
    assert.equal(value.data.type, 'user_authentication_password_profile_info');
    assert.equal(value.data.username, USERNAME);
    assert.equal(value.data.password, undefined, 'the password is never returned');
  });

  await step('the new password works through the password mechanism, the old one does not', async () => {
    const ok = await sdkCall('log in with the new password', () => exchangePassword(NEW_PASSWORD));
    assert.equal(lastTo(ok.sent, 'POST', '/v2/account-members/tokens').status, 201);
    assertTokenResponse(ok.value);

    // The SDK answers a 401 by fetching a new client token and sending the same
    // request again, up to fetchMaxAttempts (4) times: one wrong password through
    // the SDK reaches the gateway as 4 wrong guesses.
    const bad = await sdkRejects('log in with the old password', () => exchangePassword(OLD_PASSWORD));
    const tries = bad.sent.filter((e) => e.method === 'POST' && e.path === '/v2/account-members/tokens');
    assert.ok(tries.length >= 1);
    for (const e of tries) assert.equal(e.status, 401);
    assert.equal(bad.error.errors[0].status, '401');
  });

  await step('Integrations.GetLogs shows the successful deliveries', async () => {
    const logs = await waitFor('two successful delivery logs', async () => {
      const { value } = await sdkCall('integration logs', () => admin.Integrations.GetLogs(integrationId));
      return value.data.filter((l) => l.succeeded).length >= 2 ? value : null;
    });
    for (const l of logs.data) {
      assert.equal(l.type, 'integration_log');
      assert.equal(l.relationships.integration.data.id, integrationId);
    }
    assert.ok(logs.data.filter((l) => l.succeeded).every((l) => l.status_code === 204));
  });

});

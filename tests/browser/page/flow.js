// The docs' flow (one-time key authorization), and the SDK's other login calls,
// as functions the test calls one by one. Each returns a plain object, never
// throws, and gives up after a bounded wait, so a hanging SDK promise shows up as
// `{ timedOut: true }` instead of a stuck test.
(function () {
  'use strict';

  const WAIT_MS = 10000;
  const log = (line) => {
    document.getElementById('log').textContent += line + '\n';
  };

  // AuthResult and RefreshTokenResult events, in order (tokens left out).
  const events = [];
  window.sdkEvents = events;

  function plain(e) {
    if (e instanceof Error) return { error: String(e.message || e) };
    if (e === undefined || e === null) return e;
    const out = {};
    for (const k of ['name', 'result', 'code', 'key', 'displayName', 'tokens', 'version']) {
      if (e[k] !== undefined) out[k] = e[k];
    }
    return out;
  }

  // Settles a promise into { ok, value } / { ok: false, value } / { timedOut }.
  function settle(promise, ms = WAIT_MS) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ timedOut: true }), ms);
      Promise.resolve()
        .then(() => promise)
        .then(
          (value) => { clearTimeout(timer); resolve({ ok: true, value: plain(value) }); },
          (value) => { clearTimeout(timer); resolve({ ok: false, value: plain(value) }); },
        );
    });
  }

  let client = null;

  window.flow = {
    sdkVersion() {
      return VoxImplant.version || (VoxImplant.getInstance() && VoxImplant.getInstance().version);
    },

    // init({serverIp}) and connect(): the only change from the docs' page.
    async connect(serverIp) {
      client = VoxImplant.getInstance();
      client.addEventListener(VoxImplant.Events.AuthResult, (e) => {
        events.push(plain(e));
        log(`AuthResult result=${e.result} code=${e.code}`);
      });
      client.addEventListener(VoxImplant.Events.RefreshTokenResult, (e) => {
        events.push(plain(e));
        log(`RefreshTokenResult result=${e.result} code=${e.code}`);
      });
      const init = await settle(client.init(serverIp === undefined ? {} : { serverIp }));
      if (!init.ok) return { step: 'init', ...init };
      const connected = await settle(client.connect());
      return { step: 'connect', ...connected };
    },

    // The docs' example, step by step: request a key, on AuthResult 302 ask the
    // backend for the token (it computes MD5(key|HA1)), log in with it.
    docsKeyLogin(username, backendUrl) {
      const run = new Promise((resolve, reject) => {
        const onAuth = (e) => {
          if (e.result) {
            client.removeEventListener(VoxImplant.Events.AuthResult, onAuth);
            resolve(e);
          } else if (e.code == 302) {
            fetch(backendUrl, {
              method: 'POST',
              headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
              body: new URLSearchParams({ key: e.key, username }).toString(),
            })
              .then((r) => r.text())
              .then((token) => client.loginWithOneTimeKey(username, token))
              .catch(() => {}); // the AuthResult event reports the outcome
          } else {
            client.removeEventListener(VoxImplant.Events.AuthResult, onAuth);
            reject(e);
          }
        };
        client.addEventListener(VoxImplant.Events.AuthResult, onAuth);
        client.requestOneTimeLoginKey(username);
      });
      return settle(run);
    },

    requestOneTimeLoginKey(username) {
      return settle(client.requestOneTimeLoginKey(username));
    },
    loginWithOneTimeKey(username, hash) {
      return settle(client.loginWithOneTimeKey(username, hash));
    },
    login(username, password) {
      return settle(client.login(username, password));
    },
    loginWithToken(username, accessToken) {
      return settle(client.loginWithToken(username, accessToken));
    },
    tokenRefresh(username, refreshToken, deviceToken) {
      return settle(client.tokenRefresh(username, refreshToken, deviceToken));
    },
    disconnect() {
      const closed = new Promise((resolve) =>
        client.addEventListener(VoxImplant.Events.ConnectionClosed, (e) => resolve(e)));
      client.disconnect();
      return settle(closed);
    },
  };
})();

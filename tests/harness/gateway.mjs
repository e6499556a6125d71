// The real authgate binary, started for a test on a free loopback port.
//
//   const gw = new Gateway({ env: { AUTHGATE_CLIENT_ID: 'my-suite' }, redis });
//   await gw.start();                       // resolves once GET /health/ready answers 200
//   const r = await gw.request('POST', '/oauth/access_token', { form: {
//     grant_type: 'client_credentials', client_id: gw.clientId, client_secret: gw.clientSecret } });
//   await gw.stop();                        // SIGTERM, then SIGKILL after 5 s
//
// The child gets a clean environment (PATH, HOME and a few harmless variables of
// this process, never its AUTHGATE_* but AUTHGATE_LOG), so a developer's shell cannot
// change a test.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { request } from './http.mjs';
import { ManagedProcess } from './process.mjs';
import { WAIT_MS, freePort, retryOnPortRace, waitFor } from './wait.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VERBOSE = !!process.env.AUTHGATE_TEST_VERBOSE;

/** target/debug/authgate of this repository. */
export const DEFAULT_GATEWAY_BIN = path.resolve(HERE, '../../target/debug/authgate');

/** The binary to test: AUTHGATE_BIN (resolved against the working directory) or DEFAULT_GATEWAY_BIN. */
export function gatewayBin() {
  return process.env.AUTHGATE_BIN ? path.resolve(process.env.AUTHGATE_BIN) : DEFAULT_GATEWAY_BIN;
}

// Variables of this process that the gateway may see.
const PASSTHROUGH = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'RUST_BACKTRACE', 'LLVM_PROFILE_FILE'];

export class Gateway {
  /**
   * @param {object} [options]
   * @param {string} [options.bin]       default gatewayBin()
   * @param {string[]} [options.args]    default ['serve']
   * @param {object} [options.env]       extra variables (AUTHGATE_*); a value of undefined removes
   *                                     a default (e.g. AUTHGATE_CLIENT_SECRET, to let it generate one)
   * @param {{cert: string, key: string, pem?: string}} [options.tls]  serve https:// and wss://
   * @param {import('./redis.mjs').Redis} [options.redis]  run on this Redis (started), under
   *                                     a key prefix of its own
   * @param {string} [options.redisPrefix]  that prefix instead of a new one (to make replicas share state)
   * @param {string} [options.name]      for messages and the verbose log prefix
   * @param {number} [options.readyTimeout]  ms to wait for readiness per attempt (default WAIT_MS)
   * @param {boolean} [options.echo]     copy its log to stderr (default: AUTHGATE_TEST_VERBOSE)
   */
  constructor({ bin = gatewayBin(), args = ['serve'], env = {}, tls, redis, redisPrefix, name = 'gateway',
    readyTimeout = WAIT_MS, echo = VERBOSE } = {}) {
    this.bin = bin;
    this.args = args;
    this.extraEnv = env;
    this.tls = tls ? { ...tls, pem: tls.pem ?? fs.readFileSync(tls.cert, 'utf8') } : null;
    this.redis = redis ?? null;
    this.redisPrefix = redis ? (redisPrefix ?? redis.newPrefix(name)) : null;
    this.name = name;
    this.readyTimeout = readyTimeout;
    this.echo = echo;
    this.proc = null;
    this.port = 0;
    this.env = null;
    this.lastLog = '';
  }

  get origin() {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** The gateway's WebSocket base (ws:// or wss://). */
  get wsOrigin() {
    return `${this.tls ? 'wss' : 'ws'}://127.0.0.1:${this.port}`;
  }

  url(pathAndQuery = '/') {
    return `${this.origin}${pathAndQuery}`;
  }

  /** Everything the running (or last) process printed on stdout and stderr. */
  get log() {
    return this.proc ? this.proc.log.text() : this.lastLog;
  }

  /** A position in the log, for logSince(). */
  logMark() {
    return this.proc ? this.proc.log.mark() : 0;
  }

  logSince(mark) {
    return this.proc ? this.proc.log.since(mark) : '';
  }

  /** Waits (bounded) until the log after `since` matches `pattern`; resolves with the match. */
  waitForLog(pattern, { since = 0, timeout = WAIT_MS } = {}) {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return waitFor(`${this.name} log to match ${re}`, () => this.logSince(since).match(re), { timeout });
  }

  get clientId() {
    return this.env?.AUTHGATE_CLIENT_ID;
  }

  get clientSecret() {
    return this.env?.AUTHGATE_CLIENT_SECRET;
  }

  get running() {
    return !!this.proc?.running;
  }

  buildEnv() {
    const env = {};
    for (const k of PASSTHROUGH) if (process.env[k] !== undefined) env[k] = process.env[k];
    Object.assign(env, {
      NO_COLOR: '1',
      AUTHGATE_LOG: 'info,poem=warn',
      AUTHGATE_CLIENT_ID: 'authgate-test',
      AUTHGATE_CLIENT_SECRET: `test-client-secret-${randomBytes(12).toString('hex')}`,
      AUTHGATE_TOKEN_SECRET: `test-token-secret-${randomBytes(24).toString('hex')}`,
    });
    if (this.redis) {
      if (!this.redis.url) throw new Error(`${this.name}: start the Redis before the gateway`);
      env.AUTHGATE_REDIS_URL = this.redis.url;
      env.AUTHGATE_REDIS_PREFIX = this.redisPrefix;
    }
    for (const [k, v] of Object.entries(this.extraEnv)) {
      if (v === undefined || v === null) delete env[k];
      else env[k] = String(v);
    }
    // A developer's AUTHGATE_LOG wins over a suite's, to debug a run.
    if (process.env.AUTHGATE_LOG) env.AUTHGATE_LOG = process.env.AUTHGATE_LOG;
    env.AUTHGATE_BIND = `127.0.0.1:${this.port}`;
    if (this.tls) {
      env.AUTHGATE_TLS_CERT = this.tls.cert;
      env.AUTHGATE_TLS_KEY = this.tls.key;
    }
    return env;
  }

  /**
   * Starts the gateway and waits until GET /health/ready answers 200. A port found free
   * may be taken before the gateway binds it, so a gateway that exits before it is
   * ready is tried again on another port (3 attempts in all); a binary that cannot be
   * run, or a gateway that runs but never gets ready, fails at once.
   */
  async start() {
    if (this.running) throw new Error(`${this.name} is already running on ${this.origin}`);
    await retryOnPortRace(async () => {
      this.port = await freePort();
      await this.spawn();
    }, () => this.stop(), (e) => e.exitedEarly);
    return this;
  }

  async spawn() {
    this.env = this.buildEnv();
    const proc = new ManagedProcess(this.bin, this.args, { env: this.env, name: this.name, echo: this.echo });
    this.proc = proc;
    const gone = new AbortController();
    proc.exited.then(() => {
      let e;
      if (proc.spawnError) {
        e = new Error(`cannot run the gateway ${this.bin} (set AUTHGATE_BIN, or run cargo build -p authgate-gateway): ${proc.spawnError.message}`);
        e.code = proc.spawnError.code;
      } else {
        e = new Error(`${this.name} ${proc.describeExit()} before it was ready (${this.args.join(' ')} on port ${this.port}):\n${proc.log.text()}`);
        e.exitedEarly = true;
      }
      gone.abort(e);
    });
    try {
      await waitFor(`${this.name}: GET ${this.origin}/health/ready`, async ({ signal }) => {
        const r = await request(`${this.origin}/health/ready`, { ca: this.tls?.pem, timeout: 1000, signal });
        return r.status === 200;
      }, { timeout: this.readyTimeout, signal: gone.signal });
    } catch (e) {
      if (!e.exitedEarly && !proc.spawnError) e.message += `\n--- ${this.name} log ---\n${proc.log.text()}`;
      throw e;
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with {code, signal} (null if it never ran). */
  async stop({ graceMs = 5000 } = {}) {
    const proc = this.proc;
    if (!proc) return null;
    const info = await proc.stop({ graceMs });
    this.lastLog = proc.log.text();
    this.proc = null;
    return info;
  }

  /** SIGKILL now, synchronously (for exit handlers; the harness also does this at exit). */
  killNow() {
    this.proc?.killNow();
  }

  /** One request to the gateway (trusting its certificate under TLS); see http.mjs. */
  request(method, pathAndQuery, options = {}) {
    return request(this.url(pathAndQuery), { method, ca: this.tls?.pem, ...options });
  }

  /** A client token: client_credentials with the gateway's own client (admin), or `implicit`. */
  async clientToken(grant = 'client_credentials') {
    const form = grant === 'implicit'
      ? { grant_type: 'implicit', client_id: this.clientId }
      : { grant_type: 'client_credentials', client_id: this.clientId, client_secret: this.clientSecret };
    const r = await this.request('POST', '/oauth/access_token', { form });
    if (r.status !== 200 || !r.body?.access_token) {
      throw new Error(`${this.name}: POST /oauth/access_token (${grant}) answered ${r.status}: ${r.text}`);
    }
    return r.body.access_token;
  }
}

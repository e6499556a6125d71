// A Redis for a test run: a private `redis-server` on a free loopback port (no
// persistence, its own temporary directory), or, when AUTHGATE_TEST_REDIS_URL is set,
// that server, with a unique key prefix for every user of it.
//
//   const redis = new Redis();
//   await redis.start();
//   const gw = new Gateway({ redis });   // AUTHGATE_REDIS_URL + a unique AUTHGATE_REDIS_PREFIX
//   ...
//   await redis.command('KEYS', `${gw.redisPrefix}*`);
//   await redis.stop();

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

import { ManagedProcess, registerTempDir, removeTempDir } from './process.mjs';
import { TimeoutError, WAIT_MS, freePort, retryOnPortRace, waitFor } from './wait.mjs';

const VERBOSE = !!process.env.AUTHGATE_TEST_VERBOSE;

/** A key prefix no other test run uses: `authgate-test:<label>:<pid>-<random>:`. */
export function uniquePrefix(label = 'run') {
  return `authgate-test:${label}:${process.pid}-${randomBytes(6).toString('hex')}:`;
}

export class Redis {
  /**
   * @param {object} [options]
   * @param {string} [options.url]   use this server (default: AUTHGATE_TEST_REDIS_URL; '' forces a private one)
   * @param {string} [options.bin]   redis-server to run (default: REDIS_SERVER_BIN or `redis-server` on PATH)
   * @param {number} [options.startTimeout]  ms to wait for PONG (default WAIT_MS)
   */
  constructor({ url = process.env.AUTHGATE_TEST_REDIS_URL || '', bin = process.env.REDIS_SERVER_BIN || 'redis-server', startTimeout = WAIT_MS } = {}) {
    this.externalUrl = url;
    this.bin = bin;
    this.startTimeout = startTimeout;
    this.server = null; // ManagedProcess of a private server
    this.dir = null;
    this.port = 0;
    this.url = url || null;
  }

  /** True when this is the server of AUTHGATE_TEST_REDIS_URL, not a private one. */
  get external() {
    return !!this.externalUrl;
  }

  /** The log of a private server (empty for an external one). */
  get log() {
    return this.server ? this.server.log.text() : '';
  }

  /**
   * Why no Redis can be had here, or null if one can: neither AUTHGATE_TEST_REDIS_URL
   * nor a runnable redis-server. For suites that skip rather than fail.
   */
  static async unavailableReason({ bin = process.env.REDIS_SERVER_BIN || 'redis-server' } = {}) {
    if (process.env.AUTHGATE_TEST_REDIS_URL) return null;
    return new Promise((resolve) => {
      execFile(bin, ['--version'], { timeout: 5000 }, (err) =>
        resolve(err ? `neither AUTHGATE_TEST_REDIS_URL nor a runnable ${bin} (apt-get install redis-server): ${err.message}` : null));
    });
  }

  /** Starts the private server (retrying on a port race), or checks the external one answers. */
  async start() {
    if (this.external) {
      await waitFor(`PING to ${redact(this.url)}`, async () => (await this.command('PING')) === 'PONG', { timeout: this.startTimeout });
      return this;
    }
    await retryOnPortRace(() => this.spawn(), () => this.stop(),
      (e) => e.code !== 'ENOENT' && e.code !== 'EACCES');
    return this;
  }

  async spawn() {
    this.port = await freePort();
    this.url = `redis://127.0.0.1:${this.port}`;
    this.dir = registerTempDir(fs.mkdtempSync(path.join(os.tmpdir(), 'authgate-test-redis-')));
    const server = new ManagedProcess(this.bin, [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
    ], { env: { PATH: process.env.PATH, HOME: process.env.HOME }, cwd: this.dir, name: `redis:${this.port}`, echo: VERBOSE });
    this.server = server;
    const gone = new AbortController();
    server.exited.then(() => {
      const e = server.spawnError
        ? Object.assign(new Error(`cannot run ${this.bin} (apt-get install redis-server, or set AUTHGATE_TEST_REDIS_URL): ${server.spawnError.message}`), { code: server.spawnError.code })
        : new Error(`redis-server ${server.describeExit()} before it answered PING:\n${server.log.text()}`);
      gone.abort(e);
    });
    await waitFor(`PING to redis-server on port ${this.port}`, async () => (await this.command('PING')) === 'PONG',
      { timeout: this.startTimeout, signal: gone.signal });
  }

  /** A key prefix of its own for one user of this server (see uniquePrefix). */
  newPrefix(label) {
    return uniquePrefix(label);
  }

  /**
   * Sends one command on a fresh connection and resolves with the reply: a string, a
   * number, null, or an array of those; an error reply rejects.
   */
  command(...args) {
    return respCommand(this.url, args);
  }

  /** The keys under `prefix` (SCAN, so safe on a shared server). */
  async keys(prefix) {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    const found = [];
    let cursor = '0';
    for (let i = 0; i < 100_000; i++) {
      const [next, batch] = await this.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000);
      found.push(...batch);
      cursor = next;
      if (cursor === '0') return [...new Set(found)];
    }
    throw new Error(`SCAN of ${prefix}* did not finish`);
  }

  /** Deletes the keys under `prefix` (for a shared server); resolves with how many there were. */
  async deleteKeys(prefix) {
    const keys = await this.keys(prefix);
    for (let i = 0; i < keys.length; i += 500) await this.command('DEL', ...keys.slice(i, i + 500));
    return keys.length;
  }

  /** Stops a private server (SIGTERM, then SIGKILL) and removes its directory; no-op for an external one. */
  async stop() {
    const server = this.server;
    this.server = null;
    if (server) await server.stop();
    if (this.dir) {
      removeTempDir(this.dir);
      this.dir = null;
    }
  }

  /** Kills a private server at once (for exit handlers); the directory goes at exit. */
  killNow() {
    this.server?.killNow();
  }
}

function redact(url) {
  return String(url).replace(/\/\/([^@/]*)@/, '//***@');
}

// ---------------------------------------------------------------------------
// A minimal RESP2 client: one connection per call, AUTH and SELECT from the URL first.

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a), 'utf8');
    out += `$${b.length}\r\n${b.toString('utf8')}\r\n`;
  }
  return out;
}

// Parses one reply from buf at pos: returns [value, nextPos] or null if incomplete.
// Error replies are returned as Error objects.
function parseReply(buf, pos = 0) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [new Error(`redis: ${line}`), next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (!r) return null;
        items.push(r[0]);
        p = r[1];
      }
      return [items, p];
    }
    default:
      throw new Error(`redis: cannot parse a reply starting with ${JSON.stringify(type)}`);
  }
}

/** One command against the server of `url` (redis:// or rediss://); bounded by `timeout`. */
export function respCommand(url, args, { timeout = 5000 } = {}) {
  const u = new URL(url);
  const pre = [];
  const password = decodeURIComponent(u.password || '');
  const username = decodeURIComponent(u.username || '');
  if (password) pre.push(username ? ['AUTH', username, password] : ['AUTH', password]);
  const db = u.pathname.replace(/^\//, '');
  if (db) pre.push(['SELECT', db]);
  const all = [...pre, args];
  const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(u.port || 6379);
  return new Promise((resolve, reject) => {
    const sock = u.protocol === 'rediss:'
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const replies = [];
    const timer = setTimeout(() => finish(new TimeoutError(`timed out after ${timeout} ms: redis ${args[0]}`)), timeout);
    function finish(err, value) {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    }
    sock.once(u.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => sock.write(all.map(encode).join('')));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      try {
        for (;;) {
          const r = parseReply(buf);
          if (!r) break;
          replies.push(r[0]);
          buf = buf.subarray(r[1]);
        }
      } catch (e) {
        finish(e);
        return;
      }
      if (replies.length === all.length) {
        const failed = replies.find((r) => r instanceof Error);
        finish(failed, replies[replies.length - 1]);
      }
    });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error(`redis closed the connection after ${replies.length} of ${all.length} replies`)));
  });
}

// A webhook endpoint on 127.0.0.1 that records every delivery.
//
//   const hook = new WebhookReceiver();
//   await hook.start();                    // hook.url -> http://127.0.0.1:<port>/hooks/otp
//   const mark = hook.mark();
//   ... make the gateway deliver ...
//   const d = await hook.waitFor((d) => d.body?.payload?.purpose === 'reset_password', { since: mark });
//   assert.ok(verifySignature(d, secret));
//   await hook.stop();

import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

import { WAIT_MS, waitFor } from './wait.mjs';

export class WebhookReceiver {
  /**
   * @param {object} [options]
   * @param {string} [options.path]   the path of `url` (any path is recorded; default /hooks/otp)
   * @param {(delivery) => number|{status: number, body?: string, headers?: object}} [options.reply]
   *        the answer to each delivery (default 204, no body); a thrown error answers 500
   */
  constructor({ path = '/hooks/otp', reply } = {}) {
    this.path = path;
    this.reply = reply ?? (() => 204);
    /** @type {{method: string, url: string, headers: object, raw: Buffer, text: string, body: any, at: number, status: number}[]} */
    this.deliveries = [];
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        let body = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = null;
        }
        const delivery = { method: req.method, url: req.url, headers: req.headers, raw, text, body, at: Date.now(), status: 0 };
        let answer;
        try {
          answer = this.reply(delivery);
        } catch {
          answer = 500;
        }
        const { status, body: out = '', headers = {} } = typeof answer === 'number' ? { status: answer } : answer;
        delivery.status = status;
        this.deliveries.push(delivery);
        res.writeHead(status, headers).end(status === 204 ? undefined : out);
      });
    });
  }

  /** Listens on 127.0.0.1, on a port of the system's choosing. */
  start() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve(this);
      });
    });
  }

  get port() {
    return this.server.address().port;
  }

  get url() {
    return `http://127.0.0.1:${this.port}${this.path}`;
  }

  /** The number of deliveries so far, to pass as `since`. */
  mark() {
    return this.deliveries.length;
  }

  /**
   * The first delivery (at index `since` or later) for which `predicate` is true,
   * waiting for it up to `timeout` ms.
   */
  waitFor(predicate = () => true, { since = 0, timeout = WAIT_MS, what = 'a matching webhook delivery' } = {}) {
    return waitFor(what, () => this.deliveries.slice(since).find((d) => predicate(d)), { timeout }).catch((e) => {
      e.message += `\n(${this.deliveries.length} deliveries recorded: ${this.deliveries.slice(since)
        .map((d) => `${d.method} ${d.url} ${d.text.slice(0, 200)}`).join('; ') || 'none after the mark'})`;
      throw e;
    });
  }

  stop() {
    return new Promise((resolve) => {
      this.server.closeAllConnections?.();
      this.server.close(() => resolve());
    });
  }
}

/** `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by `secret`, as the gateway signs. */
export function signature(secret, unixSecs, body) {
  const mac = createHmac('sha256', secret);
  mac.update(`${unixSecs}.`);
  mac.update(body);
  return `t=${unixSecs},v1=${mac.digest('hex')}`;
}

/**
 * Whether `delivery` carries a valid X-Authgate-Signature for `secret`, computed over
 * the raw body bytes. With `toleranceSecs`, the timestamp must also be that recent.
 */
export function verifySignature(delivery, secret, { toleranceSecs } = {}) {
  const header = delivery.headers['x-authgate-signature'];
  const m = typeof header === 'string' && header.match(/^t=(\d+),v1=([0-9a-f]{64})$/);
  if (!m) return false;
  const t = Number(m[1]);
  if (toleranceSecs !== undefined && Math.abs(Date.now() / 1000 - t) > toleranceSecs) return false;
  const expected = Buffer.from(signature(secret, m[1], delivery.raw).split('v1=')[1], 'hex');
  return timingSafeEqual(expected, Buffer.from(m[2], 'hex'));
}

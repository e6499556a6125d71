// One HTTP(S) request with a hard deadline, trusting a given CA for https:// (which
// the global fetch cannot do without extra packages).

import http from 'node:http';
import https from 'node:https';

import { TimeoutError, WAIT_MS } from './wait.mjs';

/**
 * @param {string|URL} url
 * @param {object} [options]
 * @param {string} [options.method]    default GET
 * @param {object} [options.headers]
 * @param {*} [options.json]           sent as application/json
 * @param {object|URLSearchParams} [options.form]  sent as application/x-www-form-urlencoded
 * @param {string|Buffer} [options.body]  sent as is
 * @param {string} [options.token]     Authorization: Bearer <token>
 * @param {string|Buffer} [options.ca] PEM to trust for https:// (else the system's roots)
 * @param {number} [options.timeout]   whole-request bound in ms (default WAIT_MS)
 * @param {AbortSignal} [options.signal]
 * @returns {Promise<{status: number, headers: object, text: string, body: any}>}
 *   `body` is the parsed JSON, or null if the answer is not JSON
 */
export function request(url, { method = 'GET', headers = {}, json, form, body, token, ca, timeout = WAIT_MS, signal } = {}) {
  const u = new URL(url);
  const h = { ...headers };
  let payload = body ?? null;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    h['content-type'] ??= 'application/json';
  } else if (form !== undefined) {
    payload = new URLSearchParams(form).toString();
    h['content-type'] ??= 'application/x-www-form-urlencoded';
  }
  if (token) h.authorization = `Bearer ${token}`;
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let timer;
    const fail = (e) => {
      clearTimeout(timer);
      reject(e);
    };
    const req = lib.request(u, { method, headers: h, ca, signal }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', fail);
      res.on('aborted', () => fail(new Error(`connection closed mid-answer: ${method} ${u}`)));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = null;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          parsed = null;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, body: parsed });
      });
    });
    timer = setTimeout(() => {
      const e = new TimeoutError(`timed out after ${timeout} ms: ${method} ${u}`);
      req.destroy(e);
      fail(e);
    }, timeout);
    req.on('error', fail);
    if (payload !== null) req.write(payload);
    req.end();
  });
}

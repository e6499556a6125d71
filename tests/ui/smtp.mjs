// A small SMTP server on 127.0.0.1 that keeps every message it receives, for the
// pages' journeys: enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA, QUIT;
// no TLS, no authentication). Dependency-free.

import net from 'node:net';

import { waitFor } from '../harness/index.mjs';

export class SmtpSink {
  constructor() {
    this.messages = [];
    this.server = null;
    this.port = 0;
  }

  async start() {
    this.server = net.createServer((socket) => this.#session(socket));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    return this;
  }

  get url() {
    return `smtp://127.0.0.1:${this.port}`;
  }

  #session(socket) {
    let pending = '';
    let lines = null; // collecting DATA
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.write('220 authgate-ui-test ESMTP\r\n');
    socket.on('data', (chunk) => {
      pending += chunk;
      let end;
      while ((end = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (lines) {
          if (line === '.') {
            this.messages.push(lines.join('\r\n'));
            lines = null;
            socket.write('250 2.0.0 kept\r\n');
          } else {
            lines.push(line.startsWith('..') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO') socket.write('250-authgate-ui-test\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') { lines = []; socket.write('354 go on\r\n'); }
        else if (verb === 'QUIT') socket.end('221 bye\r\n');
        else socket.write('250 OK\r\n');
      }
    });
  }

  /** Waits for message number `n` (1-based) and returns it decoded: {subject, text}. */
  async message(n) {
    const raw = await waitFor(`email ${n}`, () => this.messages[n - 1]);
    return decode(raw);
  }

  async stop() {
    await new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** The subject and the decoded text of every part of a MIME message. */
export function decode(raw) {
  const [head] = raw.split('\r\n\r\n');
  const subject = (/^Subject: (.*)$/mi.exec(head.replace(/\r\n[ \t]+/g, ' ')) || [])[1] || '';
  const parts = raw.split(/\r\n--[^\r\n]+\r\n/);
  const text = parts.map((part) => {
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) return '';
    const headers = part.slice(0, split);
    let body = part.slice(split + 4);
    if (/content-transfer-encoding:\s*base64/i.test(headers)) {
      body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    } else if (/content-transfer-encoding:\s*quoted-printable/i.test(headers)) {
      body = Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi,
        (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
    }
    return body;
  }).join('\n');
  return { subject, text };
}

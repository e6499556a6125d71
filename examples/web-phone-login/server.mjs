#!/usr/bin/env node
// The example's backend, in one file with nothing but Node's standard library.
//
// It does what the platform's docs ask of "your backend" for one-time key login:
// it keeps only HA1 = MD5("<user>:voximplant.com:<password>") per user and, given
// a key, answers MD5("<key>|<HA1>") in lowercase hex, exactly what
// `authgate hash --key K --user U --password P` prints. It also serves the page
// and the Web SDK's file.
//
//   node server.mjs            # http://127.0.0.1:8000/
//
// Environment:
//   HOST, PORT        where to listen (127.0.0.1, 8000)
//   WEBPHONE_USERS    "user:password,user2:password2" (default: the demo's myuser:mypass123);
//                     the passwords are turned into HA1s at start and not kept
//   VOXIMPLANT_SDK    path of voximplant.min.js (default: ./node_modules/voximplant-websdk/)
//
// DEMO ONLY: this backend signs a key for any user it knows, for anyone who asks,
// which lets anyone who can reach it log in as those users. A real backend signs
// only for the user of the caller's authenticated session on your site.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 8000);
const SDK = process.env.VOXIMPLANT_SDK
  || path.join(HERE, 'node_modules', 'voximplant-websdk', 'voximplant.min.js');
const MAX_BODY = 4096;

// A new MD5 object for every digest. (The docs' Node.js sample keeps one in a
// variable and calls update() on it after digest(), which throws "Digest already
// called" from its second request on.)
export function md5(text) {
  return createHash('md5').update(text, 'utf8').digest('hex');
}

/** HA1 of a user: what the backend stores instead of the password. */
export function ha1(user, password) {
  return md5(`${user}:voximplant.com:${password}`);
}

/** The answer to a key: MD5("<key>|<HA1>"). */
export function keyResponse(key, userHa1) {
  return md5(`${key}|${userHa1}`);
}

/** The bare user of `user@app.account[.nN].voximplant.com` (or of a bare `user`). */
export function bareUser(username) {
  const at = username.indexOf('@');
  return at < 0 ? username : username.slice(0, at);
}

function loadUsers(spec) {
  const users = new Map();
  for (const entry of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = entry.indexOf(':');
    if (colon <= 0) throw new Error(`WEBPHONE_USERS: expected user:password, got "${entry}"`);
    const user = entry.slice(0, colon);
    users.set(user, ha1(user, entry.slice(colon + 1)));
  }
  return users;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Accepts a form (`key=...&username=...`, as the docs' jQuery $.post sends) or JSON.
function parseFields(req, body) {
  if ((req.headers['content-type'] || '').startsWith('application/json')) {
    const v = JSON.parse(body);
    return { key: String(v.key ?? ''), username: String(v.username ?? '') };
  }
  const form = new URLSearchParams(body);
  return { key: form.get('key') || '', username: form.get('username') || '' };
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export function createServer({ users, sdkPath = SDK }) {
  const page = path.join(HERE, 'index.html');
  return http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    try {
      if (req.method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html')) {
        send(res, 200, 'text/html; charset=utf-8', fs.readFileSync(page));
      } else if (req.method === 'GET' && url.pathname === '/voximplant.min.js') {
        if (!fs.existsSync(sdkPath)) {
          send(res, 404, 'text/plain', `no Web SDK at ${sdkPath}: run "npm install" in this folder or set VOXIMPLANT_SDK\n`);
          return;
        }
        send(res, 200, 'text/javascript; charset=utf-8', fs.readFileSync(sdkPath));
      } else if (req.method === 'POST' && url.pathname === '/hash') {
        const { key, username } = parseFields(req, await readBody(req));
        const userHa1 = users.get(bareUser(username));
        if (!/^[0-9a-f]{32}$/i.test(key)) {
          send(res, 400, 'text/plain', 'key must be 32 hexadecimal digits\n');
        } else if (!userHa1) {
          send(res, 403, 'text/plain', 'this backend does not sign keys for that user\n');
        } else {
          send(res, 200, 'text/plain', keyResponse(key, userHa1));
        }
      } else {
        send(res, 404, 'text/plain', 'not found\n');
      }
    } catch (e) {
      send(res, e.status || 400, 'text/plain', `${e.message}\n`);
    }
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const users = loadUsers(process.env.WEBPHONE_USERS || 'myuser:mypass123');
  const server = createServer({ users });
  server.listen(PORT, HOST, () => {
    const { port } = server.address();
    console.log(`web phone login example on http://${HOST}:${port}/ (signing keys for: ${[...users.keys()].join(', ')})`);
  });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      server.closeAllConnections();
      server.close(() => process.exit(0));
    });
  }
}

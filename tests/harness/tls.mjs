// A throwaway TLS identity for a gateway under test.

import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { WAIT_MS } from './wait.mjs';

/**
 * A self-signed P-256 certificate for 127.0.0.1 and localhost, valid two days, made
 * with `openssl` in `dir`. Returns what Gateway's `tls` option takes, plus the base64
 * SHA-256 of the public key (Chromium's --ignore-certificate-errors-spki-list).
 *
 * @returns {{cert: string, key: string, pem: string, spkiHash: string}}
 */
export function selfSignedCertificate(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert,
  ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: WAIT_MS });
  const pem = fs.readFileSync(cert, 'utf8');
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { cert, key, pem, spkiHash: createHash('sha256').update(spki).digest('base64') };
}

// A child process that is always ended: stop() asks with SIGTERM then forces with
// SIGKILL, killNow() forces at once, and every live child (and every registered
// temporary directory) is cleaned up when this Node process exits or is signalled.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

import { Log } from './log.mjs';

const live = new Set(); // ManagedProcess
const tempDirs = new Set(); // paths
let hooked = false;

function cleanupNow() {
  for (const p of live) p.killNow();
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  tempDirs.clear();
}

// Installed on first use. On a signal the children are killed; if nobody else
// listens for that signal, the process then exits as the signal would have made it.
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const onSignal = () => {
      cleanupNow();
      if (process.listenerCount(sig) === 1) process.exit(128 + os.constants.signals[sig]);
    };
    process.on(sig, onSignal);
  }
}

/** Removes `dir` (recursively) when this process exits, unless removeTempDir() did it before. */
export function registerTempDir(dir) {
  hookExit();
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  tempDirs.delete(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

export class ManagedProcess {
  /**
   * @param {string} command
   * @param {string[]} args
   * @param {object} [options]
   * @param {object} [options.env]     the child's whole environment
   * @param {string} [options.cwd]
   * @param {string} [options.name]    for messages and the echo prefix
   * @param {boolean} [options.echo]   copy the output to stderr as it comes
   * @param {number} [options.logCap]
   */
  constructor(command, args, { env, cwd, name = command, echo = false, logCap } = {}) {
    this.command = command;
    this.args = args;
    this.name = name;
    this.log = new Log({ cap: logCap, echo: echo ? `[${name}] ` : undefined });
    this.child = null;
    this.exitInfo = null; // {code, signal} once exited
    this.spawnError = null;
    hookExit();
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(this);
    child.stdout.on('data', (d) => this.log.append(d));
    child.stderr.on('data', (d) => this.log.append(d));
    // Settles when the process is gone, or could not be started at all.
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        if (child.pid === undefined && this.exitInfo === null) {
          this.spawnError = e;
          this.exitInfo = { code: null, signal: null, error: e };
          live.delete(this);
          resolve(this.exitInfo);
        }
      });
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        live.delete(this);
        resolve(this.exitInfo);
      });
    });
  }

  get pid() {
    return this.child?.pid;
  }

  get running() {
    return this.exitInfo === null && this.child?.pid !== undefined;
  }

  /** How the process ended, as a phrase for messages. */
  describeExit() {
    const e = this.exitInfo;
    if (!e) return 'still running';
    if (e.error) return `could not be started: ${e.error.message}`;
    return e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit info (bounded). */
  async stop({ graceMs = 5000 } = {}) {
    if (this.running) {
      this.child.kill('SIGTERM');
      const done = await Promise.race([this.exited.then(() => true), sleep(graceMs, false, { ref: false })]);
      if (!done) {
        this.child.kill('SIGKILL');
        await Promise.race([this.exited, sleep(5000, null, { ref: false })]);
      }
    }
    return this.exitInfo;
  }

  /** SIGKILL now, synchronously (for exit handlers). */
  killNow() {
    if (this.running) this.child.kill('SIGKILL');
  }
}

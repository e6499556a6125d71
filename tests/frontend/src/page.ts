// The browser side: a page on its own origin runs the journey against the gateway
// through the generated client. Its backend (same origin as the page) computes key
// hashes and hands over the codes its webhook received, as a real app's would.

import { connect } from "./flows.js";
import { type Journey, run } from "./scenario.js";

interface PageConfig {
  gateway: string;
  clientId: string;
  directory: Journey["directory"];
  user: string;
  password: string;
  newPassword: string;
}

interface Outcome {
  ok: boolean;
  steps: string[];
  error?: string;
}

declare global {
  interface Window {
    journey?: Outcome;
  }
}

async function backend(path: string, body: unknown): Promise<string> {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.text();
}

async function main(): Promise<void> {
  const list = document.getElementById("steps");
  const steps: string[] = [];
  const config = (await (await fetch("config.json")).json()) as PageConfig;
  try {
    await run({
      api: connect(config.gateway),
      clientId: config.clientId,
      directory: config.directory,
      user: config.user,
      password: config.password,
      newPassword: config.newPassword,
      hashFor: (username, key) => backend("backend/hash", { username, key }),
      codeFor: (username, purpose) => backend("backend/code", { username, purpose }),
      step: (name) => {
        steps.push(name);
        const li = document.createElement("li");
        li.textContent = name;
        list?.append(li);
      },
    });
    window.journey = { ok: true, steps };
  } catch (e) {
    window.journey = { ok: false, steps, error: String(e) };
  }
}

void main();

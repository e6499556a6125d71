// The peer of authgate's bench: Better Auth with its emailOTP plugin, one Node process on
// loopback, started by bench/run.sh with PEERS=1 (see bench/README.md, "The peer").
//
//   PEER_PORT        port on 127.0.0.1
//   PEER_REDIS_URL   its private redis-server (secondary storage: OTPs and sessions)
//   PEER_DB          the SQLite file (users; created, with Better Auth's tables, at start)
//   PEER_USERS       how many users otp1..otpN@bench.example.com to create at start
//   BETTER_AUTH_SECRET
//
// The configuration is what Better Auth's documentation shows for each part: better-sqlite3 as
// the database, @better-auth/redis-storage on ioredis as the secondary storage, the emailOTP
// plugin with its defaults (6 digits, 300 s, 3 tries, stored plain), rate limit off (the bench
// turns authgate's limits off too), telemetry off, the Node handler from better-auth/node.
//
// The OTP "sender" does nothing but remember the last code per address, in this process: the
// bench reads them back over /_bench/dump to build the (address, code) pool of the sign-in
// phase, as it does from authgate's webhooks. /_bench/* is the bench's control path; it is
// answered before Better Auth sees the request.
import fs from "node:fs";
import http from "node:http";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { emailOTP } from "better-auth/plugins/email-otp";
import { redisStorage } from "@better-auth/redis-storage";

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`server.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const port = Number(env("PEER_PORT"));
const users = Number(process.env.PEER_USERS || "0");

const codes = new Map(); // address -> the last code "sent" to it
const redis = new Redis(env("PEER_REDIS_URL"), { lazyConnect: false });
const auth = betterAuth({
  baseURL: `http://127.0.0.1:${port}`,
  secret: env("BETTER_AUTH_SECRET"),
  database: new Database(env("PEER_DB")),
  secondaryStorage: redisStorage({ client: redis }),
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins: [
    emailOTP({
      async sendVerificationOTP({ email, otp }) {
        codes.set(email, otp);
      },
    }),
  ],
});

const { runMigrations } = await getMigrations(auth.options);
await runMigrations();

// The users, through Better Auth's own adapter (the rows it would write at sign-up), in one
// SQLite transaction so that start-up does not take a sync per row.
if (users > 0) {
  const ctx = await auth.$context;
  const t0 = Date.now();
  const db = auth.options.database;
  db.exec("BEGIN");
  for (let i = 1; i <= users; i++) {
    await ctx.internalAdapter.createUser({
      email: `otp${i}@bench.example.com`,
      name: `Otp ${i}`,
      emailVerified: true,
    });
  }
  db.exec("COMMIT");
  console.log(`created ${users} users in ${Date.now() - t0} ms`);
}

// Requests Better Auth was handed, and how many it has answered: the bench divides the
// process's CPU time by these (wrk counts only the answers it got before its deadline).
let started = 0;
let finished = 0;
const handler = toNodeHandler(auth);
const server = http.createServer((req, res) => {
  if (req.url.startsWith("/_bench/")) return control(req, res);
  started++;
  res.on("close", () => finished++);
  return handler(req, res);
});

function control(req, res) {
  const url = new URL(req.url, "http://127.0.0.1");
  if (url.pathname === "/_bench/ready") {
    // Also the filler request of the list-walking wrk scripts (lua/peer.lua): 204, no body.
    res.writeHead(204).end();
  } else if (url.pathname === "/_bench/stats") {
    res.writeHead(200, { "Content-Type": "text/plain" }).end(`${started} ${finished}`);
  } else if (url.pathname === "/_bench/count") {
    res.writeHead(200, { "Content-Type": "text/plain" }).end(String(codes.size));
  } else if (url.pathname === "/_bench/dump") {
    // "<address> <code>" lines, then forgets them.
    const lines = [];
    for (const [email, otp] of codes) lines.push(`${email} ${otp}\n`);
    codes.clear();
    fs.writeFileSync(url.searchParams.get("path"), lines.join(""));
    res.writeHead(200, { "Content-Type": "text/plain" }).end(String(lines.length));
  } else {
    res.writeHead(404).end();
  }
}

server.listen(port, "127.0.0.1", () => console.log(`peer listening on 127.0.0.1:${port}`));
const stop = () => {
  server.close();
  redis.disconnect();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

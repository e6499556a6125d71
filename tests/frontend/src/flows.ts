// The logins a frontend performs, written only against the client generated from
// authgate's OpenAPI document (openapi-typescript types + openapi-fetch). The same
// compiled module runs under Node (node.ts) and in a page in Chromium (page.ts);
// what differs, the backend's hash and the way a code arrives, is passed in.

import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "../generated/typescript/authgate.js";

export type Api = Client<paths>;
type Schemas = components["schemas"];

/** A client for the gateway at `baseUrl` (no trailing slash). */
export function connect(baseUrl: string): Api {
  return createClient<paths>({ baseUrl });
}

/** Throws with the operation's name, status and body unless `ok`. */
function check<T>(what: string, r: { data?: T; error?: unknown; response: Response }): T {
  if (r.data === undefined) {
    throw new Error(`${what}: ${r.response.status} ${JSON.stringify(r.error ?? null)}`);
  }
  return r.data;
}

function expectStatus(what: string, response: Response, status: number): void {
  if (response.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${response.status}`);
  }
}

/**
 * An API client token. The endpoint is form-encoded, as OAuth clients send it:
 * openapi-fetch encodes the body as a form when Content-Type says so (and only
 * then), so the header is given here, and no field is left undefined.
 */
export async function clientToken(
  api: Api,
  clientId: string,
  clientSecret?: string,
): Promise<Schemas["ClientToken"]> {
  const body: Schemas["TokenRequest"] =
    clientSecret === undefined
      ? { grant_type: "implicit", client_id: clientId }
      : { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret };
  const r = await api.POST("/oauth/access_token", {
    body,
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  return check(`token (${body.grant_type})`, r);
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** What the customer's backend answers a key with: MD5(key|HA1). */
export type HashFor = (username: string, key: string) => Promise<string>;

/** Scheme A: a key, the backend's hash, the login. */
export async function keyLogin(
  api: Api,
  username: string,
  hashFor: HashFor,
): Promise<Schemas["LoggedInResult"]> {
  const issued = check(
    "key request",
    await api.POST("/v1/login/one-time-key/request", { body: { username } }),
  );
  if (issued.code !== 302 || issued.result !== false) {
    throw new Error(`key request: ${JSON.stringify(issued)}`);
  }
  const hash = await hashFor(username, issued.key);
  return check(
    "key login",
    await api.POST("/v1/login/one-time-key", { body: { username, hash } }),
  );
}

/** Forward-auth: who the token belongs to, or null for a 401. */
export async function verify(
  api: Api,
  token: { bearer: string } | { member: string },
): Promise<{ user: string; scheme: string } | null> {
  const headers =
    "bearer" in token
      ? bearer(token.bearer)
      : { "EP-Account-Management-Authentication-Token": token.member };
  const r = await api.GET("/v1/auth/verify", { headers });
  if (r.response.status === 401) return null;
  expectStatus("verify", r.response, 200);
  return {
    user: r.response.headers.get("X-Auth-User") ?? "",
    scheme: r.response.headers.get("X-Auth-Scheme") ?? "",
  };
}

/** Scheme A: a refresh (rotation), then the logout of the new session. */
export async function refreshAndLogout(
  api: Api,
  username: string,
  tokens: Schemas["LoginTokens"],
): Promise<Schemas["LoginTokens"]> {
  const refreshed = check(
    "refresh",
    await api.POST("/v1/login/token/refresh", {
      body: { username, refreshToken: tokens.refreshToken },
    }),
  );
  const out = await api.POST("/v1/logout", {
    body: { accessToken: refreshed.tokens.accessToken },
  });
  expectStatus("logout", out.response, 204);
  return refreshed.tokens;
}

/** How a code reaches the user (a webhook in tests, an email in life). */
export type CodeFor = (
  username: string,
  purpose: Schemas["Purpose"],
) => Promise<string>;

/** Where a member's codes are requested and exchanged. */
export interface Member {
  realm: string;
  profile: string;
  username: string;
}

/** Scheme B: a code requested with a public (implicit) token, then exchanged. */
export async function exchangeCode(
  api: Api,
  publicToken: string,
  member: Member,
  purpose: Schemas["Purpose"],
  codeFor: CodeFor,
): Promise<Schemas["AccountToken"]> {
  const requested = await api.POST(
    "/v2/authentication-realms/{realm}/password-profiles/{profile}/one-time-password-token-request",
    {
      params: { path: { realm: member.realm, profile: member.profile } },
      headers: bearer(publicToken),
      body: {
        data: { type: "one_time_password_token_request", username: member.username, purpose },
      },
    },
  );
  expectStatus("code request", requested.response, 202);
  const code = await codeFor(member.username, purpose);
  const list = check(
    "exchange",
    await api.POST("/v2/account-members/tokens", {
      headers: bearer(publicToken),
      body: {
        data: {
          type: "account_management_authentication_token",
          authentication_mechanism: "passwordless",
          password_profile_id: member.profile,
          username: member.username,
          one_time_password_token: code,
        },
      },
    }),
  );
  const token = list.data[0];
  if (token === undefined) throw new Error("exchange: no token in the answer");
  return token;
}

/** Scheme B: a member sets a new password with their own token. */
export async function resetPassword(
  api: Api,
  publicToken: string,
  memberToken: string,
  where: { realm: string; user: string; credential: string },
  password: string,
): Promise<void> {
  const r = await api.PUT(
    "/v2/authentication-realms/{realm}/user-authentication-info/{user}/user-authentication-password-profile-info/{id}",
    {
      params: { path: { realm: where.realm, user: where.user, id: where.credential } },
      headers: {
        ...bearer(publicToken),
        "EP-Account-Management-Authentication-Token": memberToken,
      },
      body: { data: { type: "user_authentication_password_profile_info", password } },
    },
  );
  check("password update", r);
}

/** Scheme A's password login; null for a 401. */
export async function passwordLogin(
  api: Api,
  username: string,
  password: string,
): Promise<Schemas["LoggedInResult"] | null> {
  const r = await api.POST("/v1/login/password", { body: { username, password } });
  if (r.response.status === 401) return null;
  return check("password login", r);
}

/** What an operator sets up through the admin API for the flows above. */
export interface Directory {
  realm: string;
  profile: string;
  application: string;
  userId: string;
  credential: string;
  integration: string;
}

/** Creates a profile exposed to both schemes, a user with a password, and a webhook. */
export async function seed(
  api: Api,
  adminToken: string,
  names: { application: string; user: string; password: string; email: string },
  webhook: { url: string; secret: string },
): Promise<Directory> {
  const headers = bearer(adminToken);
  const settings = check(
    "settings",
    await api.PUT("/v2/settings/account-authentication", {
      headers,
      body: {
        data: {
          type: "account_authentication_settings",
          account_member_self_management: "update_only",
        },
      },
    }),
  );
  const realm = settings.data.relationships.authentication_realm.data.id;
  const profile = check(
    "profile",
    await api.POST("/v2/authentication-realms/{realm}/password-profiles", {
      params: { path: { realm } },
      headers,
      body: {
        data: {
          type: "password_profile",
          name: `profile ${names.application}`,
          username_format: "any",
          enable_one_time_password_token: true,
          voximplant_application: names.application,
        },
      },
    }),
  ).data;
  const user = check(
    "user",
    await api.POST("/v2/authentication-realms/{realm}/user-authentication-info", {
      params: { path: { realm } },
      headers,
      body: { data: { type: "user_authentication_info", name: names.user, email: names.email } },
    }),
  ).data;
  const credential = check(
    "credential",
    await api.POST(
      "/v2/authentication-realms/{realm}/user-authentication-info/{user}/user-authentication-password-profile-info",
      {
        params: { path: { realm, user: user.id } },
        headers,
        body: {
          data: {
            type: "user_authentication_password_profile_info",
            password_profile_id: profile.id,
            username: names.user,
            password: names.password,
          },
        },
      },
    ),
  ).data;
  const integration = check(
    "integration",
    await api.POST("/v2/integrations", {
      headers,
      body: {
        data: {
          type: "integration",
          name: `codes for ${names.application}`,
          integration_type: "webhook",
          observes: ["one-time-password-token-request.created"],
          configuration: { url: webhook.url, secret_key: webhook.secret },
        },
      },
    }),
  ).data;
  return {
    realm,
    profile: profile.id,
    application: names.application,
    userId: user.id,
    credential: credential.id,
    integration: integration.id,
  };
}

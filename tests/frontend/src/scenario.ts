// One frontend's whole journey through both schemes, on the generated client:
// the one-time-key login and forward-auth, a refresh and a logout, the
// passwordless exchange, and a password reset with the member's own token.

import {
  type Api,
  type CodeFor,
  type Directory,
  type HashFor,
  clientToken,
  exchangeCode,
  keyLogin,
  passwordLogin,
  refreshAndLogout,
  resetPassword,
  verify,
} from "./flows.js";

export interface Journey {
  api: Api;
  /** The public API client id (the implicit grant needs nothing else). */
  clientId: string;
  directory: Directory;
  /** The bare username in the profile. */
  user: string;
  password: string;
  newPassword: string;
  hashFor: HashFor;
  codeFor: CodeFor;
  /** Called after each step with its name. */
  step?: (name: string) => void;
}

function must(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

/** Runs the journey; throws at the first step that does not go as it should. */
export async function run(j: Journey): Promise<void> {
  const done = j.step ?? (() => {});
  const webName = `${j.user}@${j.directory.application}.voximplant.com`;
  // Sessions name the user in the short form, user@app.account.
  const sessionName = `${j.user}@${j.directory.application}`;

  const loggedIn = await keyLogin(j.api, webName, j.hashFor);
  must(loggedIn.result && loggedIn.tokens.accessToken.length > 0, "key login gave no tokens");
  done("one-time-key login");

  const seen = await verify(j.api, { bearer: loggedIn.tokens.accessToken });
  must(seen?.user === sessionName && seen.scheme === "one-time-key", `verify: ${JSON.stringify(seen)}`);
  done("verify the access token");

  const rotated = await refreshAndLogout(j.api, webName, loggedIn.tokens);
  must((await verify(j.api, { bearer: rotated.accessToken })) === null, "logged-out token verified");
  done("refresh and logout");

  const publicToken = (await clientToken(j.api, j.clientId)).access_token;
  const member = {
    realm: j.directory.realm,
    profile: j.directory.profile,
    username: j.user,
  };
  const passwordless = await exchangeCode(
    j.api,
    publicToken,
    member,
    "passwordless_authentication",
    j.codeFor,
  );
  const memberSeen = await verify(j.api, { member: passwordless.token });
  must(
    memberSeen?.user === j.user && memberSeen.scheme === "account-management",
    `verify member: ${JSON.stringify(memberSeen)}`,
  );
  done("passwordless exchange");

  const reset = await exchangeCode(j.api, publicToken, member, "reset_password", j.codeFor);
  await resetPassword(
    j.api,
    publicToken,
    reset.token,
    { realm: j.directory.realm, user: j.directory.userId, credential: j.directory.credential },
    j.newPassword,
  );
  must((await passwordLogin(j.api, webName, j.newPassword)) !== null, "new password refused");
  must((await passwordLogin(j.api, webName, j.password)) === null, "old password still works");
  done("password reset with the member token");
}

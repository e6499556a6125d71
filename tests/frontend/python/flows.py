#!/usr/bin/env python3
"""Both login schemes through the Python client generated from authgate's OpenAPI document.

Run against a live gateway (on Redis) after generating the client:

    bash scripts/generate-clients.sh --strict --only python --out /tmp/clients
    AUTHGATE_URL=http://127.0.0.1:8080 AUTHGATE_CLIENT_ID=... AUTHGATE_CLIENT_SECRET=... \
    AUTHGATE_PYTHON_CLIENT_DIR=/tmp/clients/python AUTHGATE_DOCUMENT=openapi/openapi.json \
    python3 tests/frontend/python/flows.py

Prints "ok <step>" per step and exits 0; on a failure prints what was sent and received and
exits 1. Every API call goes through the generated client's typed functions and models; the
only HTTP written by hand is the webhook receiver (the gateway calls it, not the reverse).
Names carry a random suffix, so reruns on one Redis do not clash; what a run creates it deletes.
"""
import hashlib, hmac, importlib, json, os, re, secrets, sys, threading, time, traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"flows.py: {name} is not set (see the header of {__file__})")
    return value


URL = env("AUTHGATE_URL").rstrip("/")
CLIENT_ID, CLIENT_SECRET = env("AUTHGATE_CLIENT_ID"), env("AUTHGATE_CLIENT_SECRET")
CLIENT_DIR, DOCUMENT = Path(env("AUTHGATE_PYTHON_CLIENT_DIR")), Path(env("AUTHGATE_DOCUMENT"))
sys.path.insert(0, str(CLIENT_DIR))

import httpx  # noqa: E402  (a dependency of the generated client; used for its Timeout only)
from authgate_client import AuthenticatedClient, Client, errors  # noqa: E402
from authgate_client.api.client_authentication import create_client_token  # noqa: E402
from authgate_client.api.integrations import create_integration, delete_integration  # noqa: E402
from authgate_client.api.password_profiles import (  # noqa: E402
    create_one_time_password_token_request, create_password_profile, delete_password_profile)
from authgate_client.api.settings import (  # noqa: E402
    get_account_authentication_settings, update_account_authentication_settings)
from authgate_client.api.token_checks import verify  # noqa: E402
from authgate_client.api.users import (  # noqa: E402
    create_account_management_authentication_token, create_user_authentication_info,
    create_user_authentication_password_profile_info, delete_user_authentication_info,
    delete_user_authentication_password_profile_info, update_user_authentication_password_profile_info)
from authgate_client.api.web_phone_login import (  # noqa: E402
    login_with_one_time_key, login_with_password, logout, refresh_tokens, request_one_time_login_key)
from authgate_client.models import *  # noqa: E402,F403  (the document's schemas, by name)

MEMBER_HEADER = "EP-Account-Management-Authentication-Token"
WEBHOOK_WAIT_SECS = 10.0
S = {}  # what the steps learn and create, by name
TRACE = {}  # the last request and response, for failure reports


class Fail(Exception):
    pass


# --- the generated client, with every exchange recorded ------------------------------------
def _on_request(request):
    TRACE.clear()
    TRACE["sent"] = request


def _on_response(response):
    response.read()
    TRACE["received"] = response


def client(token=None, header=None, **extra):
    """Client(), or AuthenticatedClient() sending `token` as a bearer or in `header`."""
    kw = dict(base_url=URL, timeout=httpx.Timeout(10.0), raise_on_unexpected_status=True,
              httpx_args={"event_hooks": {"request": [_on_request], "response": [_on_response]}}, **extra)
    if token is None:
        return Client(**kw)
    if header:  # an apiKey scheme: the generated client's own knob for the auth header's name
        return AuthenticatedClient(token=token, prefix="", auth_header_name=header, **kw)
    return AuthenticatedClient(token=token, **kw)


def expect(resp, status, model=None, what=""):
    if int(resp.status_code) != status:
        raise Fail(f"{what}: expected HTTP {status}, got {int(resp.status_code)}")
    if model is not None and not isinstance(resp.parsed, model):
        raise Fail(f"{what}: HTTP {status} parsed as {type(resp.parsed).__name__}, not {model.__name__}")
    return resp.parsed


def check(cond, message):
    if not cond:
        raise Fail(message)


# --- the webhook receiver ------------------------------------------------------------------
class Receiver(BaseHTTPRequestHandler):
    events, cond = [], threading.Condition()

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Receiver.cond:
            Receiver.events.append((dict(self.headers), raw))
            Receiver.cond.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for_code(purpose):
    """The code of the next webhook for our user and `purpose`, its signature checked."""
    deadline = time.monotonic() + WEBHOOK_WAIT_SECS
    with Receiver.cond:
        while True:
            for i, (headers, raw) in enumerate(Receiver.events):
                body = json.loads(raw)
                p = body.get("payload", {})
                if p.get("purpose") == purpose and \
                        p.get("user_authentication_password_profile_info", {}).get("username") == S["user"]:
                    del Receiver.events[: i + 1]
                    try:
                        check_signature(headers, raw)
                    except Fail as exc:  # the webhook is what was received here
                        raise Fail(f"{exc}\n  webhook headers: {headers}\n  webhook body: {raw[:2000]!r}")
                    return p["one_time_password_token"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"no {purpose} webhook within {WEBHOOK_WAIT_SECS:.0f} s "
                           f"({len(Receiver.events)} other deliveries)")
            Receiver.cond.wait(left)


def check_signature(headers, raw):
    h = {k.lower(): v for k, v in headers.items()}
    sig = h.get("x-authgate-signature", "")
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", sig)
    check(m, f"webhook: X-Authgate-Signature malformed: {sig!r}")
    mac = hmac.new(S["secret_key"].encode(), m[1].encode() + b"." + raw, hashlib.sha256).hexdigest()
    check(hmac.compare_digest(mac, m[2]), f"webhook: signature does not verify: {sig!r}")
    check(abs(time.time() - int(m[1])) < 300, f"webhook: signature time {m[1]} is stale")
    check(h.get("x-moltin-secret-key") == S["secret_key"], "webhook: X-MOLTIN-SECRET-KEY missing/wrong")


# --- the steps -----------------------------------------------------------------------------
def step0_operations():
    doc = json.loads(DOCUMENT.read_text())
    ops = [o["operationId"] for item in doc["paths"].values() for o in item.values()
           if isinstance(o, dict) and "operationId" in o]
    modules = {p.stem: p for p in (CLIENT_DIR / "authgate_client" / "api").glob("*/*.py")}
    missing = []
    for op in ops:
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op).lower()
        path = modules.get(snake)
        if path is None or not hasattr(importlib.import_module(
                f"authgate_client.api.{path.parent.name}.{snake}"), "sync_detailed"):
            missing.append(f"{op} (authgate_client/api/*/{snake}.py)")
    check(not missing, "operations without a generated function: " + ", ".join(missing))
    return f"{len(ops)} operations, each with a module"


def step1_client_tokens():
    body = TokenRequest(client_id=CLIENT_ID, grant_type=GrantType.CLIENT_CREDENTIALS, client_secret=CLIENT_SECRET)
    tok = expect(create_client_token.sync_detailed(client=client(), body=body), 200, ClientToken, "client_credentials")
    sent = TRACE["sent"]
    form = parse_qs(sent.content.decode())
    check(sent.headers.get("content-type") == "application/x-www-form-urlencoded"
          and form.get("grant_type") == ["client_credentials"], "token request was not form-encoded")
    check(tok.token_type == TokenType.BEARER and tok.identifier == GrantType.CLIENT_CREDENTIALS, f"admin token: {tok}")
    S["admin"] = client(tok.access_token)
    body = TokenRequest(client_id=CLIENT_ID, grant_type=GrantType.IMPLICIT)
    imp = expect(create_client_token.sync_detailed(client=client(), body=body), 200, ClientToken, "implicit")
    check(imp.identifier == GrantType.IMPLICIT, f"implicit token: {imp}")
    S["implicit_token"], S["implicit"] = imp.access_token, client(imp.access_token)
    return f"admin and implicit tokens; form body sent as {sorted(form)} (application/x-www-form-urlencoded)"


def step2_settings():
    got = expect(get_account_authentication_settings.sync_detailed(client=S["admin"]), 200, SettingsEnvelope, "GET")
    S["realm"] = got.data.relationships.authentication_realm.data.id
    S["old_self_management"] = got.data.account_member_self_management
    body = SettingsBody(SettingsInput(type_=SettingsType.ACCOUNT_AUTHENTICATION_SETTINGS,
                                      account_member_self_management=SelfManagement.UPDATE_ONLY))
    put = expect(update_account_authentication_settings.sync_detailed(client=S["admin"], body=body),
                 200, SettingsEnvelope, "PUT")
    check(put.data.account_member_self_management == SelfManagement.UPDATE_ONLY, f"PUT echoed {put.data}")
    return f"realm {S['realm']}"


def step3_directory():
    sfx = secrets.token_hex(4)
    S.update(user=f"flows{sfx}", app=f"app{sfx}.acct{sfx}", pw1=f"first-{sfx}", pw2=f"second-{sfx}")
    S["full"] = f"{S['user']}@{S['app']}.voximplant.com"
    realm, admin = S["realm"], S["admin"]
    body = ProfileBody(ProfileInput(
        type_=ProfileType.PASSWORD_PROFILE, name=f"flows {sfx}", username_format=UsernameFormat.ANY,
        enable_one_time_password_token=True, voximplant_application=S["app"]))
    prof = expect(create_password_profile.sync_detailed(realm, client=admin, body=body),
                  201, ProfileEnvelope, "profile")
    check(prof.data.voximplant_application == S["app"], f"profile echoed {prof.data}")
    S["profile"] = prof.data.id
    body = UserBody(UserInput(type_=UserType.USER_AUTHENTICATION_INFO, name=f"Flows {sfx}",
                              email=f"flows-{sfx}@example.com"))
    S["user_id"] = expect(create_user_authentication_info.sync_detailed(realm, client=admin, body=body),
                          201, UserEnvelope, "user").data.id
    body = CredentialBody(CredentialInput(type_=CredentialType.USER_AUTHENTICATION_PASSWORD_PROFILE_INFO,
                                          password_profile_id=S["profile"], username=S["user"], password=S["pw1"]))
    cred = expect(create_user_authentication_password_profile_info.sync_detailed(
        realm, S["user_id"], client=admin, body=body), 201, CredentialEnvelope, "credential")
    S["cred"] = cred.data.id
    return f"profile {S['profile']} ({S['app']}), user {S['user_id']}, credential {S['cred']}"


def step4_webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    S["secret_key"] = secrets.token_hex(16)
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    body = IntegrationBody(IntegrationInput(
        type_=IntegrationKind.INTEGRATION, name=f"flows {S['user']}", description="flows.py receiver", enabled=True,
        integration_type=IntegrationType.WEBHOOK,
        observes=[IntegrationInputObservesItem.ONE_TIME_PASSWORD_TOKEN_REQUEST_CREATED],
        configuration=Configuration(url=hook, secret_key=S["secret_key"])))
    S["integration"] = expect(create_integration.sync_detailed(client=S["admin"], body=body),
                              201, IntegrationEnvelope, "integration").data.id
    return f"integration {S['integration']} -> {hook}"


def verified(c, scheme, what):
    r = verify.sync_detailed(client=c)
    expect(r, 200, None, what)
    got = {k: r.headers.get(f"x-auth-{k}") for k in ("scheme", "user-id", "realm")}
    want = {"scheme": scheme, "user-id": S["user_id"], "realm": S["realm"]}
    check(got == want, f"{what}: X-Auth-* headers {got}, expected {want}")
    return r.headers


def step5_one_time_key():
    pub = client()
    key = expect(request_one_time_login_key.sync_detailed(client=pub, body=KeyRequest(username=S["full"])),
                 200, KeyIssued, "key request")
    check(key.result is False and key.code == 302 and key.key, f"key request answered {key}")
    ha1 = hashlib.md5(f"{S['user']}:voximplant.com:{S['pw1']}".encode()).hexdigest()
    digest = hashlib.md5(f"{key.key}|{ha1}".encode()).hexdigest()
    login = expect(login_with_one_time_key.sync_detailed(client=pub, body=KeyLogin(username=S["full"], hash_=digest)),
                   200, LoggedInResult, "key login")
    check(login.result is True and login.tokens.access_token, f"key login answered {login}")
    headers = verified(client(login.tokens.access_token), "one-time-key", "verify")
    # The gateway names the user in its canonical form user@app.account, whichever accepted
    # form logged in (here user@app.account.voximplant.com); the document just says "username".
    check(headers.get("x-auth-user") == f"{S['user']}@{S['app']}", f"X-Auth-User {headers.get('x-auth-user')!r}")
    body = TokenRefresh(username=S["full"], refresh_token=login.tokens.refresh_token)
    new = expect(refresh_tokens.sync_detailed(client=pub, body=body), 200, RefreshedResult, "refresh").tokens
    check(new.access_token != login.tokens.access_token and new.refresh_token != login.tokens.refresh_token,
          "refresh did not rotate the tokens")
    verified(client(new.access_token), "one-time-key", "verify refreshed")
    expect(logout.sync_detailed(client=pub, body=Logout(access_token=new.access_token)), 204, None, "logout")
    gone = verify.sync_detailed(client=client(new.access_token))
    expect(gone, 401, Errors, "verify after logout")
    check(gone.headers.get("www-authenticate"), "verify 401 without WWW-Authenticate (the document requires it)")
    return f"key login as {S['full']}, verify (X-Auth-User {headers['x-auth-user']}), refresh, logout, verify 401"


def request_code(purpose):
    body = CodeRequestBody(CodeRequestInput(type_=CodeRequestType.ONE_TIME_PASSWORD_TOKEN_REQUEST,
                                            username=S["user"], purpose=purpose))
    r = create_one_time_password_token_request.sync_detailed(S["realm"], S["profile"], client=S["implicit"], body=body)
    expect(r, 202, None, f"{purpose.value} code request")
    return wait_for_code(purpose.value)


def member_token(code, expected_status=201):
    body = TokenBody(TokenInput(type_=AccountTokenType.ACCOUNT_MANAGEMENT_AUTHENTICATION_TOKEN,
                                authentication_mechanism=Mechanism.PASSWORDLESS, password_profile_id=S["profile"],
                                username=S["user"], one_time_password_token=code))
    r = create_account_management_authentication_token.sync_detailed(client=S["implicit"], body=body)
    if expected_status != 201:
        return expect(r, expected_status, Errors, "code spent twice")
    tokens = expect(r, 201, TokenList, "token exchange")
    check(tokens.meta.account_member_id == S["user_id"], f"account_member_id {tokens.meta.account_member_id}")
    return tokens.data[0].token


def step6_passwordless():
    code = request_code(Purpose.PASSWORDLESS_AUTHENTICATION)
    check(re.fullmatch(r"[a-z0-9]{6}", code), f"code {code!r} is not 6 of [a-z0-9]")
    token = member_token(code)
    headers = verified(client(token, header=MEMBER_HEADER), "account-management", "verify member token")
    check(headers.get("x-auth-user") == S["user"], f"X-Auth-User {headers.get('x-auth-user')!r} != {S['user']!r}")
    member_token(code, expected_status=401)
    return "code by signed webhook, member token, verify, second use 401"


def step7_password_reset():
    token = member_token(request_code(Purpose.RESET_PASSWORD))
    # Security [{BearerToken, AccountManagementToken}]: the generated function takes one
    # AuthenticatedClient (the bearer), so the member token rides in with_headers(). On a client
    # that has already sent requests, with_headers() also adds the header to that client's live
    # httpx.Client (generated client.py), so it is applied to a fresh client, not S["implicit"].
    both = client(S["implicit_token"]).with_headers({MEMBER_HEADER: token})
    body = CredentialBody(CredentialInput(type_=CredentialType.USER_AUTHENTICATION_PASSWORD_PROFILE_INFO,
                                          id=S["cred"], password=S["pw2"]))
    alone = update_user_authentication_password_profile_info.sync_detailed(
        S["realm"], S["user_id"], S["cred"], client=S["implicit"], body=body)
    check(int(alone.status_code) in (401, 403) and isinstance(alone.parsed, Errors),
          f"implicit bearer without the member token: HTTP {int(alone.status_code)}, expected 401/403")
    expect(update_user_authentication_password_profile_info.sync_detailed(
        S["realm"], S["user_id"], S["cred"], client=both, body=body), 200, CredentialEnvelope, "password reset")
    pub = client()
    ok = login_with_password.sync_detailed(client=pub, body=PasswordLogin(username=S["full"], password=S["pw2"]))
    expect(ok, 200, LoggedInResult, "login with the new password")
    old = login_with_password.sync_detailed(client=pub, body=PasswordLogin(username=S["full"], password=S["pw1"]))
    check(expect(old, 401, AuthFailure, "login with the old password").code == 401, "old password: code != 401")
    return (f"bearer alone {int(alone.status_code)}; bearer + member token 200; "
            "login with the new password 200, old 401")


def cleanup(strict):
    admin, realm, done = S.get("admin"), S.get("realm"), []
    if admin is None:
        return done
    jobs = [("integration", lambda: delete_integration.sync_detailed(S["integration"], client=admin)),
            ("cred", lambda: delete_user_authentication_password_profile_info.sync_detailed(
                realm, S["user_id"], S["cred"], client=admin)),
            ("user_id", lambda: delete_user_authentication_info.sync_detailed(realm, S["user_id"], client=admin)),
            ("profile", lambda: delete_password_profile.sync_detailed(realm, S["profile"], client=admin))]
    for name, call in jobs:
        if name in S:
            try:
                expect(call(), 204, None, f"delete {name}")
                done.append(name)
            except Exception:
                if strict:
                    raise
    if "old_self_management" in S:  # leave the shared setting as this run found it
        body = SettingsBody(SettingsInput(type_=SettingsType.ACCOUNT_AUTHENTICATION_SETTINGS,
                                          account_member_self_management=S["old_self_management"]))
        r = update_account_authentication_settings.sync_detailed(client=admin, body=body)
        if strict:
            expect(r, 200, SettingsEnvelope, "restore settings")
    return done


def step8_cleanup():
    return "deleted " + ", ".join(cleanup(strict=True)) + "; setting restored"


STEPS = [step0_operations, step1_client_tokens, step2_settings, step3_directory, step4_webhook,
         step5_one_time_key, step6_passwordless, step7_password_reset, step8_cleanup]


def show(label, message):
    if message is None:
        print(f"  {label}: nothing")
        return
    headers = "".join(f"\n    {k}: {v if k.lower() not in ('authorization', MEMBER_HEADER.lower()) else v[:16] + '...'}"
                      for k, v in message.headers.items())
    body = message.content.decode(errors="replace")
    body = re.sub(r"client_secret=[^&]*", "client_secret=***", body)
    first = f"{message.method} {message.url}" if label == "sent" else f"HTTP {message.status_code}"
    print(f"  {label}: {first}{headers}\n    body: {body[:2000] or '(empty)'}")


def main():
    for fn in STEPS:
        name = fn.__name__[4:].replace("_", " ", 1).replace("_", "-")  # step5_one_time_key: "5 one-time-key"
        started = time.monotonic()
        try:
            note = fn()
        except Exception as exc:
            if isinstance(exc, Fail):
                print(f"FAIL {name}: {exc}")
            elif isinstance(exc, errors.UnexpectedStatus):
                print(f"FAIL {name}: HTTP {exc.status_code}, a status the document does not list here")
            else:
                print(f"FAIL {name}: the generated client raised {type(exc).__name__}: {exc} "
                      "(does the document describe this response?)")
            if not isinstance(exc, (Fail, errors.UnexpectedStatus)):
                traceback.print_exc(limit=-3, file=sys.stdout)
            show("sent", TRACE.get("sent"))
            show("received", TRACE.get("received"))
            if fn is not step8_cleanup:
                cleanup(strict=False)
            return 1
        print(f"ok {name} ({time.monotonic() - started:.2f} s): {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

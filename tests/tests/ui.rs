//! The hosted pages under `/ui/`, black box: the real gateway on a private Redis,
//! a real SMTP server (aiosmtpd) receiving the code emails, and a client that
//! keeps cookies and posts forms as a browser without JavaScript does.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use authgate_tests::app::{Shop, TestApp};
use authgate_tests::smtp::SmtpSink;
use authgate_tests::{redis_or_skip, spawn_app_with, TestRedis};
use mail_parser::MessageParser;
use reqwest::{Method, StatusCode};
use serde_json::json;

macro_rules! smtp_or_skip {
    () => {
        match SmtpSink::start() {
            Some(s) => s,
            None => return,
        }
    };
}

const RETURN_TO: &str = "https://app.shop.test/cb";
const MEMBER: &str = "jo@banks.test";

/// A gateway whose codes go to `smtp` and whose pages may return to
/// `https://app.shop.test/cb`, after `tweak`.
async fn gateway(
    redis: &TestRedis,
    smtp: &SmtpSink,
    tweak: impl FnOnce(&mut authgate_gateway::Config),
) -> TestApp {
    let url = smtp.url();
    spawn_app_with(Some(redis), move |c| {
        c.smtp_url = Some(secrecy::SecretString::from(url));
        c.email_from = Some("Shop <no-reply@shop.test>".into());
        c.ui_return_urls = vec![RETURN_TO.to_owned()];
        tweak(c);
    })
    .await
}

/// A shop whose member is Jo, with an email integration that names no page (so
/// its links open the gateway's own).
async fn shop(app: &TestApp) -> Shop {
    app.shop(
        "Jo",
        MEMBER,
        json!({"type": "integration", "name": "Code emails", "integration_type": "email", "configuration": {}}),
    )
    .await
}

/// A page as a browser sees it.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> String {
        self.header("location").expect("a Location")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The form's hidden fields (`name` → `value`), entities decoded.
    fn hidden(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for part in self.body.split("<input type=\"hidden\" ").skip(1) {
            let name = between(part, "name=\"", "\"");
            let value = between(part, "value=\"", "\"");
            out.entry(name).or_insert_with(|| unescape(&value));
        }
        out
    }

    /// The page's text with the CSRF token and values that differ by request
    /// blanked, to compare two pages.
    fn shape(&self, username: &str) -> String {
        let mut body = self.body.replace(username, "<user>");
        for (_, v) in self.hidden() {
            if v.len() == 43 {
                body = body.replace(&v, "<csrf>");
            }
        }
        body.replace(&escape_at(username), "<user>")
    }
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let rest = &text[from..];
    rest[..rest.find(end).unwrap_or(rest.len())].to_owned()
}

fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// `text` as a form or query value encodes it.
fn escape_at(text: &str) -> String {
    let url = reqwest::Url::parse_with_params("http://x/", &[("v", text)]).unwrap();
    url.query().unwrap()["v=".len()..].to_owned()
}

/// The name-value pairs of a form-encoded string.
fn pairs(text: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{text}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// A cookie-keeping client that does not follow redirects.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let resp = req.send().await.expect("request");
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// GETs a path (`/ui/...`) or an absolute URL.
    async fn get(&mut self, target: &str) -> Page {
        let url = if target.starts_with("http") {
            target.to_owned()
        } else {
            self.app.url(target)
        };
        let req = self.app.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &BTreeMap<String, String>) -> Page {
        let req = self.app.http.post(self.app.url(path)).form(form);
        self.send(req).await
    }
}

/// `fields` over `base`.
fn with(base: &BTreeMap<String, String>, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut form = base.clone();
    for (k, v) in fields {
        form.insert((*k).to_owned(), (*v).to_owned());
    }
    form
}

/// The code and the link of the `n`th (1-based) message received.
async fn mail(smtp: &SmtpSink, n: usize) -> (String, String) {
    let got = smtp.wait_for(n, Duration::from_secs(10)).await;
    assert!(got.len() >= n, "message {n} arrived");
    let m = MessageParser::default().parse(&got[n - 1]).unwrap();
    let subject = m.subject().unwrap_or_default().to_owned();
    let text = m.body_text(0).unwrap().into_owned();
    let code = subject.rsplit(' ').next().unwrap().to_owned();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_default()
        .to_owned();
    (code, link)
}

/// Asks for a code on `page` (`/ui/sign-in` or `/ui/reset-password/request`)
/// with `return_to`; the answer to the POST.
async fn ask(b: &mut Browser<'_>, s: &Shop, page: &str, username: &str, return_to: &str) -> Page {
    let form = b
        .get(&format!(
            "{page}?profile={}&return_to={}",
            s.profile,
            escape_at(return_to)
        ))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    b.post(page, &with(&form.hidden(), &[("username", username)]))
        .await
}

fn assert_strict_headers(page: &Page, what: &str) {
    let csp = page.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert_eq!(
        page.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    let cache = page.header("cache-control").unwrap_or_default();
    if page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html"))
    {
        assert_eq!(cache, "no-store", "{what}");
    }
}

fn assert_html_problem(page: &Page, status: StatusCode, heading: &str, what: &str) {
    assert_eq!(page.status, status, "{what}: {}", page.body);
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{what}: an HTML page, not JSON"
    );
    assert!(
        page.body.contains(&format!("<h1>{heading}</h1>")),
        "{what}: {}",
        page.body
    );
    assert_strict_headers(page, what);
}

#[tokio::test]
async fn the_emailed_link_signs_in_only_on_the_pages_post_and_returns_with_the_token_in_the_fragment(
) {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    let asked = ask(
        &mut b,
        &s,
        "/ui/sign-in",
        MEMBER,
        &format!("{RETURN_TO}?state=42"),
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    assert!(
        asked.location().starts_with("/ui/sign-in/code?"),
        "{}",
        asked.location()
    );
    let code_page = b.get(&asked.location()).await;
    assert_eq!(code_page.status, StatusCode::OK);
    assert!(code_page
        .body
        .contains("If an account exists for <strong>jo@banks.test</strong>"));

    let (code, link) = mail(&smtp, 1).await;
    let expected = format!(
        "http://{}/ui/sign-in/confirm?profile={}&username=jo%40banks.test&token={code}",
        app.addr, s.profile
    );
    assert_eq!(link, expected, "the email links to the gateway's own page");

    // A scanner, or the person, fetches the link twice: nothing is spent.
    let scanner = reqwest::Client::new().get(&link).send().await.unwrap();
    assert_eq!(scanner.status(), StatusCode::OK);
    let confirm = b.get(&link).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("<h1>Continue as jo@banks.test</h1>"),
        "{}",
        confirm.body
    );
    assert_strict_headers(&confirm, "confirm");
    let form = confirm.hidden();
    assert_eq!(form["token"], code);
    assert_eq!(
        form["return_to"],
        format!("{RETURN_TO}?state=42"),
        "remembered from the request"
    );
    assert!(
        !confirm.body.contains(&format!("token={code}")),
        "the code is in no URL of the page"
    );

    // Without, or with a wrong, anti-CSRF token: refused, nothing spent.
    let mut no_csrf = form.clone();
    no_csrf.remove("csrf");
    let refused = b.post("/ui/sign-in/confirm", &no_csrf).await;
    assert_html_problem(
        &refused,
        StatusCode::FORBIDDEN,
        "This form has expired",
        "no CSRF",
    );
    let wrong = with(
        &form,
        &[("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
    );
    let refused = b.post("/ui/sign-in/confirm", &wrong).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // The right token but not the cookie it belongs to (another browser's form).
    let mut other = Browser::new(&app);
    let refused = other.post("/ui/sign-in/confirm", &form).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the token needs its cookie"
    );

    let done = b.post("/ui/sign-in/confirm", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.location();
    let (target, fragment) = location.split_once('#').expect("a fragment");
    assert_eq!(
        target,
        format!("{RETURN_TO}?state=42"),
        "nothing added to the query"
    );
    let fields = pairs(fragment);
    assert_eq!(fields["token_type"], "Bearer");
    assert!(fields["expires_in"].parse::<u64>().unwrap() > 3600);
    let (status, user) = app.verify(&fields["access_token"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user.as_deref(), Some(MEMBER));

    // Spent: the same form again is a dead link.
    let again = b.post("/ui/sign-in/confirm", &form).await;
    assert_html_problem(
        &again,
        StatusCode::UNAUTHORIZED,
        "This link does not work",
        "reused link",
    );
    assert!(again.body.contains("Start again"));

    let metrics = app.get_raw("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("operation=\"uiSignInConfirm\",status=\"303\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("scheme=\"one_time_password\",stage=\"verified\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing_and_the_code_still_works() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    // A code request without the token sends nothing.
    let form = b.get(&format!("/ui/sign-in?profile={}", s.profile)).await;
    let mut forged = with(&form.hidden(), &[("username", MEMBER)]);
    forged.remove("csrf");
    assert_eq!(
        b.post("/ui/sign-in", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(smtp.messages().is_empty(), "no code was requested");

    assert_eq!(
        ask(&mut b, &s, "/ui/sign-in", MEMBER, RETURN_TO)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let (code, _) = mail(&smtp, 1).await;
    let page = b
        .get(&format!(
            "/ui/sign-in/code?profile={}&username={}",
            s.profile,
            escape_at(MEMBER)
        ))
        .await;
    let form = with(&page.hidden(), &[("token", &code)]);
    let mut forged = form.clone();
    forged.insert("csrf".into(), "x".into());
    assert_eq!(
        b.post("/ui/sign-in/code", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    let (status, body) = app.exchange_code(&s, MEMBER, &code).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the code survived the forged form: {body}"
    );
}

#[tokio::test]
async fn a_typed_code_signs_in_and_without_return_to_the_page_shows_the_token() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    let form = b.get("/ui/sign-in").await;
    assert_eq!(
        form.status,
        StatusCode::OK,
        "the only profile with codes is the default"
    );
    assert_eq!(form.hidden()["profile"], s.profile);
    let asked = b
        .post(
            "/ui/sign-in",
            &with(&form.hidden(), &[("username", MEMBER)]),
        )
        .await;
    let page = b.get(&asked.location()).await;
    let (code, _) = mail(&smtp, 1).await;
    let wrong = if code == "aaaaaa" { "bbbbbb" } else { "aaaaaa" };
    let bad = b
        .post(
            "/ui/sign-in/code",
            &with(&page.hidden(), &[("username", MEMBER), ("token", wrong)]),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(
        bad.body.contains("role=\"alert\""),
        "an error summary: {}",
        bad.body
    );
    assert!(bad.body.contains("aria-invalid=\"true\""));
    let ok = b
        .post(
            "/ui/sign-in/code",
            &with(
                &bad.hidden(),
                &[("username", MEMBER), ("token", &code.to_uppercase())],
            ),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.body.contains("<h1>You are signed in</h1>"));
    let token = between(
        &ok.body,
        "readonly rows=\"6\" spellcheck=\"false\">",
        "</textarea>",
    );
    assert_eq!(app.verify(&token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_username_gets_the_same_pages_as_a_known_one() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    let known = ask(&mut b, &s, "/ui/sign-in", MEMBER, RETURN_TO).await;
    let ghost = "ghost@banks.test";
    let unknown = ask(&mut b, &s, "/ui/sign-in", ghost, RETURN_TO).await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(
        known.location().replace(&escape_at(MEMBER), "U"),
        unknown.location().replace(&escape_at(ghost), "U")
    );
    let known_page = b.get(&known.location()).await;
    let unknown_page = b.get(&unknown.location()).await;
    assert_eq!(known_page.status, unknown_page.status);
    assert_eq!(known_page.shape(MEMBER), unknown_page.shape(ghost));
    // The first code is delivered before the next request replaces it.
    mail(&smtp, 1).await;
    let k = ask(&mut b, &s, "/ui/reset-password/request", MEMBER, RETURN_TO).await;
    let u = ask(&mut b, &s, "/ui/reset-password/request", ghost, RETURN_TO).await;
    assert_eq!(k.status, u.status);
    assert_eq!(
        k.location().replace(&escape_at(MEMBER), "U"),
        u.location().replace(&escape_at(ghost), "U")
    );
    mail(&smtp, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 2, "mail only for the known member");
}

#[tokio::test]
async fn a_return_to_outside_the_list_is_refused_before_anything_is_spent() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    for evil in [
        "https://app.shop.test.evil.test/cb",
        "https://app.shop.test/cb/../admin",
        "https://app.shop.test/cbx",
        "http://app.shop.test/cb",
        "//evil.test/cb",
        "javascript:alert(1)",
    ] {
        let page = b
            .get(&format!(
                "/ui/sign-in?profile={}&return_to={}",
                s.profile,
                escape_at(evil)
            ))
            .await;
        assert_html_problem(
            &page,
            StatusCode::BAD_REQUEST,
            "This application is not allowed",
            evil,
        );
        assert!(
            !page.body.contains("evil.test"),
            "the refused address is not echoed"
        );
    }
    // A POST naming one sends nothing.
    let form = b.get(&format!("/ui/sign-in?profile={}", s.profile)).await;
    let evil = with(
        &form.hidden(),
        &[("username", MEMBER), ("return_to", "https://evil.test/")],
    );
    assert_eq!(
        b.post("/ui/sign-in", &evil).await.status,
        StatusCode::BAD_REQUEST
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(smtp.messages().is_empty());
    // A link's form posted with one: refused, and its code stays usable.
    assert_eq!(
        ask(&mut b, &s, "/ui/sign-in", MEMBER, RETURN_TO)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let (code, link) = mail(&smtp, 1).await;
    let confirm = b.get(&link).await;
    let evil = with(&confirm.hidden(), &[("return_to", "https://evil.test/cb")]);
    let refused = b.post("/ui/sign-in/confirm", &evil).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.header("location").is_none(),
        "never redirected there"
    );
    assert_eq!(
        app.exchange_code(&s, MEMBER, &code).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn the_reset_journey_sets_the_password_ends_old_sessions_and_a_bad_password_spends_nothing() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    // Switched off (the default), the page says so and spends nothing.
    let off = b
        .get(&format!(
            "/ui/reset-password?profile={}&username={}",
            s.profile,
            escape_at(MEMBER)
        ))
        .await;
    assert_html_problem(
        &off,
        StatusCode::FORBIDDEN,
        "Password reset is switched off",
        "reset off",
    );
    let (status, _) = app
        .admin(&s.admin, Method::PUT, "/v2/settings/account-authentication",
            Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, old) = app.password_token(&s, MEMBER, "old-password-1").await;
    assert_eq!(status, StatusCode::CREATED);
    let old_token = old["data"][0]["token"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&old_token).await.0, StatusCode::OK);

    let asked = ask(&mut b, &s, "/ui/reset-password/request", MEMBER, RETURN_TO).await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    assert!(
        asked.location().starts_with("/ui/reset-password?"),
        "{}",
        asked.location()
    );
    let (code, link) = mail(&smtp, 1).await;
    assert!(
        link.starts_with(&format!("http://{}/ui/reset-password?profile=", app.addr)),
        "{link}"
    );
    let form = b.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(
        form.body.contains("At least 8 characters"),
        "the rules are shown"
    );
    assert!(form.body.contains("autocomplete=\"new-password\""));
    let fields = form.hidden();

    assert_eq!(fields["token"], code);

    for (password, again, status) in [
        ("short", "short", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "a-new-password-2",
            "a-new-password-3",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let page = b
            .post(
                "/ui/reset-password",
                &with(
                    &fields,
                    &[("new_password", password), ("confirm_password", again)],
                ),
            )
            .await;
        assert_eq!(page.status, status, "{}", page.body);
        assert!(page.body.contains("role=\"alert\""));
        assert_eq!(
            page.hidden()["token"],
            code,
            "the form keeps the link's code"
        );
    }
    let done = b
        .post(
            "/ui/reset-password",
            &with(
                &fields,
                &[
                    ("new_password", "a-new-password-2"),
                    ("confirm_password", "a-new-password-2"),
                ],
            ),
        )
        .await;
    assert_eq!(
        done.status,
        StatusCode::OK,
        "the code survived the refused passwords: {}",
        done.body
    );
    assert!(done.body.contains("<h1>Your password is changed</h1>"));

    assert!(
        unescape(&done.body).contains(RETURN_TO),
        "a way back to the application"
    );

    assert_eq!(
        app.password_token(&s, MEMBER, "a-new-password-2").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.password_token(&s, MEMBER, "old-password-1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.verify(&old_token).await.0,
        StatusCode::UNAUTHORIZED,
        "old sessions ended"
    );
    // The link is spent.
    let again = b
        .post(
            "/ui/reset-password",
            &with(
                &fields,
                &[
                    ("new_password", "a-new-password-9"),
                    ("confirm_password", "a-new-password-9"),
                ],
            ),
        )
        .await;
    assert_html_problem(
        &again,
        StatusCode::UNAUTHORIZED,
        "This link does not work",
        "spent reset link",
    );
}

#[tokio::test]
async fn every_page_and_every_problem_is_html_with_the_strict_headers() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |_| {}).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    let p = &s.profile;
    for (path, status) in [
        (format!("/ui/sign-in?profile={p}"), StatusCode::OK),
        (
            format!("/ui/sign-in/code?profile={p}&username=x"),
            StatusCode::OK,
        ),
        (
            format!("/ui/sign-in/confirm?profile={p}&username=x&token=abc123"),
            StatusCode::OK,
        ),
        (
            format!("/ui/reset-password/request?profile={p}"),
            StatusCode::OK,
        ),
        (
            format!("/ui/reset-password?profile={p}&username=x"),
            StatusCode::FORBIDDEN,
        ),
        ("/ui/style.css".to_owned(), StatusCode::OK),
        ("/ui/".to_owned(), StatusCode::SEE_OTHER),
        ("/ui/nowhere".to_owned(), StatusCode::NOT_FOUND),
        (
            "/ui/assets/..%2f..%2fetc%2fpasswd".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/ui/sign-in/confirm?profile={p}&username=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ui/sign-in/confirm?profile={p}&username=x&token=%3Cb%3E"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/ui/sign-in?profile=not-a-profile".to_owned(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert_strict_headers(&page, &path);
        if status != StatusCode::SEE_OTHER && path != "/ui/style.css" {
            assert!(
                page.header("content-type")
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
            assert!(page.body.starts_with("<!doctype html>"), "{path}");
            assert!(page.body.contains("<html lang=\"en\">"), "{path}");
            assert_eq!(page.body.matches("<h1>").count(), 1, "{path}: one h1");
            assert!(
                !page.body.contains("http://") && !page.body.contains("https://"),
                "{path}: nothing from another host"
            );
        }
    }
    let put = app.http.put(app.url("/ui/sign-in")).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(put.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let bad = b
        .get(&format!("/ui/sign-in/confirm?profile={p}&username=x"))
        .await;
    assert!(
        bad.body.contains("<h1>This link does not work</h1>") && bad.body.contains("Start again")
    );
    let document = app.get_raw("/openapi.json").await.text().await.unwrap();
    assert!(
        !document.contains("/ui/"),
        "the pages are not in the OpenAPI document"
    );
}

#[tokio::test]
async fn too_many_wrong_codes_get_a_429_page_and_code_requests_stay_uniform() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = gateway(&redis, &smtp, |c| {
        c.limits.guesses_per_user = authgate_tests::app::limit(1, 60);
        c.limits.requests_per_user = authgate_tests::app::limit(1, 60);
    })
    .await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    let first = ask(&mut b, &s, "/ui/sign-in", MEMBER, RETURN_TO).await;
    let second = ask(&mut b, &s, "/ui/sign-in", MEMBER, RETURN_TO).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(
        second.status,
        StatusCode::SEE_OTHER,
        "over the request limit, the same answer"
    );
    assert_eq!(first.location(), second.location());
    let page = b.get(&first.location()).await;
    let form = with(&page.hidden(), &[("username", MEMBER)]);
    let (code, _) = mail(&smtp, 1).await;
    let wrong = if code == "aaaaaa" { "bbbbbb" } else { "aaaaaa" };
    let one = b
        .post("/ui/sign-in/code", &with(&form, &[("token", wrong)]))
        .await;
    assert_eq!(one.status, StatusCode::UNAUTHORIZED);
    let limited = b
        .post("/ui/sign-in/code", &with(&form, &[("token", &code)]))
        .await;
    assert_html_problem(
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "throttled",
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn pages_speak_a_locale_of_the_template_folder_and_names_never_become_paths() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let dir = std::env::temp_dir().join(format!("authgate-ui-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("fr")).unwrap();
    std::fs::write(
        dir.join("fr/sign_in.html"),
        "{% extends \"layout.html\" %}{% block title %}Connexion{% endblock %}{% block content %}<h1>Connexion</h1>{{ username }}{% endblock %}",
    )
    .unwrap();
    std::fs::write(dir.join("style.css"), "body { color: rebeccapurple; }").unwrap();
    let templates = dir.clone();
    let app = gateway(&redis, &smtp, move |c| c.ui_templates = Some(templates)).await;
    let s = shop(&app).await;
    let mut b = Browser::new(&app);
    let p = &s.profile;
    let fr = app
        .http
        .get(app.url(&format!("/ui/sign-in?profile={p}&username=%3Cscript%3E")))
        .header("accept-language", "de, fr-CH;q=0.9, en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fr.contains("<html lang=\"fr\">") && fr.contains("<h1>Connexion</h1>"),
        "{fr}"
    );
    assert!(
        fr.contains("&lt;script&gt;") && !fr.contains("<script>"),
        "values are escaped"
    );
    let by_param = b.get(&format!("/ui/sign-in?profile={p}&locale=fr")).await;
    assert!(by_param.body.contains("<h1>Connexion</h1>"));
    for sneaky in ["../fr", "fr/../..", "%2e%2e"] {
        let page = b
            .get(&format!("/ui/sign-in?profile={p}&locale={sneaky}"))
            .await;
        assert!(page.body.contains("<h1>Sign in</h1>"), "{sneaky}");
    }
    assert!(b.get("/ui/style.css").await.body.contains("rebeccapurple"));
    std::fs::remove_dir_all(dir).unwrap();
}

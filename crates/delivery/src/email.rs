//! Email delivery of codes: a message per purpose, rendered from templates and
//! sent over SMTP (lettre, pooled connections) or written to the log.
//!
//! Templates are `<purpose>.subject`, `<purpose>.txt` and `<purpose>.html` for the
//! purposes `reset_password` and `passwordless_authentication`. Built-in English
//! defaults ship in the binary; a directory named by `AUTHGATE_EMAIL_TEMPLATES`
//! overrides any of them, per locale in `<dir>/<locale>/` and for every locale in
//! `<dir>/`. Templates are minijinja: values are escaped in the HTML part.
//!
//! `AUTHGATE_SMTP_URL` picks the transport: `smtp://host:port` (plain),
//! `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465` (implicit TLS),
//! each with optional `user:password@`; or `log` to write each message to the log
//! instead (what `--demo` does when nothing else is set).
//!
//! An integration without `passwordless_url` or `reset_password_url` links to the
//! gateway's own pages (`<public URL>/ui/sign-in/confirm`, `<public URL>/ui/reset-password`)
//! once the gateway has told the mailer its public URL ([`Mailer::with_public_url`]).

use std::path::PathBuf;
use std::time::Duration;

use authgate_core::integrations::Integration;
use authgate_otp::Purpose;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::event::Payload;
use crate::send::{Attempt, Failure};
use crate::StartupError;

/// Built-in English templates.
const BUILTIN: &[(&str, &str)] = &[
    (
        "reset_password.subject",
        include_str!("../templates/email/en/reset_password.subject"),
    ),
    (
        "reset_password.txt",
        include_str!("../templates/email/en/reset_password.txt"),
    ),
    (
        "reset_password.html",
        include_str!("../templates/email/en/reset_password.html"),
    ),
    (
        "passwordless_authentication.subject",
        include_str!("../templates/email/en/passwordless_authentication.subject"),
    ),
    (
        "passwordless_authentication.txt",
        include_str!("../templates/email/en/passwordless_authentication.txt"),
    ),
    (
        "passwordless_authentication.html",
        include_str!("../templates/email/en/passwordless_authentication.html"),
    ),
];

/// How messages leave the gateway.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// The log (for trying the gateway without a mail server).
    Log,
    /// Nowhere: email integrations fail with a clear error.
    None,
}

/// Renders and sends code emails.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Option<String>,
    templates: Option<PathBuf>,
    /// The gateway's public URL, for links to its own pages.
    public_url: Option<String>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Log => "log",
            Transport::None => "none",
        };
        f.debug_struct("Mailer")
            .field("transport", &kind)
            .finish_non_exhaustive()
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The gateway's own page for `purpose` under `public_url`, naming the password
/// profile (and the integration's locale) so the page needs no guess.
pub fn own_page(
    public_url: &str,
    purpose: Purpose,
    profile_id: &str,
    locale: Option<&str>,
) -> String {
    let page = match purpose {
        Purpose::ResetPassword => "ui/reset-password",
        Purpose::PasswordlessAuthentication => "ui/sign-in/confirm",
    };
    let mut url = format!(
        "{}/{page}?profile={}",
        public_url.trim_end_matches('/'),
        percent_encode(profile_id)
    );
    if let Some(l) = locale.filter(|l| !l.is_empty()) {
        url.push_str("&locale=");
        url.push_str(&percent_encode(l));
    }
    url
}

/// `base` with `username` and `token` query parameters.
pub fn link(base: &str, username: &str, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{sep}username={}&token={}",
        percent_encode(username),
        percent_encode(token)
    )
}

impl Mailer {
    /// A mailer on `smtp_url` (or `log`), sending from `from` unless an integration says otherwise.
    pub fn new(
        smtp_url: Option<&SecretString>,
        from: Option<String>,
        templates: Option<PathBuf>,
    ) -> Result<Self, StartupError> {
        let transport = match smtp_url.map(|u| u.expose_secret().trim().to_owned()) {
            None => Transport::None,
            Some(u) if u == "log" => Transport::Log,
            Some(u) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&u)
                    .map_err(StartupError::SmtpUrl)?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
        };
        if let Some(dir) = &templates {
            if !dir.is_dir() {
                return Err(StartupError::Templates(dir.clone()));
            }
        }
        Ok(Self {
            transport,
            from,
            templates,
            public_url: None,
        })
    }

    /// The same mailer linking to the gateway's own pages under `public_url`
    /// (e.g. `https://auth.example.com`) when an integration names no page.
    pub fn with_public_url(mut self, public_url: Option<String>) -> Self {
        self.public_url = public_url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// The same mailer writing to the log when it has no transport (for `--demo`).
    pub fn or_log(mut self) -> Self {
        if matches!(self.transport, Transport::None) {
            self.transport = Transport::Log;
        }
        self
    }

    fn source(&self, locale: Option<&str>, name: &str) -> Option<String> {
        if let Some(dir) = &self.templates {
            let clean = locale.filter(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
            let mut candidates = Vec::new();
            if let Some(l) = clean {
                candidates.push(dir.join(l).join(name));
            }
            candidates.push(dir.join(name));
            for path in candidates {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    return Some(text);
                }
            }
        }
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).to_owned())
    }

    /// Renders the message for a `one-time-password-token-request.created` payload.
    pub fn render(
        &self,
        payload: &Payload,
        config: &EmailSettings,
        code_minutes: u64,
    ) -> Result<Rendered, Failure> {
        let purpose = payload.purpose.as_str();
        let username = &payload.user_authentication_password_profile_info.username;
        let code = payload.one_time_password_token.as_str();
        let configured = match payload.purpose {
            Purpose::ResetPassword => &config.reset_password_url,
            Purpose::PasswordlessAuthentication => &config.passwordless_url,
        };
        let base = configured.clone().or_else(|| {
            self.public_url.as_deref().map(|public| {
                own_page(
                    public,
                    payload.purpose,
                    payload.password_profile_id.as_str(),
                    config.locale.as_deref(),
                )
            })
        });
        let user = &payload.user_authentication_info;
        let context = minijinja::context! {
            code => code,
            username => username,
            name => user.name,
            email => user.email,
            purpose => purpose,
            minutes => code_minutes,
            link => base.as_deref().map(|b| link(b, username, code)),
        };
        let render = |part: &str| -> Result<String, Failure> {
            let name = format!("{purpose}.{part}");
            let source = self
                .source(config.locale.as_deref(), &name)
                .ok_or_else(|| Failure::permanent(format!("template {name} missing")))?;
            let mut env = minijinja::Environment::new();
            env.add_template_owned(name.clone(), source)
                .map_err(|e| Failure::permanent(format!("template {name}: {e}")))?;
            env.get_template(&name)
                .and_then(|t| t.render(&context))
                .map_err(|e| Failure::permanent(format!("template {name}: {e}")))
        };
        Ok(Rendered {
            subject: render("subject")?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            text: render("txt")?,
            html: render("html")?,
        })
    }

    /// Renders and sends the code email of a payload; the attempt carries the
    /// SMTP reply code when the server answered.
    pub async fn send(
        &self,
        payload: &Payload,
        config: &EmailSettings,
        code_minutes: u64,
    ) -> Attempt {
        match self.try_send(payload, config, code_minutes).await {
            Ok(code) => Attempt::delivered(code, String::new()),
            Err((code, failure)) => Attempt::failed(code, String::new(), failure),
        }
    }

    async fn try_send(
        &self,
        payload: &Payload,
        config: &EmailSettings,
        code_minutes: u64,
    ) -> Result<Option<u16>, (Option<u16>, Failure)> {
        let permanent = |detail: String| (None, Failure::Permanent(detail));
        let user = &payload.user_authentication_info;
        let to = user.email.as_deref().unwrap_or_default();
        if to.is_empty() {
            return Err(permanent("the user has no email address".into()));
        }
        let to: Mailbox = format!("{} <{to}>", quote_name(&user.name))
            .parse()
            .or_else(|_| to.parse())
            .map_err(|e| permanent(format!("invalid recipient address: {e}")))?;
        let from = config
            .from
            .clone()
            .or_else(|| self.from.clone())
            .ok_or_else(|| {
                permanent("no sender: set configuration.from or AUTHGATE_EMAIL_FROM".into())
            })?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| permanent(format!("invalid sender address: {e}")))?;
        let rendered = self
            .render(payload, config, code_minutes)
            .map_err(|f| (None, f))?;
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(rendered.subject.clone());
        if let Some(reply_to) = &config.reply_to {
            let reply_to: Mailbox = reply_to
                .parse()
                .map_err(|e| permanent(format!("invalid reply_to address: {e}")))?;
            builder = builder.reply_to(reply_to);
        }
        let message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(rendered.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(rendered.html.clone()),
                    ),
            )
            .map_err(|e| permanent(format!("cannot build the message: {e}")))?;
        match &self.transport {
            Transport::None => Err(permanent(
                "email is not configured: set AUTHGATE_SMTP_URL".into(),
            )),
            Transport::Log => {
                // Only for trying the gateway: the message (with its code) goes to the log.
                tracing::info!(target: "authgate::email", to = %message.envelope().to().iter().map(ToString::to_string).collect::<Vec<_>>().join(","), subject = %rendered.subject, "email (log transport, not sent):\n{}", rendered.text);
                Ok(None)
            }
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(resp) => Ok(resp.code().to_string().parse().ok()),
                Err(e) => {
                    let code = e.status().and_then(|c| c.to_string().parse().ok());
                    let detail = format!("SMTP: {e}");
                    let failure = if e.is_permanent() {
                        Failure::Permanent(detail)
                    } else {
                        Failure::Transient(detail)
                    };
                    Err((code, failure))
                }
            },
        }
    }
}

fn quote_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    format!("\"{clean}\"")
}

/// An email integration's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailSettings {
    /// Sender (default `AUTHGATE_EMAIL_FROM`).
    pub from: Option<String>,
    /// Reply-To.
    pub reply_to: Option<String>,
    /// Where reset links point (`username` and `token` are added).
    pub reset_password_url: Option<String>,
    /// Where one-click sign-in links point (`username` and `token` are added).
    pub passwordless_url: Option<String>,
    /// Template set (`<templates>/<locale>/`), when present.
    pub locale: Option<String>,
}

impl From<&Integration> for EmailSettings {
    fn from(i: &Integration) -> Self {
        Self {
            from: i.from.clone(),
            reply_to: i.reply_to.clone(),
            reset_password_url: i.reset_password_url.clone(),
            passwordless_url: i.passwordless_url.clone(),
            locale: i.locale.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::payload;

    #[test]
    fn a_bad_smtp_url_or_template_directory_stops_start_up() {
        let url = SecretString::from("nonsense://mail.test".to_owned());
        assert!(matches!(
            Mailer::new(Some(&url), None, None),
            Err(StartupError::SmtpUrl(_))
        ));
        let missing = PathBuf::from("/nonexistent/authgate/templates");
        assert!(matches!(
            Mailer::new(None, None, Some(missing)),
            Err(StartupError::Templates(_))
        ));
    }

    #[tokio::test]
    async fn without_a_transport_sending_fails_for_good_and_the_log_transport_delivers(
    ) -> Result<(), String> {
        let mailer =
            Mailer::new(None, Some("codes@x.test".into()), None).map_err(|e| e.to_string())?;
        let p = payload(Purpose::ResetPassword, "Jo")?;
        let settings = EmailSettings::default();
        assert_eq!(
            mailer.send(&p, &settings, 10).await,
            Attempt::failed(
                None,
                String::new(),
                Failure::permanent("email is not configured: set AUTHGATE_SMTP_URL")
            )
        );
        let mut nobody = p.clone();
        nobody.user_authentication_info.email = None;
        let logged = mailer.or_log();
        assert_eq!(
            logged.send(&nobody, &settings, 10).await.failure,
            Some(Failure::permanent("the user has no email address"))
        );
        assert_eq!(
            logged.send(&p, &settings, 10).await,
            Attempt::delivered(None, String::new())
        );
        Ok(())
    }

    #[test]
    fn links_carry_username_and_token_encoded() {
        assert_eq!(
            link("https://x.test/reset", "jo+1@example.com", "ab12cd"),
            "https://x.test/reset?username=jo%2B1%40example.com&token=ab12cd"
        );
        assert_eq!(
            link("https://x.test/r?a=1", "u", "t"),
            "https://x.test/r?a=1&username=u&token=t"
        );
    }

    #[test]
    fn without_a_configured_page_the_link_points_at_the_gateways_own_pages() -> Result<(), String> {
        let mailer = Mailer::new(None, None, None)
            .map_err(|e| e.to_string())?
            .with_public_url(Some("http://gw.test:8080/".into()));
        let p = payload(Purpose::PasswordlessAuthentication, "Jo")?;
        let profile = p.password_profile_id.as_str().to_owned();
        let r = mailer
            .render(&p, &EmailSettings::default(), 10)
            .map_err(|e| e.to_string())?;
        let want = format!(
            "http://gw.test:8080/ui/sign-in/confirm?profile={profile}&username=jo%2B1%40example.com&token=ab12cd"
        );
        assert!(r.text.contains(&want), "{}", r.text);
        let fr = EmailSettings {
            locale: Some("fr".into()),
            ..EmailSettings::default()
        };
        let r = mailer
            .render(&payload(Purpose::ResetPassword, "Jo")?, &fr, 10)
            .map_err(|e| e.to_string())?;
        assert!(
            r.text.contains(&format!(
                "http://gw.test:8080/ui/reset-password?profile={profile}&locale=fr&username="
            )),
            "{}",
            r.text
        );
        // A configured page wins over the gateway's own.
        let own = EmailSettings {
            passwordless_url: Some("https://shop.test/in".into()),
            ..EmailSettings::default()
        };
        let r = mailer.render(&p, &own, 10).map_err(|e| e.to_string())?;
        assert!(
            r.text.contains("https://shop.test/in?username="),
            "{}",
            r.text
        );
        assert!(!r.text.contains("gw.test"), "{}", r.text);
        Ok(())
    }

    #[test]
    fn built_in_templates_render_both_parts_and_escape_html() -> Result<(), String> {
        let mailer = Mailer::new(None, None, None).map_err(|e| e.to_string())?;
        let settings = EmailSettings {
            passwordless_url: Some("https://x.test/in".into()),
            ..EmailSettings::default()
        };
        let r = mailer
            .render(
                &payload(Purpose::PasswordlessAuthentication, "<b>Jo</b> & co")?,
                &settings,
                10,
            )
            .map_err(|e| e.to_string())?;
        assert_eq!(r.subject, "Your sign-in code: ab12cd");
        assert!(
            r.text.contains("ab12cd")
                && r.text.contains("10 minutes")
                && r.text.contains("<b>Jo</b> & co")
        );
        assert!(r.html.contains("&lt;b&gt;Jo&lt;"), "{}", r.html);
        assert!(!r.html.contains("<b>Jo</b>"));
        assert!(
            r.html
                .contains("?username=jo%2B1%40example.com&amp;token=ab12cd"),
            "{}",
            r.html
        );
        let r = mailer
            .render(
                &payload(Purpose::ResetPassword, "Jo")?,
                &EmailSettings::default(),
                10,
            )
            .map_err(|e| e.to_string())?;
        assert!(
            r.subject.contains("reset") && !r.text.contains("http"),
            "no link without a URL"
        );
        Ok(())
    }
}

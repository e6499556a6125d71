//! The settings table is the one source of the settings: the file accepts exactly
//! what the variables accept, nothing secret prints, `authgate serve --help` lists
//! every variable, and `docs/configuration.md` embeds the table the code generates.
//! `AUTHGATE_UPDATE_DOCS=1 cargo test -p authgate-gateway --test settings` rewrites
//! the documented table.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use authgate_gateway::config::{markdown_table, ConfigError, ConfigFile, Describe, Toml, SETTINGS};
use authgate_gateway::Config;

const BEGIN: &str = "<!-- settings-table -->";
const END: &str = "<!-- /settings-table -->";

/// A scratch directory of this test process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "authgate-settings-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, text: &str) -> PathBuf {
        let path = self.0.join("authgate.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn from_env(var: &str, value: &str) -> Result<Config, ConfigError> {
    let (var, value) = (var.to_owned(), value.to_owned());
    Config::load_from(None, move |name| (name == var).then(|| value.clone()))
}

fn from_file(path: &Path) -> Result<Config, ConfigError> {
    Config::load_from(Some(path), |_| None)
}

/// `items` as a variable's text and as the file's TOML value of `setting`, or
/// `None` when the file cannot spell it (an integer beyond TOML's range).
fn spellings(setting: &dyn Describe, items: &[&str]) -> Option<(String, String)> {
    let toml = match setting.file_type() {
        Toml::String => toml::Value::String(items[0].to_owned()).to_string(),
        Toml::Integer => items[0].parse::<i64>().ok()?.to_string(),
        Toml::Boolean => items[0].parse::<bool>().ok()?.to_string(),
        Toml::Array => toml::Value::Array(
            items
                .iter()
                .map(|i| toml::Value::String((*i).to_owned()))
                .collect(),
        )
        .to_string(),
    };
    Some((items.join(","), toml))
}

/// Values worth trying for a setting of this TOML type: inside, on and outside
/// every bound the table has.
fn samples(file_type: Toml) -> Vec<Vec<&'static str>> {
    let one = |values: &[&'static str]| values.iter().map(|v| vec![*v]).collect::<Vec<_>>();
    match file_type {
        Toml::Integer => one(&[
            "-1",
            "0",
            "1",
            "9",
            "10",
            "100",
            "101",
            "1023",
            "1024",
            "600000",
            "600001",
            "4294967296",
            "18446744073709551616",
            "12abc",
        ]),
        Toml::Boolean => one(&["true", "false"]),
        Toml::String => one(&[
            " ",
            "nowhere",
            "127.0.0.1:9000",
            "20/10m",
            "0/1m",
            "off",
            "lots",
            "text",
            "json",
            "xml",
            "short",
            "twelve-chars",
            "a-secret-of-thirty-two-characters",
            "smtps://user:pass@mail.example:465",
        ]),
        Toml::Array => vec![
            vec!["10.0.0.2"],
            vec!["10.0.0.2", "::1"],
            vec!["not-an-ip"],
            vec!["https://App.example.com/"],
            vec!["https://app.example.com", "http://127.0.0.1:3000"],
            vec!["*"],
            vec!["https://app.test/path"],
            vec!["10.0.0.2", " "],
        ],
    }
}

#[test]
fn the_file_accepts_exactly_what_the_variables_accept() {
    let scratch = Scratch::new();
    let mut tried = 0;
    for setting in SETTINGS {
        let Some(key) = setting.key() else { continue };
        for items in samples(setting.file_type()) {
            let Some((text, toml)) = spellings(*setting, &items) else {
                continue;
            };
            let var = setting.var();
            let by_env = from_env(var, &text);
            let by_file = from_file(&scratch.file(&format!("{key} = {toml}\n")));
            match (by_env, by_file) {
                (Ok(env), Ok(file)) => assert_eq!(
                    format!("{env:?}"),
                    format!("{file:?}"),
                    "{var}={text:?} and {key} = {toml} read differently"
                ),
                (Err(env), Err(file)) => {
                    let (env, file) = (env.to_string(), file.to_string());
                    assert!(env.contains(var), "{var}={text:?}: {env}");
                    assert!(file.contains(key), "{key} = {toml}: {file}");
                }
                (env, file) => panic!(
                    "{var}={text:?} gives {:?} but {key} = {toml} gives {:?}",
                    env.map(|_| "a config").map_err(|e| e.to_string()),
                    file.map(|_| "a config").map_err(|e| e.to_string()),
                ),
            }
            tried += 1;
        }
    }
    assert!(tried > 200, "only {tried} cases tried");
}

#[test]
fn values_the_file_used_to_clamp_are_refused_naming_the_key() {
    let scratch = Scratch::new();
    for line in [
        "webhook_max_attempts = 0",
        "webhook_max_attempts = 101",
        "webhook_retry_base_ms = 9",
        "webhook_retry_base_ms = 600001",
        "max_body_bytes = 1023",
        "login_key_ttl_secs = 0",
        "otp_ttl_secs = -5",
    ] {
        let path = scratch.file(&format!("{line}\n"));
        let err = from_file(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let key = line.split(' ').next().unwrap();
        assert!(err.contains(key), "{line}: {err}");
        assert!(err.contains(&path.display().to_string()), "{line}: {err}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_in_the_file_are_refused_naming_the_key() {
    let scratch = Scratch::new();
    for (line, key) in [
        ("bnid = \"127.0.0.1:8080\"", "bnid"),
        ("log = \"debug\"", "log"),
        ("config = \"other.toml\"", "config"),
        ("login_key_ttl_secs = \"60\"", "login_key_ttl_secs"),
        ("reveal_unknown_users = \"yes\"", "reveal_unknown_users"),
        ("trusted_proxies = \"10.0.0.2\"", "trusted_proxies"),
        ("trusted_proxies = [1]", "trusted_proxies"),
    ] {
        let err = from_file(&scratch.file(&format!("{line}\n")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(key), "{line}: {err}");
    }
}

#[test]
fn variables_win_over_the_file_and_an_empty_variable_is_unset() {
    let scratch = Scratch::new();
    let path = scratch.file("webhook_max_attempts = 7\nmax_body_bytes = 2048\n");
    let env: HashMap<&str, &str> = [
        ("AUTHGATE_WEBHOOK_MAX_ATTEMPTS", "9"),
        ("AUTHGATE_MAX_BODY_BYTES", ""),
    ]
    .into();
    let c = Config::load_from(Some(&path), |name| env.get(name).map(|v| v.to_string())).unwrap();
    assert_eq!(c.webhook_max_attempts, 9);
    assert_eq!(c.max_body_bytes, 2048);
}

const SECRETS: [&str; 4] = [
    "client-secret-0123456789",
    "token-secret-0123456789-0123456789",
    "smtp-password-0123",
    "redis-password-0123",
];

#[test]
fn debug_of_the_file_and_of_the_config_prints_no_secret() {
    let scratch = Scratch::new();
    let path = scratch.file(&format!(
        "client_secret = \"{}\"\ntoken_secret = \"{}\"\n\
         smtp_url = \"smtps://mailer:{}@mail.example:465\"\n\
         redis_url = \"redis://:{}@127.0.0.1:6379/0\"\n",
        SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3]
    ));
    let file = format!("{:?}", ConfigFile::read(&path).unwrap());
    let config = format!("{:?}", from_file(&path).unwrap());
    for secret in SECRETS {
        assert!(!file.contains(secret), "{file}");
        assert!(!config.contains(secret), "{config}");
    }
    assert!(file.contains("token_secret"), "{file}");
    assert!(config.contains("127.0.0.1:6379"), "{config}");
}

#[test]
fn a_malformed_file_is_refused_without_quoting_its_lines() {
    let scratch = Scratch::new();
    let path = scratch.file(&format!(
        "bind = \"127.0.0.1:8080\"\ntoken_secret = \"{}\n",
        SECRETS[1]
    ));
    let err = from_file(&path).unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(SECRETS[1]), "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
    }
    let short = scratch.file("token_secret = \"short-secret\"\n");
    let err = from_file(&short).unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("short-secret"), "{shown}");
        assert!(shown.contains("token_secret"), "{shown}");
    }
}

#[test]
fn serve_help_lists_every_variable_with_its_default() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for s in SETTINGS {
        let line = help
            .lines()
            .find(|l| l.split_whitespace().next() == Some(s.var()))
            .unwrap_or_else(|| panic!("{} is not in serve --help:\n{help}", s.var()));
        assert!(line.contains(&s.default_shown().to_string()), "{line}");
    }
}

#[test]
fn the_documented_table_is_the_code_s_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = doc
        .split_once(BEGIN)
        .expect("docs/configuration.md has no settings-table marker");
    let (_, after) = rest
        .split_once(END)
        .expect("docs/configuration.md has no closing settings-table marker");
    let expected = format!("{before}{BEGIN}\n\n{}\n{END}{after}", markdown_table());
    if std::env::var("AUTHGATE_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    assert!(
        doc == expected,
        "docs/configuration.md's settings table differs from the code's; rerun with \
         AUTHGATE_UPDATE_DOCS=1 cargo test -p authgate-gateway --test settings and commit it"
    );
}

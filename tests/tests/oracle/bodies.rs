//! The documented properties of the request bodies of both dialects, as checks
//! that panic on a violation: shared by the proptest run (`properties.rs`) and
//! the cargo-fuzz target (`fuzz/fuzz_targets/json_bodies.rs`).
//!
//! Each body type is described by its shape ([`Kind`]), as the OpenAPI document
//! gives it: field names, enums, and the length bounds of strings.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use authgate_gateway::api::accounts::{CodeRequestBody, TokenBody};
use authgate_gateway::api::clients::TokenRequest;
use authgate_gateway::api::directory::credentials::CredentialBody;
use authgate_gateway::api::directory::profiles::ProfileBody;
use authgate_gateway::api::directory::settings::SettingsBody;
use authgate_gateway::api::directory::users::UserBody;
use authgate_gateway::api::gate::IntrospectRequest;
use authgate_gateway::api::integrations::IntegrationBody;
use authgate_gateway::api::webphone::{
    KeyLogin, KeyRequest, Logout, PasswordLogin, TokenLogin, TokenRefresh,
};
use poem::{Body, Request, RequestBody};
use poem_openapi::payload::{Form, Json, ParsePayload};
use poem_openapi::types::{ParseFromJSON, ToJSON};
use serde_json::Value;

/// What a field of a body holds, as the document describes it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string of at most this many characters (`usize::MAX`: no bound).
    Text(usize),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    Bool,
    Uint,
    /// A list of strings of at most this many characters.
    Texts(usize),
    /// An object with these fields.
    Obj(&'static [(&'static str, Kind)]),
}

pub use Kind::{Bool, Obj, OneOf, Text, Texts, Uint};

pub const NO_BOUND: usize = usize::MAX;

pub const KEY_REQUEST: Kind = Obj(&[("username", Text(512))]);
pub const KEY_LOGIN: Kind = Obj(&[("username", Text(512)), ("hash", Text(64))]);
pub const PASSWORD_LOGIN: Kind = Obj(&[("username", Text(512)), ("password", Text(1024))]);
pub const TOKEN_LOGIN: Kind = Obj(&[("username", Text(512)), ("accessToken", Text(256))]);
pub const TOKEN_REFRESH: Kind = Obj(&[("username", Text(512)), ("refreshToken", Text(256))]);
pub const LOGOUT: Kind = Obj(&[("accessToken", Text(4096)), ("refreshToken", Text(4096))]);
pub const INTROSPECT: Kind = Obj(&[("token", Text(4096))]);
pub const CODE_REQUEST: Kind = Obj(&[(
    "data",
    Obj(&[
        ("type", OneOf(&["one_time_password_token_request"])),
        ("username", Text(255)),
        (
            "purpose",
            OneOf(&["reset_password", "passwordless_authentication"]),
        ),
    ]),
)]);
pub const TOKEN_EXCHANGE: Kind = Obj(&[(
    "data",
    Obj(&[
        ("type", OneOf(&["account_management_authentication_token"])),
        (
            "authentication_mechanism",
            OneOf(&["passwordless", "password"]),
        ),
        ("password_profile_id", Text(64)),
        ("username", Text(255)),
        ("one_time_password_token", Text(64)),
        ("password", Text(1024)),
    ]),
)]);
pub const PROFILE: Kind = Obj(&[(
    "data",
    Obj(&[
        ("type", OneOf(&["password_profile"])),
        ("name", Text(255)),
        ("username_format", OneOf(&["any", "email"])),
        ("enable_one_time_password_token", Bool),
        ("voximplant_application", Text(NO_BOUND)),
    ]),
)]);
pub const USER: Kind = Obj(&[(
    "data",
    Obj(&[
        ("type", OneOf(&["user_authentication_info"])),
        ("name", Text(255)),
        ("email", Text(NO_BOUND)),
        ("enabled", Bool),
    ]),
)]);
pub const CREDENTIAL: Kind = Obj(&[(
    "data",
    Obj(&[
        (
            "type",
            OneOf(&["user_authentication_password_profile_info"]),
        ),
        ("id", Text(NO_BOUND)),
        ("password_profile_id", Text(NO_BOUND)),
        ("username", Text(255)),
        ("password", Text(1024)),
    ]),
)]);
pub const SETTINGS: Kind = Obj(&[(
    "data",
    Obj(&[
        ("type", OneOf(&["account_authentication_settings"])),
        (
            "account_member_self_management",
            OneOf(&["disabled", "update_only"]),
        ),
        ("account_management_authentication_token_timeout_secs", Uint),
    ]),
)]);
pub const INTEGRATION: Kind = Obj(&[(
    "data",
    Obj(&[
        ("type", OneOf(&["integration"])),
        ("name", Text(255)),
        ("description", Text(1024)),
        ("enabled", Bool),
        ("integration_type", OneOf(&["webhook", "email"])),
        ("observes", Texts(255)),
        (
            "configuration",
            Obj(&[
                ("url", Text(2048)),
                ("secret_key", Text(512)),
                ("from", Text(320)),
                ("reply_to", Text(320)),
                ("reset_password_url", Text(2048)),
                ("passwordless_url", Text(2048)),
                ("locale", Text(16)),
            ]),
        ),
    ]),
)]);

fn request(content_type: &str) -> Request {
    Request::builder().content_type(content_type).finish()
}

/// Reads `bytes` as `Json<T>` does for a handler; the accepted value written back.
pub fn read_json<T: ParseFromJSON + ToJSON>(bytes: &[u8]) -> Option<Value> {
    let req = request("application/json");
    let mut body = RequestBody::new(Body::from(bytes.to_vec()));
    futures::executor::block_on(<Json<T> as ParsePayload>::from_request(&req, &mut body))
        .ok()
        .map(|Json(t)| t.to_json().unwrap_or(Value::Null))
}

/// Checks the documented bounds of `kind` on `v`, an accepted body written back.
fn within_bounds(kind: Kind, v: &Value, at: &str) {
    match (kind, v) {
        (Text(limit), Value::String(s)) => {
            assert!(
                s.chars().count() <= limit,
                "{at}: {} characters",
                s.chars().count()
            );
        }
        (Texts(limit), Value::Array(items)) => {
            for item in items {
                within_bounds(Text(limit), item, at);
            }
        }
        (Obj(fields), Value::Object(m)) => {
            for (name, kind) in fields {
                if let Some(v) = m.get(*name) {
                    within_bounds(*kind, v, &format!("{at}/{name}"));
                }
            }
        }
        (OneOf(names), Value::String(s)) => {
            assert!(names.contains(&s.as_str()), "{at}: {s:?}")
        }
        _ => {}
    }
}

/// Reads `bytes` as a body of type `T`: no panic; an accepted body keeps the
/// documented bounds, and written back to JSON it reads back the same.
pub fn check_body<T: ParseFromJSON + ToJSON>(kind: Kind, bytes: &[u8]) {
    if let Some(written) = read_json::<T>(bytes) {
        within_bounds(kind, &written, "");
        let again = read_json::<T>(written.to_string().as_bytes());
        assert_eq!(
            again.as_ref(),
            Some(&written),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// Reads `bytes` as each form body (`/oauth/access_token`'s, and RFC 7662's of
/// `/v1/tokens/introspect`) as `Form<T>` reads it for a handler: no panic.
pub fn check_forms(bytes: &[u8]) {
    let req = request("application/x-www-form-urlencoded");
    let mut body = RequestBody::new(Body::from(bytes.to_vec()));
    let _ = futures::executor::block_on(<Form<TokenRequest> as ParsePayload>::from_request(
        &req, &mut body,
    ));
    let mut body = RequestBody::new(Body::from(bytes.to_vec()));
    let _ = futures::executor::block_on(<Form<IntrospectRequest> as ParsePayload>::from_request(
        &req, &mut body,
    ));
}

/// Every JSON body type: its name, its shape, and its check.
pub type BodyCheck = fn(Kind, &[u8]);

pub const BODIES: &[(&str, Kind, BodyCheck)] = &[
    ("KeyRequest", KEY_REQUEST, check_body::<KeyRequest>),
    ("KeyLogin", KEY_LOGIN, check_body::<KeyLogin>),
    ("PasswordLogin", PASSWORD_LOGIN, check_body::<PasswordLogin>),
    ("TokenLogin", TOKEN_LOGIN, check_body::<TokenLogin>),
    ("TokenRefresh", TOKEN_REFRESH, check_body::<TokenRefresh>),
    ("Logout", LOGOUT, check_body::<Logout>),
    (
        "IntrospectRequest",
        INTROSPECT,
        check_body::<IntrospectRequest>,
    ),
    (
        "CodeRequestBody",
        CODE_REQUEST,
        check_body::<CodeRequestBody>,
    ),
    ("TokenBody", TOKEN_EXCHANGE, check_body::<TokenBody>),
    ("ProfileBody", PROFILE, check_body::<ProfileBody>),
    ("UserBody", USER, check_body::<UserBody>),
    ("CredentialBody", CREDENTIAL, check_body::<CredentialBody>),
    ("SettingsBody", SETTINGS, check_body::<SettingsBody>),
    (
        "IntegrationBody",
        INTEGRATION,
        check_body::<IntegrationBody>,
    ),
];

//! Field types whose schema says what generated clients need to know: timestamps
//! with `format: date-time`, values that are always present but may be `null`, and
//! strings whose limits the document shows while the core enforces them (so the
//! answer to breaking them stays what it was: 422 from the directory, 401 from an
//! exchange).
//!
//! Also the `{"data": ...}` wrappers' declaration (`envelopes!`), wire enums that
//! mirror core enums (`wire_enum!`) and the directory lists' `page[limit]`
//! ([`PageLimit`]).

use std::borrow::Cow;

use poem::{Request, RequestBody};
use poem_openapi::error::ParseParamError;
use poem_openapi::param::Query;
use poem_openapi::registry::{MetaParamIn, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::validation::{Maximum, Minimum, Validator, ValidatorMeta};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::Value;

/// Implements [`Type`] and JSON for a string newtype with its own schema.
/// `max_chars` is enforced when parsing (a 400, like a length validator);
/// anything else in the schema is left to the core.
macro_rules! string_type {
    ($name:ident, $key:literal, max_chars = $max:expr, $schema:expr) => {
        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $key.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) if s.chars().count() <= $max => Ok(Self(s)),
                    Some(Value::String(_)) => {
                        Err(ParseError::custom(format!("at most {} characters", $max)))
                    }
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }
    };
}

/// A point in time, RFC 3339 (`2023-09-05T14:53:01.584+00:00`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp(pub String);

string_type!(
    Timestamp,
    "string_date_time",
    max_chars = 64,
    MetaSchema::new_with_format("string", "date-time")
);

/// A new password: at least 8 characters (checked by the directory, which answers
/// 422), at most 1024.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password(pub String);

string_type!(
    Password,
    "string_password",
    max_chars = 1024,
    MetaSchema {
        min_length: Some(authgate_core::password::MIN_PASSWORD_LEN),
        max_length: Some(1024),
        ..MetaSchema::new_with_format("string", "password")
    }
);

/// A one-time password token as mailed: six characters of `[a-z0-9]`. Anything
/// else is simply a wrong code (401), like every other failed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeCode(pub String);

string_type!(
    OneTimeCode,
    "string_one_time_code",
    max_chars = 64,
    MetaSchema {
        min_length: Some(6),
        max_length: Some(6),
        pattern: Some("^[a-z0-9]{6}$".to_owned()),
        ..MetaSchema::new("string")
    }
);

/// The name of an event an integration observes. The only one today is
/// `one-time-password-token-request.created`; the directory answers 422 for others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName(pub String);

string_type!(
    EventName,
    "string_event_name",
    max_chars = 255,
    MetaSchema {
        enum_items: vec![Value::String(
            "one-time-password-token-request.created".to_owned()
        )],
        ..MetaSchema::new("string")
    }
);

/// A value that is always present in an answer and may be `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nullable<T>(pub Option<T>);

impl<T> From<Option<T>> for Nullable<T> {
    fn from(v: Option<T>) -> Self {
        Self(v)
    }
}

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        match T::schema_ref() {
            MetaSchemaRef::Inline(schema) => MetaSchemaRef::Inline(Box::new(MetaSchema {
                nullable: true,
                ..*schema
            })),
            // OpenAPI 3.0 ignores keywords beside a `$ref`: wrap it.
            reference => MetaSchemaRef::Inline(Box::new(MetaSchema {
                all_of: vec![reference],
                nullable: true,
                ..MetaSchema::ANY
            })),
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            v => T::parse_from_json(v)
                .map(|t| Self(Some(t)))
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(Value::Null),
        )
    }
}

/// A `{"data": ...}` wrapper of one resource or of a request body, declared by
/// `envelopes!`.
pub trait Envelope {
    /// What it wraps.
    type Data;
    /// Wraps `data`.
    fn wrap(data: Self::Data) -> Self;
}

/// A `{"data": [...], "meta": ...}` list, declared by `envelopes!`.
pub trait ListEnvelope {
    /// What each item is.
    type Item;
    /// What `meta` holds.
    type Meta;
    /// Wraps `data` and `meta`.
    fn wrap(data: Vec<Self::Item>, meta: Self::Meta) -> Self;
}

/// Declares `{"data": ...}` wrappers as named Objects, with the doc comment and the
/// field descriptions given: `Name { data: Item = "doc" }` for one resource or a
/// request body, `Name { data: [Item] = "doc", meta: Meta = "doc" }` for a list.
/// Named rather than generic because poem-openapi would call a generic Object
/// `Envelope_ProfileData`, and generated clients know these names.
macro_rules! envelopes {
    () => {};
    (@object [$($doc:literal)+] $name:ident { $($field:ident: $ty:ty = $field_doc:literal),+ }) => {
        $(#[doc = $doc])+
        #[derive(Debug, poem_openapi::Object)]
        pub struct $name {
            $(#[doc = $field_doc] pub $field: $ty,)+
        }
    };
    (
        $(#[doc = $doc:literal])+
        $name:ident { data: $data:ty = $data_doc:literal }
        $($rest:tt)*
    ) => {
        $crate::api::types::envelopes!(@object [$($doc)+] $name { data: $data = $data_doc });

        impl $crate::api::types::Envelope for $name {
            type Data = $data;

            fn wrap(data: $data) -> Self {
                Self { data }
            }
        }

        $crate::api::types::envelopes!($($rest)*);
    };
    (
        $(#[doc = $doc:literal])+
        $name:ident {
            data: [$item:ty] = $data_doc:literal,
            meta: $meta:ty = $meta_doc:literal $(,)?
        }
        $($rest:tt)*
    ) => {
        $crate::api::types::envelopes!(
            @object [$($doc)+] $name { data: Vec<$item> = $data_doc, meta: $meta = $meta_doc }
        );

        impl $crate::api::types::ListEnvelope for $name {
            type Item = $item;
            type Meta = $meta;

            fn wrap(data: Vec<$item>, meta: $meta) -> Self {
                Self { data, meta }
            }
        }

        $crate::api::types::envelopes!($($rest)*);
    };
}

pub(crate) use envelopes;

/// Declares a wire enum that mirrors a core enum variant for variant (the core
/// knows nothing of OpenAPI), with the conversions both ways.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident mirrors $core:ident {
            $($(#[$variant_meta:meta])* $variant:ident,)+
        }
    ) => {
        #[derive(Debug, Clone, Copy, poem_openapi::Enum, PartialEq, Eq)]
        $(#[$meta])*
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                match v {
                    $($core::$variant => Self::$variant,)+
                }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => Self::$variant,)+
                }
            }
        }
    };
}

pub(crate) use wire_enum;

/// `page[limit]` of a directory list: items per page, 1 to 100, 25 when absent.
/// The range is in the parameter's schema and is checked when the query is read,
/// with the answer a validator would give; the name and description stay on each
/// handler's argument, where poem-openapi reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(Option<u32>);

impl PageLimit {
    /// Items per page when the query names none.
    pub const DEFAULT: u32 = 25;
    /// The most items per page.
    pub const MAX: u32 = 100;

    /// Items per page.
    pub fn get(self) -> u32 {
        self.0.unwrap_or(Self::DEFAULT).clamp(1, Self::MAX)
    }

    fn range() -> (Minimum, Maximum) {
        (
            Minimum::new(1.0, false),
            Maximum::new(f64::from(Self::MAX), false),
        )
    }
}

impl<'a> ApiExtractor<'a> for PageLimit {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    type ParamType = Option<u32>;
    type ParamRawType = u32;

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        let (min, max) = Self::range();
        let mut range = MetaSchema::ANY;
        min.update_meta(&mut range);
        max.update_meta(&mut range);
        Some(<Option<u32> as Type>::schema_ref().merge(range))
    }

    fn param_raw_type(&self) -> Option<&u32> {
        self.0.as_ref()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Option<u32>>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        let Query(limit) = Query::<Option<u32>>::from_request(request, body, param_opts).await?;
        if let Some(n) = limit {
            let (min, max) = Self::range();
            let broken = if !min.check(&n) {
                Some(min.to_string())
            } else if !max.check(&n) {
                Some(max.to_string())
            } else {
                None
            };
            if let Some(validator) = broken {
                return Err(ParseParamError {
                    name,
                    reason: format!("verification failed. {validator}"),
                }
                .into());
            }
        }
        Ok(Self(limit))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nullable_values_are_written_as_null_and_read_back() {
        let none: Nullable<String> = Nullable(None);
        assert_eq!(none.to_json(), Some(Value::Null));
        let back = Nullable::<String>::parse_from_json(Some(Value::Null)).unwrap();
        assert_eq!(back, none);
        let some = Nullable(Some("x".to_owned()));
        assert_eq!(some.to_json(), Some(Value::String("x".into())));
    }

    /// Two operations that differ only in how `page[limit]` is declared.
    struct Paged;

    #[poem_openapi::OpenApi]
    impl Paged {
        #[oai(path = "/declared", method = "get")]
        async fn declared(
            &self,
            /// Items per page.
            #[oai(name = "page[limit]")]
            limit: PageLimit,
        ) -> poem_openapi::payload::PlainText<String> {
            poem_openapi::payload::PlainText(limit.get().to_string())
        }

        #[oai(path = "/validated", method = "get")]
        async fn validated(
            &self,
            /// Items per page.
            #[oai(
                name = "page[limit]",
                validator(minimum(value = "1"), maximum(value = "100"))
            )]
            limit: Query<Option<u32>>,
        ) -> poem_openapi::payload::PlainText<String> {
            poem_openapi::payload::PlainText(limit.0.unwrap_or(25).to_string())
        }
    }

    #[tokio::test]
    async fn page_limit_is_documented_and_answers_like_the_validator_it_replaces() {
        use poem::Endpoint;

        let api = poem_openapi::OpenApiService::new(Paged, "paged", "1");
        let spec: Value = serde_json::from_str(&api.spec()).unwrap();
        assert_eq!(
            spec["paths"]["/declared"]["get"]["parameters"],
            spec["paths"]["/validated"]["get"]["parameters"]
        );
        let app = poem::Route::new().nest("/", api);
        for query in ["", "?page[limit]=0", "?page[limit]=1", "?page[limit]=100"]
            .into_iter()
            .chain(["?page[limit]=101", "?page[limit]=x", "?page[limit]=-1"])
        {
            let mut answers = Vec::new();
            for path in ["/declared", "/validated"] {
                let req = Request::builder()
                    .uri_str(format!("{path}{query}"))
                    .finish();
                let resp = app.get_response(req).await;
                let status = resp.status();
                answers.push((status, resp.into_body().into_string().await.unwrap()));
            }
            assert_eq!(answers[0], answers[1], "{query}");
            let (status, body) = &answers[0];
            match query {
                "" => assert_eq!(body, "25"),
                "?page[limit]=100" => assert_eq!(body, "100"),
                "?page[limit]=101" => {
                    assert_eq!(*status, poem::http::StatusCode::BAD_REQUEST);
                    assert!(body.contains("maximum(100, exclusive: false)"), "{body}");
                }
                _ => {}
            }
        }
    }

    #[test]
    fn string_types_keep_their_length_limit() {
        assert!(Password::parse_from_json(Some(Value::String("p".repeat(1024)))).is_ok());
        assert!(Password::parse_from_json(Some(Value::String("p".repeat(1025)))).is_err());
        // Short passwords are the directory's to refuse, with its 422.
        assert!(Password::parse_from_json(Some(Value::String("short".into()))).is_ok());
        assert!(OneTimeCode::parse_from_json(Some(Value::Number(7.into()))).is_err());
    }
}

impl<T: serde::Serialize> serde::Serialize for Nullable<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A JSON answer written by serde straight from `T`, documented exactly as
/// `Json<T>` is. poem-openapi's `Json` first builds a `serde_json::Value` (a
/// map per object, a `String` per key) and then writes it: for the busiest
/// answers (a login, an exchange) that was a tenth of the request's work.
/// `T`'s fields are declared in the order of their JSON names, which is the
/// order `Json` writes them (its maps are sorted), so the bytes are the same;
/// `direct_writes_what_json_writes` holds each such type to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct<T>(pub T);

impl<T: Type> poem_openapi::payload::Payload for Direct<T> {
    const CONTENT_TYPE: &'static str =
        <poem_openapi::payload::Json<T> as poem_openapi::payload::Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <poem_openapi::payload::Json<T> as poem_openapi::payload::Payload>::check_content_type(
            content_type,
        )
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> poem::IntoResponse for Direct<T> {
    fn into_response(self) -> poem::Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => poem::Response::builder()
                .content_type(
                    <poem_openapi::payload::Json<Value> as poem_openapi::payload::Payload>::CONTENT_TYPE,
                )
                .body(body),
            Err(e) => poem::Response::builder()
                .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
                .body(e.to_string()),
        }
    }
}

#[cfg(test)]
pub(crate) mod direct_tests {
    use super::*;

    /// What `Json<T>` writes for `value`, and what `Direct<T>` writes.
    pub(crate) async fn both<T>(value: T) -> (String, String)
    where
        T: ToJSON + serde::Serialize + Clone + Send + 'static,
    {
        use poem::IntoResponse;
        let json = poem_openapi::payload::Json(value.clone()).into_response();
        let direct = Direct(value).into_response();
        assert_eq!(
            json.headers().get("content-type"),
            direct.headers().get("content-type")
        );
        (
            json.into_body().into_string().await.unwrap_or_default(),
            direct.into_body().into_string().await.unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn direct_writes_what_json_writes() {
        use crate::api::accounts::{
            AccountToken, AccountTokenType, TokenLinks, TokenList, TokenMeta, TokenPage,
            TokenResults,
        };
        use crate::api::webphone::{KeyIssued, LoggedInResult, LoginTokens, RefreshedResult};
        let tokens = LoginTokens {
            access_expire: 3600,
            access_token: "a.b\"c".into(),
            refresh_expire: u64::MAX,
            refresh_token: "r.\u{7f}é".into(),
        };
        let (json, direct) = both(KeyIssued {
            code: 302,
            key: "0123456789abcdef0123456789abcdef".into(),
            result: false,
        })
        .await;
        assert_eq!(json, direct);
        let (json, direct) = both(LoggedInResult {
            display_name: "Ann \"the\" Admin\n".into(),
            result: true,
            tokens: tokens.clone(),
        })
        .await;
        assert_eq!(json, direct);
        let (json, direct) = both(RefreshedResult {
            result: true,
            tokens,
        })
        .await;
        assert_eq!(json, direct);
        let here = "/v2/account-members/tokens?page[offset]=0&page[limit]=25".to_owned();
        let list = TokenList {
            data: vec![AccountToken {
                account_id: "acc".into(),
                account_name: "Żółw <tag>".into(),
                expires: Timestamp("2026-12-08T00:00:00Z".into()),
                token: "h.p.s".into(),
                type_: AccountTokenType::AccountManagementAuthenticationToken,
            }],
            links: TokenLinks {
                current: here.clone(),
                first: here.clone(),
                last: here,
                next: Nullable(None),
                prev: Nullable(Some("p".into())),
            },
            meta: TokenMeta {
                account_member_id: "m".into(),
                page: TokenPage {
                    current: 1,
                    limit: 25,
                    offset: 0,
                    total: 1,
                },
                results: TokenResults { total: 1 },
            },
        };
        let (json, direct) = both(list).await;
        assert!(
            json.contains("account_management_authentication_token"),
            "{json}"
        );
        assert_eq!(json, direct);
    }

    #[tokio::test]
    async fn nullable_and_timestamps_write_as_json_does() {
        for v in [Nullable(None), Nullable(Some("x\"y".to_owned()))] {
            let (json, direct) = both(v).await;
            assert_eq!(json, direct);
        }
        let (json, direct) = both(Timestamp("2026-12-08T00:00:00Z".into())).await;
        assert_eq!(json, direct);
    }
}

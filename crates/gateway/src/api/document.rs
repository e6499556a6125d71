//! The OpenAPI document as clients get it, and how each operation's statuses
//! come into it.
//!
//! Handlers declare the error statuses they can answer as a type ([`Only`] over
//! an [`ErrorStatuses`] list), so the document lists exactly those; in debug
//! builds an answer outside its list panics, which turns a drift between code
//! and document into a failing test. [`finish`] then applies the few document-wide
//! rules poem-openapi cannot express, checks that the generated JSON has no
//! duplicate keys, and [`Routes`] keeps the paths and methods for `Allow` headers
//! and CORS preflights.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use poem::http::{Method, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::ApiResponse;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::errors::ApiError;

/// The error statuses one kind of operation can answer (success statuses come
/// from the success type).
pub trait ErrorStatuses: Send + Sync + 'static {
    /// The statuses, ascending.
    const LIST: &'static [u16];
}

macro_rules! error_statuses {
    ($($(#[$doc:meta])* $name:ident = [$($status:literal),* $(,)?];)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $name {}
            impl ErrorStatuses for $name {
                const LIST: &'static [u16] = &[$($status),*];
            }
        )*
    };
}

// 400, 413 and 415 are the framework's answers to a body it cannot read; 401 to
// a missing or malformed bearer token; 500 and 503 are a failing store.
error_statuses! {
    /// A store read by a caller that needs no credentials.
    StoreOnly = [500, 503];
    /// A public operation with a JSON or form body that counts against the address.
    PublicBody = [400, 401, 413, 415, 429, 500, 503];
    /// Introspection: a JSON or form body, counted against the address (its 401,
    /// with the challenges, is in its success type).
    Introspect = [400, 413, 415, 429, 500, 503];
    /// The code request: the profile may be missing or not allow codes. No 429:
    /// over any limit it answers its usual 202 and sends nothing.
    CodeRequest = [400, 401, 404, 413, 415, 422, 500, 503];
    /// An admin read with nothing in its path that can be missing.
    AdminPlain = [401, 403, 500, 503];
    /// An admin read of a list with paging parameters, nothing in its path.
    AdminPaged = [400, 401, 403, 500, 503];
    /// An admin read of a list with paging parameters under a path that may be missing.
    AdminList = [400, 401, 403, 404, 500, 503];
    /// An admin read or deletion of one resource.
    AdminOne = [401, 403, 404, 500, 503];
    /// An admin write of a resource that cannot clash with another.
    AdminWrite = [400, 401, 403, 404, 413, 415, 422, 500, 503];
    /// An admin write of a resource whose name or application must be unique.
    AdminUniqueWrite = [400, 401, 403, 404, 409, 413, 415, 422, 500, 503];
    /// An admin write without a resource in its path.
    AdminWriteNoPath = [400, 401, 403, 413, 415, 422, 500, 503];
    /// A web phone key request.
    KeyRequest = [400, 404, 413, 415, 429, 500, 503];
    /// A web phone login.
    Login = [400, 401, 403, 413, 415, 429, 500, 503];
    /// A web phone refresh.
    Refresh = [400, 401, 413, 415, 429, 500, 503];
    /// A web phone logout.
    Logout = [400, 413, 415, 503];
}

/// An answer whose documented statuses are its success statuses plus `S`.
pub struct Only<T, S>(pub T, PhantomData<fn() -> S>);

impl<T: fmt::Debug, S> fmt::Debug for Only<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T, S> Only<T, S> {
    /// Wraps an answer.
    pub fn new(answer: T) -> Self {
        Self(answer, PhantomData)
    }
}

/// An error answer in the commerce dialect, documented with the statuses `S`.
pub type Fail<S> = Only<ApiError, S>;

impl<S, E: Into<ApiError>> From<E> for Only<ApiError, S> {
    fn from(e: E) -> Self {
        Self::new(e.into())
    }
}

impl<T: ApiResponse, S: ErrorStatuses> ApiResponse for Only<T, S> {
    const BAD_REQUEST_HANDLER: bool = T::BAD_REQUEST_HANDLER;

    fn meta() -> MetaResponses {
        let mut meta = T::meta();
        debug_assert!(
            S::LIST
                .iter()
                .all(|s| meta.responses.iter().any(|r| r.status == Some(*s))),
            "{} lists a status that {} does not have",
            std::any::type_name::<S>(),
            std::any::type_name::<T>()
        );
        meta.responses.retain(|r| {
            r.status
                .is_some_and(|s| (200..300).contains(&s) || S::LIST.contains(&s))
        });
        meta
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn from_parse_request_error(err: poem::Error) -> Self {
        Self::new(T::from_parse_request_error(err))
    }
}

impl<T: IntoResponse, S: ErrorStatuses> IntoResponse for Only<T, S> {
    fn into_response(self) -> Response {
        let resp = self.0.into_response();
        let status = resp.status();
        if !status.is_success() && !S::LIST.contains(&status.as_u16()) {
            tracing::error!(%status, statuses = ?S::LIST, "an answer the document does not list");
            debug_assert!(
                false,
                "answered {status}, which {} does not list",
                std::any::type_name::<S>()
            );
        }
        resp
    }
}

impl<T: IntoResponse, S: ErrorStatuses> From<Only<T, S>> for poem::Error {
    fn from(answer: Only<T, S>) -> Self {
        poem::Error::from_response(answer.into_response())
    }
}

// ---- the finished document ----

/// Applies the document-wide rules to poem-openapi's output and refuses a
/// document with duplicate keys (which lenient parsers would silently merge):
///
/// - an operation without `security` is public and says so (`security: []`);
/// - a requirement named `A&B` means both schemes at once (`{A: [], B: []}`),
///   which poem-openapi's alternatives-only model cannot say;
/// - a `$ref` wrapped in `allOf` only to carry a description becomes the bare
///   `$ref` (OpenAPI 3.0 ignores keywords beside it; generators choke on the wrapper);
/// - unsigned integer formats become `int32`/`int64` with `minimum: 0`, the only
///   integer formats OpenAPI defines;
/// - JSON media types are named `application/json` (the answers still carry
///   `charset=utf-8`), which typed clients match on.
pub fn finish(raw: &str) -> Result<String, String> {
    let mut doc = strict_parse(raw)?;
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                security(op);
            }
        }
    }
    walk(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                form_only(op);
            }
        }
    }
    serde_json::to_string_pretty(&doc)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

/// A body accepted both as a form and as JSON with the same schema (RFC 7662's
/// introspection) is documented as the form, the standard's own, and its
/// description says JSON works too. Generators given both media types of one
/// schema make clients that cannot tell them apart (openapi-python-client
/// 0.29 sends the form anyway, and its module fails to import).
fn form_only(op: &mut Map<String, Value>) {
    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";
    let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let same = matches!((content.get(FORM), content.get(JSON)), (Some(f), Some(j)) if f == j);
    if !same {
        return;
    }
    content.remove(JSON);
    let note = "The same fields as a JSON object (`application/json`) are accepted too.";
    let description = match body.get("description").and_then(Value::as_str) {
        Some(d) => format!("{d} {note}"),
        None => note.to_owned(),
    };
    body.insert("description".into(), Value::String(description));
}

fn security(op: &mut Map<String, Value>) {
    let requirements = match op.get("security").and_then(Value::as_array) {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .filter_map(Value::as_object)
            .map(|req| {
                let mut all = Map::new();
                for (name, scopes) in req {
                    for part in name.split('&') {
                        all.insert(part.to_owned(), scopes.clone());
                    }
                }
                Value::Object(all)
            })
            .collect(),
    };
    op.insert("security".to_owned(), Value::Array(requirements));
}

fn walk(v: &mut Value) {
    match v {
        Value::Object(map) => {
            unwrap_described_ref(map);
            unsigned_format(map);
            json_media_types(map);
            map.values_mut().for_each(walk);
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        _ => {}
    }
}

fn unwrap_described_ref(map: &mut Map<String, Value>) {
    let Some([Value::Object(first), Value::Object(rest)]) = map
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return;
    };
    let only_words = |m: &Map<String, Value>| {
        m.keys()
            .all(|k| matches!(k.as_str(), "description" | "allOf" | "title"))
    };
    if first.len() == 1 && first.contains_key("$ref") && only_words(rest) && only_words(map) {
        let reference = first.clone();
        *map = reference;
    }
}

fn unsigned_format(map: &mut Map<String, Value>) {
    let format = match map.get("format").and_then(Value::as_str) {
        Some("uint8" | "uint16") => "int32",
        Some("uint32" | "uint64") => "int64",
        _ => return,
    };
    let max = match map.get("format").and_then(Value::as_str) {
        Some("uint8") => Some(255),
        Some("uint16") => Some(65_535),
        _ => None,
    };
    map.insert("format".to_owned(), format.into());
    map.entry("minimum").or_insert(0.into());
    if let Some(max) = max {
        map.entry("maximum").or_insert(max.into());
    }
}

fn json_media_types(map: &mut Map<String, Value>) {
    if let Some(Value::Object(content)) = map.get_mut("content") {
        if let Some(media) = content.remove("application/json; charset=utf-8") {
            content.insert("application/json".to_owned(), media);
        }
    }
}

/// Parses JSON, refusing an object that names a key twice.
pub fn strict_parse(text: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(key.clone(), v).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Value::Object(out))
    }
}

// ---- routes, for Allow and CORS ----

/// The gateway's paths and the methods each answers.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    templates: Vec<(Vec<Segment>, BTreeSet<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

impl Routes {
    /// The operations of a finished document, plus `extra` paths served beside it.
    pub fn from_document(doc: &str, extra: &[(&str, &[Method])]) -> Self {
        let mut routes = Self::default();
        if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(doc) {
            if let Some(Value::Object(paths)) = doc.get("paths") {
                for (path, item) in paths {
                    let methods = item
                        .as_object()
                        .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                        .unwrap_or_default();
                    routes.add(path, methods);
                }
            }
        }
        for (path, methods) in extra {
            routes.add(path, methods.iter().map(ToString::to_string).collect());
        }
        routes
    }

    fn add(&mut self, template: &str, methods: BTreeSet<String>) {
        let segments = template
            .trim_matches('/')
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        self.templates.push((segments, methods));
    }

    /// The methods `path` answers (with `OPTIONS`), or `None` for an unknown path.
    /// Literal segments win over parameters, as in the router.
    pub fn allowed(&self, path: &str) -> Option<Vec<String>> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let best = self
            .templates
            .iter()
            .filter(|(segs, _)| {
                segs.len() == parts.len()
                    && segs.iter().zip(&parts).all(|(s, p)| match s {
                        Segment::Literal(l) => l == p,
                        Segment::Param => !p.is_empty(),
                    })
            })
            .max_by_key(|(segs, _)| segs.iter().filter(|s| **s != Segment::Param).count())?;
        let mut methods: Vec<String> = best.1.iter().cloned().collect();
        if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
            methods.push("HEAD".to_owned());
        }
        methods.push("OPTIONS".to_owned());
        methods.sort();
        Some(methods)
    }
}

/// 405 answers name the methods the path does answer.
pub fn allow_header(status: StatusCode, routes: &Routes, path: &str) -> Option<String> {
    (status == StatusCode::METHOD_NOT_ALLOWED)
        .then(|| routes.allowed(path))
        .flatten()
        .map(|m| m.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn duplicate_keys_are_refused() {
        assert!(strict_parse(r#"{"a": {"401": 1, "401": 2}}"#)
            .unwrap_err()
            .contains("duplicate key \"401\""));
        assert!(strict_parse(r#"{"a": [{"b": 1}, {"b": 2}]}"#).is_ok());
    }

    #[test]
    fn finishing_applies_the_document_rules() {
        let raw = r##"{"paths": {"/a": {
            "get": {"responses": {}},
            "put": {"security": [{"Bearer": []}, {"Bearer&Member": []}], "responses": {
                "200": {"content": {"application/json; charset=utf-8": {"schema": {"type": "object", "properties": {
                    "kind": {"allOf": [{"$ref": "#/components/schemas/Kind"}, {"description": "d"}], "description": "d"},
                    "maybe": {"allOf": [{"$ref": "#/components/schemas/Kind"}], "nullable": true},
                    "n": {"type": "integer", "format": "uint16"},
                    "m": {"type": "integer", "format": "uint64"}}}}}}}}}}}"##;
        let doc: Value = serde_json::from_str(&finish(raw).unwrap()).unwrap();
        let a = &doc["paths"]["/a"];
        assert_eq!(a["get"]["security"], serde_json::json!([]));
        assert_eq!(
            a["put"]["security"],
            serde_json::json!([{"Bearer": []}, {"Bearer": [], "Member": []}])
        );
        let props =
            &a["put"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"];
        assert_eq!(
            props["kind"],
            serde_json::json!({"$ref": "#/components/schemas/Kind"})
        );
        assert_eq!(props["maybe"]["nullable"], true, "a nullable wrapper stays");
        assert_eq!(
            props["n"],
            serde_json::json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 65535})
        );
        assert_eq!(
            props["m"],
            serde_json::json!({"type": "integer", "format": "int64", "minimum": 0})
        );
    }

    #[test]
    fn routes_answer_allow_by_path_template() {
        let doc =
            r#"{"paths": {"/v2/x/{id}": {"get": {}, "delete": {}}, "/v2/x/logs": {"get": {}}}}"#;
        let routes = Routes::from_document(doc, &[("/metrics", &[Method::GET])]);
        assert_eq!(
            routes.allowed("/v2/x/abc").unwrap(),
            ["DELETE", "GET", "HEAD", "OPTIONS"]
        );
        assert_eq!(
            routes.allowed("/v2/x/logs").unwrap(),
            ["GET", "HEAD", "OPTIONS"]
        );
        assert_eq!(
            routes.allowed("/metrics").unwrap(),
            ["GET", "HEAD", "OPTIONS"]
        );
        assert!(routes.allowed("/v2/y").is_none());
        assert!(routes.allowed("/v2/x//").is_none());
    }
}

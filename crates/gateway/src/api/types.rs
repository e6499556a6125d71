//! Field types whose schema says what generated clients need to know: timestamps
//! with `format: date-time`, values that are always present but may be `null`, and
//! strings whose limits the document shows while the core enforces them (so the
//! answer to breaking them stays what it was: 422 from the directory, 401 from an
//! exchange).

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
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

    #[test]
    fn string_types_keep_their_length_limit() {
        assert!(Password::parse_from_json(Some(Value::String("p".repeat(1024)))).is_ok());
        assert!(Password::parse_from_json(Some(Value::String("p".repeat(1025)))).is_err());
        // Short passwords are the directory's to refuse, with its 422.
        assert!(Password::parse_from_json(Some(Value::String("short".into()))).is_ok());
        assert!(OneTimeCode::parse_from_json(Some(Value::Number(7.into()))).is_err());
    }
}

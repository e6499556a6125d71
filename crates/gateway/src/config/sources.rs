//! Where `build` takes values from: the defaults alone, or the environment over a
//! [`ConfigFile`] over the defaults.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};

use super::formats::Format;
use super::settings::{Setting, Toml, SETTINGS};
use super::ConfigError;

/// A value as a variable or the file gives it, before it is parsed. Not `Debug`:
/// it may be a secret.
pub(super) enum Raw {
    /// A variable's text, or a file's string, integer or boolean as text.
    Text(String),
    /// A file's array of strings.
    List(Vec<String>),
}

/// Where `build` takes each setting's value from.
pub(super) trait Source {
    /// Why a value could not be had.
    type Error;
    /// The setting's value.
    fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, Self::Error>;
}

/// Every setting at its default.
pub(super) struct Defaults;

impl Source for Defaults {
    type Error = Infallible;
    fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, Infallible> {
        Ok((setting.default)())
    }
}

/// A variable that is set and not empty, else the file's key, else the default.
pub(super) struct Layered<'a, E> {
    pub(super) env: E,
    pub(super) file: Option<&'a ConfigFile>,
}

impl<E: Fn(&str) -> Option<String>> Source for Layered<'_, E> {
    type Error = ConfigError;
    fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, ConfigError> {
        // An empty variable counts as unset: a shell or a compose file cannot
        // always leave one out.
        if let Some(text) = (self.env)(setting.var).filter(|v| !v.is_empty()) {
            return setting
                .format
                .read(&Raw::Text(text))
                .map_err(|reason| ConfigError::Invalid {
                    name: setting.var.to_owned(),
                    reason,
                });
        }
        let in_file = self
            .file
            .zip(setting.key)
            .and_then(|(file, key)| file.values.get(key).map(|raw| (file, key, raw)));
        match in_file {
            Some((file, key, raw)) => {
                setting
                    .format
                    .read(raw)
                    .map_err(|reason| ConfigError::InFile {
                        path: file.path.clone(),
                        key: key.to_owned(),
                        reason,
                    })
            }
            None => Ok((setting.default)()),
        }
    }
}

/// A config file, read and checked against [`SETTINGS`]: every key known and of its
/// TOML type. Its `Debug` shows the keys, never the values.
pub struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<&'static str, Raw>,
}

impl ConfigFile {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Checks `text`, the contents of the file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            reason: toml_reason(text, &e),
        })?;
        let mut values = BTreeMap::new();
        for (key, value) in table {
            let refused = |reason: String| ConfigError::InFile {
                path: path.to_owned(),
                key: key.clone(),
                reason,
            };
            let Some((known, setting)) = SETTINGS
                .iter()
                .find_map(|s| s.key().filter(|k| *k == key).map(|k| (k, s)))
            else {
                return Err(refused(
                    "unknown key (the keys are the variables' names in lower case, without \
                     AUTHGATE_)"
                        .to_owned(),
                ));
            };
            values.insert(
                known,
                raw_value(value, setting.file_type()).map_err(refused)?,
            );
        }
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A file value as text, if it has the TOML type `expected`; the error does not
/// repeat the value, which may be a secret.
fn raw_value(value: toml::Value, expected: Toml) -> Result<Raw, String> {
    use toml::Value as V;
    let wrong = || format!("expected {expected}");
    match (expected, value) {
        (Toml::String, V::String(text)) => Ok(Raw::Text(text)),
        (Toml::Integer, V::Integer(n)) => Ok(Raw::Text(n.to_string())),
        (Toml::Boolean, V::Boolean(b)) => Ok(Raw::Text(b.to_string())),
        (Toml::Array, V::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                V::String(text) => Ok(text),
                _ => Err(wrong()),
            })
            .collect::<Result<_, _>>()
            .map(Raw::List),
        _ => Err(wrong()),
    }
}

/// Where and why a file is not TOML. The parser's own message quotes the line,
/// and the line may hold a secret, so only its number is kept.
fn toml_reason(text: &str, e: &toml::de::Error) -> String {
    let Some(start) = e.span().map(|span| span.start) else {
        return e.message().to_owned();
    };
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: {}", e.message())
}

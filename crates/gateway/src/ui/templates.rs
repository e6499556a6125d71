//! The pages' templates and stylesheet: built in, overridable from a folder,
//! one set per locale.
//!
//! `AUTHGATE_UI_TEMPLATES` names a folder whose files replace the built-in ones
//! of the same name (`layout.html`, `sign_in.html`, ..., `style.css`), and whose
//! subfolders named like locales (`fr/`, `pt-BR/`) hold each locale's own: a
//! page looks in `<dir>/<locale>/`, then `<dir>/`, then the built-in English.
//! Templates may include or extend other files of the folder. Names are never
//! taken from a request as paths: a locale is used only when it is one of the
//! subfolders found at start-up, and a template name must be a plain file name
//! (letters, digits, `_`, `-`, `.`; no separator, no `..`). Files are read once,
//! at first use; a restart picks up changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::Environment;

/// The built-in English files.
const BUILTIN: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/ui/layout.html"),
    ),
    ("forms.html", include_str!("../../templates/ui/forms.html")),
    (
        "sign_in.html",
        include_str!("../../templates/ui/sign_in.html"),
    ),
    ("code.html", include_str!("../../templates/ui/code.html")),
    (
        "confirm.html",
        include_str!("../../templates/ui/confirm.html"),
    ),
    (
        "reset_request.html",
        include_str!("../../templates/ui/reset_request.html"),
    ),
    ("reset.html", include_str!("../../templates/ui/reset.html")),
    (
        "signed_in.html",
        include_str!("../../templates/ui/signed_in.html"),
    ),
    (
        "reset_done.html",
        include_str!("../../templates/ui/reset_done.html"),
    ),
    (
        "problem.html",
        include_str!("../../templates/ui/problem.html"),
    ),
    ("style.css", include_str!("../../templates/ui/style.css")),
];

/// The locale every page has.
pub const DEFAULT_LOCALE: &str = "en";

/// Whether `name` may name a template file.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether a folder's name looks like a locale (`fr`, `pt-BR`, `zh_Hant`).
fn locale_like(name: &str) -> bool {
    let mut parts = name.split(['-', '_']);
    let primary = parts.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A locale as compared: lower case, `-` between subtags.
fn key(locale: &str) -> String {
    locale.to_ascii_lowercase().replace('_', "-")
}

/// The pages' templates, per locale.
pub struct Templates {
    /// Environments by locale key; [`DEFAULT_LOCALE`] is always there.
    envs: BTreeMap<String, Environment<'static>>,
    /// The stylesheet.
    style: String,
    /// The override folder.
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("locales", &self.envs.keys().collect::<Vec<_>>())
            .field("dir", &self.dir)
            .finish()
    }
}

fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn environment(dir: Option<PathBuf>, folder: Option<String>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_loader(move |name: &str| {
        if !plain_name(name) {
            return Ok(None);
        }
        if let Some(dir) = &dir {
            let mut candidates = Vec::new();
            if let Some(f) = &folder {
                candidates.push(dir.join(f).join(name));
            }
            candidates.push(dir.join(name));
            for path in candidates {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    return Ok(Some(text));
                }
            }
        }
        Ok(builtin(name).map(str::to_owned))
    });
    env
}

impl Templates {
    /// The built-in files, overridden from `dir` when given (which must be a folder).
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut folders: BTreeMap<String, String> = BTreeMap::new();
        if let Some(d) = dir {
            let entries = std::fs::read_dir(d).map_err(|e| {
                format!(
                    "AUTHGATE_UI_TEMPLATES={}: not a readable folder: {e}",
                    d.display()
                )
            })?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && locale_like(&name) {
                    folders.insert(key(&name), name);
                }
            }
        }
        let owned = dir.map(Path::to_path_buf);
        let mut envs = BTreeMap::new();
        envs.insert(
            DEFAULT_LOCALE.to_owned(),
            environment(owned.clone(), folders.get(DEFAULT_LOCALE).cloned()),
        );
        for (k, folder) in &folders {
            envs.insert(k.clone(), environment(owned.clone(), Some(folder.clone())));
        }
        let style = owned
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("style.css")).ok())
            .or_else(|| builtin("style.css").map(str::to_owned))
            .unwrap_or_default();
        Ok(Self {
            envs,
            style,
            dir: owned,
        })
    }

    /// The stylesheet.
    pub fn style(&self) -> &str {
        &self.style
    }

    /// The override folder, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The locale for a request: the `locale` parameter when that locale exists,
    /// else the best of `Accept-Language` that exists (exactly, or by its
    /// language alone), else English.
    pub fn choose(&self, param: Option<&str>, accept_language: Option<&str>) -> String {
        if let Some(p) = param.map(key).filter(|p| self.envs.contains_key(p)) {
            return p;
        }
        let mut wanted: Vec<(String, f32)> = accept_language
            .unwrap_or_default()
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let tag = key(parts.next()?.trim());
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (!tag.is_empty() && q > 0.0).then_some((tag, q))
            })
            .collect();
        wanted.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (tag, _) in wanted {
            if self.envs.contains_key(&tag) {
                return tag;
            }
            let primary = tag.split('-').next().unwrap_or_default();
            if self.envs.contains_key(primary) {
                return primary.to_owned();
            }
        }
        DEFAULT_LOCALE.to_owned()
    }

    /// Whether `locale` is one the pages have.
    pub fn has(&self, locale: &str) -> bool {
        self.envs.contains_key(&key(locale))
    }

    /// Renders the template `name` for `locale` (English when it has none).
    pub fn render(
        &self,
        locale: &str,
        name: &str,
        context: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        let env = self
            .envs
            .get(&key(locale))
            .or_else(|| self.envs.get(DEFAULT_LOCALE))
            .ok_or_else(|| {
                minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, "no templates")
            })?;
        env.get_template(name)?.render(context)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_from_outside_never_become_paths() {
        for bad in [
            "",
            "../x.html",
            "a/b.html",
            "..",
            ".hidden",
            "x\\y",
            "a..html",
        ] {
            assert!(!plain_name(bad), "{bad}");
        }
        assert!(plain_name("sign_in.html") && plain_name("style.css"));
        for bad in ["..", "../fr", "f", "fr/x", "toolong", "fr-", "e1"] {
            assert!(!locale_like(bad), "{bad}");
        }
        assert!(locale_like("fr") && locale_like("pt-BR") && locale_like("zh_Hant"));
    }

    #[test]
    fn a_locale_is_chosen_among_the_folders_present() {
        let dir = std::env::temp_dir().join(format!("authgate-ui-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("fr")).unwrap();
        std::fs::create_dir_all(dir.join("pt-BR")).unwrap();
        std::fs::create_dir_all(dir.join("not a locale")).unwrap();
        std::fs::write(dir.join("fr/problem.html"), "Problème : {{ problem }}").unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        assert_eq!(t.choose(Some("fr"), None), "fr");
        assert_eq!(t.choose(Some("../fr"), Some("pt-br")), "pt-br");
        assert_eq!(t.choose(None, Some("de, fr-CH;q=0.9, en;q=0.8")), "fr");
        assert_eq!(t.choose(None, Some("de, en;q=0.9, fr;q=0.8")), "en");
        assert_eq!(t.choose(None, Some("fr;q=0")), "en");
        assert_eq!(t.choose(Some("de"), None), "en");
        let ctx = minijinja::context! { problem => "<x>" };
        assert_eq!(
            t.render("fr", "problem.html", ctx.clone()).unwrap(),
            "Problème : &lt;x&gt;"
        );
        assert!(t
            .render("en", "problem.html", ctx)
            .unwrap()
            .contains("Something went wrong"));
        std::fs::remove_dir_all(dir).unwrap();
        assert!(Templates::load(Some(Path::new("/nonexistent/authgate-ui"))).is_err());
    }

    #[test]
    fn every_built_in_page_renders() {
        let t = Templates::load(None).unwrap();
        for (name, _) in BUILTIN.iter().filter(|(n, _)| n.ends_with(".html")) {
            t.render(
                "en",
                name,
                minijinja::context! { base => "/ui", lang => "en" },
            )
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}

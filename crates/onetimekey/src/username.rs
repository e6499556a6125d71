//! Usernames of web phone users, in the forms the SDKs send.

use std::fmt;

/// A web phone username: the bare user and the application (`app.account`) it belongs to.
///
/// Accepted forms: `user@app.account.voximplant.com`,
/// `user@app.account.nN.voximplant.com` and `user@app.account`. The application is
/// compared without regard to case; the user part is kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebUsername {
    user: String,
    application: String,
}

/// A username that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("username must look like user@app.account.voximplant.com, user@app.account.nN.voximplant.com or user@app.account")]
pub struct UsernameError;

fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl WebUsername {
    /// Parses any accepted form.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let (user, domain) = raw.trim().split_once('@').ok_or(UsernameError)?;
        if user.is_empty() || user.len() > 255 || user.chars().any(char::is_control) {
            return Err(UsernameError);
        }
        let domain = domain.to_ascii_lowercase();
        let mut labels: Vec<&str> = domain.split('.').collect();
        if labels.len() >= 4 && labels[labels.len() - 2..] == ["voximplant", "com"] {
            labels.truncate(labels.len() - 2);
            // An optional node label such as `n2`.
            if labels.len() == 3 {
                let node = labels[2];
                let numbered = node.len() > 1
                    && node.starts_with('n')
                    && node[1..].bytes().all(|b| b.is_ascii_digit());
                if !numbered {
                    return Err(UsernameError);
                }
                labels.truncate(2);
            }
        }
        if labels.len() != 2 || !labels.iter().all(|l| is_label(l)) {
            return Err(UsernameError);
        }
        Ok(Self {
            user: user.to_owned(),
            application: labels.join("."),
        })
    }

    /// The canonical form, `user@app.account`, as [`fmt::Display`] writes it
    /// (without its machinery: every login names its user so).
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(self.user.len() + self.application.len() + 1);
        out.push_str(&self.user);
        out.push('@');
        out.push_str(&self.application);
        out
    }

    /// The bare user (what goes into HA1).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The application, `app.account`.
    pub fn application(&self) -> &str {
        &self.application
    }
}

impl fmt::Display for WebUsername {
    /// The canonical form, `user@app.account`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.application)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_documented_forms_name_the_same_user() {
        let want = WebUsername::parse("myuser@myapp.myaccount");
        for form in [
            "myuser@myapp.myaccount.voximplant.com",
            "myuser@myapp.myaccount.n2.voximplant.com",
            "myuser@MyApp.MyAccount.Voximplant.com",
            " myuser@myapp.myaccount ",
        ] {
            assert_eq!(WebUsername::parse(form), want, "{form}");
        }
        let u = want.unwrap_or_else(|_| unreachable!());
        assert_eq!(u.user(), "myuser");
        assert_eq!(u.application(), "myapp.myaccount");
        assert_eq!(u.to_string(), "myuser@myapp.myaccount");
        assert_eq!(u.canonical(), u.to_string());
    }

    #[test]
    fn malformed_usernames_are_refused() {
        for bad in [
            "",
            "myuser",
            "@myapp.myaccount",
            "myuser@myapp",
            "myuser@a.b.c",
            "myuser@myapp.myaccount.x2.voximplant.com",
            "myuser@myapp.myaccount.n.voximplant.com",
            "myuser@myapp..voximplant.com",
            "my\u{7}user@myapp.myaccount",
            "myuser@my_app.myaccount",
        ] {
            assert_eq!(WebUsername::parse(bad), Err(UsernameError), "{bad:?}");
        }
    }

    #[test]
    fn non_ascii_users_are_kept_as_sent() {
        let u = WebUsername::parse("jürgen@myapp.myaccount.voximplant.com");
        assert_eq!(u.map(|u| u.user().to_owned()), Ok("jürgen".to_owned()));
    }
}

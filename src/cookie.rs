//! The session cookie, with safe attributes, and the cookie that clears it.
//!
//! [`SessionCookie::builder`] starts from the safe choice for each attribute and refuses
//! combinations browsers would reject or that would weaken the cookie:
//!
//! | attribute | default | why |
//! |---|---|---|
//! | `HttpOnly` | always | scripts (and so XSS) cannot read the session token |
//! | `Secure` | on | the token never travels over plain HTTP; turn off only for `http://localhost` development |
//! | `SameSite` | `Lax` | not sent on cross-site subrequests and POSTs; `Strict` also drops it on cross-site links; `None` requires `Secure` |
//! | `Path` | `/` | narrow it when the cookie is meant for one part of the site only |
//! | `Domain` | none | host-only: not sent to subdomains |
//! | prefix | none; [`host_prefix`](SessionCookieBuilder::host_prefix) asks for `__Host-` | with `__Host-`, browsers accept the cookie only if it is `Secure`, has `Path=/` and no `Domain`, so a subdomain or a plain-HTTP page cannot plant or overwrite it ("cookie tossing") |
//! | `Max-Age` | none (a browser-session cookie) | [`set_until`](SessionCookie::set_until) makes it persistent until the session's deadline, never longer |
//!
//! Names, values, paths and domains are checked against RFC 6265's grammar, so no value can
//! smuggle in an attribute (`x; Domain=evil.example`) or split a header.
//!
//! ```
//! use sessionkit::cookie::{SameSite, SessionCookie};
//! use sessionkit::Timestamp;
//! use std::time::Duration;
//!
//! let cookie = SessionCookie::builder("session").host_prefix(true).same_site(SameSite::Strict).build()?;
//! assert_eq!(cookie.name(), "__Host-session");
//!
//! let now = Timestamp::from_unix_nanos(0);
//! let deadline = now.saturating_add(Duration::from_secs(3600));
//! let set = cookie.set_until("TOKEN", deadline, now)?;
//! assert_eq!(set, "__Host-session=TOKEN; HttpOnly; SameSite=Strict; Path=/; Secure; Max-Age=3600");
//! assert_eq!(cookie.clear(), "__Host-session=; HttpOnly; SameSite=Strict; Path=/; Secure; Max-Age=0");
//!
//! assert!(cookie.set("x; Domain=evil.example", None).is_err());
//! # Ok::<(), sessionkit::cookie::CookieError>(())
//! ```

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::clock::Timestamp;

/// Longest accepted cookie value, in bytes (browsers keep name and value within 4096).
pub const MAX_VALUE_LEN: usize = 4000;

/// Longest accepted cookie name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Longest accepted `Path` or `Domain`, in bytes (RFC 6265bis caps attribute values at 1024).
pub const MAX_ATTRIBUTE_LEN: usize = 1024;

/// The `__Host-` prefix.
const HOST_PREFIX: &str = "__Host-";

/// The `__Secure-` prefix.
const SECURE_PREFIX: &str = "__Secure-";

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with requests that start on the same site, not even when following a link
    /// from another site.
    Strict,
    /// Also sent on top-level navigations from other sites (links), never on their subrequests
    /// or POSTs. The default.
    Lax,
    /// Sent with cross-site requests too; requires `Secure`. Only for cookies that must work
    /// inside other sites' frames, and then CSRF protection matters even more.
    None,
}

impl SameSite {
    /// The attribute's value: `Strict`, `Lax` or `None`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

impl fmt::Display for SameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cookie could not be built or set. Every variant is a programming or configuration error
/// except [`InvalidValue`](Self::InvalidValue), which a value from elsewhere can cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The name is empty, longer than [`MAX_NAME_LEN`], has a character outside RFC 7230's
    /// `token` set, or already carries a `__Host-` / `__Secure-` prefix (ask for the prefix
    /// with [`SessionCookieBuilder::host_prefix`] or [`SessionCookieBuilder::secure_prefix`]
    /// instead).
    #[error("invalid cookie name {0:?}")]
    InvalidName(String),
    /// The value is longer than [`MAX_VALUE_LEN`] or has a character outside RFC 6265's
    /// `cookie-octet` set (space, `"`, `,`, `;`, `\`, control and non-ASCII characters). The
    /// value itself is not repeated: it may be a secret.
    #[error("invalid cookie value ({len} bytes): only RFC 6265 cookie-octets are allowed")]
    InvalidValue {
        /// Length of the refused value.
        len: usize,
    },
    /// The path does not start with `/`, is too long, or has `;`, a control or a non-ASCII
    /// character.
    #[error("invalid cookie path {0:?}")]
    InvalidPath(String),
    /// The domain is empty, too long, or not made of letters, digits, `-` and `.`.
    #[error("invalid cookie domain {0:?}")]
    InvalidDomain(String),
    /// `SameSite=None` without `Secure`: browsers drop such cookies.
    #[error("SameSite=None requires Secure")]
    SameSiteNoneNeedsSecure,
    /// The `__Host-` prefix was asked for, but the cookie is not `Secure`, its path is not `/`,
    /// or it has a `Domain`: browsers would reject it.
    #[error("the __Host- prefix requires Secure, Path=/ and no Domain")]
    HostPrefixUnavailable,
    /// The `__Secure-` prefix was asked for a cookie that is not `Secure`, or together with
    /// the `__Host-` prefix.
    #[error("the __Secure- prefix requires Secure (and excludes __Host-)")]
    SecurePrefixUnavailable,
}

/// Builds a [`SessionCookie`]; see the [module documentation](self) for each default.
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionCookieBuilder {
    name: String,
    secure: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    host_prefix: bool,
    secure_prefix: bool,
}

impl SessionCookieBuilder {
    /// Whether to set `Secure` (default `true`).
    ///
    /// # Warning
    /// Without `Secure` the session token is sent over plain HTTP, where anyone on the path can
    /// read it. Turn it off only for development on `http://localhost`.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `SameSite` attribute (default [`SameSite::Lax`]).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Path` attribute (default `/`). A narrower path keeps the cookie away from the rest
    /// of the site, but rules out the `__Host-` prefix.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// A `Domain` attribute (default none: a host-only cookie). With a domain the cookie is
    /// also sent to every subdomain, and the `__Host-` prefix is impossible.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Whether to prefix the name with `__Host-` (default `false`). Requires `Secure`,
    /// `Path=/` and no `Domain`; [`build`](Self::build) refuses it otherwise rather than
    /// silently dropping it.
    pub fn host_prefix(mut self, host_prefix: bool) -> Self {
        self.host_prefix = host_prefix;
        self
    }

    /// Whether to prefix the name with `__Secure-` (default `false`): browsers then accept the
    /// cookie only from a secure origin with `Secure` set, so a plain-HTTP page cannot plant
    /// it. Unlike `__Host-` it allows a narrower `Path` (a refresh-token cookie scoped to its
    /// endpoint) and a `Domain`. Requires `Secure`, and not together with `__Host-`.
    pub fn secure_prefix(mut self, secure_prefix: bool) -> Self {
        self.secure_prefix = secure_prefix;
        self
    }

    /// Checks the whole and builds the cookie.
    ///
    /// # Errors
    /// [`CookieError::InvalidName`], [`CookieError::InvalidPath`], [`CookieError::InvalidDomain`],
    /// [`CookieError::SameSiteNoneNeedsSecure`], [`CookieError::HostPrefixUnavailable`],
    /// [`CookieError::SecurePrefixUnavailable`].
    pub fn build(self) -> Result<SessionCookie, CookieError> {
        if !valid_name(&self.name) {
            return Err(CookieError::InvalidName(self.name));
        }
        if !valid_path(&self.path) {
            return Err(CookieError::InvalidPath(self.path));
        }
        if let Some(domain) = &self.domain
            && !valid_domain(domain)
        {
            return Err(CookieError::InvalidDomain(domain.clone()));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(CookieError::SameSiteNoneNeedsSecure);
        }
        if self.host_prefix && (!self.secure || self.path != "/" || self.domain.is_some()) {
            return Err(CookieError::HostPrefixUnavailable);
        }
        if self.secure_prefix && (!self.secure || self.host_prefix) {
            return Err(CookieError::SecurePrefixUnavailable);
        }
        let name = if self.host_prefix {
            format!("{HOST_PREFIX}{}", self.name)
        } else if self.secure_prefix {
            format!("{SECURE_PREFIX}{}", self.name)
        } else {
            self.name
        };
        let mut attributes = format!("; HttpOnly; SameSite={}; Path={}", self.same_site, self.path);
        if let Some(domain) = &self.domain {
            let _ = write!(attributes, "; Domain={domain}");
        }
        if self.secure {
            attributes.push_str("; Secure");
        }
        Ok(SessionCookie { name, attributes, secure: self.secure })
    }
}

/// A checked cookie policy that writes `Set-Cookie` values for a session token and reads the
/// token back from `Cookie` headers. Build one at startup with [`SessionCookie::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// The full name, prefix included.
    name: String,
    /// Everything after `name=value`, but `Max-Age`.
    attributes: String,
    secure: bool,
}

impl SessionCookie {
    /// A builder for a cookie called `name` (without prefix), starting from the safe defaults.
    pub fn builder(name: impl Into<String>) -> SessionCookieBuilder {
        SessionCookieBuilder {
            name: name.into(),
            secure: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            host_prefix: false,
            secure_prefix: false,
        }
    }

    /// The cookie's full name, with its `__Host-` or `__Secure-` prefix if it has one.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the cookie is `Secure`.
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// A `Set-Cookie` value carrying `value`: a browser-session cookie without `max_age`, else
    /// one that lasts `max_age` (whole seconds, rounded down).
    ///
    /// # Errors
    /// [`CookieError::InvalidValue`] if `value` has a character that could end the value or
    /// start an attribute, or is too long.
    pub fn set(&self, value: &str, max_age: Option<Duration>) -> Result<String, CookieError> {
        if !valid_value(value) {
            return Err(CookieError::InvalidValue { len: value.len() });
        }
        Ok(self.format(value, max_age))
    }

    /// A persistent `Set-Cookie` value that lasts until `deadline` (typically the session's
    /// absolute deadline, so that the cookie never outlives the session), counted from `now`.
    /// A deadline already passed gives `Max-Age=0`, which deletes the cookie. Both instants are
    /// a [`Timestamp`] or an `OffsetDateTime` (as [`Session::absolute_expires_at`](crate::Session::absolute_expires_at)
    /// returns).
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub fn set_until(
        &self,
        value: &str,
        deadline: impl Into<Timestamp>,
        now: impl Into<Timestamp>,
    ) -> Result<String, CookieError> {
        self.set(value, Some(deadline.into().duration_since(now.into())))
    }

    /// A `Set-Cookie` value carrying `token` (which the crate made, so it is always a valid
    /// cookie value) for `session`: a browser-session cookie, or for a remember-me session a
    /// persistent one until the session's absolute deadline, never longer.
    #[must_use]
    pub fn set_token(&self, token: &crate::SessionToken, session: &crate::Session, now: Timestamp) -> String {
        self.set_trusted(token.expose_secret(), session, now)
    }

    /// As [`set_token`](Self::set_token), for a value the crate made (base64url, ids joined by
    /// `.`), which needs no check.
    pub(crate) fn set_trusted(&self, value: &str, session: &crate::Session, now: Timestamp) -> String {
        debug_assert!(valid_value(value));
        let max_age = session.remember_me().then(|| Timestamp::from(session.absolute_expires_at()).duration_since(now));
        self.format(value, max_age)
    }

    fn format(&self, value: &str, max_age: Option<Duration>) -> String {
        let mut cookie = format!("{}={value}{}", self.name, self.attributes);
        if let Some(max_age) = max_age {
            let _ = write!(cookie, "; Max-Age={}", max_age.as_secs());
        }
        cookie
    }

    /// A `Set-Cookie` value that makes the browser drop the cookie: empty, `Max-Age=0`, with
    /// the same path, domain and flags (which browsers need to match it).
    #[must_use]
    pub fn clear(&self) -> String {
        format!("{}={}; Max-Age=0", self.name, self.attributes)
    }

    /// The cookie's value in a `Cookie` request header (`a=1; session=TOKEN; b=2`), without
    /// surrounding quotes; `None` if it is absent or empty. The first occurrence wins, as
    /// browsers send the most specific cookie first.
    ///
    /// HTTP/2 clients may split cookies over several `Cookie` headers: use
    /// [`find_in`](Self::find_in) for a request's headers.
    #[must_use]
    pub fn find<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        cookie_header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim().trim_matches('"'))
            .filter(|value| !value.is_empty())
    }

    /// The cookie's value in any of a request's `Cookie` headers (HTTP/2 clients may send one
    /// header per cookie), as [`find`](Self::find) reads each; the first occurrence wins.
    #[must_use]
    pub fn find_in<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        cookie_headers.into_iter().find_map(|header| self.find(header))
    }
}

/// RFC 7230 `tchar`s, without a reserved prefix.
fn valid_name(name: &str) -> bool {
    let reserved = |prefix: &str| name.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix));
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !reserved(HOST_PREFIX)
        && !reserved("__Secure-")
}

/// RFC 6265 `cookie-octet`s: `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
fn valid_value(value: &str) -> bool {
    value.len() <= MAX_VALUE_LEN
        && value.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// An absolute path of printable ASCII without `;` (RFC 6265 `av-octet`s, no spaces).
fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.len() <= MAX_ATTRIBUTE_LEN && path.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

/// Letters, digits, `-` and `.`, not starting or ending with `-`.
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !domain.starts_with('-')
        && !domain.ends_with('-')
        && domain.bytes().any(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_nanos(secs * 1_000_000_000)
    }

    #[test]
    fn defaults_are_the_safe_choice() {
        let cookie = SessionCookie::builder("session").build().unwrap();
        assert_eq!(cookie.name(), "session");
        assert!(cookie.is_secure());
        assert_eq!(cookie.set("abc", None).unwrap(), "session=abc; HttpOnly; SameSite=Lax; Path=/; Secure");
        assert_eq!(cookie.clear(), "session=; HttpOnly; SameSite=Lax; Path=/; Secure; Max-Age=0");
    }

    #[test]
    fn every_attribute() {
        let cookie = SessionCookie::builder("sid")
            .secure(false)
            .same_site(SameSite::Strict)
            .path("/api/v1/auth/refresh-token")
            .domain("example.com")
            .build()
            .unwrap();
        assert_eq!(
            cookie.set("v", Some(Duration::from_millis(1999))).unwrap(),
            "sid=v; HttpOnly; SameSite=Strict; Path=/api/v1/auth/refresh-token; Domain=example.com; Max-Age=1"
        );
        assert!(!cookie.is_secure());
    }

    #[test]
    fn max_age_matches_the_deadline() {
        let cookie = SessionCookie::builder("s").build().unwrap();
        assert!(cookie.set_until("v", at(100), at(40)).unwrap().ends_with("; Max-Age=60"));
        assert!(cookie.set_until("v", at(100), at(100)).unwrap().ends_with("; Max-Age=0"));
        assert!(cookie.set_until("v", at(100), at(160)).unwrap().ends_with("; Max-Age=0"), "past: deleted");
        let almost = Timestamp::from_unix_nanos(100 * 1_000_000_000 - 1);
        assert!(cookie.set_until("v", at(101), almost).unwrap().ends_with("; Max-Age=1"), "rounded down");
        // A session's deadlines are `OffsetDateTime`s: taken as they are.
        let deadline = at(100).to_offset_date_time();
        assert!(cookie.set_until("v", deadline, at(40)).unwrap().ends_with("; Max-Age=60"));
    }

    #[test]
    fn set_token_lasts_as_long_as_a_remembered_session() {
        let store = crate::MemoryStore::new();
        let clock = crate::clock::MockClock::at(at(1_000));
        let sessions = crate::SessionManager::with_clock(store, crate::SessionConfig::default(), clock);
        let cookie = SessionCookie::builder("s").build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for (remember, max_age) in [(false, None), (true, Some("; Max-Age=2592000"))] {
            let new = crate::NewSession::new(crate::UserId::new("u").unwrap()).remember_me(remember);
            let login = runtime.block_on(sessions.create(new)).unwrap();
            let set = cookie.set_token(&login.token, &login.session, at(1_000));
            assert!(set.starts_with(&format!("s={}; HttpOnly", login.token.expose_secret())), "{set}");
            match max_age {
                Some(max_age) => assert!(set.ends_with(max_age), "until the absolute deadline (30 days): {set}"),
                None => assert!(!set.contains("Max-Age"), "a browser-session cookie: {set}"),
            }
        }
    }

    #[test]
    fn the_secure_prefix_allows_a_narrow_path() {
        let cookie = SessionCookie::builder("refresh").secure_prefix(true).path("/auth/refresh").build().unwrap();
        assert_eq!(cookie.name(), "__Secure-refresh");
        assert!(cookie.clear().contains("; Path=/auth/refresh; Secure"));
        for builder in [
            SessionCookie::builder("s").secure_prefix(true).secure(false),
            SessionCookie::builder("s").secure_prefix(true).host_prefix(true),
        ] {
            assert_eq!(builder.build().unwrap_err(), CookieError::SecurePrefixUnavailable);
        }
    }

    #[test]
    fn host_prefix_only_where_browsers_accept_it() {
        let cookie = SessionCookie::builder("session").host_prefix(true).build().unwrap();
        assert_eq!(cookie.name(), "__Host-session");
        assert!(cookie.set("t", None).unwrap().starts_with("__Host-session=t; "));
        for builder in [
            SessionCookie::builder("s").host_prefix(true).secure(false),
            SessionCookie::builder("s").host_prefix(true).path("/app"),
            SessionCookie::builder("s").host_prefix(true).domain("example.com"),
        ] {
            assert_eq!(builder.build().unwrap_err(), CookieError::HostPrefixUnavailable);
        }
    }

    #[test]
    fn same_site_none_needs_secure() {
        let refused = SessionCookie::builder("s").same_site(SameSite::None).secure(false).build();
        assert_eq!(refused.unwrap_err(), CookieError::SameSiteNoneNeedsSecure);
        let cookie = SessionCookie::builder("s").same_site(SameSite::None).build().unwrap();
        assert!(cookie.set("v", None).unwrap().contains("; SameSite=None;"));
    }

    #[test]
    fn nothing_can_inject_an_attribute() {
        let cookie = SessionCookie::builder("s").build().unwrap();
        for value in ["a;b", "a b", "a,b", "a\"b", "a\\b", "a\r\nSet-Cookie: x=y", "é", "\0", "a\tb"] {
            assert_eq!(
                cookie.set(value, None).unwrap_err(),
                CookieError::InvalidValue { len: value.len() },
                "{value:?}"
            );
        }
        assert!(cookie.set("", None).is_ok(), "an empty value is legal");
        assert!(cookie.set(&"A".repeat(MAX_VALUE_LEN), None).is_ok());
        assert!(cookie.set(&"A".repeat(MAX_VALUE_LEN + 1), None).is_err());
        assert!(cookie.set("abc-_=.~!", None).is_ok());
        let error = cookie.set("secret value", None).unwrap_err().to_string();
        assert!(!error.contains("secret"), "{error}");

        for name in ["", "a b", "a;b", "a=b", "a,b", "é", "__Host-s", "__host-s", "__Secure-s", &"n".repeat(65)] {
            assert!(matches!(SessionCookie::builder(name).build(), Err(CookieError::InvalidName(_))), "{name:?}");
        }
        assert!(SessionCookie::builder("n".repeat(64)).build().is_ok());
        for path in ["", "api", "/a;b", "/a b", "/a\n", "/é"] {
            assert!(
                matches!(SessionCookie::builder("s").path(path).build(), Err(CookieError::InvalidPath(_))),
                "{path:?}"
            );
        }
        for domain in ["", "a;b", "a b", "-a.com", "a.com-", "...", "é.com", &"a".repeat(254)] {
            let built = SessionCookie::builder("s").domain(domain).build();
            assert!(matches!(built, Err(CookieError::InvalidDomain(_))), "{domain:?}");
        }
    }

    #[test]
    fn find_reads_the_value_back() {
        let cookie = SessionCookie::builder("session").build().unwrap();
        assert_eq!(cookie.find("theme=dark; session=tok; lang=en"), Some("tok"));
        assert_eq!(cookie.find("session=\"tok\""), Some("tok"));
        assert_eq!(cookie.find("session=first; session=second"), Some("first"));
        assert_eq!(cookie.find("xsession=a; sessionx=b"), None);
        assert_eq!(cookie.find("session="), None);
        assert_eq!(cookie.find(""), None);
        let host = SessionCookie::builder("session").host_prefix(true).build().unwrap();
        assert_eq!(host.find("session=planted; __Host-session=real"), Some("real"));
        // HTTP/2 clients may send one `Cookie` header per cookie.
        assert_eq!(cookie.find_in(["theme=dark", "lang=en; session=tok"]), Some("tok"));
        assert_eq!(cookie.find_in(["session=first", "session=second"]), Some("first"));
        assert_eq!(cookie.find_in(["theme=dark", "lang=en"]), None);
    }
}

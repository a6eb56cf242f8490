//! [`WebConfig`]: the cookies, the CSRF guard and the origins, checked once at startup.

use ::axum::http::HeaderName;

use super::origin::{AllowedOrigins, InvalidOrigin};
use crate::cookie::{CookieError, SameSite, SessionCookie};
use crate::csrf::{CsrfKey, CsrfKeyError};

/// Default name of the session cookie, before its prefix (`__Host-session` when `Secure`).
pub const SESSION_COOKIE_NAME: &str = "session";

/// Default name of the refresh-token cookie.
pub const REFRESH_COOKIE_NAME: &str = "refresh_token";

/// Default path of the refresh-token endpoint, and so of the refresh-token cookie.
pub const REFRESH_PATH: &str = "/auth/refresh-token";

/// Default request header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the web integration reads and writes credentials: the session and refresh-token
/// cookies, the CSRF key and header, and the allowed origins. Build one with
/// [`WebConfig::builder`]; cheap to clone.
///
/// | option | default | why |
/// |---|---|---|
/// | origins | the one given to [`builder`](Self::builder) | the CSRF guard trusts no `Host` header (DNS rebinding) |
/// | session cookie | `__Host-session`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`; `session` without `Secure` | scripts cannot read it; with `__Host-` no subdomain or plain-HTTP page can plant it |
/// | refresh cookie | `refresh_token`, `HttpOnly`, `Secure`, `SameSite=Strict`, `Path=`[`REFRESH_PATH`] | sent to the refresh endpoint only, never on a cross-site request |
/// | CSRF key | random, per process | give every instance the same key ([`csrf_key`](WebConfigBuilder::csrf_key)) |
/// | CSRF header | [`CSRF_HEADER`] (`X-CSRF-Token`) | a header another site's page cannot set |
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub(crate) origins: AllowedOrigins,
    pub(crate) session_cookie: SessionCookie,
    pub(crate) refresh_cookie: SessionCookie,
    pub(crate) csrf: CsrfKey,
    pub(crate) csrf_header: HeaderName,
}

impl WebConfig {
    /// A builder for an application whose pages are served from `origins`
    /// ([`AllowedOrigins::new`]`("https://app.example.com")`), starting from the safe defaults.
    pub fn builder(origins: AllowedOrigins) -> WebConfigBuilder {
        WebConfigBuilder {
            origins,
            secure: true,
            session_cookie_name: SESSION_COOKIE_NAME.to_owned(),
            host_prefix: None,
            same_site: SameSite::Lax,
            refresh_cookie_name: REFRESH_COOKIE_NAME.to_owned(),
            refresh_path: REFRESH_PATH.to_owned(),
            refresh_secure_prefix: false,
            csrf: None,
            csrf_header: HeaderName::from_static(CSRF_HEADER),
        }
    }

    /// The allowed origins.
    #[must_use]
    pub fn origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    /// The session cookie.
    #[must_use]
    pub fn session_cookie(&self) -> &SessionCookie {
        &self.session_cookie
    }

    /// The refresh-token cookie.
    #[must_use]
    pub fn refresh_cookie(&self) -> &SessionCookie {
        &self.refresh_cookie
    }

    /// The key CSRF tokens are derived with.
    #[must_use]
    pub fn csrf_key(&self) -> &CsrfKey {
        &self.csrf
    }

    /// The request header that carries the CSRF token.
    #[must_use]
    pub fn csrf_header(&self) -> &HeaderName {
        &self.csrf_header
    }
}

/// Builds a [`WebConfig`]; see there for each default.
#[derive(Debug, Clone)]
#[must_use]
pub struct WebConfigBuilder {
    origins: AllowedOrigins,
    secure: bool,
    session_cookie_name: String,
    host_prefix: Option<bool>,
    same_site: SameSite,
    refresh_cookie_name: String,
    refresh_path: String,
    refresh_secure_prefix: bool,
    csrf: Option<CsrfKey>,
    csrf_header: HeaderName,
}

impl WebConfigBuilder {
    /// Whether both cookies are `Secure` (default `true`).
    ///
    /// # Warning
    /// Without `Secure` the session token travels over plain HTTP, where anyone on the path can
    /// read it, and the `__Host-` prefix is impossible, so the session cookie is named plainly
    /// (`session`). Turn it off only for development on `http://localhost`.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Name of the session cookie, without prefix (default [`SESSION_COOKIE_NAME`]).
    pub fn session_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.session_cookie_name = name.into();
        self
    }

    /// Whether the session cookie's name carries the `__Host-` prefix (default: when
    /// `Secure`). Without it, a subdomain or a plain-HTTP page of the same host can plant a
    /// session cookie (session fixation through cookie tossing).
    pub fn host_prefix(mut self, host_prefix: bool) -> Self {
        self.host_prefix = Some(host_prefix);
        self
    }

    /// `SameSite` of the session cookie (default [`SameSite::Lax`]: sent on top-level
    /// navigations from other sites, never on their subrequests or POSTs).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Name of the refresh-token cookie, without prefix (default [`REFRESH_COOKIE_NAME`]).
    pub fn refresh_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.refresh_cookie_name = name.into();
        self
    }

    /// Path of the refresh-token endpoint, to which alone the browser sends the refresh-token
    /// cookie (default [`REFRESH_PATH`]).
    pub fn refresh_path(mut self, path: impl Into<String>) -> Self {
        self.refresh_path = path.into();
        self
    }

    /// Whether the refresh-token cookie's name carries the `__Secure-` prefix (default
    /// `false`; needs `Secure`).
    pub fn refresh_secure_prefix(mut self, prefix: bool) -> Self {
        self.refresh_secure_prefix = prefix;
        self
    }

    /// The key CSRF tokens are derived with (default: a random key made by
    /// [`build`](Self::build), so tokens change when the process restarts). Give every
    /// instance of a deployment the same key.
    pub fn csrf_key(mut self, key: CsrfKey) -> Self {
        self.csrf = Some(key);
        self
    }

    /// The request header that carries the CSRF token (default [`CSRF_HEADER`]).
    pub fn csrf_header(mut self, header: HeaderName) -> Self {
        self.csrf_header = header;
        self
    }

    /// Checks the whole and builds the configuration.
    ///
    /// # Errors
    /// [`WebConfigError::Cookie`] for an invalid cookie name or path, or a prefix the cookie's
    /// attributes rule out; [`WebConfigError::Csrf`] if no CSRF key was given and the OS
    /// random number generator fails.
    pub fn build(self) -> Result<WebConfig, WebConfigError> {
        let session_cookie = SessionCookie::builder(self.session_cookie_name)
            .secure(self.secure)
            .same_site(self.same_site)
            .host_prefix(self.host_prefix.unwrap_or(self.secure))
            .build()?;
        let refresh_cookie = SessionCookie::builder(self.refresh_cookie_name)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .path(self.refresh_path)
            .secure_prefix(self.refresh_secure_prefix)
            .build()?;
        let csrf = match self.csrf {
            Some(key) => key,
            None => CsrfKey::generate()?,
        };
        Ok(WebConfig { origins: self.origins, session_cookie, refresh_cookie, csrf, csrf_header: self.csrf_header })
    }
}

/// A [`WebConfig`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebConfigError {
    /// A cookie option is invalid.
    #[error("cookie: {0}")]
    Cookie(#[from] CookieError),
    /// An origin is invalid.
    #[error(transparent)]
    Origin(#[from] InvalidOrigin),
    /// No CSRF key was given and none could be generated.
    #[error("CSRF key: {0}")]
    Csrf(#[from] CsrfKeyError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn origins() -> AllowedOrigins {
        AllowedOrigins::new("https://app.example.com").unwrap()
    }

    #[test]
    fn secure_defaults() {
        let web = WebConfig::builder(origins()).build().unwrap();
        assert_eq!(web.session_cookie().name(), "__Host-session");
        let set = web.session_cookie().clear();
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(set.split("; ").any(|a| a == attribute), "{attribute}: {set}");
        }
        assert_eq!(web.refresh_cookie().name(), "refresh_token");
        let set = web.refresh_cookie().clear();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/auth/refresh-token", "Secure"] {
            assert!(set.split("; ").any(|a| a == attribute), "{attribute}: {set}");
        }
        assert_eq!(web.csrf_header().as_str(), "x-csrf-token");
    }

    #[test]
    fn development_cookies_are_plain() {
        let web = WebConfig::builder(origins()).secure(false).build().unwrap();
        assert_eq!(web.session_cookie().name(), "session");
        assert!(!web.session_cookie().clear().contains("Secure"));
        let err = WebConfig::builder(origins()).secure(false).host_prefix(true).build().unwrap_err();
        assert_eq!(err, WebConfigError::Cookie(CookieError::HostPrefixUnavailable));
    }

    #[test]
    fn the_refresh_cookie_can_take_the_secure_prefix() {
        let web =
            WebConfig::builder(origins()).refresh_secure_prefix(true).refresh_path("/api/refresh").build().unwrap();
        assert_eq!(web.refresh_cookie().name(), "__Secure-refresh_token");
        assert!(web.refresh_cookie().clear().contains("Path=/api/refresh"));
        let err = WebConfig::builder(origins()).secure(false).refresh_secure_prefix(true).build().unwrap_err();
        assert_eq!(err, WebConfigError::Cookie(CookieError::SecurePrefixUnavailable));
        let err = WebConfig::builder(origins()).refresh_path("no-slash").build().unwrap_err();
        assert!(matches!(err, WebConfigError::Cookie(CookieError::InvalidPath(_))));
    }
}

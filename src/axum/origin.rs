//! Which origins may send cookie-authenticated requests that change state: the first half of
//! the CSRF guard, a pure function of the request's headers and the configured policy.

use std::net::IpAddr;

use ::axum::http::HeaderMap;
use ::axum::http::header::{HOST, ORIGIN};

/// The origins whose pages may send cookie-authenticated requests that change state, and log
/// in.
///
/// The default policy, [`AllowedOrigins::new`], is an explicit list: the origin the application
/// serves and any others it names. A request passes when its `Origin` header is one of them;
/// a request without `Origin` passes only with `Sec-Fetch-Site: same-origin` (or, for a login,
/// when no browser header names another site, so that non-browser clients can log in).
/// `Origin: null` never passes.
///
/// Origins are compared after normalisation: scheme and host lowercased, the default port
/// (`:443` for `https`, `:80` for `http`) dropped, as browsers send them.
///
/// ```
/// use sessionkit::axum::AllowedOrigins;
///
/// let origins = AllowedOrigins::new("https://app.example.com")?.and("https://admin.example.com:8443")?;
/// assert!(origins.allows("https://APP.example.com", None));
/// assert!(!origins.allows("https://evil.example", None));
/// assert!(!origins.allows("null", None));
/// # Ok::<(), sessionkit::axum::InvalidOrigin>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Policy {
    /// Normalised `scheme://host[:port]` values.
    List(Vec<String>),
    /// `https://` + the request's `Host`; `http://` too when `allow_http` or for loopback hosts.
    RequestHost { allow_http: bool },
}

/// An origin given to [`AllowedOrigins`] is not `http(s)://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid origin {0:?}: expected scheme://host[:port] with scheme http or https, and no path")]
pub struct InvalidOrigin(pub(crate) String);

impl AllowedOrigins {
    /// Only `origin` (`https://app.example.com`, `http://127.0.0.1:3000`), the origin the
    /// application serves.
    ///
    /// # Errors
    /// [`InvalidOrigin`] if `origin` is not `http(s)://host[:port]` (a trailing `/` is allowed).
    pub fn new(origin: impl AsRef<str>) -> Result<Self, InvalidOrigin> {
        Ok(Self { policy: Policy::List(vec![normalise(origin.as_ref())?]) })
    }

    /// These origins too.
    ///
    /// # Errors
    /// As [`new`](Self::new). On a [`request_host`](Self::request_host) policy, which has no
    /// list, [`InvalidOrigin`] as well.
    pub fn and(mut self, origin: impl AsRef<str>) -> Result<Self, InvalidOrigin> {
        let normalised = normalise(origin.as_ref())?;
        match &mut self.policy {
            Policy::List(list) => {
                if !list.contains(&normalised) {
                    list.push(normalised);
                }
                Ok(self)
            }
            Policy::RequestHost { .. } => Err(InvalidOrigin(origin.as_ref().to_owned())),
        }
    }

    /// Any origin that names the request's own `Host`: `https://HOST`, and `http://HOST` when
    /// `allow_http` or when `HOST` is a loopback name or address (browsers treat loopback as a
    /// secure context).
    ///
    /// # Warning
    /// The `Host` header is chosen by whoever sends the request. A page on another name that
    /// resolves to this server (DNS rebinding) sends its own name in both `Host` and `Origin`
    /// and passes this check (the victim's cookies, which are bound to the real name, are not
    /// sent along, but nothing else stops it). Prefer an explicit list; use this only behind a
    /// reverse proxy that answers nothing but the application's own host names, or for a server
    /// whose host names are not known in advance.
    #[must_use]
    pub fn request_host(allow_http: bool) -> Self {
        Self { policy: Policy::RequestHost { allow_http } }
    }

    /// The configured origins, normalised (empty for a [`request_host`](Self::request_host)
    /// policy).
    #[must_use]
    pub fn origins(&self) -> &[String] {
        match &self.policy {
            Policy::List(list) => list,
            Policy::RequestHost { .. } => &[],
        }
    }

    /// Whether a request with this `Origin` value (and `Host`, which only the
    /// [`request_host`](Self::request_host) policy reads) comes from an allowed page.
    #[must_use]
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        match &self.policy {
            Policy::List(list) => normalise(origin).is_ok_and(|o| list.contains(&o)),
            Policy::RequestHost { allow_http } => {
                let Some(host) = host.filter(|h| !h.is_empty()) else {
                    return false;
                };
                let Some((scheme, authority)) = origin.split_once("://") else {
                    return false;
                };
                let scheme_ok = scheme == "https" || (scheme == "http" && (*allow_http || is_loopback(host)));
                scheme_ok && authority.eq_ignore_ascii_case(host)
            }
        }
    }
}

/// How a request without an `Origin` header is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginRule {
    /// A cookie-authenticated request that changes state: without `Origin`, only
    /// `Sec-Fetch-Site: same-origin` passes.
    Required,
    /// A login: without `Origin`, anything but a `Sec-Fetch-Site` naming another site passes,
    /// so that clients that are not browsers can log in.
    WhenPresent,
}

/// Whether the request passes the origin check of `rule` under `allowed`.
pub(crate) fn check(headers: &HeaderMap, authority: Option<&str>, allowed: &AllowedOrigins, rule: OriginRule) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        return match rule {
            OriginRule::Required => fetch_site == Some("same-origin"),
            OriginRule::WhenPresent => fetch_site.is_none_or(|site| site == "same-origin" || site == "none"),
        };
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).or(authority);
    allowed.allows(origin, host)
}

/// `scheme://host[:port]` lowercased, without a default port or a trailing `/`.
fn normalise(origin: &str) -> Result<String, InvalidOrigin> {
    let invalid = || InvalidOrigin(origin.chars().take(256).collect());
    let trimmed = origin.strip_suffix('/').unwrap_or(origin);
    let (scheme, authority) = trimmed.split_once("://").ok_or_else(invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return Err(invalid()),
    };
    let valid = !authority.is_empty()
        && authority.len() <= 262
        && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        && !authority.starts_with(':');
    if !valid {
        return Err(invalid());
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Ok(format!("{scheme}://{authority}"))
}

/// Whether a `Host` value (`name[:port]`, `[v6]:port`) names the loopback interface.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(v6, _)| v6),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ::axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn origins_are_normalised() {
        let o = AllowedOrigins::new("HTTPS://App.Example.com:443/").unwrap();
        assert_eq!(o.origins(), ["https://app.example.com"]);
        assert!(o.allows("https://app.example.com", None));
        assert!(o.allows("https://app.example.com:443", None));
        assert!(!o.allows("http://app.example.com", None), "another scheme is another origin");
        assert!(!o.allows("https://app.example.com:8443", None), "another port is another origin");
        assert!(!o.allows("https://app.example.com.evil.example", None));
        let o = AllowedOrigins::new("http://127.0.0.1:80").unwrap().and("http://[::1]:3000").unwrap();
        assert_eq!(o.origins(), ["http://127.0.0.1", "http://[::1]:3000"]);
    }

    #[test]
    fn invalid_origins_are_refused() {
        for bad in ["", "app.example.com", "ftp://x", "https://", "https://a/b", "https://a b", "https://:80", "null"] {
            assert!(AllowedOrigins::new(bad).is_err(), "{bad:?}");
        }
        assert!(AllowedOrigins::request_host(false).and("https://a.example").is_err());
    }

    #[test]
    fn an_explicit_list_ignores_the_host_header() {
        let o = AllowedOrigins::new("https://app.example.com").unwrap();
        // A DNS-rebinding page names itself in both headers: refused.
        let rebinding = headers(&[("origin", "https://evil.example"), ("host", "evil.example")]);
        assert!(!check(&rebinding, None, &o, OriginRule::Required));
        let own = headers(&[("origin", "https://app.example.com"), ("host", "evil.example")]);
        assert!(check(&own, None, &o, OriginRule::Required));
    }

    #[test]
    fn without_origin_the_fetch_metadata_decides() {
        let o = AllowedOrigins::new("https://app.example.com").unwrap();
        let none = headers(&[]);
        assert!(!check(&none, None, &o, OriginRule::Required));
        assert!(check(&none, None, &o, OriginRule::WhenPresent), "a non-browser client may log in");
        for (site, required, login) in [
            ("same-origin", true, true),
            ("none", false, true),
            ("same-site", false, false),
            ("cross-site", false, false),
        ] {
            let h = headers(&[("sec-fetch-site", site)]);
            assert_eq!(check(&h, None, &o, OriginRule::Required), required, "{site}");
            assert_eq!(check(&h, None, &o, OriginRule::WhenPresent), login, "{site}");
        }
        let null = headers(&[("origin", "null")]);
        assert!(!check(&null, None, &o, OriginRule::Required));
        assert!(!check(&null, None, &o, OriginRule::WhenPresent));
    }

    #[test]
    fn the_request_host_policy_matches_the_host() {
        let secure = AllowedOrigins::request_host(false);
        for (host, origin, ok) in [
            ("example.com", "https://example.com", true),
            ("Example.COM:8443", "https://example.com:8443", true),
            ("example.com", "http://example.com", false),
            ("example.com", "https://example.com:8443", false),
            ("localhost:8080", "http://localhost:8080", true),
            ("127.0.0.1:8080", "http://127.0.0.1:8080", true),
            ("[::1]:8080", "http://[::1]:8080", true),
            ("", "https://example.com", false),
        ] {
            assert_eq!(secure.allows(origin, Some(host)), ok, "{host} {origin}");
        }
        assert!(AllowedOrigins::request_host(true).allows("http://example.com", Some("example.com")));
        let h = headers(&[("origin", "https://example.com")]);
        assert!(check(&h, Some("example.com"), &secure, OriginRule::Required), "HTTP/2 authority stands in for Host");
    }
}

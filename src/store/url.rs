//! Hiding secrets of database URLs in `Debug` output (the Redis and SQL stores).

/// `url` with the password of its user information and the value of any `password` or `pass`
/// query parameter replaced by `***`, for `Debug` output. Text that is not a URL with an
/// authority is hidden whole, since where its secrets are cannot be told (except the
/// password-free `sqlite:` forms).
pub(crate) fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "***";
    let Some((scheme, rest)) = url.split_once("://") else {
        if url == "sqlite::memory:" {
            return url.to_owned();
        }
        return HIDDEN.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:{HIDDEN}")),
                // `redis://secret@host` puts the password where a user name would be.
                None => out.push_str(HIDDEN),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") => {
                    format!("{k}={HIDDEN}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

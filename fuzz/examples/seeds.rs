//! Writes the committed seed corpus, `fuzz/corpus/<target>/`: a few valid inputs made by the
//! crate itself (at the fuzz targets' fixed clock and with their known key) and near-valid
//! variants. Run from `fuzz/` with `cargo run --example seeds` after a format change.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionkit::{NewSession, UserId};
use sessionkit_fuzz::{AUDIENCE, HS256_KID, ISSUER, NOW_SECS, SID, block_on, manager, own_header, sign, valid_claims};

fn write(target: &str, name: &str, data: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), data).expect("seed file");
}

/// A RESP bulk string.
fn bulk(s: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", s.len()).into_bytes();
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
    out
}

fn resp_array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", items.len()).into_bytes();
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// A timestamp as the Redis store writes it: 20 digits whose order is time order.
fn ts(secs: i64) -> Vec<u8> {
    let nanos = secs * 1_000_000_000;
    #[allow(clippy::cast_sign_loss)]
    let v = (nanos as u64) ^ (1 << 63);
    format!("{v:020}").into_bytes()
}

fn main() {
    let manager = manager();
    let created = block_on(
        manager.create(
            NewSession::new(UserId::new("alice").expect("user"))
                .user_agent("Mozilla/5.0")
                .ip([192, 0, 2, 1].into())
                .data("cart", serde_json::json!({"items": [1, 2, {"sku": "a\"b"}], "total": 12.5})),
        ),
    )
    .expect("session");
    let other = block_on(manager.create(NewSession::new(UserId::new("bob").expect("user")).remember_me(true)))
        .expect("session");
    let revoked = block_on(manager.create(NewSession::new(UserId::new("carol").expect("user")))).expect("session");
    block_on(manager.revoke(revoked.token.expose_secret())).expect("revoke");
    let session_token = created.token.expose_secret().to_owned();
    let pair = created.tokens.as_ref().expect("keys");
    let access = pair.access_token.expose_secret().to_owned();
    let refresh = pair.refresh_token.expose_secret().to_owned();
    let digest = created.token.digest().to_base64();

    // Opaque tokens.
    write("opaque_token", "session_routed", &session_token);
    write("opaque_token", "refresh_routed", &refresh);
    write("opaque_token", "legacy_43", &session_token[2..]);
    write("opaque_token", "digest", &digest);
    write("opaque_token", "short", &session_token[..44]);
    write("opaque_token", "bad_char", format!("{}+", &session_token[..44]));
    write("opaque_token", "non_canonical_tail", format!("{}B", &session_token[2..44]));

    // Whole access tokens.
    let own = own_header();
    write("access_verify", "issued", &access);
    write("access_verify", "signed_here", sign(&own, valid_claims(SID).as_bytes()));
    write(
        "access_verify",
        "other_header",
        sign(&URL_SAFE_NO_PAD.encode(r#"{"kid":"k1","alg":"HS256"}"#), valid_claims(SID).as_bytes()),
    );
    write(
        "access_verify",
        "alg_none",
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(valid_claims(SID))),
    );
    let mut tampered = access.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    write("access_verify", "bad_signature", tampered);
    write("access_verify", "session_token", &session_token);
    write("access_verify", "four_parts", format!("{access}.x"));

    // Headers (signed over valid claims by the target).
    write("access_header", "own", r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    write("access_header", "reordered", r#"{"kid":"k1","alg":"HS256"}"#);
    write(
        "access_header",
        "extra_members",
        r#"{ "alg" : "HS256", "kid":"k1", "typ":"jwt", "x5u":null, "ext":[1,{"a":[true,false]}] }"#,
    );
    write("access_header", "escaped", r#"{"alg":"HS\u0032\u0035\u0036","kid":"\u006b1"}"#);
    write("access_header", "crit", r#"{"alg":"HS256","kid":"k1","crit":["exp"]}"#);
    write("access_header", "alg_none", r#"{"alg":"none","kid":"k1"}"#);
    write("access_header", "eddsa_mismatch", r#"{"alg":"EdDSA","kid":"k1"}"#);
    write("access_header", "duplicate_alg", r#"{"alg":"HS256","alg":"HS256","kid":"k1"}"#);
    write("access_header", "kid_number", r#"{"alg":"HS256","kid":1}"#);
    write("access_header", "typ_other", r#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#);

    // Claims (signed under the key's own header by the target).
    let (now, exp) = (NOW_SECS, NOW_SECS + 900);
    write("access_claims", "valid", valid_claims(SID));
    write("access_claims", "issued", {
        let payload = access.split('.').nth(1).expect("payload");
        URL_SAFE_NO_PAD.decode(payload).expect("base64")
    });
    write(
        "access_claims",
        "spaced_aud_array",
        format!(
            r#"{{ "sub": "alice", "sid": "{SID}", "exp": {exp}, "nbf": {now}, "iss": "{ISSUER}", "aud": ["x", "{AUDIENCE}"], "extra": {{"a": [1, 2.5, null]}} }}"#
        ),
    );
    write(
        "access_claims",
        "escaped",
        format!(
            r#"{{"sub":"al\u0069ce","sid":"{SID}","exp":{exp},"iss":"https:\/\/issuer.example","aud":"{AUDIENCE}"}}"#
        ),
    );
    write(
        "access_claims",
        "null_iat",
        format!(r#"{{"sub":"alice","sid":"{SID}","exp":{exp},"iat":null,"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#),
    );
    write(
        "access_claims",
        "string_exp",
        format!(r#"{{"sub":"alice","sid":"{SID}","exp":"{exp}","iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#),
    );
    write(
        "access_claims",
        "float_exp",
        format!(r#"{{"sub":"alice","sid":"{SID}","exp":{exp}.0,"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#),
    );
    write(
        "access_claims",
        "duplicate_sub",
        format!(r#"{{"sub":"alice","sub":"bob","sid":"{SID}","exp":{exp},"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#),
    );
    write(
        "access_claims",
        "huge_exp",
        format!(r#"{{"sub":"alice","sid":"{SID}","exp":99999999999999999999,"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#),
    );
    write(
        "access_claims",
        "min_nbf",
        format!(
            r#"{{"sub":"alice","sid":"{SID}","exp":{exp},"nbf":-9223372036854775808,"iat":9223372036854775807,"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#
        ),
    );
    write(
        "access_claims",
        "expired",
        format!(r#"{{"sub":"alice","sid":"{SID}","exp":{now},"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#),
    );

    // Cookie headers: the first byte picks the cookie name (0: __Host-session, 1: sid).
    write("cookie_header", "one", format!("\0__Host-session={session_token}"));
    write(
        "cookie_header",
        "several",
        format!("\0a=1; b=\"2\"; __Host-session=\"{session_token}\"; __Host-session=second"),
    );
    write("cookie_header", "split_headers", format!("\u{1}theme=dark\nsid={session_token}; x=y"));
    write("cookie_header", "odd", "\u{1}; ;=; sid=; sid ; sid= \"\" ;sid=\t v \t;");

    // CSRF tokens (of the digest the target uses).
    let key = sessionkit::CsrfKey::from_bytes(&[7; 32]).expect("key");
    let csrf = key.token_for_digest(&sessionkit::token::TokenDigest::from_bytes([42; 32])).expose_secret().to_owned();
    write("csrf_token", "valid", &csrf);
    write("csrf_token", "other", &session_token[2..]);
    write("csrf_token", "short", &csrf[..42]);
    write("csrf_token", "empty", "");
    write("csrf_token", "non_canonical_tail", format!("{}B", &csrf[..42]));

    // Exports and snapshots.
    let mut export = Vec::new();
    block_on(manager.export(&mut export)).expect("export");
    let text = String::from_utf8(export.clone()).expect("UTF-8");
    write("jsonl_import", "export", &export);
    write("snapshot_load", "export", &export);
    let lines: Vec<&str> = text.lines().collect();
    write("jsonl_import", "truncated", lines[..lines.len() - 1].join("\n"));
    write("jsonl_import", "duplicate", {
        let mut dup = lines[..lines.len() - 1].to_vec();
        dup.push(lines[1]);
        let count = dup.len() - 1;
        format!("{}\n{{\"type\":\"end\",\"items\":{count}}}\n", dup.join("\n"))
    });
    write("jsonl_import", "empty", format!("{}\n{{\"type\":\"end\",\"items\":0}}\n", lines[0]));
    write(
        "jsonl_import",
        "version_2",
        format!("{}\n{{\"type\":\"end\",\"items\":0}}\n", lines[0].replace("\"version\":1", "\"version\":2")),
    );
    write("snapshot_load", "crlf", text.replace('\n', "\r\n"));
    write("snapshot_load", "no_end", lines[..lines.len() - 1].join("\n"));
    drop(other);

    // Configurations.
    let default = sessionkit::SessionConfig::default();
    write("config_json", "default", serde_json::to_vec_pretty(&default).expect("json"));
    write(
        "config_json",
        "docs",
        r#"{ "idle_timeout": "15m", "absolute_timeout": "4h", "max_sessions_per_user": 3, "on_limit": "evict-lru" }"#,
    );
    write(
        "config_json",
        "issuer",
        r#"{"jwt_issuer":"https://issuer.example","jwt_audience":"api","access_token_ttl":"5m","access_token_leeway":"0s"}"#,
    );
    write("config_json", "invalid", r#"{"idle_timeout":"4h","absolute_timeout":"15m","touch_interval":"1year"}"#);
    write("config_toml", "default", toml::to_string(&default).expect("toml"));
    write(
        "config_toml",
        "docs",
        "idle_timeout = \"15m\"\nabsolute_timeout = \"4h\"\nmax_sessions_per_user = 3\non_limit = \"evict-lru\"\n",
    );
    write("config_toml", "unknown_field", "idle_timeout = \"15m\"\nidle = 3\n");
    write(
        "config_toml",
        "durations",
        "sweep_interval = \"1h 30m 5s\"\nremember_me_idle_timeout = \"30days\"\nremember_me_absolute_timeout = \"90days\"\nmax_data_bytes = 0\n",
    );

    // Redis replies: a record as the scripts' `rec()` answers it, a lookup, a stored session.
    let record = |id: &str, digest: &str| {
        vec![
            bulk(id.as_bytes()),
            bulk(digest.as_bytes()),
            bulk(b"alice"),
            bulk(&ts(NOW_SECS - 60)),
            bulk(&ts(NOW_SECS)),
            bulk(&ts(NOW_SECS + 1800)),
            bulk(&ts(NOW_SECS + 86_400)),
            bulk(b"0"),
            bulk(b"3"),
            bulk(br#"{"ip":"192.0.2.1","user_agent":"Mozilla/5.0"}"#),
            bulk(br#"{"cart":{"items":[1,2]}}"#),
            bulk(b"0"),
        ]
    };
    let rec = resp_array(&record(SID, &digest));
    write("redis_reply", "record", &rec);
    write("redis_reply", "lookup_live", resp_array(&[bulk(b"live"), rec.clone()]));
    write("redis_reply", "lookup_expired", resp_array(&[bulk(b"expired"), bulk(b"idle"), rec.clone()]));
    write("redis_reply", "lookup_revoked", resp_array(&[bulk(b"revoked"), bulk(b"logout")]));
    write("redis_reply", "records", resp_array(&[rec.clone(), rec.clone()]));
    // A session as `RedisStore` stores it (one string: 15 fields each ended by a newline, then
    // the user id), which a validation reads with `GET`.
    let stored: Vec<Vec<u8>> = vec![
        SID.into(),
        digest.clone().into(),
        ts(NOW_SECS - 60),
        ts(NOW_SECS),
        ts(NOW_SECS + 1800),
        ts(NOW_SECS + 86_400),
        b"0".into(),
        b"3".into(),
        b"2".into(),
        b"0".into(),
        b"17".into(),
        Vec::new(),
        Vec::new(),
        br#"{"ip":"192.0.2.1","user_agent":"Mozilla/5.0"}"#.into(),
        br#"{"cart":{"items":[1,2]}}"#.into(),
        b"alice".into(),
    ];
    let stored = stored.join(&b'\n');
    write("redis_reply", "stored_session", bulk(&stored));
    write("redis_reply", "timestamp", bulk(&ts(NOW_SECS)));
    write("redis_reply", "int", ":42\r\n");
    write("redis_reply", "short_record", resp_array(&record(SID, &digest)[..10]));
    write(
        "redis_reply",
        "bad_timestamp",
        resp_array(&[bulk(b"live"), {
            let mut r = record(SID, &digest);
            r[3] = bulk(b"99999999999999999999");
            resp_array(&r)
        }]),
    );

    // Grants.
    write(
        "client_grant",
        "full",
        r#"{"access_token":"eyJ.x.y","refresh_token":"r1","token_type":"Bearer","expires_in":900}"#,
    );
    write("client_grant", "minimal", r#"{"access_token":"a"}"#);
    write("client_grant", "nulls", r#"{"access_token":"a","refresh_token":null,"expires_in":null,"scope":"x y"}"#);
    write("client_grant", "huge_expiry", r#"{"access_token":"a","expires_in":18446744073709551615}"#);
    write("client_grant", "zero_expiry", r#"{"access_token":"a","expires_in":0}"#);
    write("client_grant", "negative", r#"{"access_token":"a","expires_in":-1}"#);

    // Web requests: `METHOD PATH`, then headers; placeholders become live credentials.
    write("axum_headers", "cookie_get", "GET /me\ncookie: __Host-session={session}\n");
    write(
        "axum_headers",
        "cookie_post_guarded",
        "POST /me\ncookie: a=b; __Host-session={session}\norigin: https://app.example.com\nx-csrf-token: {csrf}\n",
    );
    write(
        "axum_headers",
        "cookie_post_no_origin",
        "POST /auth\ncookie: __Host-session={session}\nsec-fetch-site: same-origin\nx-csrf-token: {csrf}\n",
    );
    write(
        "axum_headers",
        "cookie_post_cross_site",
        "DELETE /me\ncookie: __Host-session={session}\norigin: https://evil.example\nx-csrf-token: {csrf}\n",
    );
    write("axum_headers", "bearer_session", "POST /me\nauthorization: Bearer {session}\n");
    write("axum_headers", "bearer_access", "PUT /auth\nauthorization: bearer   {access}  \n");
    write(
        "axum_headers",
        "access_in_cookie",
        "PATCH /me\ncookie: __Host-session={access}\nhost: app.example.com\norigin: https://app.example.com\nx-csrf-token: {csrf}\n",
    );
    write(
        "axum_headers",
        "basic_auth",
        "GET /maybe\nauthorization: Basic YWxpY2U6cHc=\ncookie: __Host-session={session}\n",
    );
    write("axum_headers", "split_cookies", "GET /maybe\ncookie: theme=dark\ncookie: __Host-session={session}\n");
    write("axum_headers", "nothing", "OPTIONS /auth\n");

    let _ = (HS256_KID, refresh);
}

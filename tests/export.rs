//! Export and import as JSON Lines: round trip, digests only, and every rejection case.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{config, login, manager, user};
use sessionkit::export::ImportError;
use sessionkit::token::keys::{KeySet, SigningKey};
use sessionkit::{Error, NewSession, RevocationReason};

async fn populated() -> (common::Manager, Vec<String>, String, sessionkit::TokenPair) {
    let (m, _) = manager(config());
    m.set_keys(KeySet::new(SigningKey::hs256("k", &[3; 32]).unwrap()).unwrap());
    let mut tokens = Vec::new();
    for name in ["alice", "alice", "bob"] {
        tokens.push(login(&m, name).await);
    }
    let c =
        m.create(NewSession::new(user("carol")).data("role", "admin").ip("192.0.2.4".parse().unwrap())).await.unwrap();
    tokens.push(c.token.expose_secret().to_owned());
    let revoked = login(&m, "dave").await;
    m.revoke(&revoked).await.unwrap();
    (m, tokens, revoked, c.tokens.unwrap())
}

async fn export(m: &common::Manager) -> String {
    let mut out = Vec::new();
    m.export(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_restored_store_accepts_the_original_tokens_and_still_refuses_revoked_ones() {
    let (m, tokens, revoked, pair) = populated().await;
    let text = export(&m).await;
    for t in tokens.iter().chain([&revoked]) {
        assert!(!text.contains(t.as_str()), "an export holds digests only");
    }
    assert!(!text.contains(pair.refresh_token.expose_secret()));

    let (fresh, clock) = manager(config());
    clock.set(m.clock().now_utc());
    fresh.set_keys(m.keys().unwrap().as_ref().clone());
    let count = fresh.import(text.as_bytes()).await.unwrap();
    assert_eq!(
        count,
        4 + 2 + 1,
        "sessions, two remembered revocations (the revoked session's token and refresh token), one denylist entry"
    );
    for t in &tokens {
        fresh.validate(t).await.unwrap();
    }
    let carol = fresh.validate(&tokens[3]).await.unwrap();
    assert_eq!(carol.data().get_as::<String>("role").as_deref(), Some("admin"));
    assert_eq!(carol.ip(), Some("192.0.2.4".parse().unwrap()));
    assert!(matches!(fresh.validate(&revoked).await, Err(Error::Revoked { reason: RevocationReason::Logout })));
    fresh.refresh(pair.refresh_token.expose_secret()).await.expect("refresh tokens survive too");
    assert_eq!(fresh.list(&user("alice")).await.unwrap().len(), 2);
}

#[tokio::test]
async fn import_reports_the_first_bad_line_and_adds_nothing() {
    let (m, _, _, _) = populated().await;
    let good = export(&m).await;
    let lines: Vec<&str> = good.lines().collect();
    let (fresh, _) = manager(config());

    let mut bad = lines.clone();
    bad[2] = "{\"type\":\"session\",\"id\":\"nope\"}";
    match fresh.import(bad.join("\n").as_bytes()).await {
        Err(ImportError::Malformed { line: 3, .. }) => {}
        other => panic!("expected a malformed line 3, got {other:?}"),
    }

    let truncated = lines[..lines.len() - 1].join("\n");
    assert!(matches!(fresh.import(truncated.as_bytes()).await, Err(ImportError::Truncated(_))));
    let cut_mid_line = &good[..good.len() / 2];
    assert!(fresh.import(cut_mid_line.as_bytes()).await.is_err());

    let mut miscounted = lines.clone();
    miscounted.remove(1);
    assert!(matches!(fresh.import(miscounted.join("\n").as_bytes()).await, Err(ImportError::Truncated(_))));

    let mut dup = lines.clone();
    dup.insert(2, lines[1]);
    let last = dup.len() - 1;
    let end = format!("{{\"type\":\"end\",\"items\":{}}}", dup.len() - 2);
    dup[last] = &end;
    assert!(matches!(
        fresh.import(dup.join("\n").as_bytes()).await,
        Err(ImportError::Duplicate { line: 3, what: "id" })
    ));

    let future = good.replacen("\"version\":2", "\"version\":3", 1);
    assert!(matches!(fresh.import(future.as_bytes()).await, Err(ImportError::UnsupportedVersion(3))));
    let past = good.replacen("\"version\":2", "\"version\":0", 1);
    assert!(matches!(fresh.import(past.as_bytes()).await, Err(ImportError::UnsupportedVersion(0))));
    assert!(matches!(fresh.import("hello\n".as_bytes()).await, Err(ImportError::NotAnExport)));
    assert!(matches!(fresh.import("".as_bytes()).await, Err(ImportError::NotAnExport)));

    let mut trailing = lines.clone();
    trailing.push(lines[1]);
    assert!(matches!(fresh.import(trailing.join("\n").as_bytes()).await, Err(ImportError::TrailingData(_))));

    assert_eq!(fresh.store().len(), 0, "nothing was half-imported");
    assert_eq!(fresh.store().tracked_revocations(), 0);
}

/// A rotated session's generation and the denylist entry its rotation left travel through an
/// export: the importing store still refuses the access tokens of before the rotation.
#[tokio::test]
async fn a_rotation_survives_export_and_import() {
    let (m, _, _, pair) = populated().await;
    let carol = m.verify_access(pair.access_token.expose_secret()).await.unwrap();
    let created = m.create(NewSession::new(user("erin"))).await.unwrap();
    let old_access = created.tokens.unwrap().access_token.expose_secret().to_owned();
    let rotated = m.rotate(created.token.expose_secret()).await.unwrap();
    let new_access = rotated.tokens.unwrap().access_token.expose_secret().to_owned();
    let text = export(&m).await;
    assert!(text.starts_with("{\"format\":\"sessionkit\",\"version\":2,"), "{text}");
    let id = rotated.session.id();
    assert!(
        text.lines().any(|l| l.starts_with("{\"type\":\"superseded\"")
            && l.contains(&id.to_string())
            && l.contains("\"below_generation\":1")),
        "{text}"
    );
    assert!(text.contains("\"generation\":1"), "{text}");

    let (fresh, clock) = manager(config());
    clock.set(m.clock().now_utc());
    fresh.set_keys(m.keys().unwrap().as_ref().clone());
    fresh.import(text.as_bytes()).await.unwrap();
    assert!(matches!(
        fresh.verify_access(&old_access).await,
        Err(Error::AccessToken(sessionkit::AccessTokenError::Superseded))
    ));
    assert_eq!(fresh.verify_access(&new_access).await.unwrap().generation, 1);
    assert_eq!(fresh.validate(rotated.token.expose_secret()).await.unwrap().generation(), 1);
    assert_eq!(fresh.verify_access(pair.access_token.expose_secret()).await.unwrap(), carol);
}

/// An export written before generations existed (format version 1: no `generation`, no
/// `superseded` lines) still imports, its sessions at generation 0.
#[tokio::test]
async fn a_version_1_export_still_imports() {
    let (m, tokens, revoked, _) = populated().await;
    let text = export(&m).await;
    assert!(!text.contains("\"generation\":1"));
    let v1: Vec<String> = text
        .lines()
        .map(|line| line.replacen("\"version\":2", "\"version\":1", 1).replace(",\"generation\":0", ""))
        .collect();
    assert!(v1.iter().all(|l| !l.contains("generation")), "{v1:#?}");
    let (fresh, clock) = manager(config());
    clock.set(m.clock().now_utc());
    assert_eq!(fresh.import(v1.join("\n").as_bytes()).await.unwrap(), 7);
    for t in &tokens {
        assert_eq!(fresh.validate(t).await.unwrap().generation(), 0);
    }
    assert!(matches!(fresh.validate(&revoked).await, Err(Error::Revoked { reason: RevocationReason::Logout })));
}

#[tokio::test]
async fn importing_into_a_store_that_already_holds_a_session_adds_nothing() {
    let (m, _, _, _) = populated().await;
    let text = export(&m).await;
    assert!(matches!(m.import(text.as_bytes()).await, Err(ImportError::Store(_))));
    assert_eq!(m.store().len(), 4);
}

/// Records the length of every write, and fails them all once `fail_after` writes are done.
struct RecordingWriter {
    bytes: Vec<u8>,
    writes: Vec<usize>,
    fail_after: Option<usize>,
}

impl tokio::io::AsyncWrite for RecordingWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.fail_after.is_some_and(|n| self.writes.len() >= n) {
            return std::task::Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone")));
        }
        self.writes.push(buf.len());
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// `export_to` streams: the same bytes as `export`, written in pieces of about 64 KiB as the
/// store's pages are read (here three pages of sessions), never the whole export at once; a
/// failed write stops it with `ExportError::Io`, before the end line.
#[tokio::test]
async fn an_export_streams_to_an_async_writer_in_bounded_pieces() {
    let (m, _) = manager(config());
    let sessions = 2 * sessionkit::store::SCAN_PAGE + 100;
    for i in 0..sessions {
        m.create(NewSession::new(user(&format!("user{i}"))).user_agent("Mozilla/5.0 (X11; Linux x86_64)"))
            .await
            .unwrap();
    }
    let whole = export(&m).await;
    let mut out = RecordingWriter { bytes: Vec::new(), writes: Vec::new(), fail_after: None };
    assert_eq!(m.export_to(&mut out).await.unwrap(), sessions as u64);
    assert_eq!(String::from_utf8(out.bytes).unwrap(), whole, "the same export, streamed");
    let largest = out.writes.iter().max().copied().unwrap();
    assert!(out.writes.len() > 10, "{} writes for {} bytes", out.writes.len(), whole.len());
    // A piece is 64 KiB plus at most the item that crossed it.
    assert!(largest < 64 * 1024 + 4096, "a write of {largest} bytes");

    let mut failing = RecordingWriter { bytes: Vec::new(), writes: Vec::new(), fail_after: Some(2) };
    let error = m.export_to(&mut failing).await.unwrap_err();
    assert!(matches!(error, sessionkit::export::ExportError::Io(_)), "{error:?}");
    // What was written before the failure is not an export an import accepts.
    let (fresh, _) = manager(config());
    assert!(fresh.import(failing.bytes.as_slice()).await.is_err(), "a cut-off export was imported");
    assert_eq!(fresh.import(whole.as_bytes()).await.unwrap(), sessions);
}

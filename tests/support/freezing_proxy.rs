//! A TCP proxy on a free loopback port in front of a local server, that can stop forwarding
//! without closing anything: a connection that dies silently (a cable pulled, a NAT entry
//! dropped, a peer frozen), which only a timeout can notice. Bytes read while frozen are held
//! and forwarded after [`FreezingProxy::thaw`].

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

pub struct FreezingProxy {
    pub port: u16,
    frozen: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    /// Forwards every connection to `127.0.0.1:target`, on the current tokio runtime.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn({
            let frozen = Arc::clone(&frozen);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = upstream.into_split();
                    tokio::spawn(pipe(cr, uw, Arc::clone(&frozen)));
                    tokio::spawn(pipe(ur, cw, Arc::clone(&frozen)));
                }
            }
        });
        Self { port, frozen, accept }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops forwarding, in both directions, on every connection (new ones too).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, frozen: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The silent-loss scenario, for any store in subscribed mode: `direct` reaches the server
/// itself, `proxied` (with the default one-second subscription check) through `proxy`.
/// Freezes the proxy, revokes a session through `direct` meanwhile, and checks that `proxied`
/// refuses every access token within the check, then, once thawed and resynchronised, accepts
/// the live session's token again and refuses the revoked one.
pub async fn a_silent_loss_is_noticed_and_resynchronised<S: sessionkit::TokenStore>(
    direct: &sessionkit::SessionManager<S>,
    proxied: &sessionkit::SessionManager<S>,
    proxy: &FreezingProxy,
) {
    use sessionkit::{Error, NewSession, StoreError, UserId};
    use std::time::Instant;

    async fn within<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> bool {
        let start = Instant::now();
        while !f().await {
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
    let unavailable =
        |r: Result<sessionkit::AccessClaims, Error>| matches!(r, Err(Error::Store(StoreError::Unavailable(_))));
    let revoked = direct.create(NewSession::new(UserId::new("alice").unwrap())).await.unwrap();
    let kept = direct.create(NewSession::new(UserId::new("bob").unwrap())).await.unwrap();
    let revoked_access = revoked.tokens.unwrap().access_token.expose_secret().to_owned();
    let kept_access = kept.tokens.unwrap().access_token.expose_secret().to_owned();
    let synced = within(Duration::from_secs(5), async || proxied.verify_access(&kept_access).await.is_ok()).await;
    assert!(synced, "the proxied instance never synchronised");

    proxy.freeze();
    let frozen_at = Instant::now();
    // Revoked while the proxied instance's subscription is dead: it never hears of it.
    direct.revoke(revoked.token.expose_secret()).await.unwrap();
    let noticed = within(Duration::from_secs(5), async || unavailable(proxied.verify_access(&kept_access).await)).await;
    assert!(noticed, "the proxied instance kept trusting its denylist copy over a dead subscription");
    let noticed = frozen_at.elapsed();
    // At most one second by default (here the worst case: the loss comes right after a
    // confirmation); the margin is for a loaded machine's scheduling, not the design.
    assert!(noticed < Duration::from_millis(1_500), "noticed after {noticed:?}");
    assert!(unavailable(proxied.verify_access(&revoked_access).await));

    proxy.thaw();
    let back = within(Duration::from_secs(10), async || proxied.verify_access(&kept_access).await.is_ok()).await;
    assert!(back, "the subscription did not come back");
    // Resynchronised: the revocation made while it was dead is in force.
    assert!(matches!(proxied.verify_access(&revoked_access).await, Err(Error::Revoked { .. })));
}

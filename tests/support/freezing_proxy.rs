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

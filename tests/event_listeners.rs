//! Listener isolation: a stuck or panicking listener never holds up a request, and the others
//! keep receiving. (A file of its own: it silences the panic hook, which is process-wide.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{config, manager, user};
use sessionkit::NewSession;
use sessionkit::events::{LISTENER_QUEUE, SessionEvent};

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[tokio::test]
async fn a_stuck_or_panicking_listener_cannot_break_a_request() {
    std::panic::set_hook(Box::new(|_| {}));
    let (m, _) = manager(config());
    m.subscribe(|_: &SessionEvent| panic!("listener bug")).unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    m.subscribe(move |_: &SessionEvent| {
        let _ = release_rx.recv();
    })
    .unwrap();
    let (tx, healthy) = mpsc::channel();
    m.subscribe(move |e: &SessionEvent| {
        let _ = tx.send(e.info().user.as_ref().map(|u| u.as_str().to_owned()));
    })
    .unwrap();

    let flood = LISTENER_QUEUE + 50;
    let started = Instant::now();
    for i in 0..flood {
        m.create(NewSession::new(user(&format!("u{i}")))).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(10), "requests did not wait for the stuck listener");
    assert!(m.dropped_events() >= 49, "the stuck listener's overflow is dropped and counted: {}", m.dropped_events());

    assert!(wait_until(|| m.listener_panics() > 0), "panics are caught");
    let before = m.listener_panics();
    m.create(NewSession::new(user("marker"))).await.unwrap();
    assert!(wait_until(|| m.listener_panics() > before), "the panicking listener keeps receiving after a panic");
    let mut saw_marker = false;
    while let Ok(u) = healthy.recv_timeout(Duration::from_secs(10)) {
        if u.as_deref() == Some("marker") {
            saw_marker = true;
            break;
        }
    }
    assert!(saw_marker, "a healthy listener receives events past the others' trouble");
    drop(release_tx);
    let _ = std::panic::take_hook();
}

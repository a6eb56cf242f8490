//! The nesting depth of the session data bag is bounded when it is written
//! (`SessionConfig::max_data_depth`): data at exactly the limit is stored, one level deeper is
//! refused with `Error::DataTooDeep`, through both writers (`create` and `update_data`).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{config, login, manager, user};
use serde_json::{Value, json};
use sessionkit::{DataPatch, Error, NewSession, SessionConfig};

/// A value that makes the data bag holding it exactly `levels` deep (the bag is level 1, each
/// array inside it one more).
fn making_depth(levels: usize) -> Value {
    let mut v = Value::from("leaf");
    for _ in 1..levels {
        v = Value::Array(vec![v]);
    }
    v
}

/// Checks the limit of `m` (configured `limit`) through both writers.
async fn limit_holds(m: &common::Manager, limit: usize) {
    let at_limit = making_depth(limit);
    let created = m.create(NewSession::new(user("alice")).data("deep", at_limit.clone())).await.unwrap();
    assert_eq!(created.session.data().get("deep"), Some(&at_limit), "exactly {limit} levels is stored");

    let err = m.create(NewSession::new(user("bob")).data("deep", making_depth(limit + 1))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: l } if l == limit), "{err:?}");
    assert!(m.list(&user("bob")).await.unwrap().is_empty(), "no session was created");

    let token = login(m, "carol").await;
    let data = m.update_data(&token, DataPatch::new().set("deep", at_limit.clone())).await.unwrap();
    assert_eq!(data.get("deep"), Some(&at_limit));
    let err = m
        .update_data(&token, DataPatch::new().set("other", 1).set("deeper", making_depth(limit + 1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: l } if l == limit), "{err:?}");
    let s = m.validate(&token).await.unwrap();
    assert_eq!(s.data().get("deep"), Some(&at_limit), "the refused patch changed nothing");
    assert_eq!(s.data().get("other"), None, "not even its shallow part");
}

#[tokio::test]
async fn the_default_depth_of_32_is_accepted_and_33_refused() {
    assert_eq!(SessionConfig::default().max_data_depth(), 32);
    let (m, _) = manager(config());
    limit_holds(&m, 32).await;
}

#[tokio::test]
async fn a_custom_depth_is_accepted_and_one_level_more_refused() {
    for limit in [1, 3, SessionConfig::MAX_DATA_DEPTH] {
        let (m, _) = manager(config().max_data_depth(limit));
        limit_holds(&m, limit).await;
    }
    let (m, _) = manager(config().max_data_depth(3));
    let token = login(&m, "dave").await;
    m.update_data(&token, DataPatch::new().set("prefs", json!({"tabs": ["a"], "theme": "dark"}))).await.unwrap();
    let err = m.update_data(&token, DataPatch::new().set("prefs", json!({"tabs": [["a"]]}))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: 3 }), "{err:?}");
    let err = m.update_data(&token, DataPatch::new().set("prefs", json!([{"a": {}}]))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: 3 }), "empty containers count too: {err:?}");
}

#[tokio::test]
async fn too_deep_is_a_413_rejection_not_a_store_failure() {
    let (m, _) = manager(config().max_data_depth(2));
    let token = login(&m, "alice").await;
    let err = m.update_data(&token, DataPatch::new().set("a", json!([[1]]))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: 2 }), "{err:?}");
    assert!(err.is_rejection() && !err.is_unauthenticated(), "{err:?}");
    assert_eq!((err.http_status(), err.code()), (413, "session_data_too_deep"));
    assert_eq!(err.to_string(), "session data nests deeper than the limit of 2 levels");
    // A dead credential is still answered as one, whatever the patch holds.
    let err = m.update_data("not-a-token", DataPatch::new().set("a", json!([[1]]))).await.unwrap_err();
    assert!(matches!(err, Error::MalformedToken), "{err:?}");
}

#[tokio::test]
async fn a_value_deeper_than_any_reader_parses_is_refused_before_it_is_serialised() {
    // Far deeper than serde_json reads back (127 levels): accepted, it would have made every
    // snapshot and export unloadable.
    let (m, _) = manager(config());
    let token = login(&m, "alice").await;
    let err = m.update_data(&token, DataPatch::new().set("deep", making_depth(1_000))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: 32 }), "{err:?}");
    let err = m.create(NewSession::new(user("bob")).data("deep", making_depth(1_000))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooDeep { limit: 32 }), "{err:?}");
    let mut export = Vec::new();
    m.export(&mut export).await.unwrap();
    let (other, _) = manager(config());
    assert_eq!(other.import(export.as_slice()).await.unwrap(), 1, "what was stored still reads back");
}

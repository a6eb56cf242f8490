//! The session data bag and metadata caps.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{config, login, manager, user};
use sessionkit::{DataPatch, Error, NewSession};

#[tokio::test]
async fn data_updates_are_applied_and_visible_on_validation() {
    let (m, _) = manager(config());
    let created = m.create(NewSession::new(user("alice")).data("locale", "fr")).await.unwrap();
    let token = created.token.expose_secret();
    assert_eq!(created.session.data().get_as::<String>("locale").as_deref(), Some("fr"));
    let data = m.update_data(token, DataPatch::new().set("role", "admin").remove("locale")).await.unwrap();
    assert_eq!(data.len(), 1);
    let s = m.validate(token).await.unwrap();
    assert_eq!(s.data().get_as::<String>("role").as_deref(), Some("admin"));
    assert_eq!(s.data().get("locale"), None);
}

#[tokio::test]
async fn oversized_data_is_refused_and_changes_nothing() {
    let (m, _) = manager(config().max_data_bytes(64));
    let token = login(&m, "alice").await;
    m.update_data(&token, DataPatch::new().set("a", 1)).await.unwrap();
    let err = m.update_data(&token, DataPatch::new().set("blob", "x".repeat(100))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooLarge { limit: 64, size } if size > 100), "{err:?}");
    assert_eq!(m.validate(&token).await.unwrap().data().get_as::<i64>("a"), Some(1));
    let err = m.create(NewSession::new(user("bob")).data("blob", "y".repeat(100))).await.unwrap_err();
    assert!(matches!(err, Error::DataTooLarge { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_are_all_applied() {
    let (m, _) = manager(config());
    let token = login(&m, "alice").await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (m, token) = (m.clone(), token.clone());
        tasks.push(tokio::spawn(async move { m.update_data(&token, DataPatch::new().set(format!("k{i}"), i)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(m.validate(&token).await.unwrap().data().len(), 32, "no patch is lost");
}

#[tokio::test]
async fn user_agents_are_truncated_to_the_configured_length() {
    let (m, _) = manager(config().max_user_agent_len(10));
    let created = m.create(NewSession::new(user("alice")).user_agent("é".repeat(100))).await.unwrap();
    assert_eq!(created.session.user_agent(), Some("ééééé"));
    let listed = m.list(&user("alice")).await.unwrap();
    assert_eq!(listed[0].user_agent(), Some("ééééé"));
}

#[tokio::test]
async fn oversized_user_ids_are_refused() {
    assert!(sessionkit::UserId::new("u".repeat(10_000)).is_err());
}

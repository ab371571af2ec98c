//! Tests for the client registry: listing, the server slot, removal on drop.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{unquote, ClientInfo, ClientRegistry};
use crate::core::pg::cancel::CancelTarget;

fn info(id: i32) -> ClientInfo {
    ClientInfo {
        id,
        user: "app".into(),
        database: "app".into(),
        db_key: "app".into(),
        home_node: "127.0.0.1:5432".into(),
        addr: None,
        local: None,
        connected: SystemTime::now(),
        application_name: String::new(),
        tls: String::new(),
        server: Arc::new(Mutex::new(None)),
    }
}

#[test]
fn clients_are_listed_in_id_order_until_their_guard_drops() {
    let registry = Arc::new(ClientRegistry::default());
    let b = registry.register(info(7));
    let a = registry.register(info(3));
    let ids: Vec<i32> = registry.all().iter().map(|c| c.id).collect();
    assert_eq!(ids, [3, 7]);
    drop(b);
    let ids: Vec<i32> = registry.all().iter().map(|c| c.id).collect();
    assert_eq!(ids, [3]);
    drop(a);
    assert!(registry.is_empty());
}

#[test]
fn the_attached_server_is_read_from_the_cancel_slot() {
    let registry = Arc::new(ClientRegistry::default());
    let client = info(1);
    let slot = client.server.clone();
    let _guard = registry.register(client);
    assert!(registry.all()[0].server().is_none());
    *slot.lock().unwrap() = Some(CancelTarget::new(
        "127.0.0.1:5432".into(),
        4242,
        vec![1, 2, 3, 4].into(),
    ));
    assert_eq!(registry.all()[0].server().map(|s| s.pid), Some(4242));
}

#[test]
fn startup_literals_are_unquoted() {
    assert_eq!(unquote("'psql'"), "psql");
    assert_eq!(unquote("'it''s'"), "it's");
    assert_eq!(unquote("bare"), "bare");
}

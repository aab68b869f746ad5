//! The store contract: every store operation behaves the same on SQLite and Postgres.

mod common;

use common::{Backend, TestDb, test_config, test_ops};

async fn tenants_are_created_and_listed(backend: Backend) {
    let db = TestDb::new(backend);
    let store = db.store().await;
    let ops = test_ops(&store, &test_config(&db.url));
    let acme = ops.add_tenant("acme").await.expect("add acme");
    let listed = store.list_tenants().await.expect("list");
    assert_eq!(listed, vec![acme]);
}

both_backends!(tenants_are_created_and_listed);

//! Proves the throwaway-Postgres harness in `common::postgres` before other
//! tests rely on it: it starts, sqlx can talk to it, databases are isolated,
//! it survives a stop/start with its data and port, and clusters coexist.

mod common;

use common::postgres::TestPostgres;
use sqlx::{Connection, PgConnection, PgPool};

async fn connect(url: &str) -> PgPool {
    PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

#[tokio::test]
async fn starts_and_gives_each_test_its_own_database() {
    let pg = TestPostgres::start();

    let pool = connect(&pg.url()).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("SELECT 1 on the default database");
    assert_eq!(one, 1);

    let first_url = pg.create_database();
    let second_url = pg.create_database();
    assert_ne!(first_url, second_url);

    let first = connect(&first_url).await;
    sqlx::query("CREATE TABLE only_here (id INT)")
        .execute(&first)
        .await
        .expect("creating a table in the first database");

    let second = connect(&second_url).await;
    let visible: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'")
            .fetch_one(&second)
            .await
            .expect("looking for the table from the second database");
    assert_eq!(visible, 0, "a table leaked into another database");
}

#[tokio::test]
async fn stop_and_start_again_keep_data_and_port() {
    let pg = TestPostgres::start();
    let url = pg.create_database();
    let port = pg.port();

    let pool = connect(&url).await;
    sqlx::query("CREATE TABLE kept (v TEXT)")
        .execute(&pool)
        .await
        .expect("creating the table");
    sqlx::query("INSERT INTO kept VALUES ('survives')")
        .execute(&pool)
        .await
        .expect("inserting the row");
    pool.close().await;

    pg.stop();
    // One attempt (a pool would keep retrying until its acquire timeout).
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "connected to a stopped server"
    );

    pg.start_again();
    assert_eq!(pg.port(), port);
    let pool = connect(&url).await;
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&pool)
        .await
        .expect("reading the row back after the restart");
    assert_eq!(v, "survives");
}

#[tokio::test]
async fn two_clusters_run_at_once() {
    let a = TestPostgres::start();
    let b = TestPostgres::start();
    assert_ne!(a.port(), b.port());

    let pool_a = connect(&a.url()).await;
    let pool_b = connect(&b.url()).await;
    sqlx::query("CREATE TABLE only_in_a (id INT)")
        .execute(&pool_a)
        .await
        .expect("creating a table in cluster a");
    let in_b: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")
            .fetch_one(&pool_b)
            .await
            .expect("looking for the table from cluster b");
    assert_eq!(in_b, 0, "the two clusters share data");
}

//! A scratch fleet on the real Redis server (`OSHAL_TEST_REDIS`, default
//! the local one) for tests here and in other crates (feature
//! `test-support`): a unique key prefix, deleted afterwards.

#![allow(clippy::unwrap_used)] // test support: a failure is the test's

use redis::Client;
use redis::aio::ConnectionManager;

use super::{Keys, RedisLane, manager};
use crate::ticket::BotId;

pub fn redis_url() -> String {
    std::env::var("OSHAL_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// A unique prefix on the test server; its keys are removed on drop.
pub struct TestRedis {
    pub client: Client,
    pub conn: ConnectionManager,
    pub keys: Keys,
}

impl TestRedis {
    pub async fn new() -> Self {
        let client = Client::open(redis_url()).unwrap();
        let conn = manager(&client).await.unwrap();
        let keys = Keys::new(&format!("t-{}", uuid::Uuid::now_v7().simple()));
        Self { client, conn, keys }
    }

    pub async fn lane(&self, bot: &str) -> RedisLane {
        RedisLane::open(
            self.client.clone(),
            self.conn.clone(),
            &self.keys,
            BotId::parse(bot).unwrap(),
            64,
        )
        .await
        .unwrap()
    }

    /// Every entry on the dead-letter stream, oldest first.
    pub async fn dead_letters(&self) -> redis::streams::StreamRangeReply {
        let mut conn = self.conn.clone();
        redis::cmd("XRANGE")
            .arg(self.keys.dead())
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn cleanup(self) {
        self.flush().await;
    }

    /// Deletes every key under the prefix: what a Redis restarting empty
    /// does to this fleet.
    pub async fn flush(&self) {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:*", self.keys.prefix());
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

//! Against the real Redis server (`OSHAL_TEST_REDIS`, default the local
//! one), each test under its own key prefix, deleted afterwards.

use super::*;
use crate::contract::{self, entry};
use std::sync::Arc;

use super::testing::TestRedis;

#[tokio::test]
async fn entries_are_delivered_once_in_order_and_acked() {
    let r = TestRedis::new().await;
    let l = r.lane("bot-1").await;
    let sent: Vec<LaneEntry> = (0..5).map(|_| entry()).collect();
    assert!(l.publish(sent.clone()).await.unwrap().is_empty());
    let got = l.read("c1", 3, Duration::ZERO).await.unwrap();
    let more = l.read("c1", 10, Duration::from_millis(10)).await.unwrap();
    let all: Vec<&LaneEntry> = got.iter().chain(&more).map(|d| &d.entry).collect();
    assert_eq!(all, sent.iter().collect::<Vec<_>>(), "each once, in order");
    assert!(got.iter().all(|d| d.deliveries == 1));
    let s = l.stats().await.unwrap();
    assert_eq!((s.depth, s.pending, s.published_total), (0, 5, 5));
    let ids: Vec<EntryId> = got.iter().chain(&more).map(|d| d.id).collect();
    assert_eq!(l.ack(&ids).await.unwrap(), 5);
    assert_eq!(l.ack(&ids[..1]).await.unwrap(), 0, "an ack counts once");
    let s = l.stats().await.unwrap();
    assert_eq!((s.pending, s.acked_total), (0, 5));
    r.cleanup().await;
}

#[tokio::test]
async fn undelivered_entries_are_withdrawn_in_one_step() {
    let r = TestRedis::new().await;
    let l = r.lane("bot-1").await;
    let s = contract::undelivered_entries_are_withdrawn(&l).await;
    assert_eq!((s.depth, s.pending), (0, 0));
    // What it took is answered again (an answer lost is not work lost).
    assert_eq!(l.withdraw().await.unwrap().len(), 3);
    // A fresh lane, and one whose stream is gone, withdraw nothing.
    let fresh = r.lane("bot-2").await;
    assert!(fresh.withdraw().await.unwrap().is_empty());
    let mut conn = r.conn.clone();
    redis::cmd("DEL")
        .arg(fresh.key())
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(fresh.withdraw().await.unwrap().is_empty());
    r.cleanup().await;
}

#[tokio::test]
async fn a_blocked_read_wakes_on_publish() {
    let r = TestRedis::new().await;
    let l = Arc::new(r.lane("bot-1").await);
    let reader = {
        let l = l.clone();
        tokio::spawn(async move { l.read("c", 1, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = entry();
    l.publish(vec![e.clone()]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got[0].entry, e);
    r.cleanup().await;
}

#[tokio::test]
async fn a_dead_consumers_entries_are_claimed_with_their_delivery_counts() {
    let r = TestRedis::new().await;
    let l = r.lane("bot-1").await;
    contract::dead_consumers_entries_are_claimed(&l).await;
    let again = l.claim("third", Duration::ZERO, 1).await.unwrap();
    assert_eq!((again.len(), again[0].deliveries), (1, 3));

    l.dead_letter(&again[0], "too many deliveries")
        .await
        .unwrap();
    let dead = r.dead_letters().await;
    assert_eq!(dead.ids.len(), 1);
    assert_eq!(
        field(&dead.ids[0].map, "reason"),
        Some(&b"too many deliveries"[..])
    );
    assert_eq!(
        field(&dead.ids[0].map, "ticket"),
        Some(again[0].entry.ticket.to_string().as_bytes())
    );
    r.cleanup().await;
}

#[tokio::test]
async fn a_lost_group_is_recreated_instead_of_failing_reads() {
    let r = TestRedis::new().await;
    let l = r.lane("bot-1").await;
    let mut conn = r.conn.clone();
    // What a Redis restart without persistence looks like to a lane.
    let _: () = redis::cmd("DEL")
        .arg(l.key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(l.read("c", 1, Duration::ZERO).await.unwrap().is_empty());
    l.publish(vec![entry()]).await.unwrap();
    assert_eq!(l.read("c", 1, Duration::ZERO).await.unwrap().len(), 1);
    assert!(l.claim("c2", Duration::ZERO, 5).await.unwrap().len() == 1);

    // A node's lane reads through a pipeline (the epoch, then the entries):
    // the same loss is recognised there too.
    let watched = r
        .lane("bot-2")
        .await
        .watching(&r.keys, EpochWatch::default());
    let _: () = redis::cmd("DEL")
        .arg(watched.key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        watched
            .read("c", 1, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    watched.publish(vec![entry()]).await.unwrap();
    assert_eq!(watched.read("c", 1, Duration::ZERO).await.unwrap().len(), 1);
    r.cleanup().await;
}

/// Entries read from a server whose data was then lost are superseded once
/// the node sees the new epoch; entries read with no epoch set never are
/// (they may have been published to the fresh server before the controller
/// set its epoch), and a claim starts afresh.
#[tokio::test]
async fn entries_read_before_redis_lost_its_data_are_superseded() {
    let r = TestRedis::new().await;
    let watch = EpochWatch::default();
    let l = r.lane("bot-1").await.watching(&r.keys, watch.clone());
    let mut conn = r.conn.clone();
    let set_epoch = async |conn: &mut ConnectionManager, e: &str| {
        let _: () = redis::cmd("SET")
            .arg(r.keys.epoch())
            .arg(e)
            .query_async(conn)
            .await
            .unwrap();
    };

    l.publish(vec![entry()]).await.unwrap();
    assert_eq!(l.read("c", 1, Duration::ZERO).await.unwrap().len(), 1);
    assert!(!l.superseded(), "no epoch yet: never superseded");
    watch.observe(Some("e0".into()));
    assert!(!l.superseded(), "read with no epoch: kept");

    set_epoch(&mut conn, "e1").await;
    l.publish(vec![entry()]).await.unwrap();
    assert_eq!(l.read("c", 1, Duration::ZERO).await.unwrap().len(), 1);
    assert_eq!(
        watch.latest().as_deref(),
        Some("e1"),
        "reads teach the node"
    );
    assert!(!l.superseded());
    watch.observe(None);
    assert!(!l.superseded(), "an absent epoch changes nothing");
    watch.observe(Some("e2".into()));
    assert!(l.superseded(), "read under e1, the fleet is now at e2");
    watch.observe(Some("e1".into()));
    assert_eq!(
        watch.latest().as_deref(),
        Some("e2"),
        "a late answer from the lost server does not take the node back"
    );

    set_epoch(&mut conn, "e2").await;
    l.publish(vec![entry()]).await.unwrap();
    assert_eq!(l.read("c", 1, Duration::ZERO).await.unwrap().len(), 1);
    assert!(!l.superseded(), "read under the current epoch");
    watch.observe(Some("e3".into()));
    l.claim("c2", Duration::ZERO, 5).await.unwrap();
    assert!(
        !l.superseded(),
        "claimed entries are from the server as it is"
    );

    let plain = r.lane("bot-2").await;
    plain.publish(vec![entry()]).await.unwrap();
    plain.read("c", 1, Duration::ZERO).await.unwrap();
    assert!(!plain.superseded(), "a controller's lane never is");
    r.cleanup().await;
}

/// A node restarted under its own name reads the lane its last run left:
/// entries the controller addressed to that run were requeued when it was
/// lost, so they are dropped (acknowledged), read or claimed; entries for
/// this run, and unstamped ones, are delivered.
#[tokio::test]
async fn entries_addressed_to_an_earlier_run_of_the_node_are_dropped() {
    let r = TestRedis::new().await;
    let to_old = r.lane("bot-1").await.for_run("run-1");
    let old = r.lane("bot-1").await.for_run("run-1");
    let unstamped = r.lane("bot-1").await;
    let (held, waiting, plain) = (entry(), entry(), entry());
    to_old.publish(vec![held.clone()]).await.unwrap();
    assert_eq!(
        old.read("run-1#1", 1, Duration::ZERO).await.unwrap().len(),
        1
    );
    to_old.publish(vec![waiting]).await.unwrap();
    unstamped.publish(vec![plain.clone()]).await.unwrap();

    // The old run dies holding `held`; the new one starts under the same name.
    let new = r.lane("bot-1").await.for_run("run-2");
    assert!(
        new.claim("run-2#1", Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty(),
        "what the old run held is not claimed"
    );
    let read = new.read("run-2#1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(
        read.iter().map(|d| &d.entry).collect::<Vec<_>>(),
        vec![&plain],
        "only the unstamped entry is delivered"
    );
    let to_new = r.lane("bot-1").await.for_run("run-2");
    let fresh = entry();
    to_new.publish(vec![fresh.clone()]).await.unwrap();
    let read = new.read("run-2#1", 10, Duration::ZERO).await.unwrap();
    assert_eq!(
        read.iter().map(|d| &d.entry).collect::<Vec<_>>(),
        vec![&fresh]
    );
    let s = new.stats().await.unwrap();
    assert_eq!(
        (s.depth, s.pending),
        (0, 2),
        "dropped entries are acknowledged"
    );
    assert_eq!(
        unstamped
            .claim("x", Duration::ZERO, 10)
            .await
            .unwrap()
            .len(),
        2,
        "a lane of no run fences nothing"
    );
    r.cleanup().await;
}

#[test]
fn stream_ids_parse_and_refuse_garbage() {
    assert_eq!(
        parse_entry_id("1700000000000-7").unwrap(),
        EntryId {
            ms: 1_700_000_000_000,
            seq: 7
        }
    );
    for bad in ["", "12", "a-1", "1-b", "1-2-3"] {
        assert!(parse_entry_id(bad).is_err(), "{bad}");
    }
}

/// Lag is the age of the oldest entry not yet delivered, read from its
/// stream id; a delivered one no longer counts.
#[tokio::test]
async fn lag_is_the_age_of_the_oldest_waiting_entry() {
    let r = TestRedis::new().await;
    let l = r.lane("bot-1").await;
    assert_eq!(l.stats().await.unwrap().lag_ms, 0);
    l.publish(vec![entry(), entry()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let s = l.stats().await.unwrap();
    assert_eq!(s.depth, 2);
    assert!(s.lag_ms >= 30, "{s:?}");
    l.read("c1", 1, Duration::ZERO).await.unwrap();
    assert!(l.stats().await.unwrap().lag_ms >= 30, "one still waits");
    l.read("c1", 1, Duration::ZERO).await.unwrap();
    let s = l.stats().await.unwrap();
    assert_eq!((s.depth, s.pending, s.lag_ms), (0, 2, 0), "{s:?}");
    r.cleanup().await;
}

//! Faults: `kill -9` mid-load, restart on the same data, nothing lost and
//! nothing charged twice.

use futures::StreamExt;
use oshal_core::store::Store;
use oshal_core::store::sqlite::SqliteStore;
use oshal_e2e::Server;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_accepted_ticket_and_charges_no_attempt_twice() {
    let dir = tempfile::tempdir().unwrap();
    // A kill can land in a moment when every durable ticket has finished
    // (a ticket is routed in the commit that admits it and its result lands
    // about a millisecond later), so the load and the kill are repeated on
    // the same data until one catches tickets in flight.
    let mut accepted = Vec::new();
    let mut unfinished = 0;
    for round in 0..5 {
        accepted.extend(load_then_kill9(dir.path(), round).await);
        let store = SqliteStore::open(dir.path()).await.unwrap();
        unfinished = store.unfinished().await.unwrap().len();
        store.close().await;
        if unfinished > 0 {
            break;
        }
    }
    assert!(
        unfinished > 0,
        "none of five kills caught tickets in flight"
    );

    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();
    let mut per_ticket_rows: HashMap<String, usize> = HashMap::new();
    for id in &accepted {
        let v = server.wait_terminal(id).await.unwrap();
        assert_eq!(v["state"], "succeeded", "{v:#}");
        let attempts: Vec<u64> = v["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect();
        let mut unique = attempts.clone();
        unique.dedup();
        assert_eq!(unique, attempts, "an attempt charged twice: {v:#}");
        // The built-in model never fails, so only the attempt that finished
        // is charged, whatever attempts the crash cost.
        assert_eq!(attempts.len(), 1, "{v:#}");
        per_ticket_rows.insert(id.clone(), attempts.len());
    }
    // Tickets stored but never acknowledged (the reply died with the
    // process) are finished too; the ledger matches all finished attempts.
    let all = server.all_tickets().await.unwrap();
    assert!(
        all.iter().all(|t| t["state"] == "succeeded"),
        "every stored ticket finishes"
    );
    let summary = server.json("/api/v1/cost/summary").await.unwrap();
    assert_eq!(
        summary["total"]["attempts"].as_u64().unwrap() as usize,
        all.len()
    );
    let recovered = all
        .iter()
        .filter(|t| t["attempts"].as_u64().unwrap() > 1)
        .count();
    eprintln!(
        "accepted={} stored={} unfinished_at_kill={unfinished} rerun_after_restart={recovered}",
        accepted.len(),
        all.len()
    );
}

/// Starts a server on `dir`, submits from 32 connections and kills it
/// (`kill -9`) once 1,500 are accepted, while submissions, routing and
/// results are all in full flow. Answers the tickets it accepted.
async fn load_then_kill9(dir: &std::path::Path, round: usize) -> Vec<String> {
    let mut server = Server::start(dir, &["--bots", "2"]).unwrap();
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let killer = {
        let count = count.clone();
        let pid = server.pid();
        tokio::spawn(async move {
            while count.load(Ordering::SeqCst) < 1500 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        })
    };
    futures::stream::iter(0..20_000)
        .for_each_concurrent(32, |i| {
            let (server, accepted, count) = (&server, accepted.clone(), count.clone());
            async move {
                // After the kill, submissions fail: those were never accepted.
                if let Ok(id) = server.submit(&format!("load {round}-{i}")).await {
                    accepted.lock().unwrap().push(id);
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .await;
    killer.await.unwrap();
    server.kill9();
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 1500, "{}", accepted.len());
    accepted
}

//! The desktop attached to a real remote controller: a second embedded
//! controller served over the real HTTP API on loopback, as `oshal serve`
//! serves it. The window's target switches to it and back; what it reads
//! and submits there is the remote's, events stream from it, and a wrong
//! token or a dead address is refused with the field and the cause.

#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use oshal_core::api::ErrorKind;
use oshal_core::api::http::{ApiToken, serve};
use oshal_core::ticket::NewTicket;
use oshal_desktop::Desktop;
use oshal_desktop::desktop::Target;
use oshal_desktop::fleets::Fleet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct RemoteServer {
    url: String,
    token: ApiToken,
    stop: CancellationToken,
    desktop: Desktop,
    _dir: tempfile::TempDir,
}

/// Another controller (its own SQLite and bots) behind the HTTP API.
async fn remote() -> RemoteServer {
    let dir = tempfile::tempdir().unwrap();
    let desktop = Desktop::start_local(dir.path()).await.unwrap();
    let Target::Local(controller) = desktop.target() else {
        unreachable!()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let token = ApiToken::generate();
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        controller,
        None,
        oshal_core::api::http::Domains {
            trading: Some(desktop.trading().clone()),
            workflows: None,
            ops: None,
            mesh: None,
        },
        listener,
        None,
        oshal_core::tls::Edge::default(),
        token.clone(),
        None,
        stop.clone(),
    ));
    RemoteServer {
        url,
        token,
        stop,
        desktop,
        _dir: dir,
    }
}

/// A remote controller, and a window (its own embedded controller) that has
/// not attached to it yet.
async fn window_and_fleet() -> (RemoteServer, Desktop, Fleet, tempfile::TempDir) {
    let fleet_side = remote().await;
    let dir = tempfile::tempdir().unwrap();
    let desktop = Desktop::start_local(dir.path()).await.unwrap();
    let fleet = Fleet {
        name: "prod".into(),
        url: fleet_side.url.clone(),
        pin_sha256: None,
    };
    (fleet_side, desktop, fleet, dir)
}

fn chat(prompt: &str) -> NewTicket {
    serde_json::from_value(serde_json::json!({"kind": "chat", "payload": {"prompt": prompt}}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_attaches_to_a_fleet_reads_its_data_and_switches_back() {
    let (fleet_side, desktop, fleet, _dir) = window_and_fleet().await;

    let c = desktop
        .attach(fleet.clone(), fleet_side.token.expose())
        .await
        .unwrap();
    assert_eq!(c.label, "prod");
    assert!(!c.embedded);
    assert_eq!(c.url.as_deref(), Some(fleet_side.url.as_str()));

    let Target::Fleet(remote) = desktop.target() else {
        panic!("not attached")
    };
    let mut events = Box::pin(remote.client.events().await.unwrap());
    let submitted = remote.client.submit(&chat("hello fleet")).await.unwrap();
    // The ticket lives on the fleet, not in the embedded controller.
    let seen = remote
        .client
        .ticket(&submitted.id.to_string())
        .await
        .unwrap();
    assert_eq!(seen.id, submitted.id);
    let Target::Local(local) = fleet_side.desktop.target() else {
        unreachable!()
    };
    local.ticket(submitted.id).await.unwrap();
    // And its events reach the window's feed.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.next().await {
            if serde_json::to_string(&e)
                .unwrap()
                .contains(&submitted.id.to_string())
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(got, "the fleet's events reached the window");
    let bots = remote.client.bots().await.unwrap();
    assert_eq!(bots.len(), oshal_core::mode::EMBEDDED_BOTS);

    // One call back to the embedded controller, where that ticket is unknown.
    let generation = desktop
        .generation()
        .load(std::sync::atomic::Ordering::SeqCst);
    let c = desktop.detach();
    assert!(c.embedded);
    assert!(
        desktop
            .generation()
            .load(std::sync::atomic::Ordering::SeqCst)
            > generation
    );
    let Target::Local(mine) = desktop.target() else {
        panic!("not local")
    };
    let err = mine.ticket(submitted.id).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");

    desktop.shutdown().await;
    fleet_side.stop.cancel();
    fleet_side.desktop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_or_a_dead_address_is_refused_and_the_window_stays_put() {
    let (fleet_side, desktop, fleet, _dir) = window_and_fleet().await;

    let err = desktop
        .attach(fleet, "not-the-token-0123456789")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert_eq!(err.field.as_deref(), Some("token"));
    assert!(!err.message.contains("not-the-token"), "{err:?}");
    assert!(desktop.connection().embedded);

    // Nothing listens there any more.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = desktop
        .attach(
            Fleet {
                name: "gone".into(),
                url: dead.clone(),
                pin_sha256: None,
            },
            fleet_side.token.expose(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unreachable);
    assert!(err.message.contains(&dead), "{err:?}");
    assert!(desktop.connection().embedded);

    desktop.shutdown().await;
    fleet_side.stop.cancel();
    fleet_side.desktop.shutdown().await;
}

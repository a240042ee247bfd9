use std::sync::Arc;
use std::time::Duration;

use oshal_trading::desk::{Desk, DeskConfig, Disposition};
use oshal_trading::market;

use super::*;
use crate::clock::SystemClock;
use crate::controller::{ControllerConfig, LocalPool};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, TicketQuery};

async fn controller(dir: &std::path::Path) -> (Arc<SqliteStore>, Controller) {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let controller = Controller::start(
        ControllerConfig::default(),
        store.clone(),
        LocalPool::builtin(2),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    (store, controller)
}

fn spec(bars: u32) -> NewSession {
    NewSession {
        strategy: serde_json::json!({"name": "ema_cross", "fast": 5, "slow": 20}),
        instrument: "ETHUSD.SIM".into(),
        seed: 3,
        bar_seconds: 60,
        bars,
        speed: 0,
        tenant: None,
        venue: None,
        entries: EntryStyle::Market,
    }
}

async fn finished(trading: &Trading, id: &str) -> SessionView {
    for _ in 0..1_200 {
        let v = trading.view(id, None).unwrap();
        assert_ne!(v.status, SessionStatus::Failed, "{:?}", v.error);
        if v.status == SessionStatus::Finished {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("session {id} did not finish");
}

/// The backtest of the same session, in process.
fn backtest(spec: &NewSession) -> Desk {
    let model = market::listed(&spec.instrument).unwrap();
    let steps = spec.bars as usize * spec.bar_seconds as usize;
    let quotes = market::seconds(spec.seed, model.clone(), steps);
    let strategy = serde_json::from_value(spec.strategy.clone()).unwrap();
    let bar_ms = i64::from(spec.bar_seconds) * 1_000;
    let cfg = DeskConfig {
        entries: match spec.entries {
            EntryStyle::Market => oshal_trading::desk::Entries::Market,
            EntryStyle::Limit => oshal_trading::desk::Entries::Limit,
        },
        ..DeskConfig::paper(model.instrument, strategy, bar_ms, &quotes[0], spec.seed)
    };
    let mut desk = Desk::new(cfg).unwrap();
    desk.run(&quotes).unwrap();
    desk
}

async fn signal_tickets(store: &dyn Store) -> usize {
    store
        .tickets(&TicketQuery {
            kind: Some("signal".into()),
            limit: 1_000,
            ..TicketQuery::default()
        })
        .await
        .unwrap()
        .tickets
        .len()
}

/// Signals made by bots as tickets give the backtest's fills; every signal
/// names its ticket and cost; after a restart the desk is rebuilt from the
/// journal and the tickets, with the kill in place and no ticket twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_on_the_bots_signals_fills_as_its_backtest_and_is_rebuilt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, c) = controller(dir.path()).await;
    let trading = Trading::start(c.clone()).await.unwrap();
    let spec = spec(300);
    let mut padded = spec.clone();
    padded.strategy["note"] = serde_json::json!("x".repeat(10_000));
    let opened = trading.open(padded, "test").await.unwrap();
    assert_eq!(opened.tenant.as_str(), "default");
    assert_eq!(
        opened.spec.strategy, spec.strategy,
        "what the desk does not read is dropped"
    );
    let done = finished(&trading, &opened.id).await;
    let inside = backtest(&spec);
    assert!(!inside.fills().is_empty(), "the backtest trades");
    assert_eq!(done.fill_hash, inside.fill_hash());
    assert_eq!(done.flow.signals as usize, inside.signals().len());
    assert_eq!(done.flow.missed, 0);
    assert_eq!(done.position.ledger_imbalance, 0);
    let blotter = trading.blotter(&opened.id, None).unwrap();
    assert!(
        blotter
            .signals
            .iter()
            .all(|s| s.cost_nusd > 0 && s.bot.is_some())
    );
    let recap = trading.recap(&opened.id, None).unwrap();
    let cost: i64 = blotter.signals.iter().map(|s| s.cost_nusd).sum();
    assert!((recap.total.signal_cost_usd - cost as f64 / 1e9).abs() < 1e-9);
    assert_eq!(
        recap.by_bot.iter().map(|b| b.signals).sum::<u32>(),
        done.flow.signals
    );
    let tickets = signal_tickets(store.as_ref()).await;
    assert_eq!(tickets, done.flow.signals as usize);

    // A kill on a finished session is refused; one on a session that runs
    // is journalled and survives the restart.
    let kill = |reason: &str| KillRequest {
        level: KillLevel::HaltEntries,
        reason: reason.into(),
    };
    assert!(matches!(
        trading.kill(&opened.id, None, kill("late"), "test").await,
        Err(TradingError::Ended(_))
    ));
    let paced = trading
        .open(
            NewSession {
                speed: 60,
                seed: 4,
                ..spec.clone()
            },
            "test",
        )
        .await
        .unwrap();
    assert!(matches!(
        trading.kill(&paced.id, None, kill(" "), "test").await,
        Err(TradingError::Invalid {
            field: "reason",
            ..
        })
    ));
    let k = trading
        .kill(&paced.id, None, kill("risk review"), "ops")
        .await
        .unwrap();
    assert_eq!((k.id.as_str(), k.by.as_str()), ("K-1", "ops"));
    let before = trading.view(&paced.id, None).unwrap();
    assert_eq!(before.trading_state, "REDUCING");
    // The trading state: a bot's, then the desk's back to ACTIVE after the
    // kill; each recorded, a bad one refused by its field.
    let state = |state, bot: Option<&str>, reason: &str| StateRequest {
        state,
        bot: bot.map(str::to_owned),
        reason: reason.into(),
    };
    let halted = trading
        .set_state(
            &paced.id,
            None,
            state(TradingStateName::Halted, Some("bot-02"), "bad fills"),
            "ops",
        )
        .await
        .unwrap();
    assert_eq!(
        (halted.id.as_str(), halted.bot.as_deref()),
        ("T-1", Some("bot-02"))
    );
    for (request, field) in [
        (
            state(TradingStateName::Active, Some("no such/bot"), "x"),
            "bot",
        ),
        (state(TradingStateName::Active, None, ""), "reason"),
    ] {
        assert!(matches!(
            trading.set_state(&paced.id, None, request, "ops").await,
            Err(TradingError::Invalid { field: f, .. }) if f == field
        ));
    }
    let resumed = trading
        .set_state(
            &paced.id,
            None,
            state(TradingStateName::Active, None, "review done"),
            "ops",
        )
        .await
        .unwrap();
    assert_eq!(resumed.id, "T-2");
    let before = trading.view(&paced.id, None).unwrap();
    assert_eq!(before.trading_state, "ACTIVE");
    assert_eq!(before.bot_states.len(), 1);
    assert_eq!(before.state_changes.len(), 2);
    let other = TenantId::parse("acme").unwrap();
    assert!(matches!(
        trading.view(&paced.id, Some(&other)),
        Err(TradingError::NotFound(_))
    ));
    assert!(trading.list(Some(&other)).is_empty());

    trading.shutdown();
    c.shutdown().await;
    store.close().await;
    let (store, c) = controller(dir.path()).await;
    let trading = Trading::start(c.clone()).await.unwrap();
    let again = finished(&trading, &opened.id).await;
    assert_eq!(again.fill_hash, done.fill_hash, "rebuilt fill for fill");
    assert_eq!(again.flow, done.flow);
    // The rebuilt runner reaches the kill's point in its quotes.
    let mut paced_again = trading.view(&paced.id, None).unwrap();
    for _ in 0..200 {
        if !paced_again.kills.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        paced_again = trading.view(&paced.id, None).unwrap();
    }
    assert_eq!(paced_again.kills.len(), 1);
    assert_eq!(paced_again.kills[0].reason, "risk review");
    assert_eq!(paced_again.kills[0].at_ms, k.at_ms);
    for _ in 0..200 {
        if paced_again.state_changes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        paced_again = trading.view(&paced.id, None).unwrap();
    }
    assert_eq!(
        paced_again.state_changes, before.state_changes,
        "the states, rebuilt"
    );
    assert_eq!(paced_again.trading_state, "ACTIVE");
    assert_eq!(paced_again.bot_states, before.bot_states);
    // The rebuilt session found its tickets by their keys: the same ones.
    let tickets_of = |b: &Blotter| b.signals.iter().map(|s| s.ticket).collect::<Vec<_>>();
    assert_eq!(
        tickets_of(&trading.blotter(&opened.id, None).unwrap()),
        tickets_of(&blotter)
    );
    assert!(signal_tickets(store.as_ref()).await >= tickets);
    // Closed: it stops where it is, and a restart rebuilds it to that point.
    let closed = trading
        .close(
            &paced.id,
            None,
            CloseRequest {
                reason: "end of drill".into(),
            },
            "ops",
        )
        .await
        .unwrap();
    assert_eq!(closed.status, SessionStatus::Closed);
    assert_eq!(closed.closed.as_deref(), Some("by ops: end of drill"));
    assert!(matches!(
        trading.kill(&paced.id, None, kill("late"), "ops").await,
        Err(TradingError::Ended(_))
    ));
    trading.shutdown();
    c.shutdown().await;
    store.close().await;
    let (store, c) = controller(dir.path()).await;
    let trading = Trading::start(c.clone()).await.unwrap();
    let mut rebuilt = trading.view(&paced.id, None).unwrap();
    for _ in 0..400 {
        if rebuilt.status != SessionStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        rebuilt = trading.view(&paced.id, None).unwrap();
    }
    assert_eq!(rebuilt.status, SessionStatus::Closed);
    assert_eq!(rebuilt.quotes, closed.quotes, "closed at the same point");
    assert_eq!(rebuilt.fill_hash, closed.fill_hash);
    trading.shutdown();
    c.shutdown().await;
    store.close().await;
}

/// Limit entries on the bots' signals: they rest at the desk's venue, fill
/// as makers or expire, and the session's fills are the backtest's with
/// limit entries. A venue elsewhere takes no resting order: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_limit_entries_rests_them_and_fills_as_its_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, c) = controller(dir.path()).await;
    let trading = Trading::start(c.clone()).await.unwrap();
    let spec = NewSession {
        entries: EntryStyle::Limit,
        seed: 7,
        ..spec(480)
    };
    let opened = trading.open(spec.clone(), "test").await.unwrap();
    assert_eq!(opened.spec.entries, EntryStyle::Limit);
    let done = finished(&trading, &opened.id).await;
    let inside = backtest(&spec);
    assert_eq!(done.fill_hash, inside.fill_hash());
    assert!(done.flow.filled > 0, "{:?}", done.flow);
    let blotter = trading.blotter(&opened.id, None).unwrap();
    assert!(blotter.fills.iter().any(|f| f.liquidity_side == "MAKER"));
    assert_eq!(
        done.flow.expired as usize,
        inside
            .signals()
            .iter()
            .filter(|s| s.disposition == Disposition::Expired)
            .count()
    );
    let elsewhere = NewSession {
        venue: Some("venue-paper".into()),
        ..spec
    };
    assert!(matches!(
        trading.open(elsewhere, "test").await,
        Err(TradingError::Invalid { field: "venue", .. })
    ));
    trading.shutdown();
    c.shutdown().await;
}

#[tokio::test]
async fn a_session_the_desk_cannot_run_is_refused_by_field() {
    let field = |s: NewSession| match check(&s) {
        Err(TradingError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(NewSession {
            bars: 21,
            ..spec(10)
        }),
        "bars"
    );
    assert_eq!(
        field(NewSession {
            bars: 10,
            ..spec(10)
        }),
        "bars"
    );
    assert_eq!(
        field(NewSession {
            instrument: "DOGE.SIM".into(),
            ..spec(100)
        }),
        "instrument"
    );
    assert_eq!(
        field(NewSession {
            strategy: serde_json::json!({"name": "ema_cross", "fast": 9, "slow": 3}),
            ..spec(100)
        }),
        "strategy"
    );
    assert_eq!(
        field(NewSession {
            speed: 86_401,
            ..spec(100)
        }),
        "speed"
    );
    assert!(check(&spec(100)).is_ok());
}

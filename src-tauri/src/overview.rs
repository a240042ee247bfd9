//! One view across the embedded controller and every attached fleet: each
//! read at once, each labelled, each either with its figures or with why
//! it could not be read (never zeros for a fleet that did not answer).

use std::time::Duration;

use oshal_core::api::client::Client;
use oshal_core::controller::{BotView, Controller};
use oshal_core::cost::CostSummary;
use serde::Serialize;
use specta::Type;

use crate::fleets::{self, Fleet, LOCAL};

/// How long one fleet may take to answer.
const WITHIN: Duration = Duration::from_secs(5);

/// One controller's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Type)]
pub struct FleetSummary {
    /// `local` for the embedded controller, else the fleet's name.
    pub name: String,
    /// The fleet's controller URL (none for the embedded one).
    pub url: Option<String>,
    /// The window drives it now.
    pub current: bool,
    /// Why it could not be read; its figures are then absent.
    pub error: Option<String>,
    pub figures: Option<Figures>,
}

/// What a controller reported.
#[derive(Debug, Clone, PartialEq, Serialize, Type)]
pub struct Figures {
    pub bots: u32,
    pub bots_live: u32,
    /// Nodes hosting its bots (the local pool counts as one).
    pub nodes: u32,
    /// Lanes whose figures could be read (of `bots`).
    pub lanes_read: u32,
    /// Tickets bots hold now.
    pub in_flight: u32,
    /// What its ledger has charged, in nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub spend_nusd: i64,
}

fn figures(bots: &[BotView], cost: &CostSummary) -> Figures {
    let mut nodes: Vec<Option<&str>> = bots.iter().map(|b| b.node.as_deref()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    Figures {
        bots: bots.len() as u32,
        bots_live: bots.iter().filter(|b| b.live).count() as u32,
        nodes: nodes.len() as u32,
        lanes_read: bots.iter().filter(|b| b.lane.is_some()).count() as u32,
        in_flight: bots.iter().map(|b| b.in_flight).sum(),
        spend_nusd: cost.total.cost_nusd,
    }
}

/// The embedded controller's row.
pub async fn local(controller: &Controller, current: bool) -> FleetSummary {
    let bots = controller.bots().await;
    let (figures, error) = match controller.cost_summary().await {
        Ok(cost) => (Some(figures(&bots, &cost)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    FleetSummary {
        name: LOCAL.to_owned(),
        url: None,
        current,
        error,
        figures,
    }
}

/// A fleet's row, read with its token from the OS keyring.
pub async fn remote(fleet: &Fleet, current: bool) -> FleetSummary {
    let read = async {
        let token = fleets::load_token(&fleet.name).map_err(|e| e.message)?;
        let trust = match &fleet.pin_sha256 {
            Some(pin) => oshal_core::tls::Trust::pin(pin).map_err(|e| e.to_string())?,
            None => oshal_core::tls::Trust::System,
        };
        let client = Client::with_trust(&fleet.url, &token, &trust).map_err(|e| e.to_string())?;
        let (bots, cost) =
            tokio::try_join!(client.bots(), client.cost_summary()).map_err(|e| e.to_string())?;
        Ok::<_, String>(figures(&bots, &cost))
    };
    let (figures, error) = match tokio::time::timeout(WITHIN, read).await {
        Ok(Ok(f)) => (Some(f), None),
        Ok(Err(e)) => (None, Some(e)),
        Err(_) => (None, Some(format!("no answer within {WITHIN:?}"))),
    };
    FleetSummary {
        name: fleet.name.clone(),
        url: Some(fleet.url.clone()),
        current,
        error,
        figures,
    }
}

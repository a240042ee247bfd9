//! Cancellation signals from the controller to whichever bot holds a
//! ticket, and to whatever else a cancel must reach at once (the broker
//! revokes the ticket's tokens). Kernel: no I/O, no knowledge of bots,
//! lanes or connectors, so every layer that runs a ticket can watch it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::ticket::TicketId;

/// Cancellation signals from the controller to whichever bot holds a ticket.
///
/// The controller cancels by ticket id; a bot registers a ticket when it
/// starts it. A cancel that arrives before the bot has the ticket leaves a
/// cancelled token behind, which the bot finds when it picks the entry up.
#[derive(Default)]
pub struct CancelRegistry {
    tokens: Mutex<HashMap<TicketId, CancellationToken>>,
    /// Fleet mode: where cancels also go, for bots in other processes.
    forward: Option<tokio::sync::mpsc::UnboundedSender<TicketId>>,
    /// Called at once on every cancel: the broker revokes the ticket's tokens.
    hook: Option<CancelHook>,
}

/// What else a cancel does, synchronously.
pub type CancelHook = Arc<dyn Fn(TicketId) + Send + Sync>;

impl std::fmt::Debug for CancelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelRegistry")
            .field("forwarding", &self.forward.is_some())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TicketId, CancellationToken>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token a bot watches while it runs `ticket`.
    pub fn begin(&self, ticket: TicketId) -> CancellationToken {
        self.lock().entry(ticket).or_default().clone()
    }

    /// A registry whose cancels are also sent to `forward` (the controller
    /// of a fleet publishes them to its nodes).
    pub fn forwarding(forward: tokio::sync::mpsc::UnboundedSender<TicketId>) -> Self {
        Self {
            tokens: Mutex::default(),
            forward: Some(forward),
            hook: None,
        }
    }

    /// A registry that also calls `hook` on every cancel.
    pub fn with_hook(hook: CancelHook) -> Self {
        Self::default().hooked(hook)
    }

    /// This registry, also calling `hook` on every cancel.
    pub fn hooked(mut self, hook: CancelHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Cancels `ticket`, now or as soon as a bot picks it up.
    pub fn cancel(&self, ticket: TicketId) {
        if let Some(hook) = &self.hook {
            hook(ticket);
        }
        match &self.forward {
            Some(forward) => {
                let _ = forward.send(ticket);
            }
            None => self.lock().entry(ticket).or_default().cancel(),
        }
    }

    /// Cancels `ticket` only if a bot here is running it (what a node does
    /// with the cancels its controller broadcasts to every node).
    pub fn cancel_running(&self, ticket: TicketId) {
        if let Some(hook) = &self.hook {
            hook(ticket);
        }
        if let Some(token) = self.lock().get(&ticket) {
            token.cancel();
        }
    }

    pub fn end(&self, ticket: TicketId) {
        self.lock().remove(&ticket);
    }
}

//! An incident: alerts a correlation rule grouped, and its lifecycle
//! Triggered → Acknowledged → Mitigated → Resolved, one table of moves.
//! Its timeline holds what happened to it in order (alerts joining,
//! firing again and resolving, its moves with who made them, change
//! events near it), the evidence a postmortem is drafted from. Pure logic.

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::clock::UnixMs;

use crate::alert::{Fingerprint, Labels, Severity};

/// An incident's status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum IncidentStatus {
    /// Opened; nobody has said they are on it.
    Triggered,
    /// Someone is on it.
    Acknowledged,
    /// The harm has stopped (a heal worked, a workaround is in); not yet
    /// known to be over.
    Mitigated,
    /// Over. Terminal: the same alerts firing again open a new incident.
    Resolved,
}

/// What may be done to an incident.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum IncidentAction {
    Acknowledge,
    Mitigate,
    Resolve,
    /// An alert of a mitigated incident fired again: the mitigation did not
    /// hold. The monitor's move, not a person's.
    Retrigger,
}

impl IncidentStatus {
    /// The status `action` moves it to, or `None` where the table has no
    /// such move.
    pub fn after(self, action: IncidentAction) -> Option<Self> {
        use IncidentAction as A;
        use IncidentStatus as S;
        match (self, action) {
            (S::Triggered, A::Acknowledge) => Some(S::Acknowledged),
            (S::Triggered | S::Acknowledged, A::Mitigate) => Some(S::Mitigated),
            (S::Triggered | S::Acknowledged | S::Mitigated, A::Resolve) => Some(S::Resolved),
            (S::Mitigated, A::Retrigger) => Some(S::Triggered),
            _ => None,
        }
    }

    pub fn is_open(self) -> bool {
        self != Self::Resolved
    }
}

/// What a timeline entry records.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Moment {
    Opened,
    AlertJoined,
    AlertFiring,
    AlertResolved,
    AlertAcknowledged,
    StatusChanged,
    /// A change event (a node joined or left, a budget changed, a
    /// connector approved, a deploy) that happened near it.
    Change,
    /// A Gather ticket was submitted for it.
    Investigating,
    /// One read-only tool call of an investigation (its evidence id, tool
    /// and status).
    ToolCall,
    /// An investigation's diagnosis: its top cause, or inconclusive.
    Diagnosed,
    InvestigationFailed,
    /// A heal proposed for a diagnosed cause, waiting for a person.
    HealProposed,
    HealApproved,
    HealDenied,
    /// A heal's ticket submitted with its one write grant.
    Healing,
    Healed,
    HealFailed,
    /// A heal's re-check: whether the cause was gone.
    Rechecked,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TimelineEntry {
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
    pub moment: Moment,
    /// Who or what: an alert's fingerprint, a person, a change's subject.
    pub subject: String,
    pub detail: String,
}

/// An incident and everything it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Incident {
    /// `INC-<n>`, numbered per tenant from 1.
    pub id: String,
    pub title: String,
    /// The correlation rule that opened it.
    pub rule: String,
    /// The values of the rule's `group_by` labels.
    pub group: Labels,
    pub status: IncidentStatus,
    /// The worst of its alerts'.
    pub severity: Severity,
    /// Its alerts, in the order they joined.
    pub alerts: Vec<Fingerprint>,
    #[specta(type = specta_typescript::Number)]
    pub opened_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    pub acknowledged_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub mitigated_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub resolved_ms: Option<UnixMs>,
    pub timeline: Vec<TimelineEntry>,
}

impl Incident {
    /// Time to acknowledge, from recorded times.
    pub fn mtta_ms(&self) -> Option<i64> {
        Some(self.acknowledged_ms? - self.opened_ms)
    }

    /// Time to resolve, from recorded times.
    pub fn mttr_ms(&self) -> Option<i64> {
        Some(self.resolved_ms? - self.opened_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_kernel::name::Named;

    #[test]
    fn the_lifecycle_table_holds_every_pair() {
        use IncidentAction as A;
        use IncidentStatus as S;
        let mut moves = Vec::new();
        for &s in S::all() {
            for &a in A::all() {
                if let Some(to) = s.after(a) {
                    moves.push((s.as_str(), a.as_str(), to.as_str()));
                }
            }
        }
        assert_eq!(
            moves,
            [
                ("triggered", "acknowledge", "acknowledged"),
                ("triggered", "mitigate", "mitigated"),
                ("triggered", "resolve", "resolved"),
                ("acknowledged", "mitigate", "mitigated"),
                ("acknowledged", "resolve", "resolved"),
                ("mitigated", "resolve", "resolved"),
                ("mitigated", "retrigger", "triggered"),
            ]
        );
        assert!(!S::Resolved.is_open());
    }
}

//! An incident's postmortem in the monitor: drafted from the record on
//! every read, a person's edits kept and laid over the draft, and frozen
//! whole when published (a resolved incident only; once published, never
//! edited). `decide_*` decide; `apply_*` fold.

use oshal_kernel::clock::UnixMs;

use super::{Event, Monitor, OpsError};
use crate::incident::IncidentStatus;
use crate::report::{Postmortem, PostmortemEdit, PostmortemStatus, draft};

/// Lays `later` over `earlier`: the fields it gives win.
fn merged(earlier: &PostmortemEdit, later: &PostmortemEdit) -> PostmortemEdit {
    PostmortemEdit {
        summary: later.summary.clone().or_else(|| earlier.summary.clone()),
        trigger: later.trigger.clone().or_else(|| earlier.trigger.clone()),
        detection: later
            .detection
            .clone()
            .or_else(|| earlier.detection.clone()),
        resolution: later
            .resolution
            .clone()
            .or_else(|| earlier.resolution.clone()),
        action_items: later
            .action_items
            .clone()
            .or_else(|| earlier.action_items.clone()),
        lessons: later.lessons.clone().or_else(|| earlier.lessons.clone()),
    }
}

impl Monitor {
    /// The postmortem of `incident`: the published one, or the draft the
    /// record supports now with the edits laid over it.
    pub fn postmortem(&self, incident: &str) -> Option<Postmortem> {
        if let Some(p) = self.published.get(incident) {
            return Some(p.clone());
        }
        let inc = self.incident(incident)?;
        let alerts: Vec<_> = inc.alerts.iter().filter_map(|f| self.alert(f)).collect();
        let p = draft(
            inc,
            &alerts,
            self.investigations(incident),
            &self.changes,
            self.heals(incident),
        );
        Some(match self.edits.get(incident) {
            Some((edit, by)) => p.edited(edit, by),
            None => p,
        })
    }

    fn draftable(&self, incident: &str) -> Result<(), OpsError> {
        if self.incident(incident).is_none() {
            return Err(OpsError::NotFound {
                what: "incident",
                id: incident.to_owned(),
            });
        }
        if self.published.contains_key(incident) {
            return Err(OpsError::Postmortem {
                id: incident.to_owned(),
                reason: "is published; a published postmortem is not edited".into(),
            });
        }
        Ok(())
    }

    pub(super) fn decide_edit(
        &self,
        incident: String,
        edit: PostmortemEdit,
        by: String,
    ) -> Result<Vec<Event>, OpsError> {
        self.draftable(&incident)?;
        edit.check()?;
        Ok(vec![Event::PostmortemEdited { incident, edit, by }])
    }

    pub(super) fn decide_publish(
        &self,
        incident: String,
        by: String,
    ) -> Result<Vec<Event>, OpsError> {
        self.draftable(&incident)?;
        let status = self.incident(&incident).map(|i| i.status);
        if status != Some(IncidentStatus::Resolved) {
            return Err(OpsError::Postmortem {
                id: incident,
                reason: "is not resolved; a postmortem is published once it is".into(),
            });
        }
        Ok(vec![Event::PostmortemPublished { incident, by }])
    }

    pub(super) fn apply_edit(&mut self, incident: &str, edit: &PostmortemEdit, by: &str) {
        let next = match self.edits.get(incident) {
            Some((earlier, _)) => merged(earlier, edit),
            None => edit.clone(),
        };
        self.edits
            .insert(incident.to_owned(), (next, by.to_owned()));
    }

    /// Freezes the postmortem the record supports at this point of the
    /// fold (the same on a replay: the state is the same here).
    pub(super) fn apply_publish(&mut self, incident: &str, by: &str, at_ms: UnixMs) {
        let Some(mut postmortem) = self.postmortem(incident) else {
            return;
        };
        postmortem.status = PostmortemStatus::Published;
        postmortem.published_by = Some(by.to_owned());
        postmortem.published_ms = Some(at_ms);
        self.edits.remove(incident);
        self.published.insert(incident.to_owned(), postmortem);
    }
}

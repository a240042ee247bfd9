//! The shapes Oshal ships (`assets/workflows/`): the build pipeline, the
//! support-ticket flow and the video pipeline, each a spec like any other, checked by the
//! same rules when listed and pinned to its hash when run.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::view::{SpecSource, Validation};

/// The shipped specs' YAML, by file.
const SHIPPED: &[&str] = &[
    include_str!("../../../../assets/workflows/build.yaml"),
    include_str!("../../../../assets/workflows/support-ticket.yaml"),
    include_str!("../../../../assets/workflows/video.yaml"),
];

/// A shipped workflow: its text, its inputs and its checked DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Shape {
    pub name: String,
    pub description: String,
    /// The spec's YAML, as shipped: what a run of it is started with.
    pub spec: String,
    pub inputs: Vec<ShapeInput>,
    /// The spec checked against this controller (its kinds, approvers).
    pub validation: Validation,
}

/// One input a run of a shape takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ShapeInput {
    pub name: String,
    pub description: String,
    /// Absent: a run must give it.
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub default: Option<serde_json::Value>,
}

/// The shipped shapes, each checked.
pub fn shapes() -> Vec<Shape> {
    SHIPPED
        .iter()
        .map(|text| {
            let validation = super::validate(&SpecSource {
                spec: serde_json::Value::String((*text).to_owned()),
            });
            let spec = oshal_workflow::spec::WorkflowSpec::from_text(text).ok();
            Shape {
                name: spec.as_ref().map_or_else(String::new, |s| s.name.clone()),
                description: spec
                    .as_ref()
                    .map_or_else(String::new, |s| s.description.clone()),
                spec: (*text).to_owned(),
                inputs: spec
                    .iter()
                    .flat_map(|s| &s.inputs)
                    .map(|(name, i)| ShapeInput {
                        name: name.clone(),
                        description: i.description.clone(),
                        default: i.default.clone(),
                    })
                    .collect(),
                validation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shipped_shape_is_valid_here() {
        let shapes = super::shapes();
        let names: Vec<&str> = shapes.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["build", "support-ticket", "video"]);
        for s in &shapes {
            assert!(s.validation.valid, "{}: {:?}", s.name, s.validation.errors);
            assert!(!s.description.is_empty() && !s.inputs.is_empty());
        }
        let video = &shapes[2];
        let names: Vec<&str> = video
            .validation
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "ingest",
                "probe",
                "transcode",
                "stitch",
                "quality",
                "review",
                "publish"
            ]
        );
    }
}

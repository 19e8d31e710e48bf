//! The JSON report: [`ReportData`] as pretty-printed JSON, the form other tools consume.

use super::model::ReportData;

/// The version of every JSON document drs-runbook prints (DESIGN section 7); it grows when a
/// field changes meaning or goes away, not when one is added.
pub const SCHEMA_VERSION: u64 = 1;

/// Renders the report as one JSON object, with `run_id` and `schema_version` at its top as every
/// JSON document that describes a run has them.
pub fn render(data: &ReportData) -> String {
    // A struct of strings, numbers and JSON values always serialises, to an object.
    let mut value = serde_json::to_value(data).expect("reports serialise");
    if let Some(object) = value.as_object_mut() {
        object.insert("run_id".into(), data.run.id.clone().into());
        object.insert("schema_version".into(), SCHEMA_VERSION.into());
    }
    let mut text = serde_json::to_string_pretty(&value).expect("values serialise");
    text.push('\n');
    text
}

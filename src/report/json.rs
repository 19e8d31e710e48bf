//! The JSON report: [`ReportData`] as pretty-printed JSON, the form other tools consume.

use super::model::ReportData;

/// Renders the report as one JSON object.
pub fn render(data: &ReportData) -> String {
    // A struct of strings, numbers and JSON values always serialises.
    let mut text = serde_json::to_string_pretty(data).unwrap_or_default();
    text.push('\n');
    text
}

//! Reading the TOML into the raw model, recovering from errors so that one pass reports them all.
//!
//! ```text
//!  text ──parse_recoverable──► spanned tree ──per section / per [[element]]──► serde raw types
//!          (every syntax error)                 (on an error: report it, drop the bad key, retry)
//! ```
//!
//! serde stops at the first error of a value. To report every unknown key and every wrong type
//! at once, each section and each element of an array of tables is deserialized on its own; when
//! it fails, the problem is recorded with the key path found from the error's span, the offending
//! key is removed from a copy of the tree, and deserialization is tried again. Only a section
//! missing a required key is given up (and marks the runbook incomplete).

use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};

use super::problem::Problems;
use super::raw::{Element, RawRunbook, ReadStatus};

/// The top-level keys; the sections' own keys are in the serde types of `raw`.
pub(super) const TOP_LEVEL_KEYS: [&str; 15] = [
    "name",
    "description",
    "objectives",
    "source",
    "target",
    "wave",
    "load_balancer",
    "dns",
    "routing_control",
    "approvals",
    "cleanup",
    "recovery",
    "doctor",
    "failover",
    "failback",
];

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Reads the text into the raw model. `None` when the TOML itself is malformed (each syntax
/// error is reported; nothing further is checked, as a broken structure misleads).
pub(super) fn read(text: &str, problems: &mut Problems<'_>) -> Option<RawRunbook> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let root_value = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        let headers = Headers::new(text);
        let total = errors.len();
        for (seen, error) in errors.into_iter().enumerate() {
            if problems.is_full() {
                problems.omit(total - seen);
                break;
            }
            let span = error.span().unwrap_or(0..0);
            // The error often lies past the end of what was recovered (an unterminated
            // string): then the key that starts the error's line names the place.
            let mut path = locate(&root_value, span.start);
            if path.is_empty() {
                path = locate(&root_value, first_non_blank_of_line(text, span.start));
            }
            let key = if path.is_empty() {
                key_of_line(text, span.start, &headers)
            } else {
                render_path("", &path)
            };
            problems.at(
                &span,
                key,
                format!("TOML syntax error: {}", error.message().trim_end()),
            );
        }
        return None;
    }
    let mut raw = RawRunbook::default();
    for (key, value) in root.get_ref().iter() {
        read_top_level(key, value, &mut raw, problems);
    }
    Some(raw)
}

fn read_top_level(
    key: &Spanned<toml::de::DeString<'_>>,
    value: &Spanned<DeValue<'_>>,
    raw: &mut RawRunbook,
    problems: &mut Problems<'_>,
) {
    let name: &str = key.get_ref();
    match name {
        "name" => raw.name = read_value(value, name, &mut raw.status, problems),
        "description" => raw.description = read_value(value, name, &mut raw.status, problems),
        "objectives" => raw.objectives = read_value(value, name, &mut raw.status, problems),
        "source" => raw.source = read_value(value, name, &mut raw.status, problems),
        "target" => raw.target = read_value(value, name, &mut raw.status, problems),
        "approvals" => raw.approvals = read_value(value, name, &mut raw.status, problems),
        "cleanup" => raw.cleanup = read_value(value, name, &mut raw.status, problems),
        "recovery" => raw.recovery = read_value(value, name, &mut raw.status, problems),
        "doctor" => raw.doctor = read_value(value, name, &mut raw.status, problems),
        "failover" => raw.failover = read_value(value, name, &mut raw.status, problems),
        "failback" => raw.failback = read_value(value, name, &mut raw.status, problems),
        "wave" => raw.waves = read_elements(value, name, &mut raw.status, problems),
        "load_balancer" => {
            raw.load_balancers = read_elements(value, name, &mut raw.status, problems)
        }
        "dns" => raw.dns = read_elements(value, name, &mut raw.status, problems),
        "routing_control" => {
            raw.routing_controls = read_elements(value, name, &mut raw.status, problems)
        }
        unknown => problems.at(
            &key.span(),
            render_key("", unknown),
            format!(
                "unknown key `{unknown}`{} (expected one of {})",
                did_you_mean(unknown, &TOP_LEVEL_KEYS),
                quoted_list(&TOP_LEVEL_KEYS)
            ),
        ),
    }
}

/// Reads an array of tables (`[[wave]]`), each element on its own so one bad element does not
/// hide the problems of the others.
fn read_elements<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    name: &str,
    status: &mut ReadStatus,
    problems: &mut Problems<'_>,
) -> Vec<Element<T>> {
    let DeValue::Array(items) = value.get_ref() else {
        problems.at(
            &value.span(),
            name,
            format!("`{name}` must be an array of tables: write each one under its own [[{name}]] header"),
        );
        status.mark_incomplete(name);
        return Vec::new();
    };
    let mut elements = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let prefix = format!("{name}[{index}]");
        if let Some(element) = read_value(item, &prefix, status, problems) {
            elements.push(Element {
                index,
                value: element,
            });
        }
    }
    elements
}

/// Deserializes one value, reporting every error it can find: after each error the offending
/// key is dropped from a copy and the value is tried again.
fn read_value<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    status: &mut ReadStatus,
    problems: &mut Problems<'_>,
) -> Option<T> {
    let mut attempt = value.clone();
    let mut dropped: Vec<String> = Vec::new();
    loop {
        if problems.is_full() {
            // Each retry re-reads the value: past the limit, stop (the runbook is invalid anyway).
            status.mark_incomplete(prefix);
            return None;
        }
        let error = match T::deserialize(ValueDeserializer::from(attempt.clone())) {
            Ok(parsed) => {
                status.dropped_keys.extend(dropped);
                return Some(parsed);
            }
            Err(error) => error,
        };
        let span = error.span().unwrap_or_else(|| attempt.span());
        let path = locate(&attempt, span.start);
        let message = error.message().trim_end().to_string();
        if let Some(field) = missing_field(&message) {
            // A key dropped earlier is now missing: that was reported already.
            let key = render_key(prefix, field);
            if !dropped.contains(&key) {
                problems.at(
                    &span,
                    key,
                    format!("missing key `{field}` (it is required here)"),
                );
            }
            status.mark_incomplete(prefix);
            return None;
        }
        let key = render_path(prefix, &path);
        problems.at(&span, key.clone(), friendly(&message));
        if path.is_empty() || !remove(&mut attempt, &path) {
            status.mark_incomplete(prefix);
            return None;
        }
        dropped.push(key);
    }
}

/// The key path a broken line most likely means, read from the text itself: the bare key before
/// `=` on the line, under the last table header above it (`[[wave]]` headers are counted to give
/// the element's index). Empty when the line has no such key.
fn key_of_line(text: &str, offset: usize, headers: &Headers) -> String {
    let offset = offset.min(text.len());
    let line_start = first_non_blank_of_line(text, offset);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let Some((key, _)) = line.split_once('=') else {
        return String::new();
    };
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    if !bare(key) {
        return String::new();
    }
    let line_begin = text[..line_start]
        .rfind('\n')
        .map_or(0, |newline| newline + 1);
    let table = headers.table_before(line_begin);
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// The table headers of the text, read once: where each starts and the table it opens
/// (`[[wave]]` headers are counted to give the element's index), so naming the key of each
/// broken line is a binary search rather than a rescan from the start.
struct Headers {
    /// (offset of the header's line, table), in text order.
    starts: Vec<(usize, String)>,
}

impl Headers {
    fn new(text: &str) -> Headers {
        let mut starts = Vec::new();
        let mut element_counts: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let header = line.trim();
            if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
                let name = name.trim().to_string();
                let index = element_counts.entry(name.clone()).or_insert(0);
                starts.push((offset, format!("{name}[{index}]")));
                *index += 1;
            } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
                starts.push((offset, name.trim().to_string()));
            }
            offset += line.len();
        }
        Headers { starts }
    }

    /// The table opened by the last header on a line before `line_start` ("" for the root).
    fn table_before(&self, line_start: usize) -> String {
        let n = self
            .starts
            .partition_point(|(start, _)| *start < line_start);
        n.checked_sub(1)
            .map(|i| self.starts[i].1.clone())
            .unwrap_or_default()
    }
}

/// The offset of the first non-blank character of the line holding `offset`.
fn first_non_blank_of_line(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    let line_start = text.as_bytes()[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let indent = text.as_bytes()[line_start..]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    line_start + indent
}

/// The field named by serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// serde's wording, in the runbook's vocabulary (keys, not fields).
fn friendly(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(", ");
        let names: Vec<&str> = expected
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .split(", ")
            .map(|n| n.trim_matches('`'))
            .filter(|n| !n.is_empty())
            .collect();
        let hint = did_you_mean(field, &names);
        return if names.is_empty() {
            format!("unknown key `{field}` (this table takes no keys)")
        } else {
            format!(
                "unknown key `{field}`{hint} (expected one of {})",
                quoted_list(&names)
            )
        };
    }
    // serde names Rust types; say what a runbook author writes instead.
    message
        .replace("invalid type: ", "wrong type: ")
        .replace("invalid value: ", "wrong value: ")
        .replace("expected u16", "expected a whole number from 1 to 65535")
        .replace(
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        )
        .replace(
            "expected a sequence",
            "expected an array such as [\"a\", \"b\"]",
        )
        .replace("expected a map", "expected a table")
}

/// ` (did you mean `x`?)` for a name close to a known one.
pub(super) fn did_you_mean(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

pub(super) fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The deepest key or array element whose span contains `offset`.
fn locate(value: &Spanned<DeValue<'_>>, offset: usize) -> Vec<Step> {
    let mut path = Vec::new();
    let mut current = value;
    'descend: loop {
        match current.get_ref() {
            DeValue::Table(table) => {
                for (key, child) in table.iter() {
                    if contains(&key.span(), offset) || contains(&child.span(), offset) {
                        path.push(Step::Key(key.get_ref().to_string()));
                        current = child;
                        continue 'descend;
                    }
                }
                // A nested array of tables (`[[wave.action]]`) spans its header only, while
                // its keys follow on the next lines: the last one opened before the offset.
                let opened = table
                    .iter()
                    .filter(|(key, child)| {
                        matches!(child.get_ref(), DeValue::Array(_)) && key.span().start <= offset
                    })
                    .max_by_key(|(key, _)| key.span().start);
                if let Some((key, child)) = opened {
                    path.push(Step::Key(key.get_ref().to_string()));
                    current = child;
                    continue 'descend;
                }
            }
            DeValue::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    if contains(&child.span(), offset) {
                        path.push(Step::Index(index));
                        current = child;
                        continue 'descend;
                    }
                }
                let opened = items.iter().enumerate().rev().find(|(_, child)| {
                    matches!(child.get_ref(), DeValue::Table(_)) && child.span().start <= offset
                });
                if let Some((index, child)) = opened {
                    path.push(Step::Index(index));
                    current = child;
                    continue 'descend;
                }
            }
            _ => {}
        }
        return path;
    }
}

fn contains(span: &std::ops::Range<usize>, offset: usize) -> bool {
    span.start <= offset && (offset < span.end || span.is_empty() && offset == span.start)
}

/// Removes the key or element at `path`; false when there is nothing to remove.
fn remove(value: &mut Spanned<DeValue<'_>>, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = value;
    for step in parents {
        let next = match (current.get_mut(), step) {
            (DeValue::Table(table), Step::Key(key)) => table
                .iter_mut()
                .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                .map(|(_, v)| v),
            (DeValue::Array(items), Step::Index(index)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    match (current.get_mut(), last) {
        (DeValue::Table(table), Step::Key(key)) => table.remove(key.as_str()).is_some(),
        (DeValue::Array(items), Step::Index(index)) if *index < items.len() => {
            let mut kept = DeArray::new();
            for (i, item) in items.iter().enumerate() {
                if i != *index {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            true
        }
        _ => false,
    }
}

/// `prefix` followed by the path: `wave[1]` + [servers, 0] -> `wave[1].servers[0]`.
fn render_path(prefix: &str, path: &[Step]) -> String {
    let mut text = prefix.to_string();
    for step in path {
        match step {
            Step::Key(key) => text = render_key(&text, key),
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Appends a key, quoting it when it is not a bare TOML key.
fn render_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_render_like_toml() {
        let path = [Step::Key("servers".into()), Step::Index(0)];
        assert_eq!(render_path("wave[1]", &path), "wave[1].servers[0]");
        assert_eq!(
            render_path("", &[Step::Key("App Tier".into())]),
            "\"App Tier\""
        );
    }

    #[test]
    fn suggestions_for_near_misses_only() {
        assert_eq!(
            did_you_mean("regoin", &["region", "profile"]),
            " (did you mean `region`?)"
        );
        assert_eq!(did_you_mean("colour", &["region", "profile"]), "");
    }

    #[test]
    fn serde_messages_use_the_runbook_vocabulary() {
        assert_eq!(
            friendly("unknown field `regoin`, expected one of `account_id`, `region`"),
            "unknown key `regoin` (did you mean `region`?) (expected one of `account_id`, `region`)"
        );
        assert_eq!(missing_field("missing field `region`"), Some("region"));
    }
}

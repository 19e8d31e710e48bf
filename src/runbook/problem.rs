//! Problems found in a runbook, each pinned to a file, line, column and key path.

use serde::Serialize;
use std::ops::Range;

/// One thing wrong with a runbook, and what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The key path, e.g. `wave[1].servers[0]` (empty for a problem with the whole file).
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// At most this many problems are reported; the others are counted ("and N more").
pub const MAX_PROBLEMS: usize = 200;

/// The wording of the last problem when some were not shown (after their count).
pub const OMITTED: &str = "more problem(s) not shown";

/// Collects problems while a runbook is read and validated.
pub(super) struct Problems<'a> {
    file: &'a str,
    text: &'a str,
    list: Vec<Problem>,
    /// Problems found past [`MAX_PROBLEMS`], counted only.
    omitted: usize,
    /// Byte offset of the start of every line, built on the first problem: locating one is a
    /// binary search, not a rescan of the text (which made many errors quadratic).
    lines: Option<Vec<usize>>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Problems {
            file,
            text,
            list: Vec::new(),
            omitted: 0,
            lines: None,
        }
    }

    /// Whether [`MAX_PROBLEMS`] are recorded: readers stop looking for more.
    pub fn is_full(&self) -> bool {
        self.list.len() >= MAX_PROBLEMS
    }

    /// Counts problems that are not looked at one by one (past the limit).
    pub fn omit(&mut self, count: usize) {
        self.omitted += count;
    }

    /// Records a problem at the start of `span`.
    pub fn at(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        if self.is_full() {
            self.omitted += 1;
            return;
        }
        let text = self.text;
        let lines = self.lines.get_or_insert_with(|| line_starts(text));
        let (line, column) = locate(text, lines, span.start);
        self.list.push(Problem {
            file: self.file.to_string(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems in file order (then in the order found, for several at one place).
    pub fn into_sorted(mut self) -> Vec<Problem> {
        self.list.sort_by_key(|p| (p.line, p.column));
        self.list.dedup();
        if self.omitted > 0 {
            let last = self.list.last().map_or(1, |p| p.line);
            self.list.push(Problem {
                file: self.file.to_string(),
                line: last,
                column: 1,
                key: String::new(),
                message: format!(
                    "{} {OMITTED}: only the first {MAX_PROBLEMS} are reported; fix these first",
                    self.omitted
                ),
            });
        }
        self.list
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn locate(text: &str, lines: &[usize], offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line = lines.partition_point(|&start| start <= offset).max(1);
    let column = text[lines[line - 1]..offset].chars().count() + 1;
    (line, column)
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    locate(text, &line_starts(text), offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let text = "a = 1\nnamé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        // After the two-byte `é`, the column counts characters; inside it, it is `é`'s column.
        assert_eq!(line_col(text, 11), (2, 5));
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn problems_display_file_line_column_key_and_message() {
        let problem = Problem {
            file: "payments.toml".into(),
            line: 23,
            column: 11,
            key: "wave[1].servers[0]".into(),
            message: "bad".into(),
        };
        assert_eq!(
            problem.to_string(),
            "payments.toml:23:11: wave[1].servers[0]: bad"
        );
    }
}

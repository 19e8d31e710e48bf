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

/// Collects problems while a runbook is read and validated.
pub(super) struct Problems<'a> {
    file: &'a str,
    text: &'a str,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Problems {
            file,
            text,
            list: Vec::new(),
        }
    }

    /// Records a problem at the start of `span`.
    pub fn at(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
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
        self.list
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
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

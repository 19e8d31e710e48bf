//! Strings from outside (a runbook, an operator name, AWS, the environment) on the terminal.
//!
//! Raw, such a string can retitle the terminal, clear it, move the cursor or forge a `history`
//! row (`\x1b]0;...\x07`, `\x1b[2J`, `\r`, `\n`). [`safe`] renders every control character and
//! every bidirectional override visibly escaped (`\u{1b}`), so what is printed is what is stored.
//! JSON output needs nothing: serde_json escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal raw.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters and bidirectional overrides escaped as `\u{..}`; borrowed
/// when there is none.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`safe`] of a multi-line message: line breaks kept, everything else escaped.
pub fn safe_lines(text: &str) -> String {
    text.split('\n').map(safe).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_sent() {
        assert!(matches!(safe("alice"), Cow::Borrowed("alice")));
        assert_eq!(safe("\x1b]0;pwned\x07"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(safe("a\r\nb"), "a\\u{d}\\u{a}b");
        assert_eq!(safe("x\u{9b}2J\u{202e}"), "x\\u{9b}2J\\u{202e}");
        assert_eq!(safe_lines("one\n\x1b[2Jtwo"), "one\n\\u{1b}[2Jtwo");
    }
}

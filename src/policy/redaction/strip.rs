//! Removal of terminal escape sequences and invisible / bidirectional-control characters.
//!
//! Emoji tag sequences (subdivision flags such as England's) use Unicode tag characters too;
//! they are removed as well (the flag degrades to a plain black flag), because tag characters
//! are the channel for invisible prompt injection and no tool needs them to be understood.

/// Is `c` invisible or a bidi control that can hide text from a person reading the output?
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0xE0000..=0xE007F            // tag characters
        | 0x200B..=0x200F            // zero-width space/joiners, LRM, RLM
        | 0x202A..=0x202E            // bidi embeddings and overrides
        | 0x2060..=0x2064            // word joiner, invisible operators
        | 0x2066..=0x2069            // bidi isolates
        | 0xFEFF                     // zero-width no-break space
        | 0x061C                     // Arabic letter mark
        | 0x180E) // Mongolian vowel separator
}

/// A C0/C1 control that is not ordinary whitespace.
fn is_control(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || u == 0x7F || (0x80..=0x9F).contains(&u)
}

/// Could `s` contain anything [`strip`] removes? (Cheap byte scan.)
pub fn needs_strip(s: &str, terminal: bool, invisible: bool) -> bool {
    s.bytes().any(|b| {
        (terminal && ((b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7F))
            || (b >= 0x80 && (terminal || invisible))
    }) && s.chars().any(|c| (terminal && is_control(c)) || (invisible && is_invisible(c)))
}

/// Removes escape sequences (when `terminal`) and invisible characters (when `invisible`);
/// returns the new text and how many of each were removed.
pub fn strip(s: &str, terminal: bool, invisible: bool) -> (String, usize, usize) {
    let mut out = String::with_capacity(s.len());
    let (mut escapes, mut hidden) = (0, 0);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if terminal && (c == '\u{1b}' || c == '\u{9b}' || c == '\u{9d}') {
            escapes += 1;
            let kind = if c == '\u{9b}' {
                Some('[')
            } else if c == '\u{9d}' {
                Some(']')
            } else {
                chars.next()
            };
            match kind {
                // CSI: parameter and intermediate bytes, then one final byte.
                Some('[') => {
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if ('\u{40}'..='\u{7e}').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \).
                Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' || n == '\u{9c}' {
                            break;
                        }
                        if n == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {} // a two-character escape: both are gone
            }
            continue;
        }
        if terminal && is_control(c) {
            escapes += 1;
            continue;
        }
        if invisible && is_invisible(c) {
            hidden += 1;
            continue;
        }
        out.push(c);
    }
    (out, escapes, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_removed_with_their_parameters() {
        let s = "\u{1b}[31mred\u{1b}[0m \u{1b}]8;;http://evil.example\u{7}click\u{1b}]8;;\u{7} \u{1b}]52;c;ZXZpbA==\u{1b}\\ \u{9b}2J end\u{7}";
        let (out, escapes, _) = strip(s, true, false);
        assert_eq!(out, "red click   end");
        assert_eq!(escapes, 7);
    }

    #[test]
    fn invisible_characters_are_removed_and_visible_text_kept() {
        let s = "pay\u{200b}pal \u{202e}txt.exe \u{e0041}\u{e0042} café 日本 ✓";
        let (out, _, hidden) = strip(s, false, true);
        assert_eq!(out, "paypal txt.exe  café 日本 ✓");
        assert_eq!(hidden, 4);
        assert!(!needs_strip("café 日本 ✓ plain\ttext\n", true, true));
    }
}

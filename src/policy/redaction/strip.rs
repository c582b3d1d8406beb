//! Removal of terminal escape sequences (rule id `terminal-escape`) and invisible or
//! bidirectional-control characters (rule id `invisible-unicode`).
//!
//! Terminal (ECMA-48): `ESC [` CSI (parameter and intermediate bytes 0x20–0x3F, then one final
//! byte 0x40–0x7E; a sequence cut short by any other character ends there); `ESC ]` OSC and the
//! other string sequences `ESC P` / `X` / `^` / `_` (everything up to BEL, ST U+009C or `ESC \`;
//! an unterminated one runs to the end of the string, as a terminal would hide it); other `ESC`
//! sequences (intermediates 0x20–0x2F, then a final 0x30–0x7E); the 8-bit C1 forms of all of these
//! (U+009B CSI, U+009D OSC, U+0090/98/9E/9F strings); every other C1 control U+0080–U+009F, DEL,
//! and every C0 control except `\t`, `\n`, `\r`. One sequence or lone control counts once.
//!
//! Invisible: tag characters U+E0000–U+E007F, zero-width U+200B–U+200D, U+2060–U+2064 (word
//! joiner, invisible operators), U+FEFF, bidi controls U+202A–U+202E, U+2066–U+2069, U+200E,
//! U+200F, U+061C, U+180E, and variation selectors 17–256 (U+E0100–U+E01EF, the same one-byte-
//! per-character smuggling channel as tags; only rare ideographic variants use them). Kept:
//! U+FE00–U+FE0F (emoji/text presentation), soft hyphen, private-use characters.
//!
//! Emoji tag sequences (subdivision flags such as England's, U+1F3F4 followed by tags) lose their
//! tags and show as a plain black flag, and ZWJ sequences (family, profession emoji) fall apart
//! into their component emoji: tag characters and joiners are the channel for invisible prompt
//! injection, and no tool output needs them to be understood.

/// Is `c` invisible or a bidi control that can hide or reorder text for a person reading it?
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0xE0000..=0xE007F            // tag characters
        | 0xE0100..=0xE01EF          // variation selectors 17-256
        | 0x200B..=0x200F            // zero-width space, ZWNJ, ZWJ, LRM, RLM
        | 0x202A..=0x202E            // bidi embeddings and overrides
        | 0x2060..=0x2064            // word joiner, invisible operators
        | 0x2066..=0x2069            // bidi isolates
        | 0xFEFF                     // zero-width no-break space (BOM)
        | 0x061C                     // Arabic letter mark
        | 0x180E) // Mongolian vowel separator
}

/// A C0 or C1 control, or DEL, other than `\t`, `\n`, `\r`.
fn is_control(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || (0x7F..=0x9F).contains(&u)
}

/// Bytes that can begin a character [`strip`] removes: C0 controls and DEL, and the UTF-8 lead
/// bytes of C1 (C2), U+061C (D8), U+180E (E1), U+200B–U+206F (E2), U+FEFF (EF) and planes
/// 14 (F3: tags, variation selectors). Every flagged byte starts a character, so slicing there is safe.
const MAYBE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = !matches!(b, 0x09 | 0x0A | 0x0D);
        b += 1;
    }
    t[0x7F] = true;
    t[0xC2] = true;
    t[0xD8] = true;
    t[0xE1] = true;
    t[0xE2] = true;
    t[0xEF] = true;
    t[0xF3] = true;
    t
};

/// Where the first character to remove starts, if any. Chunks of printable ASCII are skipped
/// with a test the compiler vectorizes; only flagged bytes in other chunks are decoded.
fn first_removable(s: &str, terminal: bool, invisible: bool) -> Option<usize> {
    const CHUNK: usize = 16;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = (i + CHUNK).min(bytes.len());
        let plain = bytes[i..end].iter().fold(true, |all, &b| all & (0x20..0x7F).contains(&b));
        if !plain {
            for j in i..end {
                if MAYBE[bytes[j] as usize] {
                    let c = s[j..].chars().next()?;
                    if (terminal && is_control(c)) || (invisible && is_invisible(c)) {
                        return Some(j);
                    }
                }
            }
        }
        i = end;
    }
    None
}

/// Removes escape sequences (when `terminal`) and invisible characters (when `invisible`).
/// `None` when there is nothing to remove; else the new text and how many sequences/controls
/// and invisible characters were removed.
pub fn strip(s: &str, terminal: bool, invisible: bool) -> Option<(String, usize, usize)> {
    let mut at = first_removable(s, terminal, invisible)?;
    let mut out = String::with_capacity(s.len());
    let (mut escapes, mut hidden, mut copied) = (0, 0, 0);
    loop {
        out.push_str(&s[copied..at]);
        let c = s[at..].chars().next().expect("at is a character start");
        copied = if terminal && is_control(c) {
            escapes += 1;
            sequence_end(s, at, c)
        } else {
            hidden += 1;
            at + c.len_utf8()
        };
        match first_removable(&s[copied..], terminal, invisible) {
            Some(off) => at = copied + off,
            None => break,
        }
    }
    out.push_str(&s[copied..]);
    Some((out, escapes, hidden))
}

/// The end of the escape sequence (or lone control) `c` that starts at `at`.
fn sequence_end(s: &str, at: usize, c: char) -> usize {
    let bytes = s.as_bytes();
    let after = at + c.len_utf8();
    match c {
        '\u{1b}' => match bytes.get(after) {
            Some(b'[') => csi_end(bytes, after + 1),
            Some(b']' | b'P' | b'X' | b'^' | b'_') => string_end(s, after + 1),
            Some(0x20..=0x2F) => {
                let mut i = after;
                while matches!(bytes.get(i), Some(0x20..=0x2F)) {
                    i += 1;
                }
                if matches!(bytes.get(i), Some(0x30..=0x7E)) { i + 1 } else { i }
            }
            Some(0x30..=0x7E) => after + 1,
            _ => after,
        },
        '\u{9b}' => csi_end(bytes, after),
        '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => string_end(s, after),
        _ => after,
    }
}

/// CSI body from `i`: parameter and intermediate bytes, then a final byte if one is there.
fn csi_end(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(0x20..=0x3F)) {
        i += 1;
    }
    if matches!(bytes.get(i), Some(0x40..=0x7E)) { i + 1 } else { i }
}

/// A control string's body from `i` up to and including BEL, ST or `ESC \`. Any other `ESC`
/// ends the string before it (and starts the next sequence), as in xterm.
fn string_end(s: &str, i: usize) -> usize {
    for (off, c) in s[i..].char_indices() {
        match c {
            '\u{7}' | '\u{9c}' => return i + off + c.len_utf8(),
            '\u{1b}' if s.as_bytes().get(i + off + 1) == Some(&b'\\') => return i + off + 2,
            '\u{1b}' => return i + off,
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminal(s: &str) -> (String, usize) {
        strip(s, true, false).map(|(out, n, _)| (out, n)).unwrap_or((s.to_string(), 0))
    }

    #[test]
    fn csi_osc_and_c1_sequences_are_removed_with_their_parameters() {
        let s = "\u{1b}[31mred\u{1b}[0m \u{1b}]8;;http://evil.example\u{7}click\u{1b}]8;;\u{7} \u{1b}]52;c;ZXZpbA==\u{1b}\\ \u{9b}2J end\u{7}";
        assert_eq!(terminal(s), ("red click   end".to_string(), 7));
        assert_eq!(terminal("\u{1b}[?25l\u{1b}[38;2;255;0;0mx\u{9d}0;title\u{9c}y"), ("xy".to_string(), 3));
    }

    #[test]
    fn other_escapes_and_controls_are_removed_and_whitespace_kept() {
        // ESC ( B designates a charset (intermediate + final); ESC 7 / ESC c are two-byte.
        assert_eq!(terminal("a\u{1b}(Bb\u{1b}7c\u{1b}cd"), ("abcd".to_string(), 3));
        assert_eq!(terminal("tab\tnl\ncr\r\u{0}\u{8}\u{7f}\u{85}"), ("tab\tnl\ncr\r".to_string(), 4));
        // A lone ESC before text, at the end, or before a newline takes nothing else with it.
        assert_eq!(terminal("\u{1b}\u{e9}t\u{1b}\nx\u{1b}"), ("\u{e9}t\nx".to_string(), 3));
    }

    #[test]
    fn cut_short_sequences_do_not_eat_the_text_after_them() {
        // A CSI interrupted by a newline ends there; the line after it is kept.
        assert_eq!(terminal("\u{1b}[31\nhello"), ("\nhello".to_string(), 1));
        // An ESC inside an OSC ends it and starts its own sequence.
        assert_eq!(terminal("\u{1b}]0;title\u{1b}[1mbold"), ("bold".to_string(), 2));
        // An unterminated OSC hides the rest, as a terminal would.
        assert_eq!(terminal("ok\u{1b}]8;;http://x never closed"), ("ok".to_string(), 1));
    }

    #[test]
    fn invisible_characters_are_removed_and_visible_text_kept() {
        let s = "pay\u{200b}pal \u{202e}txt.exe \u{e0041}\u{e0042} \u{1f600}\u{e0101} caf\u{e9} \u{65e5}\u{672c} \u{2713} \u{201c}q\u{201d}";
        let (out, escapes, hidden) = strip(s, false, true).unwrap();
        assert_eq!(out, "paypal txt.exe  \u{1f600} caf\u{e9} \u{65e5}\u{672c} \u{2713} \u{201c}q\u{201d}");
        assert_eq!((escapes, hidden), (0, 5));
        assert!(
            strip("caf\u{e9} \u{65e5}\u{672c} \u{2713} \u{201c}plain\u{201d}\ttext\n\u{2764}\u{fe0f}", true, true)
                .is_none()
        );
    }

    #[test]
    fn emoji_tag_sequences_lose_their_tags() {
        // England's flag: black flag + tags "gbeng" + cancel tag.
        let england = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}";
        assert_eq!(strip(england, true, true).unwrap(), ("\u{1f3f4}".to_string(), 0, 6));
        // ZWJ family emoji fall apart into their members.
        let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
        assert_eq!(strip(family, false, true).unwrap().0, "\u{1f468}\u{1f469}\u{1f467}");
    }

    #[test]
    fn each_set_only_removes_its_own_characters() {
        let s = "\u{1b}[1m\u{200b}x";
        assert_eq!(strip(s, true, false).unwrap().0, "\u{200b}x");
        assert_eq!(strip(s, false, true).unwrap().0, "\u{1b}[1mx");
        assert!(strip(s, false, false).is_none());
    }
}

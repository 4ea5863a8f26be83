//! Showing received bytes in a log line. Used by the servers (udp_server,
//! threaded_server, proxy_logger, time_server, web_proxy, web_server,
//! heartbeat_server), udp_send, http_get, loadgen, lab and crack_caesar.
//!
//! A peer can send anything: the lab servers transform bytes, not text, and
//! only the log needs something printable. Valid UTF-8 is shown as it is;
//! bytes that are not UTF-8 and every character that acts on the operator's
//! terminal instead of showing itself are escaped (`\n`, `\u{1b}`,
//! `\u{202e}`, `\xff`): a client must not be able to drive a terminal with
//! escape sequences, or make a log line read differently from what it holds.

/// The bytes as one quoted, escaped line of at most `max` characters, with
/// `...` after the quote when it was cut short.
pub fn quoted(bytes: &[u8], max: usize) -> String {
    let pieces = bytes.utf8_chunks().flat_map(|chunk| {
        let escaped_invalid = chunk.invalid().iter().map(|b| format!("\\x{b:02x}"));
        let escaped_valid = chunk.valid().chars().map(|c| match c {
            '"' => "\\\"".to_string(),
            c if is_invisible(c) => c.escape_default().to_string(),
            c => c.to_string(),
        });
        escaped_valid.chain(escaped_invalid)
    });
    let mut out = String::from("\"");
    for (shown, piece) in pieces.enumerate() {
        if shown == max {
            return out + "\"...";
        }
        out.push_str(&piece);
    }
    out + "\""
}

/// True for the characters that change how text is shown without showing
/// themselves: the controls (Unicode category Cc, which holds ESC and the
/// C1 controls such as U+009B, a one-character CSI), the format characters
/// (Cf) and the line and paragraph separators (Zl, Zp).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            // Bidirectional embeddings and overrides, isolates, and the
            // marks LRM, RLM and ALM: they reorder the text that follows on
            // screen ("Trojan Source", CVE-2021-42574).
            0x202A..=0x202E | 0x2066..=0x2069 | 0x200E | 0x200F | 0x061C
            // Line and paragraph separators: an editor or a viewer breaks
            // the line there, so one log line would look like two.
            | 0x2028 | 0x2029
            // Zero-width space, non-joiner and joiner, word joiner and the
            // invisible operators, and the zero-width no-break space (BOM).
            | 0x200B..=0x200D | 0x2060..=0x2064 | 0xFEFF
            // The other format characters: soft hyphen, Arabic and Syriac
            // number signs, Mongolian vowel separator, deprecated shaping
            // controls, interlinear annotation, Kaithi, Egyptian hieroglyph,
            // shorthand and musical format controls, and the tags (U+E00xx,
            // invisible ASCII look-alikes).
            | 0x00AD | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
            | 0x180E | 0x206A..=0x206F | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD
            | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0001 | 0xE0020..=0xE007F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text() {
        assert_eq!(quoted(b"hello", 80), "\"hello\"");
        assert_eq!(quoted("h\u{e9}llo".as_bytes(), 80), "\"h\u{e9}llo\"");
    }

    #[test]
    fn controls_quotes_and_non_utf8_are_escaped() {
        assert_eq!(quoted(b"a\r\n\"b\"\t", 80), r#""a\r\n\"b\"\t""#);
        assert_eq!(quoted(b"\xff\xfeok\xc3", 80), r#""\xff\xfeok\xc3""#);
    }

    /// Each character, alone and inside text, is shown as its `\u{...}` escape.
    fn assert_escaped(chars: impl IntoIterator<Item = char>) {
        for c in chars {
            let code = c as u32;
            assert_eq!(
                quoted(format!("a{c}b").as_bytes(), 80),
                format!("\"a\\u{{{code:x}}}b\""),
                "U+{code:04X}"
            );
        }
    }

    #[test]
    fn ansi_escape_sequences_and_c1_controls_are_escaped() {
        // ESC [ 2 J clears the screen; U+009B is CSI in one character.
        assert_eq!(quoted(b"\x1b[2Jhi\x07", 80), r#""\u{1b}[2Jhi\u{7}""#);
        assert_escaped(['\u{7f}', '\u{85}', '\u{9b}']);
    }

    #[test]
    fn direction_overrides_and_isolates_are_escaped() {
        // U+202A-U+202E: LRE, RLE, PDF, LRO, RLO; U+2066-U+2069: LRI, RLI, FSI, PDI.
        assert_escaped('\u{202a}'..='\u{202e}');
        assert_escaped('\u{2066}'..='\u{2069}');
        assert_escaped(['\u{200e}', '\u{200f}', '\u{61c}']); // LRM, RLM, ALM
        // "admin" written backwards behind an RLO would read "admin" on screen.
        assert_eq!(quoted("\u{202e}nimda".as_bytes(), 80), r#""\u{202e}nimda""#);
    }

    #[test]
    fn line_and_paragraph_separators_are_escaped() {
        assert_escaped(['\u{2028}', '\u{2029}']);
    }

    #[test]
    fn zero_width_characters_and_the_bom_are_escaped() {
        assert_escaped('\u{200b}'..='\u{200d}'); // ZWSP, ZWNJ, ZWJ
        assert_escaped(['\u{2060}', '\u{feff}']); // word joiner, BOM
    }

    #[test]
    fn other_format_characters_are_escaped() {
        // Soft hyphen, Mongolian vowel separator, interlinear annotation,
        // invisible times, and the tag characters (TAG LATIN SMALL LETTER A).
        assert_escaped(['\u{ad}', '\u{180e}', '\u{fff9}', '\u{2062}', '\u{e0001}']);
        assert_escaped('\u{e0020}'..='\u{e007f}');
    }

    #[test]
    fn letters_marks_and_symbols_of_any_script_stay() {
        // Combining marks (Thai vowel signs, a decomposed accent), CJK,
        // emoji and a no-break space are text, not controls.
        for text in [
            "\u{e2a}\u{e27}\u{e31}\u{e2a}\u{e14}\u{e35}",
            "e\u{301}",
            "\u{65e5}\u{672c}",
            "\u{1f600}",
            "a\u{a0}b",
        ] {
            assert_eq!(quoted(text.as_bytes(), 80), format!("\"{text}\""));
        }
    }

    #[test]
    fn long_input_is_cut() {
        assert_eq!(quoted(b"abcdef", 3), "\"abc\"...");
        assert_eq!(quoted(b"abc", 3), "\"abc\"");
        assert_eq!(quoted(b"", 3), "\"\"");
    }
}

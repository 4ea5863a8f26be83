//! Showing received bytes in a log line.
//!
//! A peer can send anything: the lab servers transform bytes, not text, and
//! only the log needs something printable. Valid UTF-8 is shown as it is;
//! control characters and bytes that are not UTF-8 are escaped (`\n`, `\xff`).

/// The bytes as one quoted, escaped line of at most `max` characters, with
/// `...` after the quote when it was cut short.
pub fn quoted(bytes: &[u8], max: usize) -> String {
    let mut out = String::from("\"");
    let mut shown = 0;
    for chunk in bytes.utf8_chunks() {
        let escaped_invalid = chunk.invalid().iter().map(|b| format!("\\x{b:02x}"));
        let escaped_valid = chunk.valid().chars().map(|c| match c {
            '"' => "\\\"".to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        });
        for piece in escaped_valid.chain(escaped_invalid) {
            if shown == max {
                return out + "\"...";
            }
            out.push_str(&piece);
            shown += 1;
        }
    }
    out + "\""
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

    #[test]
    fn long_input_is_cut() {
        assert_eq!(quoted(b"abcdef", 3), "\"abc\"...");
        assert_eq!(quoted(b"abc", 3), "\"abc\"");
        assert_eq!(quoted(b"", 3), "\"\"");
    }
}

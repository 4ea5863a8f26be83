//! The echo requests: each one names its client and its sequence number, so
//! a reply can only match the request it answers.

/// `loadgen 3 17 abcdefgh...`, padded with lowercase letters to `size`
/// bytes (never cut: the tag is always whole). Lowercase, so that the
/// uppercased reply differs from the request and a server that echoes
/// without uppercasing is caught.
pub fn message(client: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut message = format!("loadgen {client} {seq} ").into_bytes();
    let padding = (b'a'..=b'z').cycle();
    let missing = size.saturating_sub(message.len());
    message.extend(padding.take(missing));
    message
}

/// The reply a correct echo server sends: the request with a-z uppercased.
pub fn expected_reply(message: &[u8]) -> Vec<u8> {
    message.to_ascii_uppercase()
}

/// True if `reply` is this client's reply to an earlier request (`LOADGEN
/// 3 12 ...` while waiting for 17): over UDP, a reply that came after its
/// request timed out, not a wrong one.
pub fn is_earlier_reply(reply: &[u8], client: u32, seq: u64) -> bool {
    let mut words = reply.split(|&b| b == b' ');
    let number =
        |word: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(word?).ok()?.parse().ok() };
    words.next() == Some(b"LOADGEN")
        && number(words.next()) == Some(u64::from(client))
        && number(words.next()).is_some_and(|earlier| earlier < seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_padded_to_size_but_keep_their_tag() {
        assert_eq!(message(3, 17, 20), b"loadgen 3 17 abcdefg");
        assert_eq!(message(3, 17, 4), b"loadgen 3 17 ");
        assert_eq!(message(0, 1, 40).len(), 40);
    }

    #[test]
    fn earlier_replies_are_recognised_and_others_are_not() {
        let late = expected_reply(&message(3, 12, 32));
        assert!(is_earlier_reply(&late, 3, 17));
        assert!(!is_earlier_reply(&late, 3, 12), "the current request");
        assert!(!is_earlier_reply(&late, 4, 17), "another client's");
        assert!(
            !is_earlier_reply(&message(3, 12, 32), 3, 17),
            "not uppercased"
        );
        assert!(!is_earlier_reply(b"", 3, 17));
        assert!(!is_earlier_reply(b"LOADGEN x 1 ", 3, 17));
    }
}

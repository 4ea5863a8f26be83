//! Unit tests for `http`: every limit and error by name, split reads, the
//! request smuggling cases, chunked coding in both directions, URLs.

use crate::http::*;
use std::io::{self, BufReader, Cursor, ErrorKind, Read, Write};

/// A peer whose every `read()` returns one byte: the worst case of TCP
/// delivering a message in pieces.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&byte, rest)), Some(slot)) => {
                *slot = byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn one_byte_at_a_time(bytes: &[u8]) -> BufReader<OneByte<'_>> {
    BufReader::new(OneByte(bytes))
}

/// A peer that sends `bytes` and then resets the connection.
struct ThenReset<'a>(&'a [u8]);

impl Read for ThenReset<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::from(ErrorKind::ConnectionReset));
        }
        let n = self.0.read(buf)?;
        Ok(n)
    }
}

fn request(head: &str) -> RequestHead {
    RequestHead::parse(head.as_bytes()).expect("test head parses")
}

fn response(head: &str) -> ResponseHead {
    ResponseHead::parse(head.as_bytes()).expect("test head parses")
}

fn read_all<R: Read>(mut reader: R) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

fn rest_of<R: Read>(reader: R) -> Vec<u8> {
    read_all(reader).expect("in-memory read")
}

// --- Headers ----------------------------------------------------------------

#[test]
fn header_names_ignore_case_but_keep_their_spelling() {
    let mut headers = Headers::new();
    headers.append("Content-TYPE", "text/plain");
    headers.append("Via", "1.1 a");
    headers.append("via", "1.1 b");
    assert_eq!(headers.get("content-type"), Some(&b"text/plain"[..]));
    assert_eq!(headers.get_str("CONTENT-type"), Some("text/plain"));
    let vias: Vec<&[u8]> = headers.get_all("VIA").collect();
    assert_eq!(vias, [&b"1.1 a"[..], &b"1.1 b"[..]]);
    assert_eq!(
        headers.iter().next().map(|h| h.name.as_str()),
        Some("Content-TYPE")
    );
    assert!(headers.contains("VIA"));
    assert!(!headers.contains("Host"));
}

#[test]
fn remove_set_and_append() {
    let mut headers = Headers::new();
    headers.append("A", "1");
    headers.append("B", "2");
    headers.append("a", "3");
    assert_eq!(headers.remove("A"), 2);
    assert_eq!(headers.remove("A"), 0);
    headers.set("b", "4");
    assert_eq!(headers.len(), 1);
    assert_eq!(headers.get("B"), Some(&b"4"[..]));
    assert_eq!(headers.iter().next().map(|h| h.name.as_str()), Some("b"));
}

#[test]
fn non_utf8_values_are_kept_as_bytes() {
    let mut headers = Headers::new();
    headers.append("X-Bin", &b"caf\xe9"[..]);
    assert_eq!(headers.get("x-bin"), Some(&b"caf\xe9"[..]));
    assert_eq!(headers.get_str("x-bin"), None);
}

#[test]
fn list_tokens_across_fields_with_spaces_quotes_and_empty_elements() {
    let head = request(
        "GET / HTTP/1.1\r\n\
         Connection: keep-alive,  Upgrade\r\n\
         Cache-Control: no-cache, ,max-age=0\r\n\
         Cache-Control: private=\"a, b\"\r\n\
         Transfer-Encoding: gzip,\tCHUNKED\r\n\r\n",
    );
    let h = &head.headers;
    assert_eq!(
        h.list("connection").collect::<Vec<_>>(),
        ["keep-alive", "Upgrade"]
    );
    assert!(h.has_token("Connection", "upgrade"));
    assert!(!h.has_token("Connection", "close"));
    assert_eq!(
        h.list("Cache-Control").collect::<Vec<_>>(),
        ["no-cache", "max-age=0", "private=\"a, b\""]
    );
    assert!(h.has_token("cache-control", "max-age=0"));
    assert!(!h.has_token("Cache-Control", "b\""));
    assert!(h.has_token("Transfer-Encoding", "chunked"));
    assert!(!h.has_token("Host", "x"));
}

#[test]
fn a_list_element_that_is_not_utf8_still_counts() {
    let mut headers = Headers::new();
    headers.append("Transfer-Encoding", &b"chunked, \xff"[..]);
    assert_eq!(
        headers.list("Transfer-Encoding").collect::<Vec<_>>(),
        ["chunked", "\u{fffd}"]
    );
}

// --- Reading heads ------------------------------------------------------------

const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: lab\r\n\r\n";

#[test]
fn a_head_is_read_up_to_the_empty_line_and_the_body_stays_in_the_reader() {
    let mut input = b"POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET".as_slice();
    let head = read_head(&mut input).expect("head");
    assert_eq!(head, b"POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(input, b"helloGET");
}

#[test]
fn a_head_arriving_one_byte_per_read_is_read_whole() {
    let mut input = GET.to_vec();
    input.extend_from_slice(b"body");
    let mut reader = one_byte_at_a_time(&input);
    let head = RequestHead::read_from(&mut reader).expect("head");
    assert_eq!(head.target, "/index.html");
    assert_eq!(head.headers.get_str("user-agent"), Some("lab"));
    assert_eq!(rest_of(reader), b"body");
}

#[test]
fn a_response_head_arriving_one_byte_per_read_is_read_whole() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let mut reader = one_byte_at_a_time(input);
    let head = ResponseHead::read_from(&mut reader).expect("head");
    assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
    assert_eq!(rest_of(reader), b"hi");
}

#[test]
fn pipelined_requests_are_read_one_after_the_other() {
    let mut input = GET.to_vec();
    input.extend_from_slice(b"HEAD /two HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let mut reader = one_byte_at_a_time(&input);
    let first = RequestHead::read_from(&mut reader).expect("first");
    let second = RequestHead::read_from(&mut reader).expect("second");
    assert_eq!(
        (first.method.as_str(), second.method.as_str()),
        ("GET", "HEAD")
    );
    assert_eq!(second.target, "/two");
    assert!(matches!(
        RequestHead::read_from(&mut reader),
        Err(HeadError::Closed)
    ));
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let input = b"GET / HTTP/1.1\nHost: a\n\nrest";
    let mut reader = one_byte_at_a_time(input);
    let head = RequestHead::read_from(&mut reader).expect("head");
    assert_eq!(head.headers.get_str("host"), Some("a"));
    assert_eq!(rest_of(reader), b"rest");
}

#[test]
fn empty_lines_before_a_request_line_are_skipped() {
    let input = b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut reader = one_byte_at_a_time(input);
    let head = RequestHead::read_from(&mut reader).expect("head");
    assert_eq!(head.method, "GET");
}

#[test]
fn eof_before_any_byte_is_closed_and_not_an_error_to_answer() {
    let err = read_head(&mut b"".as_slice()).expect_err("nothing to read");
    assert!(matches!(err, HeadError::Closed));
    assert_eq!(err.status(), None);
    // A kept-alive client that sent a stray CRLF and left is also just gone.
    assert!(matches!(
        read_head(&mut b"\r\n".as_slice()),
        Err(HeadError::Closed)
    ));
}

#[test]
fn eof_in_the_middle_of_a_head_is_truncated() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n";
    let err = read_head(&mut one_byte_at_a_time(input)).expect_err("cut off");
    assert!(
        matches!(err, HeadError::Truncated { received: 25 }),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(400));
    // Cut inside the final CRLF CRLF.
    let err = read_head(&mut b"GET / HTTP/1.1\r\n\r".as_slice()).expect_err("cut off");
    assert!(matches!(err, HeadError::Truncated { .. }), "{err:?}");
}

#[test]
fn a_read_error_is_passed_on_with_its_kind() {
    let err = read_head(&mut BufReader::new(ThenReset(b"GET / HT"))).expect_err("reset");
    match &err {
        HeadError::Io(io_err) => assert_eq!(io_err.kind(), ErrorKind::ConnectionReset),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(err.status(), None);
    let source = std::error::Error::source(&err).expect("the OS error is the source");
    assert!(source.downcast_ref::<io::Error>().is_some());
}

/// A request head of exactly `size` bytes: one long field fills it up.
fn head_of_size(size: usize) -> Vec<u8> {
    let start = b"GET / HTTP/1.1\r\nX-Fill: ";
    let end = b"\r\n\r\n";
    let mut head = start.to_vec();
    head.resize(size - end.len(), b'a');
    head.extend_from_slice(end);
    head
}

#[test]
fn a_head_of_exactly_64_kib_is_accepted_and_one_byte_more_is_too_large() {
    let head = head_of_size(MAX_HEAD_BYTES);
    assert_eq!(read_head(&mut head.as_slice()).expect("at the limit"), head);

    let head = head_of_size(MAX_HEAD_BYTES + 1);
    let err = read_head(&mut head.as_slice()).expect_err("over the limit");
    assert!(matches!(err, HeadError::TooLarge), "{err:?}");
    assert_eq!(err.status(), Some(431));
}

#[test]
fn an_endless_line_is_too_large_without_reading_it_all() {
    let mut endless = BufReader::new(io::repeat(b'a'));
    assert!(matches!(read_head(&mut endless), Err(HeadError::TooLarge)));
    let mut endless_fields = BufReader::new(
        io::repeat(b'a')
            .take(10)
            .chain(Cursor::new(b"X: y\r\n".repeat(20_000))),
    );
    assert!(matches!(
        read_head(&mut endless_fields),
        Err(HeadError::TooLarge)
    ));
}

#[test]
fn endless_empty_lines_are_too_large() {
    let mut endless = BufReader::new(Cursor::new(b"\r\n".repeat(MAX_HEAD_BYTES)));
    assert!(matches!(read_head(&mut endless), Err(HeadError::TooLarge)));
}

fn head_with_fields(count: usize) -> String {
    let mut head = String::from("GET / HTTP/1.1\r\n");
    for i in 0..count {
        head.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    head + "\r\n"
}

#[test]
fn one_hundred_fields_are_accepted_and_101_are_too_many() {
    assert_eq!(
        request(&head_with_fields(MAX_HEADERS)).headers.len(),
        MAX_HEADERS
    );
    let err =
        RequestHead::parse(head_with_fields(MAX_HEADERS + 1).as_bytes()).expect_err("too many");
    assert!(matches!(err, HeadError::TooManyHeaders), "{err:?}");
    assert_eq!(err.status(), Some(431));
    let trailers = format!("0\r\n{}", &head_with_fields(MAX_HEADERS + 1)[16..]);
    let err = read_all(ChunkedReader::new(trailers.as_bytes())).expect_err("too many trailers");
    assert_eq!(err.kind(), ErrorKind::InvalidData);
}

#[test]
fn malformed_heads_name_the_bad_part_and_never_echo_it() {
    let cases: &[(&str, &[u8])] = &[
        ("HTTP/2.0 version", b"GET / HTTP/2.0\r\n\r\n"),
        ("space in the target", b"GET /a b HTTP/1.1\r\n\r\n"),
        ("no version", b"GET /\r\n\r\n"),
        (
            "space before the colon",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        ),
        ("no colon", b"GET / HTTP/1.1\r\nHostx\r\n\r\n"),
        (
            "obs-fold continuation line",
            b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        ),
        (
            "control byte in a value",
            b"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n",
        ),
        (
            "binary garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n",
        ),
        (
            "TLS ClientHello to a plain port",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n",
        ),
    ];
    for (name, input) in cases {
        let err = RequestHead::read_from(&mut &input[..]).expect_err(name);
        assert!(matches!(err, HeadError::Malformed(_)), "{name}: {err:?}");
        assert_eq!(err.status(), Some(400), "{name}");
        let text = err.to_string();
        assert!(
            text.starts_with("malformed message head: "),
            "{name}: {text}"
        );
        assert!(
            !text.contains("HTTP/2") && !text.contains("Host"),
            "{name}: {text}"
        );
    }
    for (name, input) in [
        ("status not a number", "HTTP/1.1 abc OK\r\n\r\n"),
        ("status too long", "HTTP/1.1 2000 OK\r\n\r\n"),
        ("not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n"),
    ] {
        let err = ResponseHead::parse(input.as_bytes()).expect_err(name);
        assert!(matches!(err, HeadError::Malformed(_)), "{name}: {err:?}");
    }
}

#[test]
fn head_errors_become_io_errors_of_the_right_kind() {
    let eof: io::Error = HeadError::Truncated { received: 3 }.into();
    assert_eq!(eof.kind(), ErrorKind::UnexpectedEof);
    let bad: io::Error = HeadError::TooLarge.into();
    assert_eq!(bad.kind(), ErrorKind::InvalidData);
}

// --- Parsing and writing heads ---------------------------------------------------

#[test]
fn a_request_head_is_parsed_into_its_parts() {
    let head = request("DELETE http://example.com/x?y=1 HTTP/1.0\r\nHost: example.com\r\n\r\n");
    assert_eq!(head.method, "DELETE");
    assert_eq!(head.target, "http://example.com/x?y=1");
    assert_eq!(head.version, Version::Http10);
    assert_eq!(head.headers.len(), 1);
}

#[test]
fn connect_and_asterisk_targets_parse() {
    let head = request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(
        (head.method.as_str(), head.target.as_str()),
        ("CONNECT", "example.com:443")
    );
    assert_eq!(head.body_length(), Ok(BodyLength::Empty));
    assert_eq!(request("OPTIONS * HTTP/1.1\r\n\r\n").target, "*");
}

#[test]
fn a_canonical_head_is_written_back_byte_exact() {
    let input = b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-MiXeD: caf\xe9 \"q\"\r\nAccept: */*\r\n\r\n";
    let head = RequestHead::parse(input).expect("parses");
    assert_eq!(head.headers.get("x-mixed"), Some(&b"caf\xe9 \"q\""[..]));
    assert_eq!(head.to_bytes(), input);

    let input = b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
    let head = ResponseHead::parse(input).expect("parses");
    assert_eq!(head.to_bytes(), input);
    let mut sent = Vec::new();
    head.write_to(&mut sent).expect("to memory");
    assert_eq!(sent, input);
}

#[test]
fn heads_built_in_code_are_written_in_wire_form() {
    let mut head = RequestHead::new("GET", "/");
    head.headers.append("Host", "example.com:8080");
    head.headers.append("User-Agent", "http_get/0.1");
    assert_eq!(
        head.to_bytes(),
        b"GET / HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: http_get/0.1\r\n\r\n"
    );
    let empty_reason = ResponseHead::new(204, "");
    assert_eq!(empty_reason.to_bytes(), b"HTTP/1.1 204 \r\n\r\n");
}

#[test]
fn whitespace_around_values_and_loose_heads_are_normalised_when_written() {
    let head = request("GET / HTTP/1.1\nHost:x  \nA:\t b\n\n");
    assert_eq!(head.headers.get("host"), Some(&b"x"[..]));
    assert_eq!(head.headers.get("a"), Some(&b"b"[..]));
    assert_eq!(
        head.to_bytes(),
        b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n"
    );
}

#[test]
fn a_response_without_reason_phrase_parses() {
    let head = response("HTTP/1.1 204 \r\n\r\n");
    assert_eq!((head.status, head.reason.as_str()), (204, ""));
    let head = ResponseHead::parse(b"HTTP/1.1 200 \xe9t\xe9 latin-1\r\n\r\n").expect("obs-text");
    assert_eq!(head.status, 200);
}

// --- Framing --------------------------------------------------------------------

fn request_framing(fields: &str) -> Result<BodyLength, FramingError> {
    request(&format!("POST / HTTP/1.1\r\n{fields}\r\n")).body_length()
}

fn response_framing(status_and_fields: &str, method: &str) -> Result<BodyLength, FramingError> {
    response(&format!("HTTP/1.1 {status_and_fields}\r\n")).body_length(method)
}

#[test]
fn request_bodies_are_framed_by_content_length_or_chunked_or_absent() {
    assert_eq!(request_framing(""), Ok(BodyLength::Empty));
    assert_eq!(
        request_framing("Content-Length: 0\r\n"),
        Ok(BodyLength::Empty)
    );
    assert_eq!(
        request_framing("Content-Length: 42\r\n"),
        Ok(BodyLength::Length(42))
    );
    assert_eq!(
        request_framing("content-length: 007\r\n"),
        Ok(BodyLength::Length(7))
    );
    assert_eq!(
        request_framing("Transfer-Encoding: chunked\r\n"),
        Ok(BodyLength::Chunked)
    );
    assert_eq!(
        request_framing("Transfer-Encoding: CHUNKED\r\n"),
        Ok(BodyLength::Chunked)
    );
    assert_eq!(
        request_framing("Transfer-Encoding: gzip, chunked\r\n"),
        Ok(BodyLength::Chunked)
    );
    assert_eq!(
        request_framing("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
        Ok(BodyLength::Chunked)
    );
    assert_eq!(
        request_framing("Content-Length: 18446744073709551615\r\n"),
        Ok(BodyLength::Length(u64::MAX))
    );
}

#[test]
fn repeated_identical_content_lengths_count_once() {
    assert_eq!(
        request_framing("Content-Length: 5, 5\r\n"),
        Ok(BodyLength::Length(5))
    );
    assert_eq!(
        request_framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
        Ok(BodyLength::Length(5))
    );
}

#[test]
fn smuggling_content_length_with_transfer_encoding_is_refused() {
    for fields in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
        "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
    ] {
        assert_eq!(
            request_framing(fields),
            Err(FramingError::LengthAndTransferEncoding),
            "{fields:?}"
        );
    }
    assert_eq!(
        response_framing(
            "200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "GET"
        ),
        Err(FramingError::LengthAndTransferEncoding)
    );
}

#[test]
fn smuggling_conflicting_content_lengths_are_refused() {
    for fields in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 0\r\nContent-Length: 10\r\n",
    ] {
        assert_eq!(
            request_framing(fields),
            Err(FramingError::ConflictingContentLength),
            "{fields:?}"
        );
    }
}

#[test]
fn invalid_content_lengths_are_refused() {
    for value in [
        "-5",
        "+5",
        "5a",
        "0x10",
        "1e3",
        "5 5",
        "5,",
        "",
        "18446744073709551616", // u64::MAX + 1
        "99999999999999999999999",
        "\u{0665}", // an Arabic-Indic digit five
    ] {
        assert_eq!(
            request_framing(&format!("Content-Length: {value}\r\n")),
            Err(FramingError::InvalidContentLength),
            "Content-Length: {value:?}"
        );
    }
}

#[test]
fn smuggling_transfer_encodings_that_do_not_end_in_chunked_are_refused() {
    for value in [
        "gzip",
        "chunked, gzip",
        "chunked;q=1",
        "xchunked",
        "chunked\u{fffd}",
        "",
    ] {
        assert_eq!(
            request_framing(&format!("Transfer-Encoding: {value}\r\n")),
            Err(FramingError::NotChunked),
            "Transfer-Encoding: {value:?}"
        );
    }
    for fields in [
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ] {
        assert_eq!(
            request_framing(fields),
            Err(FramingError::ChunkedTwice),
            "{fields:?}"
        );
    }
    let mut head = request("POST / HTTP/1.1\r\n\r\n");
    head.headers
        .append("Transfer-Encoding", &b"chunked, \xffgzip"[..]);
    assert_eq!(head.body_length(), Err(FramingError::NotChunked));
}

#[test]
fn transfer_encoding_in_http_1_0_is_refused() {
    let head = request("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        head.body_length(),
        Err(FramingError::TransferEncodingInHttp10)
    );
}

#[test]
fn response_bodies_follow_the_request_method_and_status() {
    use BodyLength::{Chunked, Empty, Length, UntilClose};
    assert_eq!(
        response_framing("200 OK\r\nContent-Length: 10\r\n", "HEAD"),
        Ok(Empty)
    );
    assert_eq!(response_framing("100 Continue\r\n", "POST"), Ok(Empty));
    assert_eq!(
        response_framing("101 Switching Protocols\r\n", "GET"),
        Ok(Empty)
    );
    assert_eq!(
        response_framing("204 No Content\r\nContent-Length: 3\r\n", "GET"),
        Ok(Empty)
    );
    assert_eq!(
        response_framing("304 Not Modified\r\nContent-Length: 99\r\n", "GET"),
        Ok(Empty)
    );
    assert_eq!(
        response_framing("200 Connection established\r\n", "CONNECT"),
        Ok(Empty)
    );
    assert_eq!(
        response_framing("200 OK\r\nTransfer-Encoding: chunked\r\n", "GET"),
        Ok(Chunked)
    );
    assert_eq!(
        response_framing("200 OK\r\nContent-Length: 10\r\n", "GET"),
        Ok(Length(10))
    );
    assert_eq!(
        response_framing("200 OK\r\nContent-Length: 0\r\n", "GET"),
        Ok(Empty)
    );
    assert_eq!(response_framing("200 OK\r\n", "GET"), Ok(UntilClose));
    assert_eq!(
        response_framing("407 Denied\r\n", "CONNECT"),
        Ok(UntilClose)
    );
    assert_eq!(
        response_framing("200 OK\r\nTransfer-Encoding: gzip\r\n", "GET"),
        Ok(UntilClose)
    );
    assert_eq!(
        response_framing("200 OK\r\nContent-Length: 1, 2\r\n", "GET"),
        Err(FramingError::ConflictingContentLength)
    );
}

#[test]
fn interim_responses_are_1xx_except_switching_protocols() {
    assert!(response("HTTP/1.1 100 Continue\r\n\r\n").is_interim());
    assert!(response("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n").is_interim());
    assert!(!response("HTTP/1.1 101 Switching Protocols\r\n\r\n").is_interim());
    assert!(!response("HTTP/1.1 200 OK\r\n\r\n").is_interim());
}

#[test]
fn keep_alive_follows_version_and_connection() {
    assert!(request("GET / HTTP/1.1\r\n\r\n").keep_alive());
    assert!(!request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    assert!(!request("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive());
    assert!(!request("GET / HTTP/1.0\r\n\r\n").keep_alive());
    assert!(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    assert!(!response("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keep_alive());
    assert!(response("HTTP/1.1 200 OK\r\n\r\n").keep_alive());
}

// --- Bodies ---------------------------------------------------------------------

#[test]
fn a_content_length_body_stops_at_its_length() {
    let mut input = b"helloNEXT".as_slice();
    let body = read_all(BodyReader::new(&mut input, BodyLength::Length(5))).expect("body");
    assert_eq!(body, b"hello");
    assert_eq!(input, b"NEXT");

    let mut reader = one_byte_at_a_time(b"helloNEXT");
    let body = read_all(BodyReader::new(&mut reader, BodyLength::Length(5))).expect("body");
    assert_eq!(body, b"hello");
    assert_eq!(rest_of(reader), b"NEXT");
}

#[test]
fn a_content_length_body_cut_short_is_unexpected_eof() {
    let err = read_all(LengthReader::new(b"hel".as_slice(), 5)).expect_err("short");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert!(err.to_string().contains("2 bytes before the end"), "{err}");
}

#[test]
fn no_body_reads_nothing_and_until_close_reads_everything() {
    let mut input = b"GET / HTTP/1.1\r\n\r\n".as_slice();
    assert_eq!(
        read_all(BodyReader::new(&mut input, BodyLength::Empty)).expect("empty"),
        b""
    );
    assert_eq!(input.len(), 18);
    let body = read_all(BodyReader::new(
        one_byte_at_a_time(b"all of it"),
        BodyLength::UntilClose,
    ));
    assert_eq!(body.expect("until close"), b"all of it");
}

fn dechunk(input: &[u8]) -> io::Result<Vec<u8>> {
    read_all(ChunkedReader::new(one_byte_at_a_time(input)))
}

#[test]
fn chunked_bodies_are_decoded_even_one_byte_per_read() {
    let input = b"5\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nNEXT";
    let mut reader = one_byte_at_a_time(input);
    let mut body = ChunkedReader::new(&mut reader);
    assert_eq!(rest_of(&mut body), b"helloabcdefghijklmnopqrstuvwxyz");
    assert!(body.is_done());
    assert!(body.trailers().is_empty());
    assert_eq!(rest_of(reader), b"NEXT");
}

#[test]
fn chunk_extensions_and_leading_zeros_are_accepted() {
    let input = b"0005;name=value\r\nhello\r\n3 ; a=\"b;c\" ;\td\r\nabc\r\n000;last\r\n\r\n";
    assert_eq!(dechunk(input).expect("decodes"), b"helloabc");
}

#[test]
fn bare_lf_and_bare_cr_in_chunk_lines_are_invalid_data() {
    for (name, input) in [
        ("bare LF after the size", &b"5\nhello\r\n0\r\n\r\n"[..]),
        ("bare LF after the data", b"5\r\nhello\n0\r\n\r\n"),
        ("bare LF after the last chunk", b"5\r\nhello\r\n0\n\r\n"),
        ("bare CR in an extension", b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
        ("NUL in an extension", b"5;a\0\r\nhello\r\n0\r\n\r\n"),
    ] {
        let err = dechunk(input).expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{name}: {err}");
    }
}

#[test]
fn chunked_trailers_are_read_and_kept() {
    let input = b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum: 42\n\r\nNEXT";
    let mut reader = one_byte_at_a_time(input);
    let mut body = ChunkedReader::new(&mut reader);
    assert_eq!(rest_of(&mut body), b"abc");
    assert_eq!(body.trailers().get_str("x-checksum"), Some("42"));
    assert_eq!(body.trailers().len(), 2);
    assert_eq!(rest_of(reader), b"NEXT");
}

#[test]
fn bad_chunk_sizes_are_invalid_data() {
    for (name, input) in [
        ("not hex", &b"xyz\r\n"[..]),
        ("hex then junk", b"1g\r\nx\r\n0\r\n\r\n"),
        ("empty size line", b"\r\nhello\r\n"),
        ("space before the size", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("negative", b"-5\r\nhello\r\n"),
        ("0x prefix", b"0x5\r\nhello\r\n"),
        ("17 hex digits overflow u64", b"10000000000000000\r\n"),
        ("size too big for u64", b"fffffffffffffffff\r\n"),
    ] {
        let err = dechunk(input).expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{name}: {err}");
    }
    let err = dechunk(b"10000000000000000\r\n").expect_err("overflow");
    assert!(err.to_string().contains("64 bits"), "{err}");
}

#[test]
fn a_chunk_size_line_over_the_limit_is_refused() {
    let mut line = b"5;".to_vec();
    line.resize(MAX_CHUNK_LINE + 1, b'x');
    line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let err = dechunk(&line).expect_err("too long");
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    // An endless line is refused without reading it all.
    let endless = BufReader::new(b"5;".chain(io::repeat(b'x')));
    let err = read_all(ChunkedReader::new(endless)).expect_err("endless");
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    // Exactly at the limit is fine.
    let mut line = b"5;".to_vec();
    line.resize(MAX_CHUNK_LINE, b'x');
    line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(dechunk(&line).expect("at the limit"), b"hello");
}

#[test]
fn chunk_data_without_its_crlf_is_invalid_data() {
    for (name, input) in [
        (
            "data longer than its size",
            &b"5\r\nhelloXX\r\n0\r\n\r\n"[..],
        ),
        ("CR without LF", b"5\r\nhello\rX0\r\n\r\n"),
    ] {
        let err = dechunk(input).expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{name}: {err}");
        assert!(err.to_string().contains("CRLF"), "{name}: {err}");
    }
}

#[test]
fn a_chunked_body_cut_short_is_unexpected_eof() {
    for (name, input) in [
        ("nothing at all", &b""[..]),
        ("inside the size line", b"5"),
        ("inside the data", b"5\r\nhel"),
        ("before the data's CRLF", b"5\r\nhello"),
        ("before the last chunk", b"5\r\nhello\r\n"),
        (
            "inside the trailers",
            b"5\r\nhello\r\n0\r\nExpires: never\r\n",
        ),
        ("before the final CRLF", b"0\r\n"),
    ] {
        let err = dechunk(input).expect_err(name);
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{name}: {err}");
    }
}

#[test]
fn the_chunked_writer_frames_each_write_as_a_chunk() {
    let mut out = Vec::new();
    let mut writer = ChunkedWriter::new(&mut out);
    writer.write_all(b"hello").expect("to memory");
    writer.write_chunk(b"").expect("empty is skipped");
    writer.write_chunk(&[b'x'; 26]).expect("to memory");
    writer.finish().expect("to memory");
    let mut expected = b"5\r\nhello\r\n1a\r\n".to_vec();
    expected.extend_from_slice(&[b'x'; 26]);
    expected.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, expected);
}

#[test]
fn chunked_writer_and_reader_round_trip_a_binary_body_with_trailers() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut wire = Vec::new();
    let mut writer = ChunkedWriter::new(&mut wire);
    io::copy(&mut body.as_slice(), &mut writer).expect("to memory");
    let mut trailers = Headers::new();
    trailers.append("X-Sum", "ok");
    writer.finish_with_trailers(&trailers).expect("to memory");

    let mut reader = one_byte_at_a_time(&wire);
    let mut decoded = ChunkedReader::new(&mut reader);
    assert_eq!(rest_of(&mut decoded), body);
    assert_eq!(decoded.trailers(), &trailers);
}

/// A peer whose bytes arrive in two reads, split at `at`.
struct SplitAt<'a> {
    first: &'a [u8],
    second: &'a [u8],
}

impl Read for SplitAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.first.is_empty() {
            false => self.first.read(buf),
            true => self.second.read(buf),
        }
    }
}

#[test]
fn a_message_split_into_two_reads_at_any_byte_reads_the_same() {
    let message = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    for at in 0..=message.len() {
        let (first, second) = message.split_at(at);
        let mut reader = BufReader::new(SplitAt { first, second });
        let head = RequestHead::read_from(&mut reader).expect("head");
        let length = head.body_length().expect("framing");
        assert_eq!(length, BodyLength::Chunked, "split at {at}");
        let body = read_all(BodyReader::new(&mut reader, length));
        assert_eq!(body.expect("body"), b"wikipedia", "split at {at}");
        let next = RequestHead::read_from(&mut reader).expect("the next request");
        assert_eq!(next.method, "GET", "split at {at}");
    }
}

/// Over real TCP on loopback: the sender writes a head and a chunked body in
/// pieces, pausing between them so they arrive in separate reads (the pause
/// paces the sender; nothing waits on it), then closes.
#[test]
fn a_message_written_in_pieces_over_tcp_is_read_whole() {
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?; // send each write in its own segment
        for piece in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Enc"[..],
            b"oding: chunked\r\n\r",
        ] {
            stream.write_all(piece)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        stream.write_all(b"\n")?;
        let mut body = ChunkedWriter::new(&mut stream);
        for piece in [&b"hello, "[..], b"world"] {
            body.write_all(piece)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        body.finish()?;
        Ok(())
    });
    let (stream, _) = listener.accept().expect("accept");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let mut reader = BufReader::new(stream);
    let head = ResponseHead::read_from(&mut reader).expect("head");
    let length = head.body_length("GET").expect("framing");
    let body = read_all(BodyReader::new(&mut reader, length)).expect("body");
    assert_eq!(body, b"hello, world");
    sender.join().expect("sender thread").expect("sender io");
    assert!(matches!(
        ResponseHead::read_from(&mut reader),
        Err(HeadError::Closed)
    ));
}

#[test]
fn a_read_timeout_in_the_middle_of_a_head_is_an_io_timeout() {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    client.write_all(b"GET / HTTP/1.1\r\nHost:").expect("send");
    let (stream, _) = listener.accept().expect("accept");
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .expect("set timeout");
    match RequestHead::read_from(&mut BufReader::new(stream)) {
        Err(HeadError::Io(err)) => assert!(socketlab::explain::is_timeout(&err), "{err:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

// --- URLs -----------------------------------------------------------------------

fn url(text: &str) -> HttpUrl {
    HttpUrl::parse(text).expect("test url parses")
}

#[test]
fn http_urls_are_split_into_host_port_and_path() {
    let u = url("http://example.com");
    assert_eq!(
        (u.host.as_str(), u.port, u.path_and_query.as_str()),
        ("example.com", 80, "/")
    );
    assert_eq!(u.authority(), "example.com");

    let u = url("HTTP://localhost:8000/a/b.html?x=1&y=2#top");
    assert_eq!((u.host.as_str(), u.port), ("localhost", 8000));
    assert_eq!(u.path_and_query, "/a/b.html?x=1&y=2");
    assert_eq!(u.authority(), "localhost:8000");
    assert_eq!(u.to_string(), "http://localhost:8000/a/b.html?x=1&y=2");

    assert_eq!(url("http://h?q").path_and_query, "/?q");
    assert_eq!(url("http://h:/x").port, 80);
    assert_eq!(url("http://h:80/x").authority(), "h");

    let u = url("http://[::1]:8080/v6");
    assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
    assert_eq!(u.authority(), "[::1]:8080");
    assert_eq!("http://[::1]".parse::<HttpUrl>().map(|u| u.port), Ok(80));
}

#[test]
fn bad_urls_say_what_is_wrong() {
    use UrlError::*;
    for (text, expected) in [
        ("https://example.com/", UnsupportedScheme("https".into())),
        ("ftp://example.com/", UnsupportedScheme("ftp".into())),
        ("example.com/index.html", NotAbsolute),
        ("/index.html", NotAbsolute),
        ("", NotAbsolute),
        ("http://", MissingHost),
        ("http:///path", MissingHost),
        ("http://:8080/", MissingHost),
        ("http://h:abc/", BadPort("abc".into())),
        ("http://h:65536/", BadPort("65536".into())),
        ("http://h:0/", BadPort("0".into())),
        ("http://h:+80/", BadPort("+80".into())),
        ("http://user:pw@h/", UserInfo),
        ("http://h/a b", BadCharacter),
        ("http://h/caf\u{e9}", BadCharacter),
        ("http://h/\r\nX: y", BadCharacter),
        ("http://a:b:80/", BadHost("a:b:80".into())),
        ("http://[::1/", BadHost("[::1".into())),
        ("http://[nope]/", BadHost("[nope]".into())),
        ("http://[::1]x/", BadHost("[::1]x".into())),
    ] {
        assert_eq!(HttpUrl::parse(text), Err(expected), "{text:?}");
    }
    assert_eq!(
        UrlError::UnsupportedScheme("https".into()).to_string(),
        "unsupported scheme 'https' (only http:// is supported)"
    );
}

#[test]
fn authorities_split_into_host_and_optional_port() {
    let split = |text: &str| parse_authority(text);
    assert_eq!(
        split("example.com:443"),
        Ok(("example.com".into(), Some(443)))
    );
    assert_eq!(split("example.com"), Ok(("example.com".into(), None)));
    assert_eq!(split("example.com:"), Ok(("example.com".into(), None)));
    assert_eq!(split("[::1]:8443"), Ok(("::1".into(), Some(8443))));
    assert_eq!(split("127.0.0.1:80"), Ok(("127.0.0.1".into(), Some(80))));
    assert_eq!(split("user@example.com:443"), Err(UrlError::UserInfo));
    assert_eq!(
        split("example.com:99999"),
        Err(UrlError::BadPort("99999".into()))
    );
    assert_eq!(split(":443"), Err(UrlError::MissingHost));
    assert_eq!(split("a/b:443"), Err(UrlError::BadHost("a/b:443".into())));
    assert_eq!(split("exa mple.com:443"), Err(UrlError::BadCharacter));
}

// --- Never panic on what a peer sends ------------------------------------------

/// A valid request with a chunked body, then the same bytes with random
/// damage (bytes changed, cut short, pieces repeated), read with random
/// read sizes: every outcome must be `Ok` or `Err`, never a panic or a hang.
#[test]
fn damaged_messages_give_errors_never_panics() {
    use socketlab::random::Rng;
    let valid = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
                  Content-Type: text/plain\r\n\r\n\
                  4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n";
    let alphabet = b"\r\n :;,0123456789abcdefABCDEF\"\\\t\x00\x7f\xff-GETPOSThttp/1.";
    let mut rng = Rng::seeded(9112);
    let (mut heads, mut bodies) = (0, 0);
    for _ in 0..5_000 {
        let mut message = valid.to_vec();
        for _ in 0..rng.in_range(1, 4) {
            let at = rng.in_range(0, message.len() as u64 - 1) as usize;
            match rng.in_range(0, 2) {
                0 => message[at] = alphabet[rng.in_range(0, alphabet.len() as u64 - 1) as usize],
                1 => message.truncate(at.max(1)),
                _ => {
                    let piece = message[at..].iter().take(8).copied().collect::<Vec<_>>();
                    message.splice(at..at, piece);
                }
            }
        }
        let mut reader = BufReader::with_capacity(
            rng.in_range(1, 64) as usize,
            OneByteOrMore(&message, rng.clone()),
        );
        let Ok(head) = RequestHead::read_from(&mut reader) else {
            continue;
        };
        heads += 1;
        let Ok(length) = head.body_length() else {
            continue;
        };
        let mut body = BodyReader::new(&mut reader, length);
        if read_all(&mut body).is_ok() {
            bodies += 1;
        }
    }
    // The damage left some messages readable, so both paths were exercised.
    assert!(
        heads > 100 && bodies > 100,
        "heads {heads}, bodies {bodies}"
    );
}

/// A peer whose reads return a random number of bytes (at least one).
struct OneByteOrMore<'a>(&'a [u8], socketlab::random::Rng);

impl Read for OneByteOrMore<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let most = buf.len().min(self.0.len());
        if most == 0 {
            return Ok(0);
        }
        let n = self.1.in_range(1, most as u64) as usize;
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

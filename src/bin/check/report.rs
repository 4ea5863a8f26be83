//! The report: one line per test, the bytes that differ with a caret under
//! the first, an `error:`/`hint:` pair per failure, a score, and `--json`.

use std::fmt::Write as _;

/// One test of a lab: a name a student can search for, its weight, and the
/// function that runs it.
pub struct Test {
    pub name: &'static str,
    pub points: u32,
    pub run: fn(&crate::Ctx) -> Outcome,
}

impl Test {
    pub const fn new(name: &'static str, points: u32, run: fn(&crate::Ctx) -> Outcome) -> Test {
        Test { name, points, run }
    }
}

/// What a test found: nothing wrong, or a [`Failure`].
pub type Outcome = Result<(), Failure>;

/// What went wrong: the `error:` text, the `hint:` text (what it means on
/// the wire), and, where the test compares bytes, what it expected and got.
#[derive(Debug)]
pub struct Failure {
    pub error: String,
    pub hint: String,
    pub expected: Option<Vec<u8>>,
    pub received: Option<Vec<u8>>,
}

impl Failure {
    pub fn new(error: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            hint: hint.into(),
            expected: None,
            received: None,
        }
    }

    /// A failure that shows `expected` and `received` with a caret.
    pub fn bytes(
        expected: &[u8],
        received: &[u8],
        error: impl Into<String>,
        hint: impl Into<String>,
    ) -> Failure {
        Failure {
            expected: Some(expected.to_vec()),
            received: Some(received.to_vec()),
            ..Failure::new(error, hint)
        }
    }

    /// Adds a sentence to the hint (what became of the server process).
    pub fn also(mut self, more: &str) -> Failure {
        self.hint = format!("{} ({more})", self.hint);
        self
    }
}

/// Fails unless `received` is `expected`, with `hint` saying why it matters.
pub fn same(what: &str, expected: &[u8], received: &[u8], hint: &str) -> Outcome {
    if expected == received {
        return Ok(());
    }
    Err(Failure::bytes(
        expected,
        received,
        format!(
            "{what}: expected {} bytes, received {}",
            expected.len(),
            received.len()
        ),
        hint,
    ))
}

/// A finished test, as the report shows it.
pub struct Done {
    pub name: &'static str,
    pub points: u32,
    pub failure: Option<Failure>,
}

/// The lines a test prints: `PASS name`, or `FAIL name` and its details.
pub fn lines(done: &Done) -> String {
    let Some(failure) = &done.failure else {
        return format!("PASS  {}\n", done.name);
    };
    let mut out = format!("FAIL  {}\n", done.name);
    if let (Some(expected), Some(received)) = (&failure.expected, &failure.received) {
        for line in diff(expected, received) {
            let _ = writeln!(out, "      {line}");
        }
    }
    let _ = writeln!(out, "      error: {}", failure.error);
    let _ = writeln!(out, "      hint: {}", failure.hint);
    out
}

/// The score line: tests passed, and points when the lab weights its tests.
pub fn score(done: &[Done]) -> String {
    let passed = done.iter().filter(|d| d.failure.is_none()).count();
    let (points, max) = points(done);
    if done.iter().all(|d| d.points == 1) {
        format!("score: {passed}/{} tests passed", done.len())
    } else {
        format!(
            "score: {passed}/{} tests passed, {points}/{max} points",
            done.len()
        )
    }
}

fn points(done: &[Done]) -> (u32, u32) {
    let got = done
        .iter()
        .filter(|d| d.failure.is_none())
        .map(|d| d.points)
        .sum();
    (got, done.iter().map(|d| d.points).sum())
}

/// How many bytes of context the caret line shows before the difference.
const BEFORE: usize = 24;
/// How many bytes a shown window holds at most.
const WINDOW: usize = 64;

/// Three lines: the expected bytes, the received bytes (both escaped, from
/// a little before the first difference), and a caret under that byte.
pub fn diff(expected: &[u8], received: &[u8]) -> Vec<String> {
    let at = first_difference(expected, received);
    let start = at.saturating_sub(BEFORE);
    let show = |bytes: &[u8]| {
        let end = bytes.len().min(start + WINDOW);
        let mut text = if start > 0 {
            "...".to_string()
        } else {
            String::new()
        };
        text.push('"');
        text.extend(
            bytes
                .get(start..end)
                .unwrap_or(&[])
                .iter()
                .map(|&b| escape(b)),
        );
        text.push('"');
        if end < bytes.len() {
            text.push_str("...");
        }
        format!("{text} ({} bytes)", bytes.len())
    };
    // The caret goes under the byte at `at`: the same escaped prefix is in front of it on both lines.
    let lead = "received: ".len() + if start > 0 { 3 } else { 0 } + 1;
    let column: usize = lead
        + expected[start..at.min(expected.len())]
            .iter()
            .map(|&b| escape(b).len())
            .sum::<usize>();
    vec![
        format!("expected: {}", show(expected)),
        format!("received: {}", show(received)),
        format!("{}^ first difference at byte {at}", " ".repeat(column)),
    ]
}

/// The index of the first byte that differs (or the shorter length).
pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// One byte as the report shows it: printable ASCII as itself, the rest escaped.
fn escape(b: u8) -> String {
    match b {
        b'\n' => "\\n".into(),
        b'\r' => "\\r".into(),
        b'\t' => "\\t".into(),
        b'"' => "\\\"".into(),
        b'\\' => "\\\\".into(),
        0x20..=0x7e => char::from(b).to_string(),
        _ => format!("\\x{b:02x}"),
    }
}

/// What `--json` records besides the tests.
pub struct RunInfo<'a> {
    pub lab: &'a str,
    pub seed: u64,
    pub target: String,
    pub timeout_ms: u128,
}

/// The machine-readable report. Written by hand (a dozen fields need no
/// serializer); [`json_string`] escapes every string as RFC 8259 §7 says.
pub fn json(info: &RunInfo, done: &[Done]) -> String {
    let passed = done.iter().filter(|d| d.failure.is_none()).count();
    let (points, max) = points(done);
    let tests: Vec<String> = done
        .iter()
        .map(|d| {
            let detail = match &d.failure {
                None => String::new(),
                Some(f) => {
                    let mut text = String::new();
                    if let (Some(e), Some(r)) = (&f.expected, &f.received) {
                        text = diff(e, r).join("\n") + "\n";
                    }
                    format!("{text}error: {}\nhint: {}", f.error, f.hint)
                }
            };
            format!(
                "{{\"name\":{},\"result\":\"{}\",\"points\":{},\"max_points\":{},\"detail\":{}}}",
                json_string(d.name),
                if d.failure.is_none() { "pass" } else { "fail" },
                if d.failure.is_none() { d.points } else { 0 },
                d.points,
                json_string(&detail)
            )
        })
        .collect();
    format!(
        "{{\"lab\":{},\"target\":{},\"seed\":{},\"timeout_ms\":{},\
         \"score\":{{\"passed\":{passed},\"total\":{},\"points\":{points},\"max_points\":{max}}},\
         \"versions\":{{\"check\":{}}},\
         \"environment\":{{\"os\":{},\"arch\":{},\"family\":{}}},\
         \"tests\":[{}]}}\n",
        json_string(info.lab),
        json_string(&info.target),
        info.seed,
        info.timeout_ms,
        done.len(),
        json_string(env!("CARGO_PKG_VERSION")),
        json_string(std::env::consts::OS),
        json_string(std::env::consts::ARCH),
        json_string(std::env::consts::FAMILY),
        tests.join(",")
    )
}

/// The report of a run that could not test at all (the program never
/// started listening, say): every test counts as failed, and `error` and
/// `hint` say why, so a grading loop still gets a file per submission.
pub fn json_error(lab: &str, tests: &[Test], error: &str, hint: &str) -> String {
    let max: u32 = tests.iter().map(|t| t.points).sum();
    format!(
        "{{\"lab\":{},\"error\":{},\"hint\":{},\
         \"score\":{{\"passed\":0,\"total\":{},\"points\":0,\"max_points\":{max}}},\
         \"versions\":{{\"check\":{}}},\
         \"environment\":{{\"os\":{},\"arch\":{},\"family\":{}}},\"tests\":[]}}\n",
        json_string(lab),
        json_string(error),
        json_string(hint),
        tests.len(),
        json_string(env!("CARGO_PKG_VERSION")),
        json_string(std::env::consts::OS),
        json_string(std::env::consts::ARCH),
        json_string(std::env::consts::FAMILY),
    )
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
pub fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_sits_under_the_first_difference() {
        let lines = diff(b"HELLO\r\nWORLD", b"HELLO\nWORLD");
        let caret = lines[2].find('^').expect("a caret");
        assert_eq!(&lines[0][caret..caret + 2], "\\r");
        assert_eq!(&lines[1][caret..caret + 2], "\\n");
        assert!(lines[2].ends_with("byte 5"));
    }

    #[test]
    fn a_long_prefix_is_cut_and_the_caret_still_fits() {
        let a = vec![b'A'; 3000];
        let lines = diff(&a, &a[..1024]);
        assert!(lines[2].contains("byte 1024"));
        assert!(lines[1].contains("(1024 bytes)"));
        let caret = lines[2].find('^').expect("a caret");
        assert_eq!(lines[0].as_bytes()[caret], b'A');
        assert_eq!(lines[1].as_bytes()[caret], b'"');
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}

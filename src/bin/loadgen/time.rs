//! `--target time`: sessions of the time service (labs/time-protocol.md).
//!
//! Each client opens a session (connect, Diffie-Hellman key exchange) and
//! asks TIME again and again; every answer must read `HH:MM:SS.mmm`.
//! time_server serves as many sessions at once as it has workers: a client
//! beyond them waits in the listen backlog, its key exchange unanswered,
//! until a session ends. That wait is queueing, not failure, so it has no
//! timeout short of the end of the run. `--session-requests` makes clients
//! leave and reconnect, so that all of them get a turn.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

use socketlab::explain::is_timeout;
use socketlab::printable::quoted;
use socketlab::random::Rng;
use socketlab::time_service::{
    FrameError, Hello, KeyPair, Request, caesar_key, read_frame, read_line, write_frame,
};

use crate::Run;
use crate::tally::{Outcome, Tally};

/// An open session: the connection and the agreed Caesar key.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    key: u8,
}

/// One client: sessions until the run ends.
pub fn client(run: &Run, tally: &mut Tally) {
    let mut rng = Rng::from_entropy();
    while Instant::now() < run.deadline {
        let mut session = match open(run, &mut rng) {
            Ok(Some(session)) => session,
            // Still waiting for a worker when the run ended.
            Ok(None) => return,
            Err(outcome) => {
                tally.record(outcome);
                continue;
            }
        };
        let mut asked = 0;
        loop {
            if !run.next_request() {
                return;
            }
            let outcome = ask_time(&mut session);
            let answered = matches!(outcome, Outcome::Answered(_));
            tally.record(outcome);
            asked += 1;
            if !answered || asked == run.session_requests {
                break; // dropping the session closes it: the server sees our FIN
            }
        }
    }
}

/// Connects and agrees on a key. `Ok(None)`: the run ended while this
/// client waited in the backlog for a free worker.
fn open(run: &Run, rng: &mut Rng) -> Result<Option<Session>, Outcome> {
    let failed =
        |what: &str, err: &dyn std::fmt::Display| Outcome::Failed(format!("{what}: {err}"));
    let stream = TcpStream::connect_timeout(&run.server, run.timeout).map_err(|err| {
        if is_timeout(&err) {
            Outcome::Lost
        } else {
            failed("connect failed", &err)
        }
    })?;
    let mut writer = stream
        .try_clone()
        .map_err(|err| failed("failed to duplicate the socket", &err))?;
    // The key exchange may wait for a worker until the run is over (plus
    // one --timeout, so a session that starts at the deadline can finish it).
    let wait = run.deadline.saturating_duration_since(Instant::now()) + run.timeout;
    stream
        .set_read_timeout(Some(wait))
        .map_err(|err| failed("failed to set the receive timeout", &err))?;
    let mut reader = BufReader::new(stream);
    loop {
        let pair = KeyPair::generate(rng);
        writer
            .write_all(format!("{}\n", Hello::Key(pair.public)).as_bytes())
            .map_err(|err| failed("key exchange: send failed", &err))?;
        let line = match read_line(&mut reader) {
            Ok(Some(line)) => line,
            Ok(None) => {
                return Err(Outcome::Failed(
                    "the server closed the connection during the key exchange".to_string(),
                ));
            }
            Err(err) if is_timeout(&err) => return Ok(None),
            Err(err) => return Err(failed("key exchange: receive failed", &err)),
        };
        let server_public = match Hello::parse(&line) {
            Ok(Hello::Key(public)) => public,
            Ok(Hello::Plain) => {
                return Err(Outcome::Failed(
                    "the server answered the key exchange with PLAIN: it runs --plain".to_string(),
                ));
            }
            Err(why) => return Err(failed("key exchange", &why)),
        };
        let key = caesar_key(pair.shared_secret(server_public));
        // Key 0 would shift nothing: both sides exchange again (labs/time-protocol.md).
        if key != 0 {
            reader
                .get_ref()
                .set_read_timeout(Some(run.timeout))
                .map_err(|err| failed("failed to set the receive timeout", &err))?;
            return Ok(Some(Session {
                reader,
                writer,
                key,
            }));
        }
    }
}

/// One TIME request and its answer.
fn ask_time(session: &mut Session) -> Outcome {
    let started = Instant::now();
    let request = Request::Time.as_str().as_bytes();
    if let Err(err) = write_frame(&mut session.writer, session.key, request) {
        return Outcome::Failed(format!("TIME: send failed: {err}"));
    }
    match read_frame(&mut session.reader, session.key) {
        Ok(Some(answer)) if is_time_of_day(&answer) => Outcome::Answered(started.elapsed()),
        Ok(Some(answer)) => Outcome::Failed(format!(
            "TIME: the answer {} is not HH:MM:SS.mmm",
            quoted(&answer, 40)
        )),
        Ok(None) => Outcome::Failed("TIME: the server closed the session".to_string()),
        Err(FrameError::Io(err)) if is_timeout(&err) => Outcome::Lost,
        Err(err) => Outcome::Failed(format!("TIME: {err}")),
    }
}

/// `14:02:19.198`: the form of every TIME answer.
fn is_time_of_day(answer: &[u8]) -> bool {
    const FORM: &[u8; 12] = b"00:00:00.000";
    answer.len() == FORM.len()
        && answer.iter().zip(FORM).all(|(&got, &form)| match form {
            b'0' => got.is_ascii_digit(),
            separator => got == separator,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_answers_must_read_hh_mm_ss_mmm() {
        assert!(is_time_of_day(b"14:02:19.198"));
        for bad in [
            &b"14:02:19"[..],
            b"14:02:19.1980",
            b"ERROR unknown",
            b"1a:02:19.198",
            b"",
        ] {
            assert!(!is_time_of_day(bad), "{bad:?}");
        }
    }
}

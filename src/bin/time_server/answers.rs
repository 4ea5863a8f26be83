//! What time_server answers: TIME and DATE from the system clock (or the
//! instant pinned by `SOCKETLAB_NOW`), TEMP from a thermal sensor (or a
//! simulated day). Nothing here touches a socket.

use std::f64::consts::TAU;
use std::time::{SystemTime, UNIX_EPOCH};

use socketlab::explain;
use socketlab::printable;
use socketlab::time_service::Request;

/// The answer to one request payload.
pub fn answer(request: &[u8], now: SystemTime) -> String {
    // "2026-11-21T14:02:19.198Z": RFC 3339 in UTC, split at the 'T'.
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    let (date, time) = stamp.split_once('T').unwrap_or((&stamp, ""));
    match Request::parse(request) {
        Some(Request::Time) => time.trim_end_matches('Z').to_string(),
        Some(Request::Date) => date.to_string(),
        Some(Request::Temp) => temperature(now),
        None => format!(
            "ERROR unknown request {}: ask TIME, DATE or TEMP",
            printable::quoted(request, 40)
        ),
    }
}

/// Where TIME and DATE come from: the system clock, or the instant in
/// `SOCKETLAB_NOW` (for reproducible worksheets and tests).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Pinned(SystemTime),
}

impl Clock {
    pub fn from_env() -> anyhow::Result<Clock> {
        let Some(text) = std::env::var_os("SOCKETLAB_NOW") else {
            return Ok(Clock::System);
        };
        let text = text.to_string_lossy();
        humantime::parse_rfc3339_weak(&text)
            .map(Clock::Pinned)
            .map_err(|err| {
                explain::hinted(
                    format!("invalid SOCKETLAB_NOW '{text}': {err}"),
                    "give an RFC 3339 time in UTC such as 2026-11-21T14:02:19.198Z, \
                     or `unset SOCKETLAB_NOW` for the real clock",
                )
            })
    }

    pub fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Pinned(at) => *at,
        }
    }
}

/// The temperature from the first thermal sensor, or a simulated one.
fn temperature(now: SystemTime) -> String {
    match read_sensor() {
        Some((zone, celsius)) => format!("{celsius:.1} \u{b0}C (sensor {zone})"),
        None => format!("{:.1} \u{b0}C (simulated)", simulated_celsius(now)),
    }
}

/// Linux exposes each thermal sensor as
/// `/sys/class/thermal/thermal_zoneN/temp`, in millidegrees Celsius. VMs
/// and containers usually have none.
fn read_sensor() -> Option<(String, f64)> {
    let mut zones: Vec<_> = std::fs::read_dir("/sys/class/thermal")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("thermal_zone"))
        .collect();
    zones.sort();
    zones.into_iter().find_map(|zone| {
        let text = std::fs::read_to_string(format!("/sys/class/thermal/{zone}/temp")).ok()?;
        let millidegrees: f64 = text.trim().parse().ok()?;
        Some((zone, millidegrees / 1000.0))
    })
}

/// A day's weather without a sensor: 4 °C at 03:00 UTC, 20 °C at 15:00,
/// so a pinned clock pins it too.
fn simulated_celsius(now: SystemTime) -> f64 {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let hour = (seconds % 86_400) as f64 / 3600.0;
    12.0 + 8.0 * ((hour - 9.0) / 24.0 * TAU).sin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339_weak(text).expect("test time")
    }

    #[test]
    fn answers_for_a_pinned_instant() {
        let now = at("2026-11-21T14:02:19.198Z");
        assert_eq!(answer(b"TIME", now), "14:02:19.198");
        assert_eq!(answer(b"DATE", now), "2026-11-21");
        assert_eq!(
            answer(b"HELLO", now),
            "ERROR unknown request \"HELLO\": ask TIME, DATE or TEMP"
        );
        assert_eq!(
            answer(b"\xff\n", now),
            "ERROR unknown request \"\\xff\\n\": ask TIME, DATE or TEMP"
        );
    }

    #[test]
    fn the_simulated_day_is_coldest_at_three_and_warmest_at_fifteen() {
        let celsius = |t: &str| (simulated_celsius(at(t)) * 10.0).round() / 10.0;
        assert_eq!(celsius("2026-11-21T03:00:00Z"), 4.0);
        assert_eq!(celsius("2026-11-21T15:00:00Z"), 20.0);
        assert_eq!(celsius("2026-11-21T09:00:00Z"), 12.0);
    }
}

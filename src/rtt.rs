//! Round-trip times and their statistics, computed the way iputils `ping` does.
//! Used by udp_client, time_client and icmp_ping ([`Stats`]), and [`ms`] by
//! tcp_client, http_get, heartbeat_server and loadgen.
//!
//! `ping` keeps every RTT in whole microseconds and sums them and their
//! squares in integers; its `mdev` is the integer square root of
//! `sum(t^2)/n - (sum(t)/n)^2`, the standard deviation, not a mean deviation.
//! [`Stats::ping_summary`] prints the same three lines:
//!
//! ```text
//! --- 127.0.0.1:12000 ping statistics ---
//! 10 packets transmitted, 7 received, 30% packet loss, time 9012ms
//! rtt min/avg/max/mdev = 0.061/0.089/0.120/0.020 ms
//! ```

use std::time::Duration;

/// Counts of requests sent and replies received, and every RTT measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    transmitted: u64,
    errors: u64,
    rtts_us: Vec<u128>,
}

impl Stats {
    pub fn sent(&mut self) {
        self.transmitted += 1;
    }

    pub fn received(&mut self, rtt: Duration) {
        self.rtts_us.push(rtt.as_micros());
    }

    /// Counts a request answered by an error (such as an ICMP port unreachable).
    pub fn error(&mut self) {
        self.errors += 1;
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn received_count(&self) -> u64 {
        self.rtts_us.len() as u64
    }

    /// ping's min, avg (`tsum / n`, truncated), max and mdev in whole µs; None without replies.
    fn min_avg_max_mdev(&self) -> Option<[u128; 4]> {
        let rtts = || self.rtts_us.iter().copied();
        let (min, max) = (rtts().min()?, rtts().max()?);
        let n = rtts().len() as u128;
        let (sum, sum_sq) = (rtts().sum::<u128>(), rtts().map(|us| us * us).sum::<u128>());
        // ping divides in this order to keep small RTTs from rounding to 0.
        let variance = (sum_sq - sum * sum / n) / n;
        Some([min, sum / n, max, integer_sqrt(variance)])
    }

    /// The three closing lines of iputils `ping`, for `target`, after `elapsed`.
    pub fn ping_summary(&self, target: &str, elapsed: Duration) -> String {
        let errors = match self.errors {
            0 => String::new(),
            n => format!(", +{n} errors"),
        };
        // ping's loss, a C float (f32); max(1): nothing sent, nothing lost, no division by zero.
        let lost = self.transmitted.saturating_sub(self.received_count());
        let loss = (lost as f64 * 100.0 / self.transmitted.max(1) as f64) as f32;
        let mut out = format!(
            "--- {target} ping statistics ---\n\
             {} packets transmitted, {} received{errors}, {}% packet loss, time {}ms",
            self.transmitted,
            self.received_count(),
            format_g(f64::from(loss)),
            (elapsed.as_micros() + 500) / 1000
        );
        if let Some(rtts) = self.min_avg_max_mdev() {
            let [min, avg, max, mdev] = rtts.map(millis);
            out += &format!("\nrtt min/avg/max/mdev = {min}/{avg}/{max}/{mdev} ms");
        }
        out
    }
}

/// A duration in milliseconds with microsecond digits and its unit: `0.123 ms`.
pub fn ms(d: Duration) -> String {
    format!("{} ms", millis(d.as_micros()))
}

/// Whole microseconds printed as milliseconds, ping's `%ld.%03ld`.
fn millis(us: u128) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// C's `%g`: six significant digits, trailing zeros removed (`30`, `33.3333`).
fn format_g(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    let exponent = x.abs().log10().floor() as i32;
    let decimals = (5 - exponent).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Newton's method on integers, step for step as ping's `llsqrt` (so it
/// returns n, not n - 1, for n*n - 1).
fn integer_sqrt(a: u128) -> u128 {
    if a == 0 {
        return 0;
    }
    let (mut x, mut prev) = (a, u128::MAX);
    while x < prev {
        prev = x;
        x = (x + a / x) / 2;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(sent: u64, rtts_us: &[u64]) -> Stats {
        let mut s = Stats::default();
        (0..sent).for_each(|_| s.sent());
        rtts_us
            .iter()
            .for_each(|&us| s.received(Duration::from_micros(us)));
        s
    }

    #[test]
    fn summary_matches_ping_to_the_digit() {
        // 10 sent, 7 replies; sum 623 us, sum of squares 57_951 us^2:
        // avg 623/7 = 89, variance (57951 - 623*623/7)/7 = (57951 - 55447)/7 = 357,
        // mdev = isqrt(357) = 18.
        let s = stats(10, &[61, 70, 80, 89, 100, 103, 120]);
        assert_eq!(
            s.ping_summary("127.0.0.1:12000", Duration::from_micros(9_011_600)),
            "--- 127.0.0.1:12000 ping statistics ---\n\
             10 packets transmitted, 7 received, 30% packet loss, time 9012ms\n\
             rtt min/avg/max/mdev = 0.061/0.089/0.120/0.018 ms"
        );
    }

    #[test]
    fn loss_is_printed_like_printf_g() {
        // 23 of 31 lost: 74.1935 in f64, but ping computes in a C float and prints 74.1936.
        let cases = [
            (3, 1, "66.6667"),
            (3, 3, "0"),
            (4, 0, "100"),
            (11, 7, "36.3636"),
            (31, 8, "74.1936"),
            (0, 0, "0"),
        ];
        for (sent, replies, loss) in cases {
            let summary = stats(sent, &vec![1; replies]).ping_summary("h", Duration::ZERO);
            assert!(
                summary.contains(&format!(" received, {loss}% packet loss,")),
                "{summary}"
            );
        }
        assert_eq!(format_g(12.5), "12.5");
    }

    #[test]
    fn no_replies_means_no_rtt_line_and_errors_are_counted() {
        let mut s = stats(4, &[]);
        s.error();
        assert_eq!(
            s.ping_summary("h", Duration::from_millis(3000)),
            "--- h ping statistics ---\n4 packets transmitted, 0 received, +1 errors, 100% packet loss, time 3000ms"
        );
    }

    #[test]
    fn integer_sqrt_is_pings_llsqrt() {
        assert_eq!(integer_sqrt(357), 18);
        assert_eq!(integer_sqrt(256), 16);
        assert_eq!(integer_sqrt(1), 1);
        // llsqrt stops one step late when Newton's method oscillates between
        // n-1 and n, which it does for n*n - 1: ping prints 5 where floor is 4.
        assert_eq!(integer_sqrt(24), 5);
    }

    #[test]
    fn ms_prints_microsecond_digits() {
        assert_eq!(ms(Duration::from_nanos(1_234_567)), "1.234 ms");
        assert_eq!(ms(Duration::from_micros(61)), "0.061 ms");
    }
}

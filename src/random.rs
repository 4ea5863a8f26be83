//! A tiny seedable random number generator (SplitMix64). Used by udp_server,
//! time_server, time_client, heartbeat_server, loadgen, lab and check, and
//! by [`crate::time_service`] for its keys.
//!
//! The labs need randomness that a student can replay: `udp_server --drop 0.3
//! --seed 7` must lose the same datagrams every run. SplitMix64 is ten lines,
//! fast and good enough for simulation. It is **not** for real cryptography.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A generator seeded from the OS's randomness (std seeds every
    /// `RandomState` from it), different on every run.
    pub fn from_entropy() -> Rng {
        Rng::seeded(RandomState::new().build_hasher().finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0.0 never, 1.0 always).
    pub fn chance(&mut self, p: f64) -> bool {
        // The top 53 bits fill an f64's mantissa exactly: uniform in [0, 1).
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A number uniform in `low..=high`.
    pub fn in_range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "in_range needs low <= high");
        // The modulo bias is below 2^-50 for the small spans the labs use.
        match (high - low).checked_add(1) {
            Some(span) => low + self.next_u64() % span,
            None => self.next_u64(), // the whole u64 range
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_repeats() {
        let a: Vec<u64> = std::iter::repeat_with({
            let mut r = Rng::seeded(7);
            move || r.next_u64()
        })
        .take(5)
        .collect();
        let mut r = Rng::seeded(7);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::seeded(7).next_u64(), Rng::seeded(8).next_u64());
    }

    #[test]
    fn chance_matches_its_rate() {
        let mut r = Rng::seeded(1);
        let hits = (0..100_000).filter(|_| r.chance(0.3)).count();
        assert!((29_000..31_000).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
    }

    #[test]
    fn in_range_stays_in_range() {
        let mut r = Rng::from_entropy();
        for _ in 0..10_000 {
            assert!((2..=255).contains(&r.in_range(2, 255)));
        }
        assert_eq!(r.in_range(5, 5), 5);
        r.in_range(0, u64::MAX); // the whole range must not overflow
    }
}

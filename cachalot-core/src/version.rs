//! Version tokens: the value a table's cache entries are bound to.
//!
//! Every invalidation replaces a table's token with a fresh one, and an entry is served only
//! while the tokens it was stored with are still the current ones. Tokens are compared for
//! equality only, never ordered by time: a clock that jumps, a restart or a flushed cache
//! can then only cause misses, never a stale hit.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An opaque, unique version token: 64 bits of invalidation time (unix microseconds) and a
/// 64-bit nonce, random per process and never repeated within it.
///
/// ```
/// use cachalot_core::version::Token;
///
/// let a = Token::fresh();
/// let b = Token::fresh();
/// assert_ne!(a, b);
/// assert_eq!(Token::from_bytes(a.to_bytes()), a);
/// assert!(a.time() <= std::time::SystemTime::now());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u128);

impl Token {
    /// A token no process has made before, stamped with the current time.
    pub fn fresh() -> Token {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Token((u128::from(micros) << 64) | u128::from(next_nonce()))
    }

    /// When the token was made: the time of the invalidation it stands for.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros((self.0 >> 64) as u64)
    }

    /// The token as one number.
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// A token from [`to_u128`](Self::to_u128).
    pub fn from_u128(value: u128) -> Token {
        Token(value)
    }

    /// The token as 16 bytes, big endian (so that the time comes first when printed).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// A token from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: [u8; 16]) -> Token {
        Token(u128::from_be_bytes(bytes))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:032x})", self.0)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A bijective mix of a per-process random seed and a counter: distinct counter values give
/// distinct nonces, and other processes (other seeds) give unrelated ones.
fn next_nonce() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(process_seed);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    splitmix64_finalize(seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// The 64-bit finalizer of SplitMix64, a bijection on `u64`.
fn splitmix64_finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn process_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: fall back to what differs between processes.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let local = 0_u8;
        let mut material = Vec::with_capacity(40);
        material.extend_from_slice(&nanos.to_le_bytes());
        material.extend_from_slice(&std::process::id().to_le_bytes());
        material.extend_from_slice(&(&local as *const u8 as usize).to_le_bytes());
        xxhash_rust::xxh3::xxh3_64(&material)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_never_repeat() {
        let tokens: HashSet<Token> = (0..100_000).map(|_| Token::fresh()).collect();
        assert_eq!(tokens.len(), 100_000);
    }

    #[test]
    fn tokens_never_repeat_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| Token::fresh()).collect::<Vec<_>>()))
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for t in h.join().unwrap() {
                assert!(all.insert(t));
            }
        }
    }

    #[test]
    fn time_is_embedded() {
        let before = SystemTime::now() - Duration::from_millis(1);
        let t = Token::fresh();
        let after = SystemTime::now() + Duration::from_millis(1);
        assert!(t.time() >= before && t.time() <= after);
    }

    #[test]
    fn round_trips() {
        let t = Token::fresh();
        assert_eq!(Token::from_u128(t.to_u128()), t);
        assert_eq!(Token::from_bytes(t.to_bytes()), t);
        assert_eq!(t.to_string().len(), 32);
    }
}

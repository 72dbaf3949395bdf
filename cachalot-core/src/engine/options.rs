//! Per-read options: a TTL of its own, and the codec a remote backend stores values with.

use std::fmt;
use std::time::Duration;

/// Turns a cached value into bytes and back, for backends that keep values outside the
/// process (Redis). A value that fails to encode is not stored; bytes that fail to decode
/// (an older row type, a corrupt value) are a miss, overwritten by the next store.
pub struct Codec<T> {
    /// Serializes a value.
    pub encode: fn(&T) -> Result<Vec<u8>, String>,
    /// Deserializes a value.
    pub decode: fn(&[u8]) -> Result<T, String>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

impl<T> fmt::Debug for Codec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> {
    /// The JSON codec (serde_json).
    ///
    /// ```
    /// let codec = cachalot_core::engine::Codec::<Vec<(i64, String)>>::json();
    /// let bytes = (codec.encode)(&vec![(1, "a".into())]).unwrap();
    /// assert_eq!((codec.decode)(&bytes).unwrap(), vec![(1, "a".to_string())]);
    /// ```
    pub fn json() -> Self {
        Codec {
            encode: |value| serde_json::to_vec(value).map_err(|e| e.to_string()),
            decode: |bytes| serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// Options of one [`Cachalot::read_with`](crate::Cachalot::read_with).
///
/// ```
/// use std::time::Duration;
/// let options = cachalot_core::engine::ReadOptions::<String>::new().ttl(Duration::from_secs(60));
/// ```
pub struct ReadOptions<T> {
    pub(crate) ttl: Option<Duration>,
    pub(crate) codec: Option<Codec<T>>,
}

impl<T> Default for ReadOptions<T> {
    fn default() -> Self {
        ReadOptions {
            ttl: None,
            codec: None,
        }
    }
}

impl<T> fmt::Debug for ReadOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOptions")
            .field("ttl", &self.ttl)
            .field("codec", &self.codec.is_some())
            .finish()
    }
}

impl<T> ReadOptions<T> {
    /// The defaults: the cache's TTL, no codec (values stay in process).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps this entry at most `ttl` instead of the cache's TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Lets a backend that stores bytes ([`CacheBackend::encodes_values`]) keep this value.
    ///
    /// [`CacheBackend::encodes_values`]: crate::backend::CacheBackend::encodes_values
    pub fn codec(mut self, codec: Codec<T>) -> Self {
        self.codec = Some(codec);
        self
    }
}

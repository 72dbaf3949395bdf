//! What a cached typed read may return.

use cachalot_core::engine::Codec;

/// A row type (or tuple) that [`QueryAs`](crate::QueryAs) and
/// [`QueryScalar`](crate::QueryScalar) can cache: implemented for every type that qualifies.
///
/// With the `redis` feature, rows must also be `serde::Serialize + serde::de::DeserializeOwned`:
/// a backend that stores bytes (Redis) keeps them as JSON. Bytes that no longer decode (a row
/// type that changed) are a miss, overwritten by the next store.
///
/// ```
/// fn cacheable<T: cachalot_sqlx::CacheRow>() {}
/// cacheable::<(i64, String)>();
/// ```
#[cfg(feature = "redis")]
pub trait CacheRow:
    Clone + Send + Sync + 'static + serde::Serialize + serde::de::DeserializeOwned
{
    /// How a backend that stores bytes keeps a result of this row type.
    fn codec() -> Option<Codec<Vec<Self>>> {
        Some(Codec::json())
    }
}

#[cfg(feature = "redis")]
impl<T> CacheRow for T where
    T: Clone + Send + Sync + 'static + serde::Serialize + serde::de::DeserializeOwned
{
}

/// A row type (or tuple) that [`QueryAs`](crate::QueryAs) and
/// [`QueryScalar`](crate::QueryScalar) can cache: implemented for every type that qualifies.
///
/// With the `redis` feature, rows must also be `serde::Serialize + serde::de::DeserializeOwned`
/// (a backend that stores bytes keeps them as JSON).
///
/// ```
/// fn cacheable<T: cachalot_sqlx::CacheRow>() {}
/// cacheable::<(i64, String)>();
/// ```
#[cfg(not(feature = "redis"))]
pub trait CacheRow: Clone + Send + Sync + 'static {
    /// How a backend that stores bytes keeps a result of this row type: without the `redis`
    /// feature, it does not.
    fn codec() -> Option<Codec<Vec<Self>>> {
        None
    }
}

#[cfg(not(feature = "redis"))]
impl<T: Clone + Send + Sync + 'static> CacheRow for T {}

//! Query keys: what identifies one cached result.
//!
//! A key's *material* is an unambiguous byte string of everything that determines the result:
//! the key prefix and the database identity (as their [`Namespace`], a 128-bit digest made once
//! per pool), the SQL text, every bound value with its type, and the result type. Every part is
//! type-tagged and length-prefixed (lengths and numbers in little endian), so two different
//! queries never have the same material: `1` and `'1'`, an `i32` 1 and an `i64` 1, `NULL` and
//! `''`, `("ab", "c")` and `("a", "bc")` all differ.
//!
//! The key's hash (xxh3-128 of the material) only locates an entry; a hit is verified by
//! comparing the material itself, so neither a hash collision nor a crafted parameter can
//! read another query's result. The SQL and the values are in the material as they are; the
//! prefix and the database, which come from the configuration and never from a request, by
//! their digest, so that a long connection target does not lengthen every key.
//!
//! ```
//! use cachalot_core::key::KeyBuilder;
//!
//! let a = KeyBuilder::new("cachalot", "app", "SELECT * FROM t WHERE id = $1")
//!     .param(&1_i32)
//!     .result_type("Vec<Row>")
//!     .finish();
//! let b = KeyBuilder::new("cachalot", "app", "SELECT * FROM t WHERE id = $1")
//!     .param("1")
//!     .result_type("Vec<Row>")
//!     .finish();
//! assert_ne!(a, b);
//! assert_ne!(a.hash(), b.hash());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Version of the material layout, first byte of every key: a layout change must never let
/// an old entry match a new key. 2: the prefix and the database as their [`Namespace`].
const FORMAT_VERSION: u8 = 2;

/// Markers between the parts of the material.
const MARK_END: u8 = 0x00;
const MARK_PARAM: u8 = 0x01;
const MARK_RESULT: u8 = 0x02;

mod foreign;

/// Type tags of bound values. Each Rust type that sqlx encodes differently has its own tag.
mod tag {
    pub const I8: u8 = 0x10;
    pub const I16: u8 = 0x11;
    pub const I32: u8 = 0x12;
    pub const I64: u8 = 0x13;
    pub const I128: u8 = 0x14;
    pub const U8: u8 = 0x18;
    pub const U16: u8 = 0x19;
    pub const U32: u8 = 0x1a;
    pub const U64: u8 = 0x1b;
    pub const U128: u8 = 0x1c;
    pub const F32: u8 = 0x20;
    pub const F64: u8 = 0x21;
    pub const BOOL: u8 = 0x28;
    pub const CHAR: u8 = 0x29;
    pub const STR: u8 = 0x30;
    pub const BYTES: u8 = 0x31;
    pub const OPTION: u8 = 0x40;
    pub const SEQ: u8 = 0x41;
    pub const NAMED: u8 = 0x50;
}

/// The identity of one query: its hash and the exact bytes it was hashed from.
///
/// Two keys are equal when their material is equal. Cloning copies the material: move a key
/// into the read it is for.
#[derive(Clone)]
pub struct QueryKey {
    hash: u128,
    // A `Vec`, not an `Arc`: a hit only compares it, and only a miss needs it shared (see
    // `shared_material`), so most reads never pay for the copy.
    material: Vec<u8>,
}

impl QueryKey {
    /// A key from its material (for example read back from a remote backend); the hash is
    /// recomputed.
    pub fn from_material(material: impl Into<Vec<u8>>) -> Self {
        let material = material.into();
        QueryKey {
            hash: xxhash_rust::xxh3::xxh3_128(&material),
            material,
        }
    }

    /// The xxh3-128 hash of the material: where the entry is stored.
    pub fn hash(&self) -> u128 {
        self.hash
    }

    /// The exact bytes the key was built from.
    pub fn material(&self) -> &[u8] {
        &self.material
    }

    /// A shared copy of the material, to keep with an [`Entry`](crate::backend::Entry).
    ///
    /// ```
    /// use cachalot_core::key::KeyBuilder;
    ///
    /// let key = KeyBuilder::new("p", "db", "SELECT 1").finish();
    /// assert_eq!(&*key.shared_material(), key.material());
    /// ```
    pub fn shared_material(&self) -> Arc<[u8]> {
        Arc::from(self.material.as_slice())
    }

    /// Whether `material` is this key's material: the check that makes a hit safe.
    pub fn matches(&self, material: &[u8]) -> bool {
        *self.material == *material
    }
}

impl PartialEq for QueryKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.matches(&other.material)
    }
}

impl Eq for QueryKey {}

impl Hash for QueryKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.hash);
    }
}

impl fmt::Debug for QueryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryKey")
            .field("hash", &format_args!("{:032x}", self.hash))
            .field("material_len", &self.material.len())
            .finish()
    }
}

/// Where a [`KeyParam`] writes its type and value.
///
/// Built-in types write a private type tag; other types describe themselves with
/// [`named_type`](Self::named_type), which can never be confused with a built-in type.
#[derive(Debug, Default)]
pub struct KeySink {
    buf: Vec<u8>,
}

impl KeySink {
    /// Writes the type of a value that is not one of the built-in [`KeyParam`] types, by a
    /// name unique to that type and its encoding (for example `"uuid"` or `"chrono::NaiveDate"`).
    pub fn named_type(&mut self, name: &str) {
        self.buf.push(tag::NAMED);
        self.bytes(name.as_bytes());
    }

    /// Writes a variable-length value, prefixed with its length.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// Writes a value whose length is fixed by its type (for example a UUID's 16 bytes).
    /// Only for types whose every value has the same length: anything else must use
    /// [`bytes`](Self::bytes) to stay unambiguous.
    pub fn fixed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn tag(&mut self, tag: u8) {
        self.buf.push(tag);
    }

    fn len(&mut self, len: usize) {
        self.buf.extend_from_slice(&(len as u64).to_le_bytes());
    }
}

/// A bound value that can be part of a [`QueryKey`].
///
/// The type is written separately from the value so that `None` and empty sequences still
/// carry their element type. Implemented for the integers, floats (by bits: `-0.0` and `0.0`
/// are different keys), `bool`, `char`, strings, byte strings (`[u8]`, `Vec<u8>`), `Option`,
/// slices, arrays and `Vec` of key parameters, and references and smart pointers to them;
/// with the crate features of the same names, for `uuid::Uuid`, chrono's and time's dates and
/// times, `rust_decimal::Decimal` and `serde_json::Value`.
///
/// Implementing it for another type:
///
/// ```
/// use cachalot_core::key::{KeyBuilder, KeyParam, KeySink};
///
/// struct Uuid([u8; 16]);
///
/// impl KeyParam for Uuid {
///     fn key_type(sink: &mut KeySink) {
///         sink.named_type("uuid");
///     }
///     fn key_value(&self, sink: &mut KeySink) {
///         sink.fixed(&self.0);
///     }
/// }
///
/// let key = KeyBuilder::new("p", "db", "SELECT 1 WHERE $1 IS NULL").param(&Uuid([0; 16])).finish();
/// # let _ = key;
/// ```
pub trait KeyParam {
    /// Writes the type of the value (the same for every value of the type).
    fn key_type(sink: &mut KeySink);

    /// Writes the value.
    fn key_value(&self, sink: &mut KeySink);

    /// Writes the type of a sequence of this type. `u8` overrides it: sqlx encodes a
    /// `Vec<u8>` as a byte string, not as an array.
    fn key_slice_type(sink: &mut KeySink)
    where
        Self: Sized,
    {
        sink.tag(tag::SEQ);
        Self::key_type(sink);
    }

    /// Writes a sequence of values of this type.
    fn key_slice_value(items: &[Self], sink: &mut KeySink)
    where
        Self: Sized,
    {
        sink.len(items.len());
        for item in items {
            item.key_value(sink);
        }
    }
}

macro_rules! key_param_le {
    ($($ty:ty => $tag:expr),* $(,)?) => {$(
        impl KeyParam for $ty {
            fn key_type(sink: &mut KeySink) {
                sink.tag($tag);
            }
            fn key_value(&self, sink: &mut KeySink) {
                sink.fixed(&self.to_le_bytes());
            }
        }
    )*};
}

key_param_le! {
    i8 => tag::I8,
    i16 => tag::I16,
    i32 => tag::I32,
    i64 => tag::I64,
    i128 => tag::I128,
    u16 => tag::U16,
    u32 => tag::U32,
    u64 => tag::U64,
    u128 => tag::U128,
}

impl KeyParam for u8 {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::U8);
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.fixed(&[*self]);
    }
    fn key_slice_type(sink: &mut KeySink) {
        sink.tag(tag::BYTES);
    }
    fn key_slice_value(items: &[Self], sink: &mut KeySink) {
        sink.bytes(items);
    }
}

impl KeyParam for f32 {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::F32);
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.fixed(&self.to_bits().to_le_bytes());
    }
}

impl KeyParam for f64 {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::F64);
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.fixed(&self.to_bits().to_le_bytes());
    }
}

impl KeyParam for bool {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::BOOL);
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.fixed(&[u8::from(*self)]);
    }
}

impl KeyParam for char {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::CHAR);
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.fixed(&u32::from(*self).to_le_bytes());
    }
}

impl KeyParam for str {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::STR);
    }
    fn key_value(&self, sink: &mut KeySink) {
        sink.bytes(self.as_bytes());
    }
}

impl KeyParam for String {
    fn key_type(sink: &mut KeySink) {
        str::key_type(sink);
    }
    fn key_value(&self, sink: &mut KeySink) {
        self.as_str().key_value(sink);
    }
}

impl<T: KeyParam> KeyParam for [T] {
    fn key_type(sink: &mut KeySink) {
        T::key_slice_type(sink);
    }
    fn key_value(&self, sink: &mut KeySink) {
        T::key_slice_value(self, sink);
    }
}

impl<T: KeyParam, const N: usize> KeyParam for [T; N] {
    fn key_type(sink: &mut KeySink) {
        T::key_slice_type(sink);
    }
    fn key_value(&self, sink: &mut KeySink) {
        T::key_slice_value(self, sink);
    }
}

impl<T: KeyParam> KeyParam for Vec<T> {
    fn key_type(sink: &mut KeySink) {
        T::key_slice_type(sink);
    }
    fn key_value(&self, sink: &mut KeySink) {
        T::key_slice_value(self, sink);
    }
}

impl<T: KeyParam> KeyParam for Option<T> {
    fn key_type(sink: &mut KeySink) {
        sink.tag(tag::OPTION);
        T::key_type(sink);
    }
    fn key_value(&self, sink: &mut KeySink) {
        match self {
            None => sink.fixed(&[0]),
            Some(value) => {
                sink.fixed(&[1]);
                value.key_value(sink);
            }
        }
    }
}

/// References and smart pointers are bound like the value they point to.
macro_rules! key_param_deref {
    ($($ty:ty),* $(,)?) => {$(
        impl<T: KeyParam + ?Sized> KeyParam for $ty {
            fn key_type(sink: &mut KeySink) {
                T::key_type(sink);
            }
            fn key_value(&self, sink: &mut KeySink) {
                (**self).key_value(sink);
            }
        }
    )*};
}

key_param_deref!(&T, &mut T, Box<T>, Arc<T>, std::rc::Rc<T>);

impl<T: KeyParam + ToOwned + ?Sized> KeyParam for Cow<'_, T> {
    fn key_type(sink: &mut KeySink) {
        T::key_type(sink);
    }
    fn key_value(&self, sink: &mut KeySink) {
        (**self).key_value(sink);
    }
}

/// The key prefix and the database identity of a key, as they enter its material: a 128-bit
/// digest of both (length-prefixed), made once per pool rather than copied into every key.
///
/// ```
/// use cachalot_core::key::{KeyBuilder, Namespace};
///
/// let namespace = Namespace::new("cachalot", "postgres://db.example/app");
/// let a = KeyBuilder::in_namespace(&namespace, "SELECT 1", 16).finish();
/// let b = KeyBuilder::new("cachalot", "postgres://db.example/app", "SELECT 1").finish();
/// assert_eq!(a, b);
/// assert_ne!(namespace, Namespace::new("cachalot", "postgres://db.example/other"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Namespace([u8; 16]);

impl Namespace {
    /// The namespace of keys under `prefix` on `database`.
    pub fn new(prefix: &str, database: &str) -> Self {
        let mut sink = KeySink {
            buf: Vec::with_capacity(16 + prefix.len() + database.len()),
        };
        sink.bytes(prefix.as_bytes());
        sink.bytes(database.as_bytes());
        Namespace(xxhash_rust::xxh3::xxh3_128(&sink.buf).to_le_bytes())
    }
}

/// Builds a [`QueryKey`] part by part.
///
/// ```
/// use cachalot_core::key::KeyBuilder;
///
/// let mut builder = KeyBuilder::new("cachalot", "postgres://db.example/app", "SELECT name FROM users WHERE id = $1 AND team = $2");
/// builder.push_param(&42_i64);
/// builder.push_param(&Some("blue"));
/// let key = builder.result_type("Option<String>").finish();
///
/// let again = KeyBuilder::new("cachalot", "postgres://db.example/app", "SELECT name FROM users WHERE id = $1 AND team = $2")
///     .param(&42_i64)
///     .param(&Some("blue"))
///     .result_type("Option<String>")
///     .finish();
/// assert_eq!(key, again);
/// ```
#[derive(Debug)]
pub struct KeyBuilder {
    sink: KeySink,
    result_type: Option<String>,
}

impl KeyBuilder {
    /// Starts a key for `sql` sent to `database` (its identity: a name or a connection target
    /// without credentials), under `prefix` (which separates applications or key layouts
    /// sharing one backend).
    pub fn new(prefix: &str, database: &str, sql: &str) -> Self {
        Self::with_room(prefix, database, sql, Self::DEFAULT_ROOM)
    }

    /// The room [`new`](Self::new) leaves for bound values and the result type, in bytes.
    pub const DEFAULT_ROOM: usize = 64;

    /// [`new`](Self::new), with room for `room` bytes of bound values and result type: a key
    /// that fits is built in one allocation.
    ///
    /// ```
    /// use cachalot_core::key::KeyBuilder;
    ///
    /// let key = KeyBuilder::with_room("p", "db", "SELECT $1", 128).param(&7_i64).finish();
    /// assert_eq!(key, KeyBuilder::new("p", "db", "SELECT $1").param(&7_i64).finish());
    /// ```
    pub fn with_room(prefix: &str, database: &str, sql: &str, room: usize) -> Self {
        Self::in_namespace(&Namespace::new(prefix, database), sql, room)
    }

    /// A key for `sql` in `namespace` (its prefix and database), with room for `room` bytes
    /// of bound values and result type: the same key as [`with_room`](Self::with_room) with
    /// that prefix and database, without hashing them again.
    pub fn in_namespace(namespace: &Namespace, sql: &str, room: usize) -> Self {
        let mut buf = Vec::with_capacity(1 + 16 + 8 + sql.len() + room);
        buf.push(FORMAT_VERSION);
        let mut sink = KeySink { buf };
        sink.fixed(&namespace.0);
        sink.bytes(sql.as_bytes());
        KeyBuilder {
            sink,
            result_type: None,
        }
    }

    /// Adds the next bound value.
    pub fn param<P: KeyParam + ?Sized>(mut self, value: &P) -> Self {
        self.push_param(value);
        self
    }

    /// Adds the next bound value, in place.
    pub fn push_param<P: KeyParam + ?Sized>(&mut self, value: &P) -> &mut Self {
        self.sink.tag(MARK_PARAM);
        P::key_type(&mut self.sink);
        value.key_value(&mut self.sink);
        self
    }

    /// Adds the next bound value as bytes already encoded by some other means (for example
    /// the database driver's own encoding), with a name unique to the type and encoding.
    pub fn push_raw_param(&mut self, type_name: &str, bytes: &[u8]) -> &mut Self {
        self.sink.tag(MARK_PARAM);
        self.sink.named_type(type_name);
        self.sink.bytes(bytes);
        self
    }

    /// Sets the type the result is decoded into (for example `std::any::type_name::<T>()`):
    /// the same SQL decoded into two types gives two entries.
    pub fn result_type(mut self, name: &str) -> Self {
        self.set_result_type(name);
        self
    }

    /// Sets the type the result is decoded into, in place.
    pub fn set_result_type(&mut self, name: &str) -> &mut Self {
        self.result_type = Some(name.to_owned());
        self
    }

    /// The finished key.
    pub fn finish(mut self) -> QueryKey {
        match self.result_type.take() {
            Some(name) => self.finish_with_result_type(&[&name]),
            None => {
                let mut sink = self.sink;
                sink.tag(MARK_END);
                QueryKey::from_material(sink.buf)
            }
        }
    }

    /// The finished key, with the result type given as parts to be joined: the same key as
    /// [`set_result_type`](Self::set_result_type) with the joined string, without building
    /// it (the adapter names a result type per read).
    ///
    /// ```
    /// use cachalot_core::key::KeyBuilder;
    ///
    /// let joined = KeyBuilder::new("p", "db", "SELECT 1").result_type("all:i64").finish();
    /// let parts = KeyBuilder::new("p", "db", "SELECT 1").finish_with_result_type(&["all", ":", "i64"]);
    /// assert_eq!(joined, parts);
    /// ```
    pub fn finish_with_result_type(self, parts: &[&str]) -> QueryKey {
        let mut sink = self.sink;
        sink.tag(MARK_RESULT);
        sink.len(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            sink.fixed(part.as_bytes());
        }
        QueryKey::from_material(sink.buf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(f: impl FnOnce(&mut KeyBuilder)) -> QueryKey {
        let mut b = KeyBuilder::new("p", "db", "SELECT $1");
        f(&mut b);
        b.finish()
    }

    #[test]
    fn types_never_share_a_key() {
        let keys = [
            key(|b| {
                b.push_param(&1_i32);
            }),
            key(|b| {
                b.push_param(&1_i64);
            }),
            key(|b| {
                b.push_param(&1_u32);
            }),
            key(|b| {
                b.push_param("1");
            }),
            key(|b| {
                b.push_param(&'1');
            }),
            key(|b| {
                b.push_param(&1.0_f64);
            }),
            key(|b| {
                b.push_param(&1.0_f32);
            }),
            key(|b| {
                b.push_param(&true);
            }),
            key(|b| {
                b.push_param(&[1_u8][..]);
            }),
            key(|b| {
                b.push_param(&vec![1_i32]);
            }),
            key(|b| {
                b.push_param(&Some(1_i32));
            }),
            key(|b| {
                b.push_param(&None::<i32>);
            }),
            key(|b| {
                b.push_param(&None::<i64>);
            }),
            key(|b| {
                b.push_param(&None::<String>);
            }),
            key(|b| {
                b.push_param("");
            }),
            key(|b| {
                b.push_param(&Vec::<u8>::new());
            }),
            key(|b| {
                b.push_param(&Vec::<i8>::new());
            }),
            key(|b| {
                b.push_raw_param("int4", &1_i32.to_be_bytes());
            }),
            key(|_| {}),
        ];
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(i == j, a == b, "{i} vs {j}");
                assert_eq!(i == j, a.hash() == b.hash(), "{i} vs {j}");
            }
        }
    }

    #[test]
    fn equivalent_spellings_share_a_key() {
        let owned = key(|b| {
            b.push_param(&String::from("x")).push_param(&vec![1_u8, 2]);
        });
        let borrowed = key(|b| {
            b.push_param("x").push_param(&[1_u8, 2][..]);
        });
        let boxed = key(|b| {
            b.push_param(&Box::<str>::from("x"))
                .push_param(&Arc::<[u8]>::from(vec![1_u8, 2]));
        });
        let cow = key(|b| {
            b.push_param(&Cow::Borrowed("x")).push_param(&[1_u8, 2]);
        });
        assert_eq!(owned, borrowed);
        assert_eq!(owned, boxed);
        assert_eq!(owned, cow);
    }

    #[test]
    fn boundaries_between_parts_are_unambiguous() {
        let a = KeyBuilder::new("ab", "c", "d").finish();
        let b = KeyBuilder::new("a", "bc", "d").finish();
        let c = KeyBuilder::new("a", "b", "cd").finish();
        assert_ne!(a, b);
        assert_ne!(b, c);
        let d = KeyBuilder::new("p", "db", "q")
            .param("ab")
            .param("c")
            .finish();
        let e = KeyBuilder::new("p", "db", "q")
            .param("a")
            .param("bc")
            .finish();
        assert_ne!(d, e);
        let f = KeyBuilder::new("p", "db", "q").result_type("A").finish();
        let g = KeyBuilder::new("p", "db", "q").result_type("B").finish();
        let h = KeyBuilder::new("p", "db", "q").finish();
        assert_ne!(f, g);
        assert_ne!(f, h);
        // A parameter can never forge the result type part.
        let i = KeyBuilder::new("p", "db", "q").param("A").finish();
        assert_ne!(f, i);
    }

    #[test]
    fn floats_by_bits() {
        assert_ne!(
            key(|b| {
                b.push_param(&0.0_f64);
            }),
            key(|b| {
                b.push_param(&-0.0_f64);
            })
        );
    }

    #[test]
    fn material_is_stable() {
        // The layout is part of the contract with remote backends: changing it needs a new
        // FORMAT_VERSION.
        let k = KeyBuilder::new("p", "d", "s")
            .param(&1_i32)
            .result_type("T")
            .finish();
        let mut expected = vec![FORMAT_VERSION];
        let mut namespace = Vec::new();
        for part in [&b"p"[..], b"d"] {
            namespace.extend_from_slice(&1_u64.to_le_bytes());
            namespace.extend_from_slice(part);
        }
        expected.extend_from_slice(&xxhash_rust::xxh3::xxh3_128(&namespace).to_le_bytes());
        expected.extend_from_slice(&1_u64.to_le_bytes());
        expected.push(b's');
        expected.extend_from_slice(&[MARK_PARAM, tag::I32, 1, 0, 0, 0, MARK_RESULT]);
        expected.extend_from_slice(&1_u64.to_le_bytes());
        expected.push(b'T');
        assert_eq!(k.material(), &expected[..]);
        assert_eq!(k.hash(), xxhash_rust::xxh3::xxh3_128(&expected));
        assert_eq!(QueryKey::from_material(expected), k);
    }

    /// A bound value, compared by the bits the key sees.
    #[derive(Debug, Clone, PartialEq)]
    enum P {
        I8(i8),
        I16(i16),
        I32(i32),
        I64(i64),
        U8(u8),
        U64(u64),
        F32(u32),
        F64(u64),
        Bool(bool),
        Char(char),
        Str(String),
        Bytes(Vec<u8>),
        OptI32(Option<i32>),
        OptI64(Option<i64>),
        OptStr(Option<String>),
        VecI32(Vec<i32>),
        VecStr(Vec<String>),
        VecOptI64(Vec<Option<i64>>),
    }

    impl P {
        fn push(&self, b: &mut KeyBuilder) {
            match self {
                P::I8(v) => b.push_param(v),
                P::I16(v) => b.push_param(v),
                P::I32(v) => b.push_param(v),
                P::I64(v) => b.push_param(v),
                P::U8(v) => b.push_param(v),
                P::U64(v) => b.push_param(v),
                P::F32(v) => b.push_param(&f32::from_bits(*v)),
                P::F64(v) => b.push_param(&f64::from_bits(*v)),
                P::Bool(v) => b.push_param(v),
                P::Char(v) => b.push_param(v),
                P::Str(v) => b.push_param(v.as_str()),
                P::Bytes(v) => b.push_param(v),
                P::OptI32(v) => b.push_param(v),
                P::OptI64(v) => b.push_param(v),
                P::OptStr(v) => b.push_param(v),
                P::VecI32(v) => b.push_param(v),
                P::VecStr(v) => b.push_param(v),
                P::VecOptI64(v) => b.push_param(v),
            };
        }
    }

    fn param() -> impl Strategy<Value = P> {
        prop_oneof![
            any::<i8>().prop_map(P::I8),
            any::<i16>().prop_map(P::I16),
            (-2..3_i32).prop_map(P::I32),
            (-2..3_i64).prop_map(P::I64),
            any::<u8>().prop_map(P::U8),
            (0..3_u64).prop_map(P::U64),
            any::<u32>().prop_map(P::F32),
            any::<u64>().prop_map(P::F64),
            any::<bool>().prop_map(P::Bool),
            any::<char>().prop_map(P::Char),
            "[a1]{0,3}".prop_map(P::Str),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(P::Bytes),
            proptest::option::of(-1..2_i32).prop_map(P::OptI32),
            proptest::option::of(-1..2_i64).prop_map(P::OptI64),
            proptest::option::of("[a1]{0,2}").prop_map(P::OptStr),
            proptest::collection::vec(-1..2_i32, 0..3).prop_map(P::VecI32),
            proptest::collection::vec("[a1]{0,2}", 0..3).prop_map(P::VecStr),
            proptest::collection::vec(proptest::option::of(0..2_i64), 0..3).prop_map(P::VecOptI64),
        ]
    }

    fn build(sql: &str, params: &[P], result: Option<&str>) -> QueryKey {
        let mut b = KeyBuilder::new("p", "db", sql);
        for p in params {
            p.push(&mut b);
        }
        if let Some(r) = result {
            b.set_result_type(r);
        }
        b.finish()
    }

    proptest! {
        #[test]
        fn distinct_params_give_distinct_material(
            a in proptest::collection::vec(param(), 0..4),
            b in proptest::collection::vec(param(), 0..4),
            ra in proptest::option::of("[ab]{0,2}"),
            rb in proptest::option::of("[ab]{0,2}"),
        ) {
            let ka = build("q", &a, ra.as_deref());
            let kb = build("q", &b, rb.as_deref());
            prop_assert_eq!(a == b && ra == rb, ka.material() == kb.material());
            prop_assert_eq!(ka == kb, ka.hash() == kb.hash());
        }
    }
}

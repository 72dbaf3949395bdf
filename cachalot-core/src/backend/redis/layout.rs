//! Where things live in Redis, and the bytes of an entry.
//!
//! Keys, all under the configured prefix `P`, with the database identity's hash `D` as the
//! hash tag (so that every key of one database lives in one Redis Cluster slot, and one
//! script can touch all the keys of a read or of an invalidation):
//!
//! | key               | type        | what                                                  |
//! |-------------------|-------------|-------------------------------------------------------|
//! | `P:{D}:t:<table>` | string      | the table's token, 16 bytes (the epoch's table is empty) |
//! | `P:{D}:l:<table>` | sorted set  | the lock holders: member = lock id, score = deadline (ms, Redis clock) |
//! | `P:{D}:e:<hash>`  | string      | an entry (see [`encode_entry`]), with a TTL           |

use std::sync::Arc;

use crate::backend::{Entry, EntryValue, TableId};
use crate::key::QueryKey;
use crate::version::Token;

/// First byte of every entry: a layout change must never be read as the old one. The Lua
/// scripts compare it too.
pub(super) const ENTRY_FORMAT: u8 = 0xC1;

/// Bytes before the tokens: the format byte and the token count (u16, big endian).
const HEADER: usize = 3;

/// Builds the keys of one key prefix.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    prefix: Arc<str>,
}

impl Layout {
    pub(super) fn new(prefix: &str) -> Self {
        Layout {
            prefix: Arc::from(prefix),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `P:{D}:` for `database`.
    fn base(&self, database: &str, extra: usize) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 24 + extra);
        key.extend_from_slice(self.prefix.as_bytes());
        key.extend_from_slice(b":{");
        let tag = xxhash_rust::xxh3::xxh3_64(database.as_bytes());
        key.extend_from_slice(format!("{tag:016x}").as_bytes());
        key.extend_from_slice(b"}:");
        key
    }

    fn table_key(&self, table: &TableId, kind: &[u8]) -> Vec<u8> {
        let mut key = self.base(table.database(), kind.len() + table.table().len());
        key.extend_from_slice(kind);
        key.extend_from_slice(table.table().as_bytes());
        key
    }

    /// Where `table`'s token lives.
    pub(super) fn token_key(&self, table: &TableId) -> Vec<u8> {
        self.table_key(table, b"t:")
    }

    /// Where `table`'s lock holders live.
    pub(super) fn lock_key(&self, table: &TableId) -> Vec<u8> {
        self.table_key(table, b"l:")
    }

    /// Where the entry of `key`, a read of `database`, lives.
    pub(super) fn entry_key(&self, database: &str, key: &QueryKey) -> Vec<u8> {
        let mut out = self.base(database, 34);
        out.extend_from_slice(b"e:");
        out.extend_from_slice(format!("{:032x}", key.hash()).as_bytes());
        out
    }

    /// A `SCAN MATCH` pattern of every entry under this prefix.
    pub(super) fn entry_pattern(&self) -> Vec<u8> {
        let mut pattern = Vec::with_capacity(self.prefix.len() + 12);
        for &b in self.prefix.as_bytes() {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.extend_from_slice(b":{*}:e:*");
        pattern
    }
}

/// An entry's bytes: `ENTRY_FORMAT`, the token count (u16 BE), the tokens (16 bytes each),
/// the material's length (u32 BE), the material, then the value. `None` if the entry cannot
/// be laid out (more than 65535 tokens, a material over 4 GiB) or is not encoded.
pub(super) fn encode_entry(entry: &Entry) -> Option<Vec<u8>> {
    let EntryValue::Encoded(value) = &entry.value else {
        return None;
    };
    let count = u16::try_from(entry.tokens.len()).ok()?;
    let material_len = u32::try_from(entry.material.len()).ok()?;
    let mut out = Vec::with_capacity(
        HEADER + 16 * entry.tokens.len() + 4 + entry.material.len() + value.len(),
    );
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&count.to_be_bytes());
    for token in entry.tokens.iter() {
        out.extend_from_slice(&token.to_bytes());
    }
    out.extend_from_slice(&material_len.to_be_bytes());
    out.extend_from_slice(&entry.material);
    out.extend_from_slice(value);
    Some(out)
}

/// The entry in `bytes`, if they are one with `tokens` tokens; anything else (another
/// layout, truncated or corrupt bytes) is `None`: a miss, overwritten by the next store.
pub(super) fn decode_entry(bytes: &[u8], tokens: usize) -> Option<Entry> {
    let (&format, rest) = bytes.split_first()?;
    if format != ENTRY_FORMAT {
        return None;
    }
    let (count, rest) = rest.split_first_chunk::<2>()?;
    if usize::from(u16::from_be_bytes(*count)) != tokens {
        return None;
    }
    let (token_bytes, rest) = rest.split_at_checked(16 * tokens)?;
    let stored: Arc<[Token]> = token_bytes
        .chunks_exact(16)
        .map(|chunk| {
            let mut raw = [0_u8; 16];
            raw.copy_from_slice(chunk);
            Token::from_bytes(raw)
        })
        .collect();
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let (material, value) = rest.split_at_checked(len)?;
    Some(Entry {
        tokens: stored,
        material: Arc::from(material),
        weight: value.len(),
        value: EntryValue::Encoded(Arc::from(value)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::key::KeyBuilder;

    fn entry(tokens: usize, value: &[u8]) -> Entry {
        let key = KeyBuilder::new("p", "db", "SELECT 1").finish();
        Entry {
            tokens: (0..tokens).map(|_| Token::fresh()).collect(),
            material: key.shared_material(),
            value: EntryValue::Encoded(Arc::from(value)),
            weight: value.len(),
        }
    }

    #[test]
    fn entries_round_trip() {
        for (n, value) in [(1, &b""[..]), (3, b"[1,2,3]"), (0, b"x")] {
            let e = entry(n, value);
            let bytes = encode_entry(&e).unwrap();
            let back = decode_entry(&bytes, n).unwrap();
            assert_eq!(back.tokens, e.tokens);
            assert_eq!(back.material, e.material);
            let EntryValue::Encoded(v) = back.value else {
                panic!()
            };
            assert_eq!(&*v, value);
            assert_eq!(back.weight, value.len());
        }
    }

    #[test]
    fn anything_else_is_none() {
        let bytes = encode_entry(&entry(2, b"value")).unwrap();
        assert!(decode_entry(&bytes, 3).is_none());
        assert!(decode_entry(&bytes[..10], 2).is_none());
        let mut other = bytes.clone();
        other[0] = 0;
        assert!(decode_entry(&other, 2).is_none());
        assert!(decode_entry(b"", 2).is_none());
        assert!(decode_entry(b"{\"json\": 1}", 1).is_none());
        // Truncated inside the material.
        let header = 3 + 32 + 4;
        assert!(decode_entry(&bytes[..header + 2], 2).is_none());
        // A local value has no bytes.
        let local = Entry {
            value: EntryValue::Local(Arc::new(1_u8)),
            ..entry(1, b"")
        };
        assert!(encode_entry(&local).is_none());
    }

    #[test]
    fn keys_share_a_hash_tag_per_database() {
        let layout = Layout::new("app");
        let db: Arc<str> = Arc::from("postgres://db/app");
        let t = TableId::new(&db, "users");
        let tag = |k: &[u8]| {
            let s = String::from_utf8(k.to_vec()).unwrap();
            let open = s.find('{').unwrap();
            let close = s[open..].find('}').unwrap() + open;
            s[open + 1..close].to_owned()
        };
        let key = KeyBuilder::new("p", &db, "SELECT 1").finish();
        let tags = [
            tag(&layout.token_key(&t)),
            tag(&layout.lock_key(&t)),
            tag(&layout.token_key(&TableId::epoch(&db))),
            tag(&layout.entry_key(&db, &key)),
        ];
        assert!(tags.iter().all(|t| *t == tags[0] && t.len() == 16));
        let other: Arc<str> = Arc::from("postgres://db/other");
        assert_ne!(
            tag(&layout.token_key(&TableId::new(&other, "users"))),
            tags[0]
        );
        assert!(layout.token_key(&t).starts_with(b"app:{"));
        assert!(layout.token_key(&t).ends_with(b"}:t:users"));
        assert!(layout.lock_key(&t).ends_with(b"}:l:users"));
        assert!(layout.token_key(&TableId::epoch(&db)).ends_with(b"}:t:"));
        assert_eq!(
            Layout::new("a*b").entry_pattern(),
            b"a\\*b:{*}:e:*".to_vec()
        );
    }
}

//! django-cachalot's benchmark data and its 12 queries, translated to SQL.
//!
//! The data: 50 users, 10 groups, every user in 2 distinct random groups, and 10,000 rows of
//! `tests` with a random owner, drawn from a fixed seed so that every run sees the same rows.

use serde::{Deserialize, Serialize};

/// How many users (`auth_user`).
pub const USERS: i64 = 50;
/// How many groups (`auth_group`).
pub const GROUPS: i64 = 10;
/// How many rows of `tests`.
pub const TESTS: i64 = 10_000;
/// The seed of every random choice of the benchmark.
pub const SEED: u64 = 0x6361_6368_616c_6f74;
/// Every table of the dataset.
pub const TABLES: [&str; 4] = ["auth_user", "auth_group", "auth_user_groups", "tests"];

/// SplitMix64: small, fast and reproducible, which is all a benchmark's choices need.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the modulo bias is negligible for the small `n` used).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Whether an event of probability `p` happens.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// The rows to insert.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `(id, username)`.
    pub users: Vec<(i64, String)>,
    /// `(id, name)`.
    pub groups: Vec<(i64, String)>,
    /// `(id, user_id, group_id)`.
    pub memberships: Vec<(i64, i64, i64)>,
    /// `(id, name, owner_id)`.
    pub tests: Vec<(i64, String, i64)>,
}

impl Dataset {
    /// The benchmark's data, the same on every run.
    pub fn generate() -> Self {
        let mut rng = Rng::new(SEED);
        let users = (1..=USERS).map(|i| (i, format!("user{}", i - 1))).collect();
        let groups = (1..=GROUPS)
            .map(|i| (i, format!("test{}", i - 1)))
            .collect();
        let mut memberships = Vec::new();
        for user in 1..=USERS {
            let first = 1 + rng.below(GROUPS as u64) as i64;
            let mut second = first;
            while second == first {
                second = 1 + rng.below(GROUPS as u64) as i64;
            }
            for group in [first.min(second), first.max(second)] {
                memberships.push((memberships.len() as i64 + 1, user, group));
            }
        }
        let tests = (1..=TESTS)
            .map(|i| {
                let owner = 1 + rng.below(USERS as u64) as i64;
                (i, format!("test{}", i - 1), owner)
            })
            .collect();
        Dataset {
            users,
            groups,
            memberships,
            tests,
        }
    }
}

/// A row of `tests`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow, Serialize, Deserialize)]
pub struct TestRow {
    /// Primary key.
    pub id: i64,
    /// `test<n>`.
    pub name: String,
    /// The owning user.
    pub owner_id: i64,
}

/// A row of `tests` with its owner (`select_related('owner')`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow, Serialize, Deserialize)]
pub struct TestWithOwner {
    /// Primary key.
    pub id: i64,
    /// `test<n>`.
    pub name: String,
    /// The owning user.
    pub owner_id: i64,
    /// The owner's name.
    pub username: String,
}

/// A row of `tests` with its owner and one of the owner's groups
/// (`prefetch_related('owner__groups')`, as one join).
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow, Serialize, Deserialize)]
pub struct TestWithGroup {
    /// Primary key.
    pub id: i64,
    /// `test<n>`.
    pub name: String,
    /// The owning user.
    pub owner_id: i64,
    /// The owner's name.
    pub username: String,
    /// One of the owner's groups.
    pub group_id: i64,
    /// That group's name.
    pub group_name: String,
}

/// The Rust type a query's rows are read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One `i64` (`count()`).
    Count,
    /// At most one [`TestRow`] (`first()`).
    First,
    /// [`TestRow`]s.
    Tests,
    /// [`TestWithOwner`]s.
    Owner,
    /// [`TestWithGroup`]s.
    Groups,
}

/// One of the benchmark's queries.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// The Django expression it comes from.
    pub django: &'static str,
    /// Its row type.
    pub shape: Shape,
    /// PostgreSQL's SQL (`$n` placeholders, `ILIKE`).
    pub postgres: &'static str,
    /// MariaDB's and SQLite's SQL (`?` placeholders, `LOWER(..) LIKE`).
    pub qmark: &'static str,
    /// The id bound first, if any.
    pub id: Option<i64>,
    /// The `LIKE` pattern bound next, if any.
    pub pattern: Option<&'static str>,
    /// `(LIMIT, OFFSET)` bound last, if any.
    pub slice: Option<(i64, i64)>,
}

impl Query {
    /// The SQL for a database (`postgres` or not).
    pub fn sql(&self, postgres: bool) -> &'static str {
        if postgres { self.postgres } else { self.qmark }
    }
}

const HEAD: Option<(i64, i64)> = Some((10, 0));
const MIDDLE: Option<(i64, i64)> = Some((10, 5000));

/// The 12 queries of django-cachalot's benchmark, in its order.
pub const QUERIES: [Query; 12] = [
    Query {
        django: "count()",
        shape: Shape::Count,
        postgres: "SELECT COUNT(*) FROM tests",
        qmark: "SELECT COUNT(*) FROM tests",
        id: None,
        pattern: None,
        slice: None,
    },
    Query {
        django: "first()",
        shape: Shape::First,
        postgres: "SELECT id, name, owner_id FROM tests ORDER BY id LIMIT 1",
        qmark: "SELECT id, name, owner_id FROM tests ORDER BY id LIMIT 1",
        id: None,
        pattern: None,
        slice: None,
    },
    Query {
        django: "[:10]",
        shape: Shape::Tests,
        postgres: "SELECT id, name, owner_id FROM tests ORDER BY id LIMIT $1 OFFSET $2",
        qmark: "SELECT id, name, owner_id FROM tests ORDER BY id LIMIT ? OFFSET ?",
        id: None,
        pattern: None,
        slice: HEAD,
    },
    Query {
        django: "[5000:5010]",
        shape: Shape::Tests,
        postgres: "SELECT id, name, owner_id FROM tests ORDER BY id LIMIT $1 OFFSET $2",
        qmark: "SELECT id, name, owner_id FROM tests ORDER BY id LIMIT ? OFFSET ?",
        id: None,
        pattern: None,
        slice: MIDDLE,
    },
    Query {
        django: "filter(name__icontains='e')[0:10]",
        shape: Shape::Tests,
        postgres: "SELECT id, name, owner_id FROM tests WHERE name ILIKE $1 ORDER BY id LIMIT $2 OFFSET $3",
        qmark: "SELECT id, name, owner_id FROM tests WHERE LOWER(name) LIKE ? ORDER BY id LIMIT ? OFFSET ?",
        id: None,
        pattern: Some("%e%"),
        slice: HEAD,
    },
    Query {
        django: "filter(name__icontains='e')[5000:5010]",
        shape: Shape::Tests,
        postgres: "SELECT id, name, owner_id FROM tests WHERE name ILIKE $1 ORDER BY id LIMIT $2 OFFSET $3",
        qmark: "SELECT id, name, owner_id FROM tests WHERE LOWER(name) LIKE ? ORDER BY id LIMIT ? OFFSET ?",
        id: None,
        pattern: Some("%e%"),
        slice: MIDDLE,
    },
    Query {
        django: "order_by('owner')[0:10]",
        shape: Shape::Tests,
        postgres: "SELECT id, name, owner_id FROM tests ORDER BY owner_id, id LIMIT $1 OFFSET $2",
        qmark: "SELECT id, name, owner_id FROM tests ORDER BY owner_id, id LIMIT ? OFFSET ?",
        id: None,
        pattern: None,
        slice: HEAD,
    },
    Query {
        django: "order_by('owner')[5000:5010]",
        shape: Shape::Tests,
        postgres: "SELECT id, name, owner_id FROM tests ORDER BY owner_id, id LIMIT $1 OFFSET $2",
        qmark: "SELECT id, name, owner_id FROM tests ORDER BY owner_id, id LIMIT ? OFFSET ?",
        id: None,
        pattern: None,
        slice: MIDDLE,
    },
    Query {
        django: "select_related('owner')[0:10]",
        shape: Shape::Owner,
        postgres: OWNER_PG,
        qmark: OWNER_QMARK,
        id: None,
        pattern: None,
        slice: HEAD,
    },
    Query {
        django: "select_related('owner')[5000:5010]",
        shape: Shape::Owner,
        postgres: OWNER_PG,
        qmark: OWNER_QMARK,
        id: None,
        pattern: None,
        slice: MIDDLE,
    },
    Query {
        django: "prefetch_related('owner__groups')[0:10]",
        shape: Shape::Groups,
        postgres: GROUPS_PG,
        qmark: GROUPS_QMARK,
        id: None,
        pattern: None,
        slice: HEAD,
    },
    Query {
        django: "prefetch_related('owner__groups')[5000:5010]",
        shape: Shape::Groups,
        postgres: GROUPS_PG,
        qmark: GROUPS_QMARK,
        id: None,
        pattern: None,
        slice: MIDDLE,
    },
];

const OWNER_PG: &str = "SELECT t.id, t.name, t.owner_id, u.username FROM tests t \
     INNER JOIN auth_user u ON u.id = t.owner_id ORDER BY t.id LIMIT $1 OFFSET $2";
const OWNER_QMARK: &str = "SELECT t.id, t.name, t.owner_id, u.username FROM tests t \
     INNER JOIN auth_user u ON u.id = t.owner_id ORDER BY t.id LIMIT ? OFFSET ?";
const GROUPS_PG: &str = "SELECT t.id, t.name, t.owner_id, u.username, g.id AS group_id, \
     g.name AS group_name FROM (SELECT id, name, owner_id FROM tests ORDER BY id LIMIT $1 OFFSET $2) t \
     INNER JOIN auth_user u ON u.id = t.owner_id \
     INNER JOIN auth_user_groups ug ON ug.user_id = u.id \
     INNER JOIN auth_group g ON g.id = ug.group_id ORDER BY t.id, g.id";
const GROUPS_QMARK: &str = "SELECT t.id, t.name, t.owner_id, u.username, g.id AS group_id, \
     g.name AS group_name FROM (SELECT id, name, owner_id FROM tests ORDER BY id LIMIT ? OFFSET ?) t \
     INNER JOIN auth_user u ON u.id = t.owner_id \
     INNER JOIN auth_user_groups ug ON ug.user_id = u.id \
     INNER JOIN auth_group g ON g.id = ug.group_id ORDER BY t.id, g.id";

/// One row by primary key: the cheapest read, where the adapter's own cost shows most. Set
/// `id` before running it.
pub const POINT: Query = Query {
    django: "get(pk=..)",
    shape: Shape::First,
    postgres: "SELECT id, name, owner_id FROM tests WHERE id = $1",
    qmark: "SELECT id, name, owner_id FROM tests WHERE id = ?",
    id: None,
    pattern: None,
    slice: None,
};

/// The write of the mixed workload and of the overhead measurement: rewrites a row of `tests`
/// with the name it already has, so that every query keeps returning the same rows.
pub const UPDATE_PG: &str = "UPDATE tests SET name = $1 WHERE id = $2";
/// [`UPDATE_PG`] with `?` placeholders.
pub const UPDATE_QMARK: &str = "UPDATE tests SET name = ? WHERE id = ?";

/// The schema, in Django's table names, for a database (`id_type`: the primary key's type).
pub fn schema(id_type: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE auth_user (id {id_type} PRIMARY KEY, username VARCHAR(150) NOT NULL)"
        ),
        format!("CREATE TABLE auth_group (id {id_type} PRIMARY KEY, name VARCHAR(150) NOT NULL)"),
        format!(
            "CREATE TABLE auth_user_groups (id {id_type} PRIMARY KEY, \
             user_id BIGINT NOT NULL REFERENCES auth_user (id), \
             group_id BIGINT NOT NULL REFERENCES auth_group (id), UNIQUE (user_id, group_id))"
        ),
        "CREATE INDEX auth_user_groups_group_id ON auth_user_groups (group_id)".to_owned(),
        format!(
            "CREATE TABLE tests (id {id_type} PRIMARY KEY, name VARCHAR(20) NOT NULL, \
             owner_id BIGINT NOT NULL REFERENCES auth_user (id))"
        ),
        "CREATE INDEX tests_owner_id ON tests (owner_id)".to_owned(),
    ]
}

/// Multi-row `INSERT`s of the dataset, at most `batch` rows each. The values are generated by
/// [`Dataset::generate`] (numbers and `[a-z0-9]` names), so inlining them is safe.
pub fn inserts(data: &Dataset, batch: usize) -> Vec<String> {
    let mut statements = Vec::new();
    let mut push = |table: &str, columns: &str, rows: Vec<String>| {
        for chunk in rows.chunks(batch) {
            statements.push(format!(
                "INSERT INTO {table} ({columns}) VALUES {}",
                chunk.join(", ")
            ));
        }
    };
    push(
        "auth_user",
        "id, username",
        data.users
            .iter()
            .map(|(id, name)| format!("({id}, '{name}')"))
            .collect(),
    );
    push(
        "auth_group",
        "id, name",
        data.groups
            .iter()
            .map(|(id, name)| format!("({id}, '{name}')"))
            .collect(),
    );
    push(
        "auth_user_groups",
        "id, user_id, group_id",
        data.memberships
            .iter()
            .map(|(id, user, group)| format!("({id}, {user}, {group})"))
            .collect(),
    );
    push(
        "tests",
        "id, name, owner_id",
        data.tests
            .iter()
            .map(|(id, name, owner)| format!("({id}, '{name}', {owner})"))
            .collect(),
    );
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_is_reproducible_and_well_formed() {
        let a = Dataset::generate();
        let b = Dataset::generate();
        assert_eq!(a.tests, b.tests);
        assert_eq!(a.memberships, b.memberships);
        assert_eq!(a.tests.len(), TESTS as usize);
        assert_eq!(a.memberships.len(), 2 * USERS as usize);
        for pair in a.memberships.chunks(2) {
            assert_eq!(pair[0].1, pair[1].1);
            assert_ne!(pair[0].2, pair[1].2);
        }
        assert!(a.tests.iter().all(|t| (1..=USERS).contains(&t.2)));
    }

    #[test]
    fn placeholders_match_the_bound_values() {
        for q in QUERIES {
            let binds = usize::from(q.pattern.is_some()) + 2 * usize::from(q.slice.is_some());
            assert_eq!(q.qmark.matches('?').count(), binds, "{}", q.django);
            assert_eq!(q.postgres.matches('$').count(), binds, "{}", q.django);
        }
    }
}

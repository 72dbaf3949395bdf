//! Table-driven test of the SQL analyzer: for each statement, in each dialect, the kind, the
//! tables read and written, whether everything is written, and cacheability (or the reason).
//!
//! Every mismatch is collected and reported at the end, so one run shows them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};

use cachalot_core::sql::{
    Analysis, Analyzer, AnalyzerConfig, Dialect, IsolationLevel, NotCacheable, StatementKind,
    Table, TransactionControl,
};

/// Which analyzer a row runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum D {
    Pg,
    My,
    Lite,
}
use D::{Lite, My, Pg};

/// The statement kind, with transaction control lumped together (checked in its own test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Query,
    Insert,
    Update,
    Delete,
    Merge,
    Truncate,
    Copy,
    Ddl,
    Proc,
    Tx,
    Util,
    Session,
    Multi,
    Unparsed,
}

/// Cacheable, or the variant of the reason it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    Yes,
    Parse,
    Write,
    Multiple,
    NotQuery,
    Explain,
    Locking,
    Into,
    Volatile,
    Unknown,
    Catalog,
    Temp,
}

/// A row: dialect, SQL, kind, reads, writes, writes_all, cacheability. Table names are
/// written as the analyzer displays them: `schema.name` when the schema is not the default.
type Row = (
    D,
    &'static str,
    K,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    C,
);

const NONE: &[&str] = &[];

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // ---------------------------------------------------------------- PostgreSQL: reads
    (Pg, "SELECT id, name FROM users WHERE id = $1", K::Query, &["users"], NONE, false, C::Yes),
    (Pg, "SELECT 1", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "SELECT $1::int + 1", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "VALUES (1, 'a'), (2, 'b')", K::Query, NONE, NONE, false, C::Yes),
    // One table however it is spelled; quoted names keep their case.
    (Pg, r#"SELECT * FROM items, public.items, "public"."items", PUBLIC.Items"#, K::Query, &["items"], NONE, false, C::Yes),
    (Pg, r#"SELECT * FROM "Items" JOIN items ON true"#, K::Query, &["Items", "items"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM note JOIN notebook ON note.id = notebook.note_id", K::Query, &["note", "notebook"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM audit.items WHERE id = $1", K::Query, &["audit.items"], NONE, false, C::Yes),
    (Pg, r#"SELECT * FROM "Audit"."Items" a JOIN audit.items b ON a.id = b.id"#, K::Query, &["Audit.Items", "audit.items"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM appdb.public.items", K::Query, &["items"], NONE, false, C::Yes),
    // Joins of every kind.
    (Pg, "SELECT u.name, o.total FROM users u INNER JOIN orders o ON o.user_id = u.id LEFT JOIN payments p ON p.order_id = o.id RIGHT OUTER JOIN refunds r ON r.payment_id = p.id FULL JOIN notes n ON n.order_id = o.id CROSS JOIN settings s", K::Query, &["notes", "orders", "payments", "refunds", "settings", "users"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM a NATURAL JOIN b JOIN c USING (id), d", K::Query, &["a", "b", "c", "d"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM (a JOIN b ON a.id = b.a_id) LEFT JOIN (c JOIN d ON c.id = d.c_id) ON c.b_id = b.id", K::Query, &["a", "b", "c", "d"], NONE, false, C::Yes),
    // Subqueries in the select list, FROM, WHERE, HAVING and ORDER BY; EXISTS, IN, ANY.
    (Pg, "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) AS n FROM users u", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (Pg, "SELECT t.total FROM (SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id) t WHERE t.total > $1", K::Query, &["orders"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM users WHERE id NOT IN (SELECT user_id FROM banned WHERE user_id IS NOT NULL)", K::Query, &["banned", "users"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM items WHERE id = ANY($1)", K::Query, &["items"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM items WHERE price > ANY (SELECT price FROM offers WHERE offers.item_id = items.id)", K::Query, &["items", "offers"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM t1 WHERE (a, b) IN (SELECT a, b FROM t2)", K::Query, &["t1", "t2"], NONE, false, C::Yes),
    (Pg, "SELECT user_id, count(*) FROM orders GROUP BY user_id HAVING count(*) > (SELECT avg(n) FROM stats)", K::Query, &["orders", "stats"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM users u ORDER BY (SELECT max(created_at) FROM logins l WHERE l.user_id = u.id) DESC NULLS LAST", K::Query, &["logins", "users"], NONE, false, C::Yes),
    (Pg, "SELECT ARRAY(SELECT id FROM tags WHERE post_id = $1)", K::Query, &["tags"], NONE, false, C::Yes),
    // Set operations.
    (Pg, "SELECT id FROM a UNION SELECT id FROM b INTERSECT SELECT id FROM c EXCEPT ALL SELECT id FROM d", K::Query, &["a", "b", "c", "d"], NONE, false, C::Yes),
    (Pg, "(SELECT id FROM a ORDER BY id LIMIT 5) UNION ALL (SELECT id FROM b)", K::Query, &["a", "b"], NONE, false, C::Yes),
    // CTEs: a CTE name is not a table, even when it shadows one; scopes nest.
    (Pg, "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT * FROM recent JOIN users ON users.id = recent.user_id", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (Pg, "WITH orders AS (SELECT * FROM archived_orders) SELECT * FROM orders", K::Query, &["archived_orders"], NONE, false, C::Yes),
    (Pg, "WITH items AS (SELECT * FROM items WHERE visible) SELECT * FROM items", K::Query, &["items"], NONE, false, C::Yes),
    (Pg, "WITH a AS (SELECT * FROM t1) SELECT * FROM (WITH b AS (SELECT * FROM a) SELECT * FROM b) x JOIN b ON true", K::Query, &["b", "t1"], NONE, false, C::Yes),
    (Pg, "WITH ids AS (SELECT id FROM vip_users) SELECT * FROM orders WHERE user_id IN (SELECT id FROM ids)", K::Query, &["orders", "vip_users"], NONE, false, C::Yes),
    (Pg, "WITH a AS (SELECT * FROM t1), b AS (SELECT * FROM a JOIN t2 ON true) SELECT * FROM b", K::Query, &["t1", "t2"], NONE, false, C::Yes),
    (Pg, "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM t2) SELECT * FROM a", K::Query, &["b", "t2"], NONE, false, C::Yes),
    (Pg, "WITH users AS (SELECT 1 AS id) SELECT * FROM public.users, users", K::Query, &["users"], NONE, false, C::Yes),
    (Pg, "WITH RECURSIVE tree AS (SELECT id, parent_id FROM categories WHERE id = $1 UNION ALL SELECT c.id, c.parent_id FROM categories c JOIN tree ON c.parent_id = tree.id) SELECT * FROM tree", K::Query, &["categories"], NONE, false, C::Yes),
    // LATERAL and table functions, which are not tables.
    (Pg, "SELECT u.id, o.* FROM users u CROSS JOIN LATERAL (SELECT * FROM orders WHERE orders.user_id = u.id ORDER BY created_at DESC LIMIT 3) o", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM users u, LATERAL jsonb_array_elements(u.tags) AS tag", K::Query, &["users"], NONE, false, C::Yes),
    (Pg, "SELECT g FROM generate_series(1, $1) AS g", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "SELECT d::date FROM generate_series($1::date, $2::date, interval '1 day') AS d", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "SELECT * FROM generate_series(1, 10) WITH ORDINALITY AS g(n, i)", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "SELECT i.* FROM unnest($1::int[]) AS ids(id) JOIN items i ON i.id = ids.id", K::Query, &["items"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM json_to_recordset($1) AS x(id int, name text)", K::Query, NONE, NONE, false, C::Yes),
    // Expressions: windows, FILTER, CASE, casts, COALESCE, LIKE / ILIKE, DISTINCT ON, ...
    (Pg, "SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at) AS rn, sum(total) OVER w FROM orders WINDOW w AS (PARTITION BY user_id)", K::Query, &["orders"], NONE, false, C::Yes),
    (Pg, "SELECT count(*) FILTER (WHERE done) AS done, count(*) AS total FROM tasks WHERE project_id = $1", K::Query, &["tasks"], NONE, false, C::Yes),
    (Pg, "SELECT CASE WHEN stock > 0 THEN 'in' ELSE 'out' END, COALESCE(price, 0)::numeric(10,2), CAST(id AS text) FROM products", K::Query, &["products"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM products WHERE name ILIKE $1 OR sku LIKE 'A%' OR name ~* $2 OR name SIMILAR TO 'x%'", K::Query, &["products"], NONE, false, C::Yes),
    (Pg, "SELECT DISTINCT ON (user_id) user_id, created_at FROM logins ORDER BY user_id, created_at DESC", K::Query, &["logins"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM posts ORDER BY id LIMIT $1 OFFSET $2", K::Query, &["posts"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM posts ORDER BY id FETCH FIRST 10 ROWS ONLY", K::Query, &["posts"], NONE, false, C::Yes),
    (Pg, "SELECT data->>'name', data #> '{a,b}' FROM documents WHERE data @> $1::jsonb", K::Query, &["documents"], NONE, false, C::Yes),
    (Pg, "SELECT date_trunc('day', created_at) AS day, to_char(created_at, 'YYYY-MM'), extract(year FROM created_at) FROM events GROUP BY 1, 2, 3", K::Query, &["events"], NONE, false, C::Yes),
    (Pg, "SELECT created_at AT TIME ZONE 'UTC', age(finished_at, started_at) FROM jobs", K::Query, &["jobs"], NONE, false, C::Yes),
    (Pg, "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total), string_agg(tag, ',' ORDER BY tag) FROM orders", K::Query, &["orders"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM articles WHERE to_tsvector('english', body) @@ plainto_tsquery('english', $1)", K::Query, &["articles"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM accounts WHERE balance BETWEEN $1 AND $2 AND owner IS DISTINCT FROM $3 AND lower(email) = lower($4)", K::Query, &["accounts"], NONE, false, C::Yes),
    (Pg, "SELECT a, b, count(*) FROM t GROUP BY ROLLUP (a, b)", K::Query, &["t"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM ONLY parents", K::Query, &["parents"], NONE, false, C::Yes),
    (Pg, "WITH a AS (SELECT 1), b AS (SELECT * FROM (SELECT * FROM a) x) SELECT * FROM b", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM (SELECT * FROM r) x WHERE n < 5) SELECT * FROM r", K::Query, NONE, NONE, false, C::Yes),
    (Pg, r#"WITH "Foo" AS (SELECT 1) SELECT * FROM foo"#, K::Query, &["foo"], NONE, false, C::Yes),
    (Pg, "WITH Foo AS (SELECT 1) SELECT * FROM FOO", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "SELECT * FROM t WHERE x = $1 UNION SELECT * FROM s WHERE y IN (WITH q AS (SELECT 1 FROM r) SELECT * FROM q)", K::Query, &["r", "s", "t"], NONE, false, C::Yes),
    (Pg, "WITH x AS MATERIALIZED (SELECT * FROM t) SELECT * FROM x", K::Query, &["t"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM orders users", K::Query, &["orders"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM (VALUES ((SELECT max(id) FROM t))) v(x)", K::Query, &["t"], NONE, false, C::Yes),
    (Pg, "SELECT coalesce((SELECT name FROM u WHERE id = 1), 'x'), CASE WHEN EXISTS (SELECT 1 FROM a) THEN 1 END", K::Query, &["a", "u"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM t LIMIT (SELECT n FROM cfg)", K::Query, &["cfg", "t"], NONE, false, C::Yes),
    (Pg, "SELECT pg_catalog.lower(name) FROM t", K::Query, &["t"], NONE, false, C::Yes),
    // Views (AnalyzerConfig.views), a view over a view, and declared cacheable functions.
    (Pg, "SELECT * FROM active_users WHERE id = $1", K::Query, &["active_users", "users"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM vip", K::Query, &["active_users", "orders", "users", "vip"], NONE, false, C::Yes),
    (Pg, "SELECT slugify(title) FROM posts", K::Query, &["posts"], NONE, false, C::Yes),
    // ---------------------------------------------------------------- PostgreSQL: never cached
    (Pg, "SELECT * FROM events WHERE created_at > now() - interval '1 day'", K::Query, &["events"], NONE, false, C::Volatile),
    (Pg, "SELECT * FROM sessions WHERE expires_at > CURRENT_TIMESTAMP", K::Query, &["sessions"], NONE, false, C::Volatile),
    (Pg, "SELECT * FROM events WHERE day = CURRENT_DATE", K::Query, &["events"], NONE, false, C::Volatile),
    (Pg, "SELECT * FROM quotes ORDER BY random() LIMIT 1", K::Query, &["quotes"], NONE, false, C::Volatile),
    (Pg, "SELECT clock_timestamp()", K::Query, NONE, NONE, false, C::Volatile),
    (Pg, "SELECT gen_random_uuid()", K::Query, NONE, NONE, false, C::Volatile),
    (Pg, "SELECT age(birth_date) FROM people", K::Query, &["people"], NONE, false, C::Volatile),
    (Pg, "SELECT * FROM events WHERE created_at > 'now'::timestamp", K::Query, &["events"], NONE, false, C::Volatile),
    (Pg, "SELECT current_setting('app.tenant')", K::Query, NONE, NONE, false, C::Volatile),
    (Pg, "SELECT pg_advisory_xact_lock($1)", K::Query, NONE, NONE, false, C::Volatile),
    // nextval() writes its sequence, which `SELECT last_value FROM seq` reads.
    (Pg, "SELECT nextval('order_id_seq')", K::Query, NONE, &["order_id_seq"], false, C::Volatile),
    (Pg, "SELECT setval('billing.\"Invoice_seq\"', $1)", K::Query, NONE, &["billing.Invoice_seq"], false, C::Volatile),
    (Pg, "SELECT nextval($1)", K::Query, NONE, NONE, true, C::Volatile),
    // An unknown function may write anything.
    (Pg, "SELECT calculate_score(id) FROM players", K::Query, &["players"], NONE, true, C::Unknown),
    (Pg, "SELECT public.lower(name) FROM players", K::Query, &["players"], NONE, true, C::Unknown),
    (Pg, "SELECT * FROM search_products($1)", K::Query, NONE, NONE, true, C::Unknown),
    (Pg, "SELECT * FROM t WHERE id IN (SELECT id FROM s WHERE ts < now())", K::Query, &["s", "t"], NONE, false, C::Volatile),
    (Pg, "WITH x AS (SELECT random() AS r) SELECT * FROM x", K::Query, NONE, NONE, false, C::Volatile),
    (Pg, "SELECT pg_catalog.now()", K::Query, NONE, NONE, false, C::Volatile),
    // Any 'now' / 'today' literal counts as the clock: a false positive, on the safe side.
    (Pg, "SELECT * FROM t WHERE label = 'Today'", K::Query, &["t"], NONE, false, C::Volatile),
    (Pg, r#"SELECT * FROM "pg_catalog"."pg_class""#, K::Query, &["pg_catalog.pg_class"], NONE, false, C::Catalog),
    (Pg, "SELECT * FROM pg_temp_3.t", K::Query, &["pg_temp_3.t"], NONE, false, C::Temp),
    (Pg, "SELECT * FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", K::Query, &["jobs"], NONE, false, C::Locking),
    (Pg, "SELECT * FROM accounts WHERE id = $1 FOR SHARE", K::Query, &["accounts"], NONE, false, C::Locking),
    (Pg, "SELECT * FROM accounts a JOIN (SELECT * FROM limits FOR UPDATE) l ON true", K::Query, &["accounts", "limits"], NONE, false, C::Locking),
    // Lock strengths sqlparser 0.64 does not parse are read as FOR UPDATE / FOR SHARE: locking
    // reads that write nothing, rather than parse errors that would invalidate everything.
    (Pg, "SELECT * FROM accounts WHERE id = $1 FOR NO KEY UPDATE", K::Query, &["accounts"], NONE, false, C::Locking),
    (Pg, "SELECT * FROM jobs WHERE state = 'ready' LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED", K::Query, &["jobs"], NONE, false, C::Locking),
    (Pg, "SELECT * FROM orders o JOIN users u ON u.id = o.user_id FOR UPDATE OF o FOR KEY SHARE OF u", K::Query, &["orders", "users"], NONE, false, C::Locking),
    (Pg, r#"SELECT "key" FROM t FOR "no" KEY UPDATE"#, K::Unparsed, NONE, NONE, true, C::Parse),
    // A sample is random, and a seeded one changes when VACUUM FULL or CLUSTER rewrites the table.
    (Pg, "SELECT * FROM items TABLESAMPLE SYSTEM (10)", K::Query, &["items"], NONE, false, C::Volatile),
    (Pg, "SELECT count(*) FROM items i TABLESAMPLE BERNOULLI (5) REPEATABLE (42)", K::Query, &["items"], NONE, false, C::Volatile),
    // TABLE name: SELECT * FROM name, as a statement, a subquery, a CTE or a set operand.
    (Pg, "TABLE jobs", K::Query, &["jobs"], NONE, false, C::Yes),
    (Pg, "TABLE audit.events ORDER BY id LIMIT 10", K::Query, &["audit.events"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM (TABLE jobs) t", K::Query, &["jobs"], NONE, false, C::Yes),
    (Pg, r#"SELECT count(*) FROM (TABLE "Jobs") t"#, K::Query, &["Jobs"], NONE, false, C::Yes),
    (Pg, "WITH j AS (TABLE jobs) SELECT * FROM j", K::Query, &["jobs"], NONE, false, C::Yes),
    (Pg, "SELECT id FROM a UNION TABLE b EXCEPT TABLE c", K::Query, &["a", "b", "c"], NONE, false, C::Yes),
    (Pg, "SELECT * FROM users WHERE id IN (TABLE banned)", K::Query, &["banned", "users"], NONE, false, C::Yes),
    (Pg, "WITH jobs AS (SELECT 1 AS id) SELECT * FROM (TABLE jobs) t", K::Query, NONE, NONE, false, C::Yes),
    (Pg, "TABLE pg_catalog.pg_class", K::Query, &["pg_catalog.pg_class"], NONE, false, C::Catalog),
    // Not parsed by sqlparser 0.64 after INSERT: safe, everything is invalidated.
    (Pg, "INSERT INTO archive TABLE jobs", K::Unparsed, NONE, NONE, true, C::Parse),
    (Pg, "SELECT * FROM pg_catalog.pg_class WHERE relname = $1", K::Query, &["pg_catalog.pg_class"], NONE, false, C::Catalog),
    (Pg, "SELECT column_name FROM information_schema.columns WHERE table_name = $1", K::Query, &["information_schema.columns"], NONE, false, C::Catalog),
    (Pg, "SELECT * FROM pg_stat_activity", K::Query, &["pg_stat_activity"], NONE, false, C::Catalog),
    (Pg, "SELECT * FROM pg_temp.scratch", K::Query, &["pg_temp.scratch"], NONE, false, C::Temp),
    (Pg, "SELECT * INTO archive_2024 FROM orders WHERE created_at < $1", K::Query, &["orders"], &["archive_2024"], false, C::Into),
    (Pg, "EXPLAIN SELECT * FROM orders", K::Util, &["orders"], NONE, false, C::Explain),
    (Pg, "EXPLAIN ANALYZE SELECT * FROM orders", K::Util, &["orders"], NONE, false, C::Explain),
    (Pg, "EXPLAIN ANALYZE DELETE FROM orders WHERE id = $1", K::Util, NONE, &["orders"], false, C::Explain),
    (Pg, "EXPLAIN DELETE FROM orders WHERE id = $1", K::Util, NONE, NONE, false, C::Explain),
    // ---------------------------------------------------------------- PostgreSQL: writes
    (Pg, "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", K::Insert, NONE, &["users"], false, C::Write),
    (Pg, "INSERT INTO tokens (id, user_id) VALUES (gen_random_uuid(), $1)", K::Insert, NONE, &["tokens"], false, C::Write),
    (Pg, "INSERT INTO order_archive SELECT * FROM orders WHERE created_at < $1", K::Insert, &["orders"], &["order_archive"], false, C::Write),
    (Pg, "INSERT INTO counters (key, n) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET n = counters.n + EXCLUDED.n", K::Insert, NONE, &["counters"], false, C::Write),
    (Pg, "INSERT INTO tags (name) VALUES ($1) ON CONFLICT DO NOTHING", K::Insert, NONE, &["tags"], false, C::Write),
    // sqlparser 0.64 reads `ON` after INSERT ... SELECT as a join condition: a parse error.
    (Pg, "INSERT INTO tags (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", K::Unparsed, NONE, NONE, true, C::Parse),
    (Pg, "INSERT INTO t DEFAULT VALUES", K::Insert, NONE, &["t"], false, C::Write),
    (Pg, "UPDATE orders SET status = s.status FROM shipments s WHERE s.order_id = orders.id", K::Update, &["shipments"], &["orders"], false, C::Write),
    (Pg, "UPDATE accounts SET balance = balance - $1 WHERE id = (SELECT account_id FROM cards WHERE number = $2) RETURNING balance", K::Update, &["cards"], &["accounts"], false, C::Write),
    (Pg, r#"UPDATE "Items" SET n = n + 1"#, K::Update, NONE, &["Items"], false, C::Write),
    (Pg, "UPDATE active_users SET name = $1 WHERE id = $2", K::Update, NONE, &["active_users", "users"], false, C::Write),
    (Pg, "DELETE FROM sessions USING users WHERE sessions.user_id = users.id AND users.banned", K::Delete, &["users"], &["sessions"], false, C::Write),
    (Pg, "DELETE FROM sessions AS s USING users u WHERE u.id = s.user_id", K::Delete, &["users"], &["sessions"], false, C::Write),
    (Pg, "DELETE FROM jobs WHERE id = $1 RETURNING *", K::Delete, NONE, &["jobs"], false, C::Write),
    (Pg, "DELETE FROM ONLY logs WHERE ts < $1", K::Delete, NONE, &["logs"], false, C::Write),
    (Pg, "WITH t AS (SELECT 1) DELETE FROM t", K::Delete, NONE, &["t"], false, C::Write),
    (Pg, "WITH s AS (SELECT * FROM src) UPDATE dst SET x = s.x FROM s WHERE dst.id = s.id", K::Update, &["src"], &["dst"], false, C::Write),
    (Pg, "INSERT INTO dst WITH s AS (SELECT * FROM src) SELECT * FROM s", K::Insert, &["src"], &["dst"], false, C::Write),
    (Pg, "INSERT INTO t (a) VALUES ((SELECT max(a) FROM s))", K::Insert, &["s"], &["t"], false, C::Write),
    (Pg, "INSERT INTO active_users (name) VALUES ($1)", K::Insert, NONE, &["active_users", "users"], false, C::Write),
    (Pg, "DELETE FROM vip WHERE id = $1", K::Delete, NONE, &["active_users", "orders", "users", "vip"], false, C::Write),
    (Pg, "UPDATE users AS u SET name = o.name FROM orders o WHERE o.user_id = u.id", K::Update, &["orders"], &["users"], false, C::Write),
    (Pg, "MERGE INTO t USING (SELECT * FROM s WHERE x) AS src ON t.id = src.id WHEN MATCHED THEN DELETE", K::Merge, &["s"], &["t"], false, C::Write),
    // Writable CTEs: a SELECT around a DELETE ... RETURNING is a write.
    (Pg, "WITH moved AS (DELETE FROM inbox WHERE id = $1 RETURNING *) SELECT * FROM moved", K::Query, NONE, &["inbox"], false, C::Write),
    (Pg, "WITH moved AS (DELETE FROM inbox WHERE read RETURNING *) INSERT INTO archive SELECT * FROM moved", K::Insert, NONE, &["archive", "inbox"], false, C::Write),
    (Pg, "WITH u AS (UPDATE stock SET qty = qty - 1 WHERE id = $1 RETURNING id) SELECT count(*) FROM u JOIN items ON items.id = u.id", K::Query, &["items"], &["stock"], false, C::Write),
    (Pg, "MERGE INTO stock s USING deliveries d ON s.item_id = d.item_id WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty WHEN NOT MATCHED THEN INSERT (item_id, qty) VALUES (d.item_id, d.qty)", K::Merge, &["deliveries"], &["stock"], false, C::Write),
    (Pg, "TRUNCATE TABLE logs, audit.events RESTART IDENTITY", K::Truncate, NONE, &["audit.events", "logs"], false, C::Write),
    // TRUNCATE ... CASCADE also empties the tables that reference these.
    (Pg, "TRUNCATE users CASCADE", K::Truncate, NONE, &["users"], true, C::Write),
    (Pg, "COPY items (id, name) FROM STDIN", K::Copy, NONE, &["items"], false, C::Write),
    (Pg, "COPY (SELECT * FROM items) TO STDOUT", K::Util, &["items"], NONE, false, C::NotQuery),
    // DDL writes the tables it names.
    (Pg, "CREATE TABLE IF NOT EXISTS widgets (id bigserial PRIMARY KEY, name text NOT NULL)", K::Ddl, NONE, &["widgets"], false, C::Write),
    (Pg, "CREATE TABLE order_summary AS SELECT user_id, sum(total) FROM orders GROUP BY user_id", K::Ddl, &["orders"], &["order_summary"], false, C::Write),
    (Pg, "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100", K::Ddl, &["orders"], &["big_orders"], false, C::Write),
    (Pg, "CREATE MATERIALIZED VIEW sales AS SELECT * FROM orders", K::Ddl, &["orders"], &["sales"], false, C::Write),
    (Pg, "REFRESH MATERIALIZED VIEW sales", K::Ddl, NONE, &["sales"], false, C::Write),
    (Pg, "CREATE INDEX CONCURRENTLY idx_orders_user ON orders (user_id)", K::Ddl, NONE, &["orders"], false, C::Write),
    // DROP INDEX names no table and changes no row: nothing to invalidate.
    (Pg, "DROP INDEX idx_orders_user", K::Ddl, NONE, NONE, false, C::Write),
    (Pg, "ALTER TABLE users ADD COLUMN last_seen timestamptz", K::Ddl, NONE, &["users"], false, C::Write),
    (Pg, "ALTER TABLE users RENAME TO customers", K::Ddl, NONE, &["customers", "users"], false, C::Write),
    (Pg, "ALTER TABLE users RENAME COLUMN name TO full_name", K::Ddl, NONE, &["users"], false, C::Write),
    (Pg, "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", K::Ddl, NONE, &["events", "events_2024"], false, C::Write),
    (Pg, "DROP TABLE IF EXISTS a, b CASCADE", K::Ddl, NONE, &["a", "b"], false, C::Write),
    (Pg, "DROP SCHEMA reporting CASCADE", K::Ddl, NONE, NONE, true, C::Write),
    (Pg, "GRANT SELECT ON orders TO analyst", K::Ddl, NONE, NONE, true, C::Write),
    (Pg, "COMMENT ON TABLE orders IS 'orders'", K::Ddl, NONE, NONE, true, C::Write),
    (Pg, "CREATE TEMP TABLE scratch (id int)", K::Ddl, NONE, &["scratch"], false, C::Write),
    // Procedures and anything that runs code the SQL does not show.
    (Pg, "CALL recalculate_totals($1)", K::Proc, NONE, NONE, true, C::Write),
    (Pg, "EXECUTE my_plan(1)", K::Proc, NONE, NONE, true, C::Write),
    // sqlparser 0.64 does not parse DO: a parse error, which is not read-only either.
    (Pg, "DO $$ BEGIN PERFORM 1; END $$", K::Unparsed, NONE, NONE, true, C::Parse),
    (Pg, "PREPARE q AS SELECT 1", K::Util, NONE, NONE, false, C::NotQuery),
    (Pg, "SELECT 1; SELECT * FROM users", K::Multi, &["users"], NONE, true, C::Multiple),
    (Pg, "UPDATE a SET x = 1; DELETE FROM b", K::Multi, NONE, &["a", "b"], true, C::Multiple),
    // Transaction control and other statements.
    (Pg, "BEGIN", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "COMMIT", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "ROLLBACK", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "SAVEPOINT s1", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "RELEASE SAVEPOINT s1", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "ROLLBACK TO SAVEPOINT s1", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", K::Tx, NONE, NONE, false, C::NotQuery),
    (Pg, "SET default_transaction_isolation = 'serializable'", K::Tx, NONE, NONE, false, C::NotQuery),
    // Settings that may change what later statements read, and settings that cannot.
    (Pg, "SET search_path TO app, public", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET LOCAL search_path = app", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET ROLE reporting", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET SESSION AUTHORIZATION reporting", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET TIME ZONE 'Europe/Paris'", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET TimeZone = 'UTC'", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET LOCAL app.tenant = '42'", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "RESET ALL", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "DISCARD ALL", K::Session, NONE, NONE, false, C::NotQuery),
    (Pg, "SET LOCAL statement_timeout = '5s'", K::Util, NONE, NONE, false, C::NotQuery),
    (Pg, "SET application_name = 'worker'", K::Util, NONE, NONE, false, C::NotQuery),
    (Pg, "SET enable_seqscan = off", K::Util, NONE, NONE, false, C::NotQuery),
    (Pg, "SHOW search_path", K::Util, NONE, NONE, false, C::NotQuery),
    (Pg, "LISTEN events", K::Util, NONE, NONE, false, C::NotQuery),
    (Pg, "LOCK TABLE accounts IN SHARE MODE", K::Util, &["accounts"], NONE, false, C::NotQuery),
    // sqlparser 0.64 parses a bare TABLE statement only as respelled SELECT * FROM.
    (Pg, "TABLE users", K::Query, &["users"], NONE, false, C::Yes),

    // ---------------------------------------------------------------- MySQL / MariaDB: reads
    (My, "SELECT * FROM users WHERE id = ?", K::Query, &["users"], NONE, false, C::Yes),
    // Names fold to lower case even when quoted (merging names is always safe); the
    // connection's database (AnalyzerConfig.default_schema = shop) is stripped.
    (My, "SELECT * FROM `Users` JOIN users ON true JOIN USERS ON true", K::Query, &["users"], NONE, false, C::Yes),
    (My, "SELECT * FROM shop.items JOIN `shop`.`Items` ON true", K::Query, &["items"], NONE, false, C::Yes),
    (My, "SELECT * FROM other.items", K::Query, &["other.items"], NONE, false, C::Yes),
    (My, "SELECT * FROM note JOIN notebook ON note.id = notebook.note_id", K::Query, &["note", "notebook"], NONE, false, C::Yes),
    (My, "SELECT * FROM orders o JOIN users u ON u.id = o.user_id LEFT JOIN coupons c ON c.id = o.coupon_id RIGHT JOIN regions r ON r.id = u.region_id STRAIGHT_JOIN zones z ON z.id = r.zone_id", K::Query, &["coupons", "orders", "regions", "users", "zones"], NONE, false, C::Yes),
    (My, "SELECT * FROM a CROSS JOIN b NATURAL LEFT JOIN c", K::Query, &["a", "b", "c"], NONE, false, C::Yes),
    (My, "SELECT u.id, (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) FROM users u", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (My, "SELECT t.* FROM (SELECT user_id, SUM(total) s FROM orders GROUP BY user_id) AS t WHERE t.s > ?", K::Query, &["orders"], NONE, false, C::Yes),
    (My, "SELECT * FROM products WHERE category_id IN (SELECT id FROM categories WHERE parent_id = ?)", K::Query, &["categories", "products"], NONE, false, C::Yes),
    (My, "SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM bans b WHERE b.user_id = u.id)", K::Query, &["bans", "users"], NONE, false, C::Yes),
    (My, "SELECT * FROM t WHERE x > ANY (SELECT y FROM s)", K::Query, &["s", "t"], NONE, false, C::Yes),
    (My, "SELECT user_id FROM orders GROUP BY user_id HAVING SUM(total) > (SELECT AVG(total) FROM refunds)", K::Query, &["orders", "refunds"], NONE, false, C::Yes),
    (My, "SELECT * FROM posts p ORDER BY (SELECT COUNT(*) FROM likes l WHERE l.post_id = p.id) DESC LIMIT 10", K::Query, &["likes", "posts"], NONE, false, C::Yes),
    (My, "SELECT id FROM a UNION ALL SELECT id FROM b UNION SELECT id FROM c", K::Query, &["a", "b", "c"], NONE, false, C::Yes),
    (My, "SELECT id FROM a INTERSECT SELECT id FROM b EXCEPT SELECT id FROM c", K::Query, &["a", "b", "c"], NONE, false, C::Yes),
    (My, "WITH top AS (SELECT user_id FROM orders ORDER BY total DESC LIMIT 10) SELECT * FROM users WHERE id IN (SELECT user_id FROM top)", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (My, "WITH users AS (SELECT * FROM admins) SELECT * FROM users", K::Query, &["admins"], NONE, false, C::Yes),
    (My, "WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 10) SELECT n FROM seq", K::Query, NONE, NONE, false, C::Yes),
    (My, "SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id LIMIT 1) AS last_order", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (My, "SELECT jt.* FROM docs, JSON_TABLE(docs.body, '$[*]' COLUMNS (id INT PATH '$.id')) AS jt", K::Query, &["docs"], NONE, false, C::Yes),
    (My, "SELECT id, RANK() OVER (PARTITION BY dept ORDER BY salary DESC) FROM employees", K::Query, &["employees"], NONE, false, C::Yes),
    (My, "SELECT user_id, GROUP_CONCAT(tag ORDER BY tag SEPARATOR ',') FROM user_tags GROUP BY user_id", K::Query, &["user_tags"], NONE, false, C::Yes),
    (My, "SELECT IF(stock > 0, 'yes', 'no'), IFNULL(discount, 0), COALESCE(a, b), CASE status WHEN 1 THEN 'a' ELSE 'b' END FROM products", K::Query, &["products"], NONE, false, C::Yes),
    (My, "SELECT CAST(price AS DECIMAL(10,2)), CONVERT(name USING utf8mb4) FROM products", K::Query, &["products"], NONE, false, C::Yes),
    (My, "SELECT * FROM products WHERE name LIKE CONCAT('%', ?, '%')", K::Query, &["products"], NONE, false, C::Yes),
    (My, "SELECT DATE_FORMAT(created_at, '%Y-%m') AS m, COUNT(*) FROM orders GROUP BY m", K::Query, &["orders"], NONE, false, C::Yes),
    (My, "SELECT * FROM orders WHERE created_at > DATE_SUB(?, INTERVAL 7 DAY)", K::Query, &["orders"], NONE, false, C::Yes),
    (My, "SELECT MATCH(title) AGAINST (? IN NATURAL LANGUAGE MODE) AS score FROM articles", K::Query, &["articles"], NONE, false, C::Yes),
    (My, "SELECT JSON_EXTRACT(doc, '$.a'), doc->>'$.b' FROM docs", K::Query, &["docs"], NONE, false, C::Yes),
    (My, "SELECT * FROM posts ORDER BY id DESC LIMIT ?, ?", K::Query, &["posts"], NONE, false, C::Yes),
    (My, "SELECT * FROM posts LIMIT ? OFFSET ?", K::Query, &["posts"], NONE, false, C::Yes),
    (My, "SELECT * FROM t USE INDEX (idx) WHERE a = ?", K::Query, &["t"], NONE, false, C::Yes),
    (My, "SELECT * FROM t PARTITION (p0)", K::Query, &["t"], NONE, false, C::Yes),
    (My, "SELECT SQL_NO_CACHE DISTINCT a FROM t FORCE INDEX (PRIMARY) WHERE name REGEXP ?", K::Query, &["t"], NONE, false, C::Yes),
    (My, "WITH Foo AS (SELECT 1) SELECT * FROM foo", K::Query, NONE, NONE, false, C::Yes),
    (My, "SELECT * FROM active_users", K::Query, &["active_users", "users"], NONE, false, C::Yes),
    (My, "SELECT slugify(title) FROM posts", K::Query, &["posts"], NONE, false, C::Yes),
    // ---------------------------------------------------------------- MySQL: never cached
    (My, "SELECT * FROM orders WHERE created_at > DATE_SUB(NOW(), INTERVAL 7 DAY)", K::Query, &["orders"], NONE, false, C::Volatile),
    (My, "SELECT * FROM orders WHERE created_at > CURDATE()", K::Query, &["orders"], NONE, false, C::Volatile),
    (My, "SELECT UUID()", K::Query, NONE, NONE, false, C::Volatile),
    (My, "SELECT * FROM quotes ORDER BY RAND() LIMIT 1", K::Query, &["quotes"], NONE, false, C::Volatile),
    (My, "SELECT SYSDATE()", K::Query, NONE, NONE, false, C::Volatile),
    (My, "SELECT LAST_INSERT_ID()", K::Query, NONE, NONE, false, C::Volatile),
    (My, "SELECT FOUND_ROWS()", K::Query, NONE, NONE, false, C::Volatile),
    (My, "SELECT * FROM t WHERE a = @counter", K::Query, &["t"], NONE, false, C::Volatile),
    (My, "SELECT @@session.time_zone", K::Query, NONE, NONE, false, C::Volatile),
    (My, "SELECT my_udf(id) FROM items", K::Query, &["items"], NONE, true, C::Unknown),
    (My, "SELECT * FROM accounts WHERE id = ? FOR UPDATE", K::Query, &["accounts"], NONE, false, C::Locking),
    (My, "SELECT * FROM accounts WHERE id = ? FOR SHARE", K::Query, &["accounts"], NONE, false, C::Locking),
    // LOCK IN SHARE MODE and MariaDB's WAIT n, which sqlparser 0.64 does not parse, are read
    // as FOR SHARE and NOWAIT: locking reads, not parse errors that would invalidate everything.
    (My, "SELECT * FROM accounts WHERE id = ? LOCK IN SHARE MODE", K::Query, &["accounts"], NONE, false, C::Locking),
    (My, "SELECT * FROM accounts WHERE id = ? FOR UPDATE WAIT 5", K::Query, &["accounts"], NONE, false, C::Locking),
    (My, "SELECT * FROM accounts WHERE id = ? LOCK IN SHARE MODE WAIT 1", K::Query, &["accounts"], NONE, false, C::Locking),
    (My, "TABLE accounts", K::Query, &["accounts"], NONE, false, C::Yes),
    // Statement modifiers, which sqlparser 0.64 would take for the table written.
    (My, "DELETE QUICK FROM items WHERE id = ?", K::Delete, NONE, &["items"], false, C::Write),
    (My, "DELETE LOW_PRIORITY IGNORE FROM items", K::Delete, NONE, &["items"], false, C::Write),
    (My, "UPDATE IGNORE items SET n = 1", K::Update, NONE, &["items"], false, C::Write),
    (My, "UPDATE LOW_PRIORITY IGNORE items SET n = 1", K::Update, NONE, &["items"], false, C::Write),
    (Pg, "UPDATE ignore SET n = 1", K::Update, NONE, &["ignore"], false, C::Write),
    (My, "SELECT user, host FROM mysql.user", K::Query, &["mysql.user"], NONE, false, C::Catalog),
    (My, "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", K::Query, &["information_schema.tables"], NONE, false, C::Catalog),
    (My, "SELECT * FROM INFORMATION_SCHEMA.TABLES", K::Query, &["information_schema.tables"], NONE, false, C::Catalog),
    (My, "SELECT * FROM MySQL.User", K::Query, &["mysql.user"], NONE, false, C::Catalog),
    (My, "SELECT * FROM performance_schema.threads", K::Query, &["performance_schema.threads"], NONE, false, C::Catalog),
    (My, "SELECT COUNT(*) INTO @n FROM users", K::Query, &["users"], NONE, false, C::Into),
    (My, "EXPLAIN SELECT * FROM users", K::Util, &["users"], NONE, false, C::Explain),
    (My, "EXPLAIN ANALYZE SELECT * FROM users", K::Util, &["users"], NONE, false, C::Explain),
    // ---------------------------------------------------------------- MySQL: writes
    (My, "INSERT INTO users (email, name) VALUES (?, ?)", K::Insert, NONE, &["users"], false, C::Write),
    (My, "INSERT INTO tags (name) VALUES (?), (?), (?)", K::Insert, NONE, &["tags"], false, C::Write),
    (My, "INSERT INTO counters (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", K::Insert, NONE, &["counters"], false, C::Write),
    (My, "INSERT IGNORE INTO seen (id) VALUES (?)", K::Insert, NONE, &["seen"], false, C::Write),
    (My, "REPLACE INTO settings (k, v) VALUES (?, ?)", K::Insert, NONE, &["settings"], false, C::Write),
    (My, "INSERT INTO archive SELECT * FROM orders WHERE created_at < ?", K::Insert, &["orders"], &["archive"], false, C::Write),
    (My, "INSERT INTO users SET email = ?, name = ?", K::Insert, NONE, &["users"], false, C::Write),
    (My, "REPLACE INTO t SELECT * FROM s", K::Insert, &["s"], &["t"], false, C::Write),
    (My, "UPDATE t SET a = (SELECT MAX(b) FROM s)", K::Update, &["s"], &["t"], false, C::Write),
    (My, "UPDATE users SET name = ? WHERE id = ?", K::Update, NONE, &["users"], false, C::Write),
    (My, "UPDATE jobs SET worker = ? WHERE worker IS NULL ORDER BY id LIMIT 1", K::Update, NONE, &["jobs"], false, C::Write),
    // Multi-table UPDATE: every joined table may be written.
    (My, "UPDATE orders o JOIN users u ON u.id = o.user_id SET o.region = u.region WHERE u.id = ?", K::Update, NONE, &["orders", "users"], false, C::Write),
    // sqlparser 0.64 does not parse the comma form of multi-table UPDATE: a parse error is safe.
    (My, "UPDATE orders, users SET orders.region = users.region WHERE users.id = orders.user_id", K::Unparsed, NONE, NONE, true, C::Parse),
    (My, "UPDATE active_users SET name = ?", K::Update, NONE, &["active_users", "users"], false, C::Write),
    (My, "DELETE FROM sessions WHERE expires_at < ?", K::Delete, NONE, &["sessions"], false, C::Write),
    (My, "DELETE FROM logs ORDER BY id LIMIT 1000", K::Delete, NONE, &["logs"], false, C::Write),
    // Multi-table DELETE, with targets named by alias.
    (My, "DELETE o, i FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.id = ?", K::Delete, NONE, &["order_items", "orders"], false, C::Write),
    (My, "DELETE s FROM sessions AS s JOIN users AS u ON u.id = s.user_id WHERE u.banned = 1", K::Delete, &["users"], &["sessions"], false, C::Write),
    (My, "DELETE FROM s USING sessions AS s JOIN users AS u ON u.id = s.user_id WHERE u.banned = 1", K::Delete, &["users"], &["sessions"], false, C::Write),
    (My, "DELETE FROM sessions USING sessions JOIN users ON users.id = sessions.user_id", K::Delete, &["users"], &["sessions"], false, C::Write),
    (My, "TRUNCATE TABLE logs", K::Truncate, NONE, &["logs"], false, C::Write),
    // sqlparser 0.64 does not parse LOAD DATA [LOCAL] INFILE.
    (My, "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE imports", K::Unparsed, NONE, NONE, true, C::Parse),
    (My, "CREATE TABLE IF NOT EXISTS widgets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255)) ENGINE=InnoDB", K::Ddl, NONE, &["widgets"], false, C::Write),
    (My, "CREATE TEMPORARY TABLE tmp_ids (id INT)", K::Ddl, NONE, &["tmp_ids"], false, C::Write),
    (My, "CREATE OR REPLACE VIEW v_orders AS SELECT * FROM orders", K::Ddl, &["orders"], &["v_orders"], false, C::Write),
    (My, "CREATE INDEX idx_email ON users (email)", K::Ddl, NONE, &["users"], false, C::Write),
    (My, "DROP INDEX idx_age ON users", K::Ddl, NONE, &["users"], false, C::Write),
    (My, "ALTER TABLE users ADD COLUMN age INT, ADD INDEX idx_age (age)", K::Ddl, NONE, &["users"], false, C::Write),
    (My, "RENAME TABLE users TO customers, orders TO purchases", K::Ddl, NONE, &["customers", "orders", "purchases", "users"], false, C::Write),
    (My, "DROP TABLE IF EXISTS tmp_ids", K::Ddl, NONE, &["tmp_ids"], false, C::Write),
    (My, "DROP DATABASE shop", K::Ddl, NONE, NONE, true, C::Write),
    (My, "GRANT SELECT ON shop.* TO 'app'@'%'", K::Ddl, NONE, NONE, true, C::Write),
    (My, "CALL refresh_stats(?)", K::Proc, NONE, NONE, true, C::Write),
    (My, "EXECUTE stmt USING @a", K::Proc, NONE, NONE, true, C::Write),
    // sqlparser 0.64 does not parse MySQL's DO and PREPARE ... FROM.
    (My, "DO SLEEP(1)", K::Unparsed, NONE, NONE, true, C::Parse),
    (My, "PREPARE stmt FROM 'DELETE FROM users'", K::Unparsed, NONE, NONE, true, C::Parse),
    (My, "SELECT 1; SELECT 2", K::Multi, NONE, NONE, true, C::Multiple),
    (My, "START TRANSACTION", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "START TRANSACTION READ ONLY", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "COMMIT", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "ROLLBACK", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "SAVEPOINT sp1", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "RELEASE SAVEPOINT sp1", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "ROLLBACK TO SAVEPOINT sp1", K::Tx, NONE, NONE, false, C::NotQuery),
    (My, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", K::Tx, NONE, NONE, false, C::NotQuery),
    // GLOBAL only affects sessions opened later.
    (My, "SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED", K::Util, NONE, NONE, false, C::NotQuery),
    (My, "SET autocommit = 0", K::Session, NONE, NONE, false, C::NotQuery),
    (My, "USE archive", K::Session, NONE, NONE, false, C::NotQuery),
    (My, "SET sql_mode = 'ANSI_QUOTES'", K::Session, NONE, NONE, false, C::NotQuery),
    (My, "SET NAMES utf8mb4", K::Session, NONE, NONE, false, C::NotQuery),
    (My, "SET @@SESSION.time_zone = '+02:00'", K::Session, NONE, NONE, false, C::NotQuery),
    (My, "SET @tenant = 42", K::Util, NONE, NONE, false, C::NotQuery),
    (My, "SET SESSION innodb_lock_wait_timeout = 5", K::Util, NONE, NONE, false, C::NotQuery),
    (My, "SET @@max_execution_time = 100", K::Util, NONE, NONE, false, C::NotQuery),
    (My, "SHOW TABLES", K::Util, NONE, NONE, false, C::NotQuery),
    (My, "SHOW COLUMNS FROM users", K::Util, &["users"], NONE, false, C::NotQuery),
    (My, "LOCK TABLES users WRITE", K::Util, NONE, NONE, false, C::NotQuery),

    // ---------------------------------------------------------------- SQLite: reads
    (Lite, "SELECT * FROM users WHERE id = ?", K::Query, &["users"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM users WHERE id = ?1 AND name = :name AND email = @email AND x = $x", K::Query, &["users"], NONE, false, C::Yes),
    // Case-insensitive names; `main` is the default schema.
    (Lite, r#"SELECT * FROM main.users JOIN "Users" ON 1 JOIN "main"."USERS" ON 1"#, K::Query, &["users"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM aux.logs", K::Query, &["aux.logs"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM note JOIN notebook ON note.id = notebook.note_id", K::Query, &["note", "notebook"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM a LEFT JOIN b ON b.a_id = a.id INNER JOIN c ON c.b_id = b.id CROSS JOIN d NATURAL JOIN e", K::Query, &["a", "b", "c", "d", "e"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM a FULL OUTER JOIN b ON a.id = b.id RIGHT JOIN c ON c.id = b.id", K::Query, &["a", "b", "c"], NONE, false, C::Yes),
    (Lite, "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u", K::Query, &["orders", "users"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM (SELECT user_id, sum(total) AS s FROM orders GROUP BY user_id) WHERE s > ?", K::Query, &["orders"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM users WHERE id IN (SELECT user_id FROM orders) AND EXISTS (SELECT 1 FROM flags WHERE flags.user_id = users.id)", K::Query, &["flags", "orders", "users"], NONE, false, C::Yes),
    (Lite, "SELECT kind, count(*) FROM events GROUP BY kind HAVING count(*) > (SELECT count(*) FROM kinds)", K::Query, &["events", "kinds"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM posts ORDER BY (SELECT count(*) FROM comments WHERE comments.post_id = posts.id) DESC", K::Query, &["comments", "posts"], NONE, false, C::Yes),
    (Lite, "SELECT id FROM a UNION SELECT id FROM b INTERSECT SELECT id FROM c EXCEPT SELECT id FROM d", K::Query, &["a", "b", "c", "d"], NONE, false, C::Yes),
    (Lite, "WITH recent AS (SELECT * FROM orders WHERE created_at > ?) SELECT count(*) FROM recent", K::Query, &["orders"], NONE, false, C::Yes),
    (Lite, "WITH orders AS (SELECT * FROM old_orders) SELECT * FROM orders JOIN users ON users.id = orders.user_id", K::Query, &["old_orders", "users"], NONE, false, C::Yes),
    (Lite, "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 100) SELECT x FROM cnt", K::Query, NONE, NONE, false, C::Yes),
    (Lite, "WITH RECURSIVE tree(id) AS (SELECT id FROM nodes WHERE parent IS NULL UNION ALL SELECT nodes.id FROM nodes JOIN tree ON nodes.parent = tree.id) SELECT * FROM tree", K::Query, &["nodes"], NONE, false, C::Yes),
    (Lite, "SELECT t.id, j.value FROM tasks t, json_each(t.tags) j WHERE j.value = ?", K::Query, &["tasks"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM items WHERE id IN (SELECT value FROM json_each(?))", K::Query, &["items"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM json_tree(?)", K::Query, NONE, NONE, false, C::Yes),
    (Lite, "SELECT id, lag(score) OVER (ORDER BY ts), rank() OVER (PARTITION BY g ORDER BY score) FROM scores", K::Query, &["scores"], NONE, false, C::Yes),
    (Lite, "SELECT count(*) FILTER (WHERE done) FROM todos", K::Query, &["todos"], NONE, false, C::Yes),
    (Lite, "SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END, CAST(b AS INTEGER), coalesce(c, 0), ifnull(d, ''), iif(e, 1, 2) FROM t", K::Query, &["t"], NONE, false, C::Yes),
    (Lite, r"SELECT * FROM files WHERE path GLOB ? OR name LIKE ? ESCAPE '\'", K::Query, &["files"], NONE, false, C::Yes),
    (Lite, "SELECT printf('%d', n), substr(s, 1, 3), instr(s, 'x'), replace(s, 'a', 'b'), trim(s), hex(b), typeof(x), abs(n), round(x, 2) FROM t", K::Query, &["t"], NONE, false, C::Yes),
    (Lite, "SELECT json_extract(data, '$.a'), data ->> '$.b' FROM docs", K::Query, &["docs"], NONE, false, C::Yes),
    (Lite, "SELECT group_concat(name, ', ') FROM users", K::Query, &["users"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM posts ORDER BY id LIMIT ? OFFSET ?", K::Query, &["posts"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM t INDEXED BY idx WHERE a = ?", K::Query, &["t"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM docs_fts WHERE docs_fts MATCH ?", K::Query, &["docs_fts"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM t WHERE rowid = ?", K::Query, &["t"], NONE, false, C::Yes),
    // sqlparser 0.64 does not parse AS MATERIALIZED in the SQLite dialect.
    (Lite, "WITH x AS MATERIALIZED (SELECT * FROM t) SELECT * FROM x", K::Unparsed, NONE, NONE, true, C::Parse),
    // date() of a column is deterministic; date('now') reads the clock.
    (Lite, "SELECT date(created_at), strftime('%Y', created_at) FROM events", K::Query, &["events"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM events WHERE created_at > datetime(?)", K::Query, &["events"], NONE, false, C::Yes),
    (Lite, "SELECT * FROM events WHERE day = date('now')", K::Query, &["events"], NONE, false, C::Volatile),
    (Lite, "SELECT * FROM events WHERE created_at > datetime('now', '-1 day')", K::Query, &["events"], NONE, false, C::Volatile),
    (Lite, "SELECT julianday('now') - julianday(created_at) FROM events", K::Query, &["events"], NONE, false, C::Volatile),
    (Lite, "SELECT datetime()", K::Query, NONE, NONE, false, C::Volatile),
    (Lite, "SELECT unixepoch()", K::Query, NONE, NONE, false, C::Volatile),
    (Lite, "SELECT * FROM t ORDER BY random() LIMIT 1", K::Query, &["t"], NONE, false, C::Volatile),
    (Lite, "SELECT randomblob(16)", K::Query, NONE, NONE, false, C::Volatile),
    (Lite, "SELECT last_insert_rowid()", K::Query, NONE, NONE, false, C::Volatile),
    (Lite, "SELECT changes()", K::Query, NONE, NONE, false, C::Volatile),
    (Lite, "SELECT * FROM active_users", K::Query, &["active_users", "users"], NONE, false, C::Yes),
    (Lite, "SELECT slugify(title) FROM posts", K::Query, &["posts"], NONE, false, C::Yes),
    (Lite, "SELECT my_rust_fn(title) FROM posts", K::Query, &["posts"], NONE, true, C::Unknown),
    // ---------------------------------------------------------------- SQLite: never cached
    (Lite, "SELECT name FROM sqlite_master WHERE type = 'table'", K::Query, &["sqlite_master"], NONE, false, C::Catalog),
    (Lite, "SELECT name FROM sqlite_schema", K::Query, &["sqlite_schema"], NONE, false, C::Catalog),
    (Lite, "SELECT * FROM pragma_table_info('users')", K::Query, NONE, NONE, false, C::Volatile),
    (Lite, "SELECT * FROM main.sqlite_master", K::Query, &["sqlite_master"], NONE, false, C::Catalog),
    (Lite, r#"SELECT * FROM "temp"."t""#, K::Query, &["temp.t"], NONE, false, C::Temp),
    (Lite, "SELECT * FROM temp.scratch", K::Query, &["temp.scratch"], NONE, false, C::Temp),
    (Lite, "EXPLAIN QUERY PLAN SELECT * FROM users", K::Util, &["users"], NONE, false, C::Explain),
    // ---------------------------------------------------------------- SQLite: writes
    (Lite, "INSERT INTO users (email) VALUES (?) RETURNING id", K::Insert, NONE, &["users"], false, C::Write),
    (Lite, "INSERT OR REPLACE INTO settings (k, v) VALUES (?, ?)", K::Insert, NONE, &["settings"], false, C::Write),
    (Lite, "INSERT OR IGNORE INTO seen (id) VALUES (?)", K::Insert, NONE, &["seen"], false, C::Write),
    (Lite, "REPLACE INTO settings (k, v) VALUES (?, ?)", K::Insert, NONE, &["settings"], false, C::Write),
    (Lite, "INSERT INTO counters (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = n + excluded.n", K::Insert, NONE, &["counters"], false, C::Write),
    (Lite, "INSERT INTO tags (name) VALUES (?) ON CONFLICT DO NOTHING", K::Insert, NONE, &["tags"], false, C::Write),
    (Lite, "INSERT INTO archive SELECT * FROM orders WHERE created_at < ?", K::Insert, &["orders"], &["archive"], false, C::Write),
    (Lite, "INSERT INTO t DEFAULT VALUES", K::Insert, NONE, &["t"], false, C::Write),
    // Creating a trigger changes no row; the statements in its body are counted as writes.
    (Lite, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM s; END", K::Ddl, NONE, &["s"], false, C::Write),
    (Lite, "UPDATE users SET name = ? WHERE id = ?", K::Update, NONE, &["users"], false, C::Write),
    (Lite, "UPDATE OR IGNORE users SET email = ? WHERE id = ?", K::Update, NONE, &["users"], false, C::Write),
    (Lite, "UPDATE inventory SET qty = qty - s.qty FROM sales s WHERE s.item_id = inventory.item_id", K::Update, &["sales"], &["inventory"], false, C::Write),
    (Lite, "DELETE FROM sessions WHERE expires_at < ? RETURNING id", K::Delete, NONE, &["sessions"], false, C::Write),
    (Lite, "DELETE FROM t WHERE id IN (SELECT t_id FROM dead)", K::Delete, &["dead"], &["t"], false, C::Write),
    (Lite, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT)", K::Ddl, NONE, &["t"], false, C::Write),
    (Lite, "CREATE TABLE t2 AS SELECT * FROM t", K::Ddl, &["t"], &["t2"], false, C::Write),
    (Lite, "CREATE TEMP TABLE scratch (id)", K::Ddl, NONE, &["scratch"], false, C::Write),
    (Lite, "CREATE VIEW v AS SELECT * FROM t", K::Ddl, &["t"], &["v"], false, C::Write),
    (Lite, "CREATE UNIQUE INDEX IF NOT EXISTS idx ON t (name)", K::Ddl, NONE, &["t"], false, C::Write),
    (Lite, "CREATE VIRTUAL TABLE docs_fts USING fts5(body)", K::Ddl, NONE, &["docs_fts"], false, C::Write),
    (Lite, "DROP INDEX idx", K::Ddl, NONE, NONE, false, C::Write),
    (Lite, "DROP TABLE IF EXISTS t", K::Ddl, NONE, &["t"], false, C::Write),
    (Lite, "DROP VIEW v", K::Ddl, NONE, &["v"], false, C::Write),
    (Lite, "ALTER TABLE t RENAME TO t_old", K::Ddl, NONE, &["t", "t_old"], false, C::Write),
    (Lite, "ALTER TABLE t ADD COLUMN c TEXT", K::Ddl, NONE, &["t"], false, C::Write),
    (Lite, "ALTER TABLE t RENAME COLUMN a TO b", K::Ddl, NONE, &["t"], false, C::Write),
    (Lite, "ALTER TABLE t DROP COLUMN c", K::Ddl, NONE, &["t"], false, C::Write),
    (Lite, "VACUUM", K::Ddl, NONE, NONE, true, C::Write),
    (Lite, "ATTACH DATABASE 'other.db' AS aux", K::Ddl, NONE, NONE, true, C::Write),
    // sqlparser 0.64 does not parse these SQLite statements: parse errors, which are safe.
    (Lite, "PRAGMA table_info(users)", K::Unparsed, NONE, NONE, true, C::Parse),
    (Lite, "PRAGMA journal_mode = WAL", K::Unparsed, NONE, NONE, true, C::Parse),
    (Lite, "DETACH aux", K::Unparsed, NONE, NONE, true, C::Parse),
    (Lite, "REINDEX", K::Unparsed, NONE, NONE, true, C::Parse),
    (Lite, "PRAGMA user_version", K::Util, NONE, NONE, false, C::NotQuery),
    (Lite, "ANALYZE", K::Util, NONE, NONE, false, C::NotQuery),
    (Lite, "BEGIN", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "BEGIN IMMEDIATE", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "COMMIT", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "END", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "ROLLBACK", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "SAVEPOINT sp", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "RELEASE sp", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "ROLLBACK TO sp", K::Tx, NONE, NONE, false, C::NotQuery),
    (Lite, "INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)", K::Multi, NONE, &["a", "b"], true, C::Multiple),
];

fn config(dialect: D) -> AnalyzerConfig {
    let views: HashMap<String, Vec<String>> = [
        ("active_users", &["users"][..]),
        ("vip", &["active_users", "orders"][..]),
    ]
    .into_iter()
    .map(|(view, tables)| {
        (
            view.to_string(),
            tables.iter().map(|t| t.to_string()).collect(),
        )
    })
    .collect();
    AnalyzerConfig {
        cacheable_functions: BTreeSet::from(["slugify".to_string()]),
        views,
        default_schema: (dialect == My).then(|| "shop".to_string()),
        ..AnalyzerConfig::default()
    }
}

fn analyzer(dialect: D) -> Analyzer {
    let d = match dialect {
        Pg => Dialect::Postgres,
        My => Dialect::MySql,
        Lite => Dialect::Sqlite,
    };
    Analyzer::with_config(d, config(dialect))
}

fn kind(kind: &StatementKind) -> K {
    match kind {
        StatementKind::Query => K::Query,
        StatementKind::Insert => K::Insert,
        StatementKind::Update => K::Update,
        StatementKind::Delete => K::Delete,
        StatementKind::Merge => K::Merge,
        StatementKind::Truncate => K::Truncate,
        StatementKind::Copy => K::Copy,
        StatementKind::Ddl => K::Ddl,
        StatementKind::Procedure => K::Proc,
        StatementKind::Transaction(_) => K::Tx,
        StatementKind::Utility => K::Util,
        StatementKind::Session => K::Session,
        StatementKind::Multiple => K::Multi,
        StatementKind::Unparsed => K::Unparsed,
    }
}

fn cacheability(reason: Option<&NotCacheable>) -> C {
    match reason {
        None => C::Yes,
        Some(NotCacheable::ParseError(_)) => C::Parse,
        Some(NotCacheable::Write) => C::Write,
        Some(NotCacheable::MultipleStatements) => C::Multiple,
        Some(NotCacheable::NotAQuery) => C::NotQuery,
        Some(NotCacheable::Explain) => C::Explain,
        Some(NotCacheable::Locking) => C::Locking,
        Some(NotCacheable::SelectInto) => C::Into,
        Some(NotCacheable::Volatile(_)) => C::Volatile,
        Some(NotCacheable::UnknownFunction(_)) => C::Unknown,
        Some(NotCacheable::SystemCatalog(_)) => C::Catalog,
        Some(NotCacheable::TemporaryTable(_)) => C::Temp,
    }
}

/// Tables as displayed, sorted by their display.
fn shown(tables: &[Table]) -> Vec<String> {
    let mut shown: Vec<String> = tables.iter().map(Table::to_string).collect();
    shown.sort();
    shown
}

fn owned(names: &[&str]) -> Vec<String> {
    let mut owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    owned.sort();
    owned
}

/// The differences between a row and its analysis, empty when they agree.
fn check(row: &Row, a: &Analysis) -> Vec<String> {
    let (_, _, k, reads, writes, all, c) = *row;
    let mut diffs = Vec::new();
    if kind(&a.kind) != k {
        diffs.push(format!("kind: expected {k:?}, got {:?}", a.kind));
    }
    if shown(&a.reads) != owned(reads) {
        diffs.push(format!(
            "reads: expected {reads:?}, got {:?}",
            shown(&a.reads)
        ));
    }
    if shown(&a.writes) != owned(writes) {
        diffs.push(format!(
            "writes: expected {writes:?}, got {:?}",
            shown(&a.writes)
        ));
    }
    if a.writes_all != all {
        diffs.push(format!("writes_all: expected {all}, got {}", a.writes_all));
    }
    if cacheability(a.not_cacheable.as_ref()) != c {
        diffs.push(format!(
            "cacheable: expected {c:?}, got {:?}",
            a.not_cacheable
        ));
    }
    // Invariants that hold for every statement.
    if a.is_cacheable() && (kind(&a.kind) != K::Query || !a.is_read_only()) {
        diffs.push("cacheable but not a read-only query".to_string());
    }
    if kind(&a.kind) == K::Unparsed && (a.is_cacheable() || a.is_read_only()) {
        diffs.push("unparsed but cacheable or read-only".to_string());
    }
    diffs
}

#[test]
fn table_of_statements() {
    let analyzers: HashMap<D, Analyzer> = [Pg, My, Lite]
        .into_iter()
        .map(|d| (d, analyzer(d)))
        .collect();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for row in ROWS {
        let (dialect, sql, ..) = *row;
        assert!(
            seen.insert((dialect as u8, sql)),
            "duplicate row: {dialect:?} {sql}"
        );
        let a = analyzers[&dialect].analyze(sql);
        let diffs = check(row, &a);
        if !diffs.is_empty() {
            failures.push(format!("[{dialect:?}] {sql}\n    {}", diffs.join("\n    ")));
        }
    }
    let count = |d: D| ROWS.iter().filter(|r| r.0 == d).count();
    eprintln!(
        "{} statements: {} PostgreSQL, {} MySQL, {} SQLite",
        ROWS.len(),
        count(Pg),
        count(My),
        count(Lite)
    );
    assert!(
        failures.is_empty(),
        "{} of {} statements analyzed differently than expected:\n\n{}\n",
        failures.len(),
        ROWS.len(),
        failures.join("\n\n")
    );
    assert!(ROWS.len() >= 170);
    for d in [Pg, My, Lite] {
        assert!(count(d) >= 55, "{d:?} has only {} statements", count(d));
    }
}

#[test]
fn transaction_control() {
    use IsolationLevel::*;
    use TransactionControl as T;
    let set = |isolation, session| T::SetTransaction { isolation, session };
    let cases: &[(D, &str, Option<TransactionControl>)] = &[
        (Pg, "BEGIN", Some(T::Begin(None))),
        (
            Pg,
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            Some(T::Begin(Some(Serializable))),
        ),
        (
            Pg,
            "START TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
            Some(T::Begin(Some(ReadCommitted))),
        ),
        (Pg, "COMMIT", Some(T::Commit)),
        (Pg, "END", Some(T::Commit)),
        (Pg, "ROLLBACK", Some(T::Rollback)),
        (Pg, "SAVEPOINT Sp1", Some(T::Savepoint("sp1".into()))),
        (Pg, "RELEASE SAVEPOINT sp1", Some(T::Release("sp1".into()))),
        (
            Pg,
            "ROLLBACK TO SAVEPOINT sp1",
            Some(T::RollbackTo("sp1".into())),
        ),
        (
            Pg,
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            Some(set(Some(RepeatableRead), false)),
        ),
        (
            Pg,
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            Some(set(Some(Serializable), true)),
        ),
        (
            Pg,
            "SET default_transaction_isolation = 'serializable'",
            Some(set(Some(Serializable), true)),
        ),
        (
            Pg,
            "SET SESSION default_transaction_isolation TO 'read committed'",
            Some(set(Some(ReadCommitted), true)),
        ),
        (
            Pg,
            "SET transaction_isolation = 'repeatable read'",
            Some(set(Some(RepeatableRead), false)),
        ),
        (
            Pg,
            "SET LOCAL default_transaction_isolation = 'serializable'",
            None,
        ),
        (Pg, "SET statement_timeout = 1000", None),
        (My, "START TRANSACTION", Some(T::Begin(None))),
        (My, "BEGIN", Some(T::Begin(None))),
        (
            My,
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Some(set(Some(ReadCommitted), false)),
        ),
        (
            My,
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Some(set(Some(ReadCommitted), true)),
        ),
        (
            My,
            "SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED",
            None,
        ),
        (
            My,
            "SET transaction_isolation = 'READ-COMMITTED'",
            Some(set(Some(ReadCommitted), true)),
        ),
        (
            My,
            "SET @@SESSION.transaction_isolation = 'SERIALIZABLE'",
            Some(set(Some(Serializable), true)),
        ),
        (
            My,
            "SET @@transaction_isolation = 'READ-UNCOMMITTED'",
            Some(set(Some(ReadUncommitted), false)),
        ),
        (
            My,
            "SET SESSION tx_isolation = 'REPEATABLE-READ'",
            Some(set(Some(RepeatableRead), true)),
        ),
        (
            My,
            "SET GLOBAL transaction_isolation = 'SERIALIZABLE'",
            None,
        ),
        (
            My,
            "SET autocommit = 1, transaction_isolation = 'READ-COMMITTED'",
            Some(set(Some(ReadCommitted), true)),
        ),
        (
            My,
            "ROLLBACK TO SAVEPOINT a",
            Some(T::RollbackTo("a".into())),
        ),
        (Lite, "BEGIN DEFERRED TRANSACTION", Some(T::Begin(None))),
        (Lite, "BEGIN EXCLUSIVE", Some(T::Begin(None))),
        (Lite, "END TRANSACTION", Some(T::Commit)),
        (Lite, "COMMIT TRANSACTION", Some(T::Commit)),
        (Lite, "RELEASE SAVEPOINT x", Some(T::Release("x".into()))),
        (
            Lite,
            "ROLLBACK TRANSACTION TO SAVEPOINT x",
            Some(T::RollbackTo("x".into())),
        ),
    ];
    let mut failures = Vec::new();
    for (d, sql, expected) in cases {
        let a = analyzer(*d).analyze(sql);
        if a.transaction_control() != expected.as_ref() {
            failures.push(format!(
                "[{d:?}] {sql}: expected {expected:?}, got {:?}",
                a.kind
            ));
        }
        if !a.is_read_only() || a.is_cacheable() {
            failures.push(format!(
                "[{d:?}] {sql}: must be read-only and not cacheable"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn temporary_tables_created() {
    let cases: &[(D, &str, &[&str])] = &[
        (Pg, "CREATE TEMP TABLE scratch (id int)", &["scratch"]),
        (
            Pg,
            "CREATE TEMPORARY TABLE scratch AS SELECT * FROM orders",
            &["scratch"],
        ),
        (Pg, "SELECT * INTO TEMP scratch FROM orders", &["scratch"]),
        (Pg, "CREATE TABLE scratch (id int)", &[]),
        (My, "CREATE TEMPORARY TABLE tmp_ids (id INT)", &["tmp_ids"]),
        (Lite, "CREATE TEMP TABLE scratch (id)", &["scratch"]),
        (
            Pg,
            "CREATE TEMP VIEW recent AS SELECT * FROM orders",
            &["recent"],
        ),
        (
            Lite,
            "CREATE TEMPORARY VIEW recent AS SELECT * FROM orders",
            &["recent"],
        ),
        (Lite, "CREATE VIEW recent AS SELECT * FROM orders", &[]),
    ];
    for (d, sql, expected) in cases {
        let a = analyzer(*d).analyze(sql);
        assert_eq!(
            shown(&a.creates_temporary),
            owned(expected),
            "[{d:?}] {sql}"
        );
        assert!(!a.is_read_only(), "[{d:?}] {sql}");
    }
}

#[test]
fn names_and_reasons() {
    let pg = analyzer(Pg);
    let a = pg.analyze("SELECT * FROM users WHERE created_at < NOW()");
    assert_eq!(a.not_cacheable, Some(NotCacheable::Volatile("now".into())));
    let a = pg.analyze("SELECT my_fn(1)");
    assert_eq!(
        a.not_cacheable,
        Some(NotCacheable::UnknownFunction("my_fn".into()))
    );
    let a = pg.analyze("SELECT * FROM pg_catalog.pg_class");
    assert_eq!(
        a.not_cacheable,
        Some(NotCacheable::SystemCatalog("pg_catalog.pg_class".into()))
    );
    let a = pg.analyze("SELECT * FROM \"Audit\".Items");
    assert_eq!(a.reads, vec![Table::qualified("Audit", "items")]);
    assert_eq!(a.read_names(), ["items"]);
    let a = pg.analyze("SELECT FROM WHERE");
    let reason = a
        .not_cacheable
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(reason.starts_with("parse error: "), "{reason}");
    // A declared function is cacheable whatever its case in the SQL.
    let a = pg.analyze("SELECT SLUGIFY(title) FROM posts");
    assert!(a.is_cacheable());
    // The MySQL default schema comes from the configuration only.
    let my = Analyzer::new(Dialect::MySql);
    let a = my.analyze("SELECT * FROM shop.items");
    assert_eq!(a.reads, vec![Table::qualified("shop", "items")]);
    assert_eq!(a.read_names(), ["items"]);
}

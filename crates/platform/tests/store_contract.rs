//! The store contract: every case runs against both backends — a SQLite file, and a database
//! on a real PostgreSQL server this test starts (initdb into a temporary folder, Unix socket
//! only). A case gets a function that opens another handle on the same store, as a second
//! process (a replica) would.

use std::sync::{Arc, Barrier};

use platform::config::Quotas;
use platform::store::usage::Admit;
use platform::store::{Location, StoreError, UsageRecord};
use platform::testing::PgServer;
use platform::Store;

type Open<'a> = &'a (dyn Fn() -> Store + Sync);

/// A contract case: its name, and the check.
type Case = (&'static str, fn(Open<'_>));

const CASES: &[Case] = &[
    ("tenants see only their own", tenants_see_only_their_own),
    ("messages append in order; the title comes from the first user message", messages_append_in_order),
    ("a batch with a bad role is refused whole", bad_batch_is_refused_whole),
    ("search finds titles and messages; rename keeps the order", search_and_rename),
    ("usage totals by tenant, day and edition", usage_totals),
    ("the schema is applied once", schema_applied_once),
    ("appends from several handles at once all land, in one order", concurrent_appends),
    ("usage from several handles at once is counted exactly", concurrent_usage),
    ("keys are found by hash; a revocation keeps its first time", keys_by_id_and_hash),
    ("admission writes a running row, completed at the end", admission_writes_a_running_row_completed_at_the_end),
    ("a concurrency cap holds across handles", a_concurrency_cap_holds_across_handles),
    ("the minute window slides and refunds what was not used", the_minute_window_slides_and_refunds_what_was_not_used),
    ("the month counts what was used before", the_month_counts_what_was_used_before),
    ("an expired lease is closed as interrupted", an_expired_lease_is_closed_as_interrupted_and_frees_its_slot),
];

fn run_all(backend: &str, open: Open<'_>, fresh: &mut dyn FnMut() -> Box<dyn Fn() -> Store + Sync>) {
    open().schema_version().expect("the first store opens");
    for (name, case) in CASES {
        eprintln!("{backend}: {name}");
        let open = fresh();
        case(&*open);
    }
}

#[test]
fn sqlite_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    let mut fresh = || -> Box<dyn Fn() -> Store + Sync> {
        n += 1;
        let location = Location::Sqlite(dir.path().join(format!("s{n}.sqlite")));
        Box::new(move || Store::open(&location).expect("open"))
    };
    let first = fresh();
    run_all("sqlite", &*first, &mut fresh);
}

#[test]
fn postgres_backend_keeps_the_contract() {
    let server = PgServer::start().expect("a PostgreSQL server");
    let mut n = 0;
    let mut fresh = || -> Box<dyn Fn() -> Store + Sync> {
        n += 1;
        let url = server.create_database(&format!("contract{n}")).expect("create database");
        let location = Location::parse(&url, None).expect("location");
        Box::new(move || Store::open(&location).expect("open"))
    };
    let first = fresh();
    run_all("postgres", &*first, &mut fresh);
}

/// PostgreSQL-only behaviour: replicas opening a fresh database together, a schema from a
/// newer build, errors that never carry a password, and a server that is gone.
#[test]
fn postgres_opens_migrations_and_errors() {
    let server = PgServer::start().expect("a PostgreSQL server");
    let url = server.create_database("fresh").expect("create database");

    // Eight replicas start at once on an empty database: each opens, the schema is applied once.
    let barrier = Arc::new(Barrier::new(8));
    let openers: Vec<_> = (0..8)
        .map(|_| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                Store::open(&Location::parse(&url, None).expect("location")).map(|s| s.schema_version())
            })
        })
        .collect();
    for t in openers {
        let version = t.join().expect("no panic").expect("open").expect("version");
        assert!(version >= 1);
    }
    let applied = server.psql("fresh", "SELECT string_agg(version::text, ',' ORDER BY version) FROM seed_schema");
    let store = Store::open(&Location::parse(&url, None).expect("location")).expect("open");
    let expected: Vec<String> = (1..=store.latest_version()).map(|v| v.to_string()).collect();
    assert_eq!(applied.expect("psql"), expected.join(","));

    // A schema newer than this build is refused, naming both versions.
    server.psql("fresh", "INSERT INTO seed_schema VALUES (999)").expect("psql");
    let err = Store::open(&Location::parse(&url, None).expect("location")).expect_err("newer schema");
    assert!(err.to_string().contains("999"), "{err}");

    // A failed connection names the database but never the password.
    let missing = server.url("no_such_database");
    let err = platform::store::postgres::PgStore::open(&missing, Some("hunter2")).expect_err("no database");
    let text = err.to_string();
    assert!(text.contains("no_such_database") && !text.contains("hunter2"), "{text}");

    // The server stops under an open store: calls fail with an error, never hang or panic.
    drop(server);
    let started = std::time::Instant::now();
    let err = store.list_conversations("t").expect_err("the server is gone");
    assert!(matches!(err, StoreError::Other { .. }), "{err:?}");
    assert!(started.elapsed() < platform::store::postgres::CALL, "{:?}", started.elapsed());
}

fn pair(role: &str, content: &str) -> (String, String) {
    (role.to_string(), content.to_string())
}

fn tenants_see_only_their_own(open: Open<'_>) {
    let s = open();
    let a = s.create_conversation("a", None, Some("cici"), 100).expect("create");
    let b = s.create_conversation("b", Some("B's"), None, 101).expect("create");
    assert!(a.id.starts_with("conv_") && a.id != b.id);
    assert_eq!(s.list_conversations("a").expect("list"), vec![a.clone()]);
    assert!(matches!(s.get_conversation("a", &b.id), Err(StoreError::NotFound)));
    assert!(matches!(s.append_messages("a", &b.id, &[pair("user", "x")], 102), Err(StoreError::NotFound)));
    assert!(matches!(s.delete_conversation("a", &b.id), Err(StoreError::NotFound)));
    assert!(matches!(s.get_conversation("a", "conv_missing"), Err(StoreError::NotFound)));
    let (conv, messages) = s.get_conversation("b", &b.id).expect("b still there");
    assert_eq!((conv, messages), (b, vec![]));
}

fn search_and_rename(open: Open<'_>) {
    let s = open();
    let sea = s.create_conversation("t", Some("Colours of the SEA"), None, 10).expect("create");
    let rust = s.create_conversation("t", None, None, 11).expect("create");
    s.append_messages("t", &rust.id, &[pair("user", "Write Rust"), pair("assistant", "fn main() { 100% }")], 12)
        .expect("append");
    let zh = s.create_conversation("t", None, None, 13).expect("create");
    s.append_messages("t", &zh.id, &[pair("user", "北京的天气"), pair("assistant", "晴朗")], 14).expect("append");
    let other = s.create_conversation("u", Some("the sea"), None, 15).expect("create");
    let ids = |text: &str| -> Vec<String> {
        s.search_conversations("t", text).expect("search").into_iter().map(|c| c.id).collect()
    };
    assert_eq!(ids("sea"), [sea.id.as_str()], "a title, ASCII case ignored; never another tenant's");
    assert_eq!(ids("MAIN()"), [rust.id.as_str()], "an answer's text");
    assert_eq!(ids("晴"), [zh.id.as_str()], "non-ASCII text");
    assert_eq!(ids("100%"), [rust.id.as_str()], "`%` is a character, not a wildcard");
    assert_eq!(ids("_"), Vec::<String>::new(), "`_` is a character, not a wildcard");
    assert_eq!(
        ids(""),
        [zh.id.as_str(), rust.id.as_str(), sea.id.as_str()],
        "the empty text matches all, newest first"
    );

    // Renaming keeps `updated`, so the list keeps its order; another tenant's id is unknown.
    let renamed = open().rename_conversation("t", &sea.id, "Seas").expect("rename");
    assert_eq!((renamed.title.as_deref(), renamed.updated), (Some("Seas"), 10));
    assert_eq!(s.get_conversation("t", &sea.id).expect("get").0, renamed);
    assert!(matches!(s.rename_conversation("t", &other.id, "x"), Err(StoreError::NotFound)));
    assert!(matches!(s.rename_conversation("t", "conv_missing", "x"), Err(StoreError::NotFound)));
    assert_eq!(s.get_conversation("u", &other.id).expect("get").0.title.as_deref(), Some("the sea"));
    // A conversation renamed before its first message keeps the name it was given.
    let named = s.create_conversation("t", None, None, 20).expect("create");
    s.rename_conversation("t", &named.id, "Mine").expect("rename");
    s.append_messages("t", &named.id, &[pair("user", "hello")], 21).expect("append");
    assert_eq!(s.get_conversation("t", &named.id).expect("get").0.title.as_deref(), Some("Mine"));
}

fn messages_append_in_order(open: Open<'_>) {
    let s = open();
    let first = s.create_conversation("t", None, None, 10).expect("create");
    let c = s.create_conversation("t", None, None, 11).expect("create");
    let long = "é".repeat(70);
    s.append_messages("t", &c.id, &[pair("system", "be brief"), pair("user", &long), pair("assistant", "ok")], 20)
        .expect("append");
    s.append_messages("t", &c.id, &[pair("user", "again"), pair("assistant", "")], 30).expect("append");
    // Another handle (another replica) reads what this one wrote.
    let (conv, msgs) = open().get_conversation("t", &c.id).expect("get");
    assert_eq!(conv.title, Some("é".repeat(60)));
    assert_eq!((conv.created, conv.updated), (11, 30));
    let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!((msgs[3].content.as_str(), msgs[3].created, msgs[4].content.as_str()), ("again", 30, ""));
    // Most recently updated first; of two updated in the same second, the newer first.
    let ids: Vec<String> = s.list_conversations("t").expect("list").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, [c.id.clone(), first.id.clone()]);
    let same = s.create_conversation("t", None, None, 30).expect("create");
    let ids: Vec<String> = s.list_conversations("t").expect("list").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, [same.id, c.id.clone(), first.id]);
    s.delete_conversation("t", &c.id).expect("delete");
    assert!(matches!(s.get_conversation("t", &c.id), Err(StoreError::NotFound)));
    assert!(matches!(s.delete_conversation("t", &c.id), Err(StoreError::NotFound)));
}

fn bad_batch_is_refused_whole(open: Open<'_>) {
    let s = open();
    let d = s.create_conversation("t", None, None, 40).expect("create");
    let err = s.append_messages("t", &d.id, &[pair("user", "a"), pair("robot", "b")], 41).expect_err("bad role");
    assert!(matches!(err, StoreError::Other { .. }), "{err:?}");
    let (conv, messages) = s.get_conversation("t", &d.id).expect("get");
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!((conv.title, conv.updated), (None, 40));
    // The handle still works after the failed transaction.
    s.append_messages("t", &d.id, &[pair("user", "a")], 42).expect("append");
    assert_eq!(s.get_conversation("t", &d.id).expect("get").1.len(), 1);
}

fn record(tenant: &str, edition: &str, created: u64, p: u64, c: u64, o: u64, finish: &str) -> UsageRecord {
    let prices = platform::config::Prices { input: 2.0, cached: 0.5, output: 8.0 };
    UsageRecord {
        tenant: tenant.into(),
        key_id: Some("key_0001".into()),
        edition: edition.into(),
        created,
        prompt_tokens: p,
        cached_tokens: c,
        completion_tokens: o,
        finish_reason: finish.into(),
        cost: platform::store::usage::cost(&prices, p, c, o),
    }
}

fn usage_totals(open: Open<'_>) {
    let s = open();
    let day1 = 1_767_225_600; // 2026-01-01
    let day2 = day1 + 86_400;
    s.record_usage(&record("a", "cici", day1 + 5, 100, 40, 10, "stop")).expect("rec");
    s.record_usage(&record("a", "cici", day1 + 9, 50, 0, 3, "cancelled")).expect("rec");
    s.record_usage(&record("a", "doubao", day2, 7, 0, 1, "length")).expect("rec");
    s.record_usage(&record("b", "cici", day1, 999, 0, 999, "stop")).expect("rec");
    s.record_usage(&record("B", "cici", day1, 1, 0, 1, "stop")).expect("rec");
    let t = open().usage_totals(Some("a"), "2026-01-01", "2026-01-01").expect("totals");
    assert_eq!(t.len(), 1);
    let r = &t[0];
    assert_eq!((r.day.as_str(), r.edition.as_str(), r.requests), ("2026-01-01", "cici", 2));
    assert_eq!((r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.cancelled), (150, 40, 13, 1));
    assert!((r.cost - (110.0 * 2.0 + 40.0 * 0.5 + 13.0 * 8.0) / 1e6).abs() < 1e-12);
    let all = s.usage_totals(None, "2026-01-01", "2026-01-02").expect("totals");
    // Byte order of tenants, as SQLite sorts: "B" before "a" before "b".
    let keys: Vec<(&str, &str, &str)> =
        all.iter().map(|r| (r.tenant.as_str(), r.day.as_str(), r.edition.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("B", "2026-01-01", "cici"),
            ("a", "2026-01-01", "cici"),
            ("a", "2026-01-02", "doubao"),
            ("b", "2026-01-01", "cici")
        ]
    );
    assert_eq!(s.usage_totals(Some("a"), "2026-01-03", "2026-12-31").expect("totals"), vec![]);
}

fn schema_applied_once(open: Open<'_>) {
    let s = open();
    assert_eq!(s.schema_version().expect("version"), s.latest_version());
    let c = s.create_conversation("t", None, None, 1).expect("create");
    drop(s);
    let s = open();
    assert_eq!(s.schema_version().expect("version"), s.latest_version());
    assert_eq!(s.list_conversations("t").expect("list"), vec![c]);
}

fn concurrent_appends(open: Open<'_>) {
    let conv = open().create_conversation("t", None, None, 1).expect("create");
    let handles: Vec<Store> = (0..4).map(|_| open()).collect();
    std::thread::scope(|scope| {
        for (h, store) in handles.iter().enumerate() {
            let id = conv.id.clone();
            scope.spawn(move || {
                for i in 0..10 {
                    let turn = [pair("user", &format!("{h}.{i}")), pair("assistant", &format!("{h}.{i}"))];
                    store.append_messages("t", &id, &turn, 2).expect("append");
                }
            });
        }
    });
    let (_, messages) = open().get_conversation("t", &conv.id).expect("get");
    assert_eq!(messages.len(), 80);
    // Each turn's two messages are adjacent: appends never interleave.
    for turn in messages.chunks(2) {
        assert_eq!((turn[0].role.as_str(), turn[1].role.as_str()), ("user", "assistant"));
        assert_eq!(turn[0].content, turn[1].content);
    }
    let mut seen: Vec<&str> = messages.iter().step_by(2).map(|m| m.content.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 40);
}

fn concurrent_usage(open: Open<'_>) {
    let day = 1_767_225_600;
    let handles: Vec<Store> = (0..4).map(|_| open()).collect();
    std::thread::scope(|scope| {
        for (h, store) in handles.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..25u64 {
                    store.record_usage(&record("t", "cici", day + i, h as u64 + 1, 0, i, "stop")).expect("rec");
                }
            });
        }
    });
    let t = open().usage_totals(Some("t"), "2026-01-01", "2026-01-01").expect("totals");
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].requests, t[0].prompt_tokens, t[0].completion_tokens), (100, 250, 4 * 300));
}

fn key(id: &str, tenant: &str, sha256: &str, created: u64) -> platform::KeyInfo {
    platform::KeyInfo { id: id.into(), tenant: tenant.into(), sha256: sha256.into(), created, revoked: None }
}

fn keys_by_id_and_hash(open: Open<'_>) {
    let s = open();
    assert!(s.add_key(&key("key_b", "acme", "hash-b", 20)).expect("add"));
    assert!(s.add_key(&key("key_a", "globex", "hash-a", 20)).expect("add"));
    assert!(s.add_key(&key("key_c", "acme", "hash-c", 10)).expect("add"));
    // A taken id or hash writes nothing.
    assert!(!s.add_key(&key("key_a", "acme", "hash-x", 30)).expect("add"));
    assert!(!s.add_key(&key("key_x", "acme", "hash-a", 30)).expect("add"));
    let ids: Vec<String> = open().list_keys().expect("list").into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["key_c", "key_a", "key_b"], "oldest first, then by id");
    assert_eq!(s.key_by_hash("hash-a").expect("find"), Some(key("key_a", "globex", "hash-a", 20)));
    assert_eq!(s.key_by_hash("hash-x").expect("find"), None);
    let revoked = s.revoke_key("key_b", 50).expect("revoke").expect("found");
    assert_eq!(revoked.revoked, Some(50));
    assert_eq!(s.revoke_key("key_b", 60).expect("revoke").and_then(|k| k.revoked), Some(50));
    assert_eq!(open().key_by_hash("hash-b").expect("find").and_then(|k| k.revoked), Some(50));
    assert_eq!(s.revoke_key("key_none", 60).expect("revoke"), None);
}

fn admit<'a>(tenant: &'a str, q: Option<&'a Quotas>, now: u64, charge: u64) -> Admit<'a> {
    Admit {
        tenant,
        key_id: Some("key_1"),
        edition: "cici",
        prompt_tokens: charge / 2,
        charge,
        cost: 0.5,
        quotas: q,
        now,
        lease_until: now + 30,
    }
}

fn ended(tenant: &str, prompt: u64, completion: u64, finish: &str) -> UsageRecord {
    UsageRecord {
        tenant: tenant.into(),
        key_id: None,
        edition: "ignored".into(),
        created: 0,
        prompt_tokens: prompt,
        cached_tokens: 0,
        completion_tokens: completion,
        finish_reason: finish.into(),
        cost: 1.0,
    }
}

fn quotas(rpm: Option<u64>, tpm: Option<u64>, month: Option<u64>, conc: Option<u64>) -> Quotas {
    Quotas { requests_per_minute: rpm, tokens_per_minute: tpm, tokens_per_month: month, concurrent_requests: conc }
}

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn admission_writes_a_running_row_completed_at_the_end(open: Open<'_>) {
    let s = open();
    let id = s.admit(&admit("t", None, T0 + 5, 40)).expect("store").expect("no quotas");
    let t = s.usage_totals(Some("t"), "2026-01-01", "2026-01-01").expect("totals");
    assert_eq!((t[0].requests, t[0].prompt_tokens, t[0].completion_tokens, t[0].cost), (1, 20, 0, 0.5));
    open().close_usage(id, &ended("other", 21, 7, "stop")).expect("close");
    let t = s.usage_totals(Some("t"), "2026-01-01", "2026-01-01").expect("totals");
    assert_eq!((t[0].requests, t[0].prompt_tokens, t[0].completion_tokens, t[0].cost), (1, 21, 7, 1.0));
    assert_eq!((t[0].tenant.as_str(), t[0].edition.as_str()), ("t", "cici"), "the admission's tenant and edition");
    assert!(matches!(s.close_usage(999_999, &ended("t", 1, 1, "stop")), Err(StoreError::NotFound)));
    // A request that never ran leaves no row.
    let id = s.admit(&admit("t", None, T0 + 6, 40)).expect("store").expect("admitted");
    s.abandon(id).expect("abandon");
    s.abandon(id).expect("abandoning twice is harmless");
    assert_eq!(s.usage_totals(Some("t"), "2026-01-01", "2026-01-01").expect("totals")[0].requests, 1);
}

fn a_concurrency_cap_holds_across_handles(open: Open<'_>) {
    let q = quotas(None, None, None, Some(10));
    let handles: Vec<Store> = (0..4).map(|_| open()).collect();
    let start = Barrier::new(40);
    let results: Vec<Result<i64, platform::quota::Limit>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..40)
            .map(|i| {
                let (store, start, q) = (&handles[i % 4], &start, &q);
                scope.spawn(move || {
                    start.wait();
                    store.admit(&admit("t", Some(q), T0, 5)).expect("store").map_err(|e| e.limit)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("no panic")).collect()
    });
    let admitted: Vec<i64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(admitted.len(), 10, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|&l| l == platform::quota::Limit::ConcurrentRequests));
    let s = open();
    for id in &admitted[..3] {
        s.close_usage(*id, &ended("t", 2, 1, "stop")).expect("close");
    }
    for _ in 0..3 {
        s.admit(&admit("t", Some(&q), T0 + 1, 5)).expect("store").expect("a slot was freed");
    }
    assert!(s.admit(&admit("t", Some(&q), T0 + 1, 5)).expect("store").is_err(), "ten running again");
    // Another tenant is not affected.
    s.admit(&admit("u", Some(&q), T0 + 1, 5)).expect("store").expect("another tenant");
}

fn the_minute_window_slides_and_refunds_what_was_not_used(open: Open<'_>) {
    let s = open();
    let q = quotas(Some(3), Some(100), None, None);
    let a = s.admit(&admit("t", Some(&q), T0 + 30, 80)).expect("store").expect("first");
    let e = s.admit(&admit("t", Some(&q), T0 + 30, 30)).expect("store").expect_err("80 + 30 > 100");
    assert!(e.message.contains("20 of its tokens_per_minute limit of 100 left"), "{}", e.message);
    s.close_usage(a, &ended("t", 20, 5, "stop")).expect("close"); // used 25 of 80
    let b = s.admit(&admit("t", Some(&q), T0 + 50, 75)).expect("store").expect("25 + 75 fit");
    s.close_usage(b, &ended("t", 10, 5, "stop")).expect("close");
    s.admit(&admit("t", Some(&q), T0 + 50, 1)).expect("store").expect("third request");
    let e = s.admit(&admit("t", Some(&q), T0 + 60, 1)).expect("store").expect_err("three in the window");
    assert_eq!((e.limit.name(), e.retry_after), ("requests_per_minute", 30), "the first leaves at T0 + 90");
    // A new calendar minute frees nothing; the first request's leaving does.
    assert!(s.admit(&admit("t", Some(&q), T0 + 89, 1)).expect("store").is_err());
    s.admit(&admit("t", Some(&q), T0 + 90, 1)).expect("store").expect("the first has left the window");
}

fn the_month_counts_what_was_used_before(open: Open<'_>) {
    let s = open();
    // Rows of this month (990 tokens) and of the month before, written before any admission.
    s.record_usage(&record("t", "cici", T0 + 100, 900, 0, 90, "stop")).expect("rec");
    s.record_usage(&record("t", "cici", T0 - 86_400, 5000, 0, 5000, "stop")).expect("rec");
    let q = quotas(None, None, Some(1000), None);
    let now = T0 + 86_400;
    let e = s.admit(&admit("t", Some(&q), now, 11)).expect("store").expect_err("990 + 11 > 1000");
    assert_eq!(e.limit.name(), "tokens_per_month");
    assert_eq!(e.retry_after, platform::quota::next_month_start(now) - now);
    let id = open().admit(&admit("t", Some(&q), now, 10)).expect("store").expect("990 + 10 fit");
    assert!(s.admit(&admit("t", Some(&q), now, 1)).expect("store").is_err(), "full while it runs");
    s.close_usage(id, &ended("t", 4, 2, "stop")).expect("close"); // used 6 of 10
    s.admit(&admit("t", Some(&q), now, 4)).expect("store").expect("the unused 4 came back");
}

fn an_expired_lease_is_closed_as_interrupted_and_frees_its_slot(open: Open<'_>) {
    let s = open();
    let q = quotas(None, None, None, Some(1));
    let dead = s.admit(&Admit { lease_until: T0 + 5, ..admit("t", Some(&q), T0, 8) }).expect("store").expect("one");
    let live = s.admit(&admit("u", None, T0, 8)).expect("store").expect("other tenant");
    s.renew(&[live, dead], T0 + 4).expect("renew"); // shortens nothing that matters here
    assert!(s.admit(&admit("t", Some(&q), T0 + 4, 8)).expect("store").is_err(), "the lease still holds");
    // Past its lease the row is closed by the tenant's next admission, which takes the slot.
    s.admit(&admit("t", Some(&q), T0 + 6, 8)).expect("store").expect("the dead request's slot is free");
    let t = s.usage_totals(Some("t"), "2026-01-01", "2026-01-01").expect("totals");
    assert_eq!((t[0].requests, t[0].interrupted, t[0].prompt_tokens), (2, 1, 8), "{t:?}");
    // A sweep closes every tenant's expired rows; a renewed one is left alone.
    s.renew(&[live], T0 + 100).expect("renew");
    assert_eq!(s.reap(T0 + 50).expect("reap"), 1, "t's second row (lease to T0 + 36)");
    assert_eq!(s.reap(T0 + 50).expect("reap"), 0);
    assert_eq!(s.usage_totals(Some("u"), "2026-01-01", "2026-01-01").expect("totals")[0].interrupted, 0);
    // A reaped request that does finish after all is completed with what it used.
    s.close_usage(dead, &ended("t", 4, 3, "stop")).expect("close");
    let t = s.usage_totals(Some("t"), "2026-01-01", "2026-01-01").expect("totals");
    assert_eq!((t[0].interrupted, t[0].completion_tokens), (1, 3), "{t:?}");
}

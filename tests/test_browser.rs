//! The event browser (`eventsourcing::http::Browser`) served by the
//! notification log server, over plain HTTP: the log paged, an
//! aggregate's history decoded with the key and opaque without it or with
//! a wrong key, the chain's status (verified, and broken by a tampered or
//! missing row), search by id, refusals, escaping of hostile values, and
//! the token. `test_browser_chromium.rs` renders the pages in a real
//! browser.

#[allow(dead_code)]
mod browser_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use browser_support::{
    each_store, first_column, get, get_with, key, page, record_hostile, serve, table_rows,
};
use eventsourcing::http::{Browser, NotificationServer};
use eventsourcing::{Compression, Uuid};
use support::ledger::fill;
use support::sqlite::FileDb;

#[test]
fn the_log_is_paged_with_links_both_ways() {
    each_store(|store_name, store| {
        let app = store.builder().build().expect("app");
        let _ids = fill(&app, 3, 7); // 24 notifications
        let server = serve(&app, 10);
        let base = server.url();

        // Without `after`: the newest page.
        let newest = page(&format!("{base}/"));
        assert_eq!(
            first_column(&newest, "log"),
            (15..=24).collect::<Vec<_>>(),
            "{store_name}"
        );
        assert!(newest.contains("Notifications 15 to 24 of 24."), "{newest}");
        assert!(newest.contains("href=\"/?after=4\">‹ older"), "{newest}");
        assert!(newest.contains("href=\"/?after=0\">« first"), "{newest}");
        assert!(!newest.contains("newer ›"), "{newest}");

        // From the start, newer and newer.
        let first = page(&format!("{base}/?after=0"));
        assert_eq!(first_column(&first, "log"), (1..=10).collect::<Vec<_>>());
        assert!(first.contains("href=\"/?after=10\">newer ›"), "{first}");
        assert!(!first.contains("‹ older"), "{first}");
        let second = page(&format!("{base}/?after=10"));
        assert_eq!(first_column(&second, "log"), (11..=20).collect::<Vec<_>>());
        assert!(second.contains("href=\"/?after=20\">newer ›"), "{second}");
        let last = page(&format!("{base}/?after=20"));
        assert_eq!(first_column(&last, "log"), (21..=24).collect::<Vec<_>>());
        let past = page(&format!("{base}/?after=30"));
        assert!(first_column(&past, "log").is_empty());
        assert!(past.contains("No notifications after 30; the last is 24."));

        // Each row names its aggregate (linked to the history page that
        // holds the version), version, topic, size and flags.
        let rows = table_rows(&first, "log");
        let opened = &rows[0];
        assert!(opened[1].contains("/aggregates/"), "{opened:?}");
        assert!(opened[1].contains("?after=0#v1"), "{opened:?}");
        assert_eq!(opened[2], "1");
        assert_eq!(opened[3], "Account.Opened");
        assert!(opened[4].ends_with(" B"), "{opened:?}");
        assert_eq!(opened[5], "plain");

        // Bad parameters get a page saying why.
        for (query, reason) in [
            (
                "after=-1",
                "`after` must be a whole number from 0, not `-1`.",
            ),
            ("after=x", "`after` must be a whole number from 0, not `x`."),
            ("limit=5", "Unknown parameter `limit`"),
        ] {
            let reply = get(&format!("{base}/?{query}"));
            assert_eq!(reply.status, 400, "{query}");
            assert!(reply.body.contains(reason), "{query}: {}", reply.body);
        }
        server.stop().expect("stops");
    });
}

#[test]
fn an_empty_log_says_so() {
    let file = FileDb::new();
    let app = file.app();
    let server = serve(&app, 10);
    let html = page(&format!("{}/", server.url()));
    assert!(html.contains("The log is empty."), "{html}");
    assert!(table_rows(&html, "log").is_empty());
}

#[test]
fn a_history_is_decoded_with_the_key() {
    each_store(|store_name, store| {
        let app = store
            .builder()
            .cipher_key(key())
            .compression(Some(Compression::Zlib))
            .build()
            .expect("app");
        let ids = fill(&app, 2, 4);
        let id = *ids.keys().next().expect("an account");
        let head = app.event_store().verify(id).expect("verifies");
        let server = serve(&app, 3);
        let base = server.url();

        let html = page(&format!("{base}/aggregates/{id}"));
        assert!(
            html.contains("<strong>Chain verified</strong>: versions 1 to 5"),
            "{store_name}: {html}"
        );
        assert!(
            html.contains(&format!("Head <code>{}</code>", head.to_hex())),
            "{html}"
        );
        assert!(
            html.contains("5 events, the last at version 5. Versions 1 to 3 below."),
            "{html}"
        );
        assert_eq!(first_column(&html, "history"), [1, 2, 3]);
        let rows = table_rows(&html, "history");
        assert_eq!(rows[0][1], "Account.Opened");
        // Too little data for zlib to gain: encrypted only.
        assert_eq!(rows[0][4], "encrypted");
        assert!(
            rows[0][5].contains("<dt>owner</dt><dd><pre>&quot;owner "),
            "{:?}",
            rows[0]
        );
        assert_eq!(rows[1][1], "Account.Deposited");
        assert!(
            rows[1][5].contains("&quot;secret note 0&quot;"),
            "{:?}",
            rows[1]
        );
        assert!(
            rows[1][2].contains(" UTC<br><code title=\"event hash\">"),
            "{:?}",
            rows[1]
        );

        // The second page, and the paging links.
        assert!(
            html.contains(&format!("href=\"/aggregates/{id}?after=3\">newer ›")),
            "{html}"
        );
        let second = page(&format!("{base}/aggregates/{id}?after=3"));
        assert_eq!(first_column(&second, "history"), [4, 5]);
        assert!(
            second.contains(&format!("href=\"/aggregates/{id}?after=0\">‹ older")),
            "{second}"
        );
        let rows = table_rows(&second, "history");
        assert!(
            rows[1][5].contains("&quot;secret note 3&quot;"),
            "{:?}",
            rows[1]
        );
        server.stop().expect("stops");
    });
}

#[test]
fn without_the_key_records_stay_opaque() {
    each_store(|store_name, store| {
        let keyed = store.builder().cipher_key(key()).build().expect("app");
        let ids = fill(&keyed, 2, 3);
        let id = *ids.keys().next().expect("an account");

        let keyless = store.builder().build().expect("app without key");
        let server = serve(&keyless, 50);
        let base = server.url();
        let html = page(&format!("{base}/aggregates/{id}"));
        assert!(
            html.contains("<strong>Chain not checked</strong>: the record at version 1 is encrypted and this server has no key."),
            "{store_name}: {html}"
        );
        let rows = table_rows(&html, "history");
        assert_eq!(rows.len(), 4);
        for (version, row) in (1..).zip(&rows) {
            assert_eq!(row[0], version.to_string());
            assert!(row[1].starts_with("Account."), "{row:?}");
            assert_eq!(row[2], "", "no time without the key: {row:?}");
            assert_eq!(row[4], "encrypted");
            assert!(
                row[5].contains("encrypted: this server has no key"),
                "{row:?}"
            );
        }
        let log = page(&format!("{base}/?after=0"));
        assert_eq!(first_column(&log, "log").len(), 8);
        for text in [&html, &log] {
            assert!(!text.contains("secret note"), "plaintext leaked: {text}");
            assert!(!text.contains("owner "), "plaintext leaked: {text}");
        }
        server.stop().expect("stops");
    });
}

#[test]
fn with_a_wrong_key_nothing_is_read() {
    let file = FileDb::new();
    let keyed = file.builder().cipher_key(key()).build().expect("app");
    let id = *fill(&keyed, 1, 2).keys().next().expect("an account");
    let other = file
        .builder()
        .cipher_key(STANDARD.encode([9u8; 32]))
        .build()
        .expect("app with another key");
    let server = serve(&other, 50);
    let html = page(&format!("{}/aggregates/{id}", server.url()));
    assert!(
        html.contains("<strong>Chain not verified: version 1 cannot be read</strong>: cannot decrypt aggregate"),
        "{html}"
    );
    let rows = table_rows(&html, "history");
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert!(
            row[5].contains("unreadable: cannot decrypt aggregate"),
            "{row:?}"
        );
    }
    assert!(!html.contains("secret note"), "{html}");
}

#[test]
fn tampered_and_missing_rows_break_the_chain() {
    let file = FileDb::new();
    let app = file.app();
    let ids: Vec<Uuid> = fill(&app, 3, 3).into_keys().collect();
    let (tampered, missing, intact) = (ids[0], ids[1], ids[2]);
    let conn = file.conn();
    let changed = conn
        .execute(
            "UPDATE stored_events SET topic = 'Account.Forged' \
             WHERE originator_id = ?1 AND originator_version = 3",
            [tampered.to_string()],
        )
        .expect("tamper");
    assert_eq!(changed, 1);
    let changed = conn
        .execute(
            "DELETE FROM stored_events WHERE originator_id = ?1 AND originator_version = 2",
            [missing.to_string()],
        )
        .expect("delete");
    assert_eq!(changed, 1);

    let server = serve(&app, 50);
    let base = server.url();
    let html = page(&format!("{base}/aggregates/{tampered}"));
    assert!(
        html.contains(
            "<strong>Chain broken at version 3</strong>: integrity check failed for aggregate"
        ),
        "{html}"
    );
    assert!(
        html.contains("event hash does not match the record"),
        "{html}"
    );
    // The forged row is still shown, as stored, and every row read.
    let rows = table_rows(&html, "history");
    assert_eq!(rows[2][1], "Account.Forged");
    assert!(
        rows[3][5].contains("&quot;secret note 2&quot;"),
        "{:?}",
        rows[3]
    );

    let html = page(&format!("{base}/aggregates/{missing}"));
    assert!(
        html.contains("<strong>Chain broken at version 3</strong>"),
        "{html}"
    );
    assert!(html.contains("versions are not consecutive"), "{html}");
    assert_eq!(first_column(&html, "history"), [1, 3, 4]);

    let html = page(&format!("{base}/aggregates/{intact}"));
    let head = app.event_store().verify(intact).expect("intact");
    assert!(
        html.contains(&format!("Head <code>{}</code>", head.to_hex())),
        "{html}"
    );
    assert!(!html.contains("Chain broken"), "{html}");
}

#[test]
fn search_redirects_to_a_history_or_says_why_not() {
    let file = FileDb::new();
    let app = file.app();
    let id = *fill(&app, 1, 1).keys().next().expect("an account");
    let server = serve(&app, 50);
    let base = server.url();

    // Found, whichever way the UUID is written.
    for written in [
        id.hyphenated().to_string(),
        id.simple().to_string().to_uppercase(),
        format!("%20{}%20", id.braced()),
    ] {
        let reply = get(&format!("{base}/search?id={written}"));
        assert_eq!(reply.status, 303, "{written}: {}", reply.body);
        assert_eq!(
            reply.header("location"),
            Some(format!("/aggregates/{}", id.hyphenated()).as_str())
        );
    }
    let followed = page(&format!("{base}/aggregates/{id}"));
    assert!(followed.contains("Chain verified"), "{followed}");

    let unknown = Uuid::new_v4();
    for url in [
        format!("{base}/search?id={unknown}"),
        format!("{base}/aggregates/{unknown}"),
    ] {
        let reply = get(&url);
        assert_eq!(reply.status, 404, "{url}");
        assert!(
            reply
                .body
                .contains(&format!("Aggregate {unknown} has no events in this store.")),
            "{}",
            reply.body
        );
    }

    for (url, reason) in [
        (
            format!("{base}/search?id=not-a-uuid"),
            "`not-a-uuid` is not an aggregate id",
        ),
        (
            format!("{base}/aggregates/not-a-uuid"),
            "`not-a-uuid` is not an aggregate id",
        ),
        (format!("{base}/search?id="), "Enter an aggregate id"),
        (format!("{base}/search"), "Enter an aggregate id"),
        (format!("{base}/search?q=1"), "Unknown parameter `q`"),
        (
            format!("{base}/aggregates/{id}?after=z"),
            "`after` must be a whole number",
        ),
    ] {
        let reply = get(&url);
        assert_eq!(reply.status, 400, "{url}: {}", reply.body);
        assert!(reply.body.contains(reason), "{url}: {}", reply.body);
    }
}
#[test]
fn hostile_values_are_escaped() {
    let file = FileDb::new();
    let app = file.app();
    let id = record_hostile(&app);
    let server = serve(&app, 50);
    let base = server.url();

    let log = get(&format!("{base}/"));
    let history = get(&format!("{base}/aggregates/{id}"));
    let search = get(&format!(
        "{base}/search?id=%3Cscript%3Ealert(4)%3C%2Fscript%3E%22"
    ));
    assert_eq!(search.status, 400);
    for reply in [&log, &history, &search] {
        let html = &reply.body;
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        let policy = reply.header("content-security-policy").expect("a policy");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
    }
    assert!(
        log.body
            .contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "{}",
        log.body
    );
    let rows = table_rows(&history.body, "history");
    assert_eq!(rows[0][1], "&lt;script&gt;alert(1)&lt;/script&gt;");
    assert!(
        rows[0][5].contains("<dt>note</dt><dd><pre>&quot;&lt;/pre&gt;&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;&quot;</pre>"),
        "{:?}",
        rows[0]
    );
    assert!(
        rows[0][5].contains("<dt>&lt;img src=x onerror=alert(3)&gt;</dt><dd><pre>&quot;\\&quot;&#39;&amp;&quot;</pre>"),
        "{:?}",
        rows[0]
    );
    // The search box gives back what was searched, escaped.
    assert!(
        search
            .body
            .contains("value=\"&lt;script&gt;alert(4)&lt;/script&gt;&quot;\""),
        "{}",
        search.body
    );
}

#[test]
fn the_pages_are_behind_the_logs_token() {
    let file = FileDb::new();
    let app = file.app();
    let id = *fill(&app, 1, 1).keys().next().expect("an account");
    let server = NotificationServer::new(&app)
        .token("s3cret")
        .browser(Browser::new(&app))
        .bind("127.0.0.1:0")
        .expect("starts");
    let base = server.url();
    for path in [
        "/".to_owned(),
        format!("/aggregates/{id}"),
        format!("/search?id={id}"),
        "/notifications".to_owned(),
    ] {
        let url = format!("{base}{path}");
        assert_eq!(get(&url).status, 401, "{path}");
        assert_eq!(
            get_with(&url, &[("Authorization", "Bearer wrong")]).status,
            401
        );
        let admitted = get_with(&url, &[("Authorization", "Bearer s3cret")]);
        assert!(
            [200, 303].contains(&admitted.status),
            "{path}: {}",
            admitted.status
        );
    }
    // The log's own routes still serve JSON.
    let json = get_with(
        &format!("{base}/notifications"),
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(json.header("content-type"), Some("application/json"));
}

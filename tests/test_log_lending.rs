//! `NotificationLog::decode_each`: the notifications lent, decoded and
//! checked in place, are those `select` then `decode` give, on every store;
//! it honours start, limit, topics and a callback that stops; and a
//! corrupted record is the same typed error either way.

use std::ops::ControlFlow;

use eventsourcing::prelude::*;
use eventsourcing::{Error, NotificationLog, RecordedEvent};
use support::account::Account;
use support::sqlite::FileDb;
use support::stores::each_store;

/// Three accounts with a few deposits each, saved in an interleaved order,
/// some notes long enough to be compressed where compression is on.
fn fill(app: &Application) {
    let mut accounts: Vec<Account> = (0..3)
        .map(|i| Account::open(format!("owner {i}")))
        .collect();
    for account in &mut accounts {
        app.save(account).unwrap();
    }
    for round in 0..4 {
        for (i, account) in accounts.iter_mut().enumerate() {
            let note = if (round + i) % 2 == 0 {
                "short".to_owned()
            } else {
                "a note long enough to be worth compressing, repeated: ".repeat(3)
            };
            account.deposit(i64::try_from(round * 10 + i).unwrap(), note);
            app.save(account).unwrap();
        }
    }
}

/// `(id, event)` of each notification, by `select` then `decode`.
fn owned(
    log: &NotificationLog,
    start: u64,
    limit: usize,
    topics: &[&str],
) -> Vec<(u64, RecordedEvent)> {
    log.select(start, limit, topics)
        .unwrap()
        .into_iter()
        .map(|n| (n.id, log.decode(n).unwrap()))
        .collect()
}

/// The same, by `decode_each`; checks the count it returns.
fn lent(
    log: &NotificationLog,
    start: u64,
    limit: usize,
    topics: &[&str],
) -> Vec<(u64, RecordedEvent)> {
    let mut seen = Vec::new();
    let count = log
        .decode_each(start, limit, topics, |n| {
            seen.push((n.id, n.to_recorded()));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(count, seen.len());
    seen
}

#[test]
fn lent_notifications_are_those_select_and_decode_give_on_every_store() {
    each_store(
        |builder| builder,
        |store, app| {
            fill(app);
            let log = app.notification_log();
            let all = owned(&log, 1, usize::MAX, &[]);
            assert_eq!(all.len(), 15, "{store}");
            assert_eq!(lent(&log, 1, usize::MAX, &[]), all, "{store}");
            // A window, and a topic filter.
            assert_eq!(lent(&log, 4, 5, &[]), owned(&log, 4, 5, &[]), "{store}");
            let opened = all[0].1.topic.to_string();
            let only = lent(&log, 1, usize::MAX, &[opened.as_str()]);
            assert_eq!(only.len(), 3, "{store}");
            assert_eq!(
                only,
                owned(&log, 1, usize::MAX, &[opened.as_str()]),
                "{store}"
            );
            // Past the end, and no room.
            assert_eq!(lent(&log, 1_000, 10, &[]), Vec::new(), "{store}");
            assert_eq!(lent(&log, 1, 0, &[]), Vec::new(), "{store}");
        },
    );
}

#[test]
fn a_callback_that_breaks_stops_the_read() {
    each_store(
        |builder| builder,
        |store, app| {
            fill(app);
            let log = app.notification_log();
            let mut ids = Vec::new();
            let count = log
                .decode_each(2, 100, &[], |n| {
                    ids.push(n.id);
                    if ids.len() == 3 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            assert_eq!(count, 3, "{store}");
            assert_eq!(ids, vec![2, 3, 4], "{store}");
        },
    );
}

#[test]
fn a_corrupted_record_is_the_same_error_lent_or_owned() {
    for encrypted in [false, true] {
        let file = FileDb::new();
        let builder = if encrypted {
            file.builder()
                .cipher(eventsourcing::Cipher::new([5; 32]))
                .compression(Some(eventsourcing::Compression::Zlib))
        } else {
            file.builder()
        };
        let app = builder.build().unwrap();
        fill(&app);
        // Flip the last byte of the seventh record's state: the hash no
        // longer matches, or the cipher's tag fails.
        let conn = file.conn();
        let mut state: Vec<u8> = conn
            .query_row(
                "SELECT state FROM stored_events WHERE rowid = 7",
                [],
                |row| row.get(0),
            )
            .unwrap();
        *state.last_mut().unwrap() ^= 0x20;
        conn.execute(
            "UPDATE stored_events SET state = ?1 WHERE rowid = 7",
            [&state],
        )
        .unwrap();

        let log = app.notification_log();
        let mut before = Vec::new();
        let lent_error = log
            .decode_each(1, usize::MAX, &[], |n| {
                before.push(n.id);
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert_eq!(
            before,
            (1..=6).collect::<Vec<u64>>(),
            "stops at the bad one"
        );
        let owned_error = log
            .select(7, 1, &[])
            .unwrap()
            .into_iter()
            .map(|n| log.decode(n))
            .find_map(Result::err)
            .unwrap();
        assert_eq!(
            std::mem::discriminant(&lent_error),
            std::mem::discriminant(&owned_error),
            "encrypted {encrypted}: lent {lent_error:?}, owned {owned_error:?}"
        );
        let expected = if encrypted {
            matches!(lent_error, Error::Decryption { .. })
        } else {
            matches!(lent_error, Error::Integrity { .. })
        };
        assert!(expected, "encrypted {encrypted}: {lent_error:?}");
        // The records after the bad one are still there to read.
        assert_eq!(lent(&log, 8, usize::MAX, &[]).len(), 8);
    }
}

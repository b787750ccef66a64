//! The async facade (feature `tokio`): many tasks saving and loading at
//! once on every store, worker threads left free while saves wait for a
//! lock, metadata scoped to tasks, followers waited for and stopped as
//! futures, and the errors of a call that cannot run.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use eventsourcing::follower::Follower;
use eventsourcing::prelude::*;
use eventsourcing::recorder::{SqliteOptions, SqliteRecorder};
use eventsourcing::{AsyncApplication, Metadata, with_metadata_async};
use support::account::{Account, AccountEvent};
use support::pg::Scratch;
use support::sqlite::FileDb;
use support::stores::each_store;
use tokio::sync::{Barrier, mpsc as channel};

/// A multi-threaded runtime with `workers` worker threads.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Runs `test` on a thread of its own and fails if it has not finished
/// within `limit`: a runtime whose worker threads are blocked would
/// otherwise hang the test run instead of failing it.
fn within(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => thread.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The test panicked: report its panic.
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish: a worker thread is blocked")
        }
    }
}

const TASKS: usize = 200;
const DEPOSITS: i64 = 3;

#[test]
fn two_hundred_tasks_create_update_and_load_their_aggregates_on_every_store() {
    each_store(
        |builder| builder,
        |store, app| {
            let app = app.clone().into_async();
            runtime(4).block_on(async {
                let mut tasks = Vec::new();
                for n in 0..TASKS {
                    let app = app.clone();
                    tasks.push(tokio::spawn(async move {
                        let (mut account, _) =
                            app.save(Account::open(format!("owner {n}"))).await?;
                        for amount in 1..=DEPOSITS {
                            account.deposit(amount * 10, format!("deposit {amount}"));
                            let saved = app.save(account).await?;
                            account = saved.0;
                            assert_eq!(saved.1.len(), 1);
                            // Read your own write.
                            let copy: Account = app.repository().get(account.id()).await?;
                            assert_eq!(copy.version(), account.version());
                        }
                        Ok::<_, eventsourcing::Error>((n, account.id()))
                    }));
                }
                let mut ids = Vec::new();
                for task in tasks {
                    ids.push(task.await.unwrap().unwrap());
                }
                // Every aggregate loaded afterwards, concurrently, and checked.
                let mut loads = Vec::new();
                for (n, id) in ids {
                    let repository = app.repository();
                    loads.push(tokio::spawn(async move {
                        (n, repository.get::<Account>(id).await)
                    }));
                }
                for load in loads {
                    let (n, account) = load.await.unwrap();
                    let account = account.unwrap();
                    assert_eq!(account.owner, format!("owner {n}"), "{store}");
                    assert_eq!(account.balance, 60, "{store}");
                    assert_eq!(account.version(), 1 + DEPOSITS as u64, "{store}");
                }
                let head = app
                    .blocking(|app| app.notification_log().max_id())
                    .await
                    .unwrap();
                assert_eq!(head, (TASKS as u64) * (1 + DEPOSITS as u64), "{store}");
            });
        },
    );
}

#[test]
fn one_worker_thread_serves_other_tasks_while_saves_wait_for_the_sqlite_write_lock() {
    within(Duration::from_mins(5), || {
        let db = FileDb::new();
        // Long enough that the saves wait for the lock's release, however
        // slow the machine, rather than give up.
        let recorder = SqliteRecorder::open(
            SqliteOptions::file(&db.path).busy_timeout(Duration::from_mins(10)),
        )
        .unwrap();
        let app = Application::builder()
            .recorder(Arc::new(recorder))
            .build()
            .unwrap()
            .into_async();
        // Another connection takes the write lock and keeps it.
        let lock = db.conn();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        serves_pings_while_saves_wait(&app, move || {
            lock.execute_batch("COMMIT").unwrap();
        });
    });
}

#[test]
fn one_worker_thread_serves_other_tasks_while_saves_wait_for_a_postgres_transaction() {
    let Some(scratch) = Scratch::new() else {
        return;
    };
    within(Duration::from_mins(5), move || {
        let app = scratch.builder().build().unwrap().into_async();
        // A transaction that keeps every writer of the events table out.
        let mut lock = scratch.client();
        lock.batch_execute("BEGIN; LOCK TABLE stored_events IN EXCLUSIVE MODE")
            .unwrap();
        serves_pings_while_saves_wait(&app, move || {
            // The blocking client may not run inside the runtime's context.
            std::thread::spawn(move || lock.batch_execute("COMMIT").unwrap())
                .join()
                .unwrap();
        });
        drop(scratch);
    });
}

/// On a runtime with one worker thread: four tasks start saves that wait
/// for a lock held elsewhere, a fifth task on the same worker answers a
/// hundred pings meanwhile, and once `release` lets the lock go every
/// save completes.
fn serves_pings_while_saves_wait(app: &AsyncApplication, release: impl FnOnce()) {
    runtime(1).block_on(async {
        let (started, mut starts) = channel::unbounded_channel();
        let saves: Vec<_> = (0..4)
            .map(|n| {
                let app = app.clone();
                let started = started.clone();
                tokio::spawn(async move {
                    started.send(n).unwrap();
                    app.save(Account::open(format!("waiting {n}"))).await
                })
            })
            .collect();
        // Each task began its save in the same poll as it said so: had a
        // save blocked the one worker thread, no later task would run.
        for _ in 0..4 {
            starts.recv().await.unwrap();
        }
        // A task on that same worker thread answers a hundred pings.
        let (request, mut requests) = channel::unbounded_channel::<u32>();
        let (answer, mut answers) = channel::unbounded_channel::<u32>();
        let ponger = tokio::spawn(async move {
            while let Some(n) = requests.recv().await {
                answer.send(n + 1).unwrap();
            }
        });
        for n in 0..100 {
            request.send(n).unwrap();
            assert_eq!(answers.recv().await, Some(n + 1));
        }
        // The saves are still waiting for the lock.
        assert!(saves.iter().all(|save| !save.is_finished()));
        release();
        let mut ids = Vec::new();
        for save in saves {
            let (account, notification_ids) = save.await.unwrap().unwrap();
            assert!(account.pending_events().is_empty());
            ids.extend(notification_ids);
        }
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3, 4]);
        drop(request);
        ponger.await.unwrap();
    });
}

#[test]
fn concurrent_tasks_stamp_their_own_metadata() {
    let app = Application::builder()
        .metadata(Metadata::new().with("service", "bank"))
        .build()
        .unwrap()
        .into_async();
    let rounds = 20;
    let barrier = Arc::new(Barrier::new(2));
    let task = |user: &'static str| {
        let app = app.clone();
        let barrier = Arc::clone(&barrier);
        with_metadata_async(
            Metadata::new().with_user(user).with("task", user),
            async move {
                let mut ids = Vec::new();
                for round in 0..rounds {
                    // Both tasks are inside their scopes at once, round after round.
                    barrier.wait().await;
                    let (account, _) = if round % 2 == 0 {
                        app.save(Account::open(user.to_owned())).await?
                    } else {
                        // Nested: the inner scope wins a key, the outer's others stay.
                        with_metadata_async(
                            Metadata::new().with("task", format!("{user} inner")),
                            app.save(Account::open(user.to_owned())),
                        )
                        .await?
                    };
                    ids.push((round, account.id()));
                    tokio::task::yield_now().await;
                }
                Ok::<_, eventsourcing::Error>(ids)
            },
        )
    };
    let (ann, bob) = runtime(2).block_on(async {
        let ann = tokio::spawn(task("ann"));
        let bob = tokio::spawn(task("bob"));
        (ann.await.unwrap().unwrap(), bob.await.unwrap().unwrap())
    });
    let store = app.application().event_store();
    for (user, ids) in [("ann", ann), ("bob", bob)] {
        assert_eq!(ids.len(), rounds);
        for (round, id) in ids {
            let metadata = store.recorded_events(id).unwrap()[0].metadata().unwrap();
            assert_eq!(metadata.user(), Some(user));
            let task = if round % 2 == 0 {
                user.to_owned()
            } else {
                format!("{user} inner")
            };
            assert_eq!(metadata.get("task").and_then(|v| v.as_str()), Some(&*task));
            assert_eq!(
                metadata.get("service").and_then(|v| v.as_str()),
                Some("bank")
            );
        }
    }
    // Outside any scope, only the application's metadata.
    let (account, _) = runtime(1)
        .block_on(app.save(Account::open("cy".into())))
        .unwrap();
    let metadata = store.recorded_events(account.id()).unwrap()[0]
        .metadata()
        .unwrap();
    assert_eq!(metadata.user(), None);
    assert_eq!(metadata, Metadata::new().with("service", "bank"));
}

/// Deposits seen by an in-memory projection.
#[derive(Default)]
struct Totals {
    deposits: u64,
    amount: i64,
}

struct Deposits;

#[policy]
impl Deposits {
    #[on(AccountEvent::Deposited)]
    fn deposited(&self, totals: &mut Totals, amount: i64) {
        totals.deposits += 1;
        totals.amount += amount;
    }
}

#[test]
fn a_follower_is_waited_for_and_stopped_as_futures() {
    let db = FileDb::new();
    let app = db.builder().name("Bank").build().unwrap().into_async();
    runtime(2).block_on(async {
        let bank = app.application().clone();
        let running = app
            .blocking(move |_| {
                Ok(Follower::in_memory(Deposits, Totals::default())
                    .follow(&bank)
                    .start()?
                    .spawn())
            })
            .await
            .unwrap()
            .into_async();
        let mut last = 0;
        let mut accounts = Vec::new();
        for n in 0..10 {
            let mut account = Account::open(format!("owner {n}"));
            account.deposit(n, "note".into());
            let (account, ids) = app.save(account).await.unwrap();
            last = ids[1];
            accounts.push(account);
        }
        assert!(
            running
                .wait_for("Bank", last, Duration::from_mins(2))
                .await
                .unwrap()
        );
        assert_eq!(running.watch().position("Bank"), Some(last));
        // An upstream it does not follow is an error, not a wait.
        assert!(matches!(
            running.wait_for("Shop", 1, Duration::from_secs(1)).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(!running.is_finished());
        let follower = running.stop().await.unwrap();
        let totals = follower.state();
        let totals = totals.lock().unwrap();
        assert_eq!((totals.deposits, totals.amount), (10, 45));
        assert_eq!(follower.position("Bank"), Some(last));
    });
}

#[test]
fn snapshots_and_time_travel_through_the_facade() {
    let app = Application::builder().build().unwrap().into_async();
    runtime(1).block_on(async {
        let mut account = Account::open("ada".into());
        account.deposit(5, "a".into());
        let (mut account, _) = app.save(account).await.unwrap();
        let id = account.id();
        assert_eq!(app.save_snapshot::<Account>(id).await.unwrap(), 2);
        account.deposit(7, "b".into());
        let (account, _) = app.save(account).await.unwrap();
        assert_eq!(app.save_snapshot_at::<Account>(id, 1).await.unwrap(), 1);
        let repository = app.repository();
        assert_eq!(repository.get::<Account>(id).await.unwrap().balance, 12);
        assert_eq!(
            repository.get_at::<Account>(id, 2).await.unwrap().balance,
            5
        );
        let events = repository.events::<Account>(id).await.unwrap();
        assert_eq!(events.len(), 3);
        let then = repository
            .get_as_of::<Account>(id, events[1].timestamp)
            .await
            .unwrap();
        assert_eq!(then.version(), 2);
        assert!(repository.contains(id).await.unwrap());
        assert!(
            repository
                .find::<Account>(Uuid::new_v4())
                .await
                .unwrap()
                .is_none()
        );
        let versions: Vec<u64> = app
            .blocking(move |app| app.event_store().snapshots(id))
            .await
            .unwrap()
            .iter()
            .map(|s| s.originator_version)
            .collect();
        assert_eq!(versions, [1, 2]);
        assert_eq!(account.version(), 3);
        // Several aggregates of several types by value, in one transaction.
        let (mut a, mut b) = (Account::open("a".into()), Account::open("b".into()));
        a.deposit(1, "x".into());
        b.deposit(2, "y".into());
        let ((a, [b]), ids) = app.save((a, [b])).await.unwrap();
        assert_eq!(ids, [4, 5, 6, 7]);
        assert_eq!((a.version(), b.version()), (2, 2));
    });
}

#[test]
fn a_failed_save_writes_nothing_and_says_why() {
    let app = Application::builder().build().unwrap().into_async();
    runtime(1).block_on(async {
        let (account, _) = app.save(Account::open("ada".into())).await.unwrap();
        let id = account.id();
        let mut first: Account = app.repository().get(id).await.unwrap();
        let mut second: Account = app.repository().get(id).await.unwrap();
        first.deposit(1, "first".into());
        second.deposit(2, "second".into());
        app.save(first).await.unwrap();
        assert!(matches!(
            app.save(second).await,
            Err(Error::Concurrency { .. })
        ));
        let events = app.repository().events::<Account>(id).await.unwrap();
        assert_eq!(events.len(), 2);
    });
}

#[test]
fn outside_a_tokio_runtime_a_call_is_an_error() {
    let app: AsyncApplication = Application::builder().build().unwrap().into();
    let mut save = pin!(app.save(Account::open("ada".into())));
    let mut context = Context::from_waker(Waker::noop());
    match save.as_mut().poll(&mut context) {
        Poll::Ready(Err(Error::Runtime { reason })) => assert!(!reason.is_empty()),
        Poll::Ready(other) => panic!("expected Error::Runtime, got {:?}", other.map(|_| ())),
        Poll::Pending => panic!("a call outside a runtime must not wait"),
    }
    assert_eq!(app.application().notification_log().max_id().unwrap(), 0);
}

#[test]
fn a_panic_in_blocking_work_reaches_the_awaiting_task() {
    let app = Application::builder().build().unwrap().into_async();
    let joined = runtime(1).block_on(async move {
        tokio::spawn(async move {
            app.blocking(|_| -> eventsourcing::Result<()> { panic!("the work panicked") })
                .await
        })
        .await
    });
    let panic = joined.unwrap_err().into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the work panicked"));
}

#[test]
fn the_readme_handler_is_the_example_that_ci_runs() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/async_web.rs");
    let begin = "// README: begin\n";
    let region = &example[example.find(begin).unwrap() + begin.len()..];
    let region = region[..region.find("// README: end").unwrap()].trim_end();
    let section = &readme[readme.find("\n## Async\n").unwrap()..];
    let fence = "```rust,ignore\n";
    let block = &section[section.find(fence).unwrap() + fence.len()..];
    let block = &block[..block.find("\n```").unwrap()];
    assert_eq!(block, region);
}

//! The notification log over HTTP: the `Accounts` application's log is
//! served by a server that holds no key, and a process application in
//! "another place" follows it remotely, decrypting with its own key.
//!
//! ```text
//! cargo run --example http_log
//! ```

use std::sync::Arc;
use std::time::Duration;

use eventsourcing::follower::Follower;
use eventsourcing::http::{NotificationServer, RemoteRecorder};
use eventsourcing::{Application, generate_cipher_key};
use support::ledger::{Ledger, fill, tallies};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = generate_cipher_key()?;
    let accounts = Application::builder()
        .name("Accounts")
        .cipher_key(key.clone())
        .build()?;
    let ids = fill(&accounts, 3, 4);

    // The server reads the same rows without the key: it serves
    // ciphertext as stored, and could not read it.
    let relay = Application::builder()
        .name("Accounts")
        .recorder(Arc::clone(accounts.event_store().recorder()))
        .build()?;
    let server = NotificationServer::new(&relay)
        .token("example token")
        .bind("127.0.0.1:0")?;
    println!("http_log: serving `Accounts` at {}", server.url());
    let section = RemoteRecorder::new(server.url())?
        .token("example token")
        .section("1,10")?;
    println!(
        "http_log: section {} holds {} notifications, next {:?}",
        section.id,
        section.items.len(),
        section.next_id
    );

    // The process application has the key, and its own database.
    let ledger_app = Application::builder().cipher_key(key).build()?;
    let remote = RemoteRecorder::new(server.url())?
        .token("example token")
        .timeout(Duration::from_secs(5));
    let mut follower = Follower::process(Ledger, &ledger_app)
        .follow_remote("Accounts", remote)
        .start()?;
    let progress = follower.run_until_caught_up()?;
    println!(
        "http_log: the remote follower handled {} events, at notification {:?}",
        progress.events,
        follower.position("Accounts")
    );

    for (account, tally) in tallies(&ledger_app, ids.keys()) {
        assert_eq!(
            tally.seen, ids[&account],
            "each event handled once, in order"
        );
        println!(
            "http_log: account {account}: total {}, from notifications {:?}",
            tally.total, tally.seen
        );
    }
    server.stop()?;
    Ok(())
}

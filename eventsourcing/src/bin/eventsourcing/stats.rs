//! `stats`: what the store holds, counted in one pass over the log.

use std::collections::{BTreeMap, HashSet};

#[cfg(feature = "postgres")]
use eventsourcing::DbUri;
use eventsourcing::json::json;

use crate::failure::Failure;
use crate::output::Output;
use crate::progress;
use crate::store::{Open, Store, StoreArgs, sqlite_file};

/// `stats`'s arguments: none beyond the store's.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// The counts.
#[derive(Default)]
struct Counts {
    events: u64,
    aggregates: usize,
    encrypted: u64,
    compressed: u64,
    stored_bytes: u64,
    topics: BTreeMap<String, u64>,
}

/// Counts events, aggregates, records by flag and events by topic; tells
/// the head of the log, the size of a SQLite file or of a PostgreSQL
/// database, and where each follower stands.
pub(crate) fn run(store: &StoreArgs, _args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store.open(Open::Existing)?;
    let head = store.head()?;
    let counts = count(&store, head, out.is_json())?;
    let file_bytes = file_size(&store);
    let database_bytes = database_size(&store);
    let followers = store
        .recorder
        .select_positions()
        .map_err(|e| store.failure(e))?
        .unwrap_or_default();
    if out.is_json() {
        let followers: Vec<_> = followers
            .iter()
            .map(|(key, at)| {
                json!({
                    "follower": key.follower,
                    "upstream": key.upstream,
                    "partition": key.partition,
                    "notification_id": at.notification_id,
                    "epoch": at.epoch,
                })
            })
            .collect();
        return out.json(&json!({
            "events": counts.events,
            "aggregates": counts.aggregates,
            "notifications_head": head,
            "encrypted_records": counts.encrypted,
            "compressed_records": counts.compressed,
            "stored_bytes": counts.stored_bytes,
            "file_bytes": file_bytes,
            "database_bytes": database_bytes,
            "topics": counts.topics,
            "followers": followers,
        }));
    }
    out.line(&format!("events:             {}", counts.events))?;
    out.line(&format!("aggregates:         {}", counts.aggregates))?;
    out.line(&format!("notifications head: {head}"))?;
    out.line(&format!(
        "records:            {} encrypted, {} compressed, {} bytes stored",
        counts.encrypted, counts.compressed, counts.stored_bytes
    ))?;
    if let Some(bytes) = file_bytes {
        out.line(&format!("file size:          {bytes} bytes"))?;
    }
    if let Some(bytes) = database_bytes {
        out.line(&format!("database size:      {bytes} bytes"))?;
    }
    out.line("topics:")?;
    for (topic, events) in &counts.topics {
        out.line(&format!("  {topic}: {events}"))?;
    }
    if !followers.is_empty() {
        out.line("followers (follower <- upstream [partition]: notification, epoch):")?;
    }
    for (key, at) in &followers {
        out.line(&format!(
            "  {} <- {} [{}]: {}, epoch {}",
            key.follower, key.upstream, key.partition, at.notification_id, at.epoch
        ))?;
    }
    Ok(())
}

/// One pass over the log up to `head`.
fn count(store: &Store, head: u64, json: bool) -> Result<Counts, Failure> {
    let bar = progress::bar(head, "counting", json);
    let mut counts = Counts::default();
    let mut aggregates = HashSet::new();
    store.scan(1, |notification| {
        if notification.id > head {
            return Ok(false);
        }
        bar.set_position(notification.id);
        counts.events += 1;
        aggregates.insert(notification.originator_id);
        let flags = notification.state.first().copied().unwrap_or(0);
        counts.compressed += u64::from(flags & 0x01);
        counts.encrypted += u64::from((flags & 0x02) >> 1);
        counts.stored_bytes += notification.state.len() as u64;
        *counts.topics.entry(notification.topic).or_default() += 1;
        Ok(true)
    })?;
    bar.finish_and_clear();
    counts.aggregates = aggregates.len();
    Ok(counts)
}

/// The bytes of the whole PostgreSQL database the store is in; `None`
/// for other stores, or when the server will not say.
#[cfg(feature = "postgres")]
fn database_size(store: &Store) -> Option<u64> {
    use eventsourcing::postgres::{Client, NoTls};
    let DbUri::Postgres(url) = &store.uri else {
        return None;
    };
    let mut client = Client::connect(url, NoTls).ok()?;
    let row = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .ok()?;
    u64::try_from(row.try_get::<_, i64>(0).ok()?).ok()
}

/// Without PostgreSQL support, no database size.
#[cfg(not(feature = "postgres"))]
fn database_size(_store: &Store) -> Option<u64> {
    None
}

/// The bytes of a SQLite database file and its write-ahead log.
fn file_size(store: &Store) -> Option<u64> {
    let path = sqlite_file(&store.uri)?;
    let main = std::fs::metadata(path).ok()?.len();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    Some(main + std::fs::metadata(wal).map_or(0, |m| m.len()))
}

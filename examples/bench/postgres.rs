//! The PostgreSQL target of the bench program: a schema per
//! measurement, and the `postgres` crate alone as the raw baseline.

use std::hint::black_box;
use std::sync::Arc;

use eventsourcing::recorder::{PostgresOptions, PostgresRecorder};
use eventsourcing::{Application, Uuid};

use super::workloads::line;
use super::{Codec, Durability, Raw, RawRow, Result, Target, builder};

/// The server the PostgreSQL workloads run on when `DB_URI` names none.
pub(super) const DEFAULT_POSTGRES_URI: &str = "postgres://postgres@127.0.0.1/test";

/// Each measurement gets a schema of its own, dropped afterwards.
pub(super) struct PostgresTarget {
    url: String,
    /// Whether a commit waits for the WAL to reach the disk.
    synced: bool,
    /// Schemas of the raw baselines made so far.
    raw_schemas: Vec<String>,
    /// The schema of the latest `app`.
    latest_schema: Option<String>,
}

impl PostgresTarget {
    pub(super) fn new() -> Result<PostgresTarget> {
        let url = match std::env::var("DB_URI") {
            Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
            _ => DEFAULT_POSTGRES_URI.to_owned(),
        };
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        let mut synced = true;
        for setting in ["fsync", "synchronous_commit", "server_version"] {
            let value: String = client.query_one(&format!("SHOW {setting}"), &[])?.get(0);
            if setting != "server_version" && value == "off" {
                synced = false;
            }
            line(&format!("pg_{setting}"), value);
        }
        Ok(PostgresTarget {
            url,
            synced,
            raw_schemas: Vec::new(),
            latest_schema: None,
        })
    }

    /// A fresh schema with the raw baseline's table, dropped by `clear`.
    fn raw_table(&mut self) -> Result<RawPostgres> {
        let schema = format!("es_raw_{}", Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        client.batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.stored_events (
                 notification_id BIGSERIAL PRIMARY KEY,
                 originator_id UUID NOT NULL,
                 originator_version BIGINT NOT NULL,
                 topic TEXT NOT NULL,
                 state BYTEA NOT NULL,
                 UNIQUE (originator_id, originator_version)
             );"
        ))?;
        let table = format!("{schema}.stored_events");
        self.raw_schemas.push(schema);
        Ok(RawPostgres { client, table })
    }
}

impl Target for PostgresTarget {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn durabilities(&self) -> &'static [Durability] {
        // The server's own settings (printed as `pg_*` lines).
        &[Durability::Normal]
    }

    fn synced(&self, _: Durability) -> bool {
        self.synced
    }

    fn app(&mut self, codec: Codec, _: Durability) -> Result<Application> {
        let options = PostgresOptions::new(self.url.as_str()).temporary_schema();
        let recorder = Arc::new(PostgresRecorder::open(options)?);
        self.latest_schema = Some(recorder.schema().to_owned());
        Ok(builder(codec)?.recorder(recorder).build()?)
    }

    fn kept_app(&mut self, codec: Codec, _: Durability, name: &str) -> Result<Application> {
        let options = PostgresOptions::new(self.url.as_str()).schema(name);
        let recorder = Arc::new(PostgresRecorder::open(options)?);
        self.latest_schema = Some(name.to_owned());
        Ok(builder(codec)?.recorder(recorder).build()?)
    }

    fn latest(&self) -> Option<String> {
        self.latest_schema.clone()
    }

    fn footprint(&mut self, schema: &str) -> Result<Vec<(&'static str, u64)>> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        // The table (its main fork), its indexes, and everything: the
        // table with its TOAST table, indexes and maps.
        let row = client.query_one(
            "SELECT pg_relation_size(t), pg_indexes_size(t), pg_total_relation_size(t) \
             FROM (SELECT format('%I.stored_events', $1::text)::regclass AS t) AS x",
            &[&schema],
        )?;
        let size = |i: usize| -> Result<u64> { Ok(u64::try_from(row.try_get::<_, i64>(i)?)?) };
        Ok(vec![
            ("table", size(0)?),
            ("indexes", size(1)?),
            ("total", size(2)?),
        ])
    }

    fn raw(&mut self, _: Durability) -> Result<Box<dyn Raw>> {
        Ok(Box::new(self.raw_table()?))
    }

    fn raw_copy(&mut self, schema: &str, _: Durability) -> Result<Box<dyn Raw>> {
        let mut raw = self.raw_table()?;
        raw.client.batch_execute(&format!(
            "INSERT INTO {} (originator_id, originator_version, topic, state) \
             SELECT originator_id, originator_version, topic, state \
             FROM \"{schema}\".stored_events ORDER BY notification_id; \
             ANALYZE {};",
            raw.table, raw.table,
        ))?;
        Ok(Box::new(raw))
    }

    fn clear(&mut self) -> Result<()> {
        if self.raw_schemas.is_empty() {
            return Ok(());
        }
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
        for schema in self.raw_schemas.drain(..) {
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        }
        Ok(())
    }
}

/// The `postgres` crate alone: one prepared statement per transaction, each
/// a batch insert of arrays (one round trip, as the recorder's), committed
/// on its own.
pub(super) struct RawPostgres {
    client: postgres::Client,
    table: String,
}

impl Raw for RawPostgres {
    fn insert(&mut self, rows: &[RawRow], batch: usize) -> Result<()> {
        let insert = self.client.prepare(&format!(
            "INSERT INTO {} (originator_id, originator_version, topic, state) \
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bytea[]) \
             RETURNING notification_id",
            self.table
        ))?;
        let mut ids = Vec::with_capacity(batch);
        let mut versions = Vec::with_capacity(batch);
        let mut topics = Vec::with_capacity(batch);
        let mut states = Vec::with_capacity(batch);
        for chunk in rows.chunks(batch) {
            ids.clear();
            versions.clear();
            topics.clear();
            states.clear();
            for row in chunk {
                ids.push(row.uuid);
                versions.push(row.version);
                topics.push(row.topic.as_str());
                states.push(row.state.as_slice());
            }
            let assigned = self
                .client
                .query(&insert, &[&ids, &versions, &topics, &states])?;
            black_box(assigned);
        }
        Ok(())
    }

    fn replay(&mut self, id: &str) -> Result<usize> {
        let select = self.client.prepare(&format!(
            "SELECT originator_id, originator_version, topic, state FROM {} \
             WHERE originator_id = $1 ORDER BY originator_version",
            self.table
        ))?;
        let id = Uuid::parse_str(id)?;
        let mut rows = self.client.query_raw(&select, [&id])?;
        let mut count = 0;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            black_box((
                row.try_get::<_, Uuid>(0)?,
                row.try_get::<_, i64>(1)?,
                row.try_get::<_, &str>(2)?,
                row.try_get::<_, &[u8]>(3)?,
            ));
            count += 1;
        }
        Ok(count)
    }

    fn read_log(&mut self, page: usize) -> Result<usize> {
        let select = self.client.prepare(&format!(
            "SELECT notification_id, originator_id, originator_version, topic, state \
             FROM {} WHERE notification_id >= $1 ORDER BY notification_id LIMIT $2",
            self.table
        ))?;
        let limit = i64::try_from(page)?;
        let mut start = 1_i64;
        let mut count = 0;
        loop {
            let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&start, &limit];
            let mut rows = self.client.query_raw(&select, params)?;
            let mut in_page = 0;
            while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
                let id = row.try_get::<_, i64>(0)?;
                black_box((
                    row.try_get::<_, Uuid>(1)?,
                    row.try_get::<_, i64>(2)?,
                    row.try_get::<_, &str>(3)?,
                    row.try_get::<_, &[u8]>(4)?,
                ));
                start = id + 1;
                in_page += 1;
            }
            count += in_page;
            if in_page < page {
                return Ok(count);
            }
        }
    }
}

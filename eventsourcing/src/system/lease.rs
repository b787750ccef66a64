//! Leases on a system's work units, in a PostgreSQL table: which node
//! runs which application partition, until when. Every time is the
//! database's (`now()`), so nodes' clocks do not matter. A lease only
//! shares the work out; what makes a node that lost one harmless is the
//! tracking row's epoch, raised by the node that takes the unit next.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::recorder::PostgresRecorder;

/// The lease table of one system, reached through a recorder's pool.
pub(crate) struct Leases {
    recorder: Arc<PostgresRecorder>,
    table: String,
    system: String,
    node: String,
    seconds: f64,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Leases {
    /// The leases of `system` held as `node`, each for `lease`; creates
    /// the table when it is missing.
    pub(crate) fn open(
        recorder: Arc<PostgresRecorder>,
        system: &str,
        node: &str,
        lease: Duration,
    ) -> Result<Leases> {
        let table = format!(
            "{}.{}",
            quote(recorder.schema()),
            quote(&format!("{}system_leases", recorder.table_prefix()))
        );
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 system TEXT NOT NULL,
                 unit TEXT NOT NULL,
                 node TEXT NOT NULL,
                 expires TIMESTAMPTZ NOT NULL,
                 PRIMARY KEY (system, unit))"
        );
        recorder.read_with(|client| {
            // Two nodes creating it at once: one wins, the other's error
            // is a duplicate type or relation, and the table is there.
            if let Err(error) = client.batch_execute(&create) {
                let exists = client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                    .is_ok_and(|row| row.get::<_, bool>(0));
                if !exists {
                    return Err(error.into());
                }
            }
            Ok(())
        })?;
        Ok(Leases {
            recorder,
            table,
            system: system.to_owned(),
            node: node.to_owned(),
            seconds: lease.as_secs_f64(),
        })
    }

    /// Says this node is alive (for sharing the work out), and returns
    /// how many nodes are.
    pub(crate) fn heartbeat(&self) -> Result<usize> {
        let unit = format!("node:{}", self.node);
        self.acquire(&unit)?;
        let sql = format!(
            "SELECT count(*) FROM {} WHERE system = $1 AND unit LIKE 'node:%' AND expires > now()",
            self.table
        );
        let count: i64 = self
            .recorder
            .read_with(|client| Ok(client.query_one(&sql, &[&self.system])?.get(0)))?;
        Ok(usize::try_from(count).unwrap_or(1).max(1))
    }

    /// Takes `unit` if it is free or its lease expired (or renews it if
    /// this node holds it); whether this node holds it now.
    pub(crate) fn acquire(&self, unit: &str) -> Result<bool> {
        let sql = format!(
            "INSERT INTO {table} AS t (system, unit, node, expires)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (system, unit) DO UPDATE
                 SET node = EXCLUDED.node, expires = EXCLUDED.expires
                 WHERE t.expires < now() OR t.node = EXCLUDED.node
             RETURNING node",
            table = self.table
        );
        self.recorder.read_with(|client| {
            let row = client.query_opt(&sql, &[&self.system, &unit, &self.node, &self.seconds])?;
            Ok(row.is_some())
        })
    }

    /// Extends the leases this node still holds among `units`; returns
    /// those (a unit missing from the answer was lost: it expired, and
    /// maybe another node took it).
    pub(crate) fn renew(&self, units: &[String]) -> Result<Vec<String>> {
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE {} SET expires = now() + make_interval(secs => $4)
             WHERE system = $1 AND node = $2 AND unit = ANY($3) AND expires > now()
             RETURNING unit",
            self.table
        );
        self.recorder.read_with(|client| {
            let rows = client.query(&sql, &[&self.system, &self.node, &units, &self.seconds])?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    /// Gives `unit` up (when this node holds it).
    pub(crate) fn release(&self, unit: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE system = $1 AND unit = $2 AND node = $3",
            self.table
        );
        self.recorder.read_with(|client| {
            client.execute(&sql, &[&self.system, &unit, &self.node])?;
            Ok(())
        })
    }
}

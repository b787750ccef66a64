//! The connection pool: at most `size` connections, each with the
//! statements prepared on it, lent out one caller at a time.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement};

use super::errors::ConnectError;
use super::sql::{Query, Sql};
use crate::error::{Error, Result};

/// A connection and the statements prepared on it.
pub(super) struct Connection {
    pub(super) client: Client,
    prepared: HashMap<Query, Statement>,
}

impl Connection {
    pub(super) fn statement(
        &mut self,
        sql: &Sql,
        query: Query,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(&query) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql.text(query))?;
        self.prepared.insert(query, statement.clone());
        Ok(statement)
    }
}

#[derive(Default)]
pub(super) struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

/// At most `size` connections, handed out one caller at a time.
pub(super) struct Pool {
    config: postgres::Config,
    pub(super) size: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A connection taken from the pool; given back when dropped, unless
/// [`Lease::discard`]ed.
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    connection: Option<Connection>,
    /// Whether the connection had served earlier calls (so may have lost
    /// its server meanwhile), rather than being opened for this one.
    pub(super) reused: bool,
}

impl Pool {
    /// An empty pool of at most `size` connections to the server of
    /// `config`, whose callers wait at most `wait` for a free one.
    pub(super) fn new(config: postgres::Config, size: usize, wait: Duration) -> Self {
        Self {
            config,
            size,
            wait,
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is a list and a counter, each updated in one step: a
        // panic elsewhere cannot leave it half written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self) -> Result<Lease<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            // A connection known to be closed is dropped here; one whose
            // server went away unnoticed is caught by the first use (see
            // `PostgresRecorder::lease`).
            while let Some(connection) = state.idle.pop() {
                if !connection.client.is_closed() {
                    return Ok(Lease {
                        pool: self,
                        connection: Some(connection),
                        reused: true,
                    });
                }
                state.open -= 1;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(Lease {
                        pool: self,
                        connection: Some(Connection {
                            client,
                            prepared: HashMap::new(),
                        }),
                        reused: false,
                    }),
                    Err(error) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(Error::Database(Box::new(ConnectError(error))))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Database(
                    format!(
                        "no PostgreSQL connection became free within {:?} ({} in use)",
                        self.wait, self.size
                    )
                    .into(),
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A connection of its own, outside the pool and its limit (a
    /// listener's, which waits for notifications as long as it lives).
    pub(super) fn connect_dedicated(&self) -> Result<Client> {
        self.config
            .connect(NoTls)
            .map_err(|error| Error::Database(Box::new(ConnectError(error))))
    }

    /// Closes every idle connection: called when one has lost its server,
    /// as the others most likely have too.
    pub(super) fn purge_idle(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }
}

impl Lease<'_> {
    pub(super) fn connection(&mut self) -> Result<&mut Connection> {
        self.connection
            .as_mut()
            .ok_or_else(|| Error::Database("the PostgreSQL connection was discarded".into()))
    }

    /// Closes the connection instead of giving it back.
    pub(super) fn discard(mut self) {
        if let Some(connection) = self.connection.take() {
            drop(connection);
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let mut state = self.pool.lock();
            if connection.client.is_closed() {
                state.open -= 1;
            } else {
                state.idle.push(connection);
            }
            drop(state);
            self.pool.freed.notify_one();
        }
    }
}

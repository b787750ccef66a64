//! What the workspace's tests, examples and benchmarks share; never
//! published. One place for each rule they all follow:
//!
//! - [`pg`]: whether the PostgreSQL tests run, skip or fail
//!   (`EVENTSOURCING_POSTGRES_URL`, `EVENTSOURCING_REQUIRE_POSTGRES`), and
//!   scratch schemas that are dropped afterwards;
//! - [`sqlite`]: SQLite database files in temporary directories;
//! - [`stores`]: one test run against every kind of store, and
//!   [`recorders`] with [`conformance!`]: one recorder behaviour against
//!   every backend;
//! - [`child`]: one test of the current binary run in a child process with
//!   a chosen environment;
//! - [`netns`]: nodes in network namespaces of their own, reaching
//!   PostgreSQL through a link that can be cut and restored;
//! - [`fixtures`] and [`account`]: the aggregates several programs use;
//!   [`orders`]: the orders system (its applications and its oracle);
//!   [`ledger`]: the remote follower's process application and its oracle.

pub mod account;
pub mod child;
pub mod fixtures;
pub mod http;
pub mod ledger;
pub mod netns;
pub mod orders;
pub mod pg;
pub mod recorders;
pub mod sqlite;
pub mod stores;

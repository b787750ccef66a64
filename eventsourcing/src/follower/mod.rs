//! Followers: process applications and projections. A follower reads one
//! or more upstream applications' notification logs and hands each event
//! to its [`Policy`]; what the handlers record, and the follower's new
//! position in each upstream log, are written in one transaction.

mod policy;

pub use self::policy::{BoxError, Envelope, HandleError, Policy, variant_topics};

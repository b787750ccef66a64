//! Parked notifications: listing them, handling them again, and dropping
//! them. A follower that parks failures ([`FollowerBuilder::park_failures`])
//! sets a failing event's aggregate aside and goes on with the others; its
//! later events are parked behind it, so that an aggregate's events are
//! never handled out of order.
//!
//! [`FollowerBuilder::park_failures`]: super::FollowerBuilder::park_failures

use std::sync::Arc;

use uuid::Uuid;

use super::policy::Envelope;
use super::runner::Follower;
use super::target::{Commit, Target};
use crate::error::{Error, Result};
use crate::recorder::{ParkChange, Parked};

impl<P, T: Target<P>> Follower<P, T> {
    /// The notifications this follower has parked, by upstream and
    /// notification id.
    pub fn parked(&self) -> Result<Vec<Parked>> {
        self.target.recorder().select_parked(&self.name)
    }

    /// Handles the parked notifications of aggregate `originator_id` of
    /// `upstream` again, oldest first, each in a transaction of its own
    /// that records its effects and releases it. Returns how many were
    /// handled; once all are, the aggregate's new events flow again.
    ///
    /// Stops at the first handler that fails again, with that error
    /// ([`Error::Handler`]); the notifications from that one on stay
    /// parked. [`Error::NotParked`] when another worker released one first.
    pub fn retry_parked(&mut self, upstream: &str, originator_id: Uuid) -> Result<usize> {
        let (index, parked) = self.parked_of(upstream, originator_id)?;
        let log = self.upstreams[index].log.clone();
        let name = Arc::clone(&self.upstreams[index].name);
        let mut handled = 0;
        for entry in &parked {
            let row = log
                .select(entry.notification_id, 1, &[])?
                .into_iter()
                .find(|row| row.id == entry.notification_id)
                .ok_or_else(|| Error::InvalidArgument {
                    name: "parked",
                    reason: format!(
                        "notification {} of `{upstream}` is parked but not in the upstream log",
                        entry.notification_id
                    ),
                })?;
            let envelope = Envelope::new(Arc::clone(&name), row.id, log.decode(row)?);
            let release = [ParkChange::Release {
                follower: self.name.clone(),
                upstream: upstream.to_owned(),
                notification_ids: vec![entry.notification_id],
            }];
            let commit = Commit {
                tracking: None,
                parked: &release,
            };
            let batch = std::slice::from_ref(&envelope);
            if let Err(failure) = self.target.process(&mut self.policy, batch, commit) {
                return Err(self.failure_error(failure, Some(&envelope)));
            }
            handled += 1;
        }
        self.parked.remove(&(index, originator_id));
        Ok(handled)
    }

    /// Drops the parked notifications of aggregate `originator_id` of
    /// `upstream` without handling them: they will have no effect. Returns
    /// how many were dropped; the aggregate's new events flow again.
    pub fn drop_parked(&mut self, upstream: &str, originator_id: Uuid) -> Result<usize> {
        let (index, parked) = self.parked_of(upstream, originator_id)?;
        let release = [ParkChange::Release {
            follower: self.name.clone(),
            upstream: upstream.to_owned(),
            notification_ids: parked.iter().map(|p| p.notification_id).collect(),
        }];
        let commit = Commit {
            tracking: None,
            parked: &release,
        };
        // No handler runs on an empty batch: only writing can fail.
        if let Err(failure) = self.target.process(&mut self.policy, &[], commit) {
            return Err(self.failure_error(failure, None));
        }
        self.parked.remove(&(index, originator_id));
        Ok(parked.len())
    }

    /// The index of `upstream` and the parked notifications of one of its
    /// aggregates, oldest first.
    fn parked_of(&self, upstream: &str, originator_id: Uuid) -> Result<(usize, Vec<Parked>)> {
        let index = self
            .upstreams
            .iter()
            .position(|u| &*u.name == upstream)
            .ok_or_else(|| Error::InvalidArgument {
                name: "upstream",
                reason: format!("follower `{}` does not follow `{upstream}`", self.name),
            })?;
        let parked: Vec<Parked> = self
            .parked()?
            .into_iter()
            .filter(|p| p.upstream == upstream && p.originator_id == originator_id)
            .collect();
        Ok((index, parked))
    }
}

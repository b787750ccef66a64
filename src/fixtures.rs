//! Aggregates several tests share.

use eventsourcing::prelude::*;

/// The synopsis aggregate: a world with a history of things that happened.
#[aggregate]
#[derive(Debug, Default, Clone, PartialEq)]
pub struct World {
    /// What happened, in order.
    pub history: Vec<String>,
}

#[aggregate]
impl World {
    /// Creates the world.
    #[created(Created)]
    pub fn create(&mut self) {}

    /// Records that `what` happened.
    #[event(SomethingHappened)]
    pub fn make_it_so(&mut self, what: String) {
        self.history.push(what);
    }
}

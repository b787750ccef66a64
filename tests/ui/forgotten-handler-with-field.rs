use eventsourcing::follower::{Envelope, Processing};
use eventsourcing::prelude::*;

#[aggregate(key = per_aggregate)]
#[derive(Debug, Default)]
pub struct Patient {
    name: String,
}

#[aggregate]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }
}

struct Directory;

#[policy]
impl Directory {
    #[on(PatientEvent::Forgotten)]
    fn forgotten(&self, cx: &mut Processing, envelope: &Envelope, name: String) {
        let _ = (cx, envelope, name);
    }
}

fn main() {}

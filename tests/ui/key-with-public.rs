use eventsourcing::prelude::*;

#[aggregate(public, key = per_aggregate)]
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

fn main() {}

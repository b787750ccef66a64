use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Patient {
    name: String,
}

#[aggregate(key = per_aggregate)]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }
}

fn main() {}

use eventsourcing::prelude::*;

#[aggregate(key = per_event)]
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

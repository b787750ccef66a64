use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Patient {
    name: String,
    ward: String,
}

#[aggregate]
impl Patient {
    #[created(Admitted)]
    fn admit(&mut self, name: String) {
        self.name = name;
    }

    #[event(Discharged, public = true)]
    fn discharge(&mut self, ward: String) {
        self.ward = ward;
    }
}

fn main() {}

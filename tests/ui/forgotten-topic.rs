use eventsourcing::prelude::*;

#[derive(Debug, Event)]
#[es(prefix = "Patient")]
pub enum PatientEvent {
    Admitted { name: String },
    #[es(topic = "Patient.Forgotten")]
    Erased {},
}

fn main() {}

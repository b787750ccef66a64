use eventsourcing::prelude::*;

#[aggregate(public = "yes")]
#[derive(Debug, Default)]
pub struct Notice {
    text: String,
}

#[aggregate]
impl Notice {
    #[created(Posted)]
    fn post(&mut self, text: String) {
        self.text = text;
    }
}

fn main() {}

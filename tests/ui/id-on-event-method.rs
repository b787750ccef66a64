use eventsourcing::prelude::*;

#[aggregate]
#[derive(Debug, Default)]
pub struct Page {
    body: String,
}

#[aggregate]
impl Page {
    #[created(Created)]
    fn create(&mut self) {}

    #[event(Edited, id = Uuid::nil())]
    fn edit(&mut self, body: String) {
        self.body = body;
    }
}

fn main() {}

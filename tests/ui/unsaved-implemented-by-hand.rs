use eventsourcing::Unsaved;

// What `Application::save` takes is sealed: one aggregate, a slice, array
// or `Vec` of them, or a tuple of those.
pub struct Batch;

impl Unsaved for Batch {}

fn main() {}

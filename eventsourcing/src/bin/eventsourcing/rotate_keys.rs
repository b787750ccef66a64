//! `rotate-keys`: every aggregate's data key re-wrapped under the current
//! application key (`CIPHER_KEY`), each unwrapped with the key its row's
//! fingerprint names (`CIPHER_KEY_PREVIOUS`); resumable: run it again
//! after an interruption (see `Application::rotate_keys`).

use eventsourcing::json::json;

use crate::failure::Failure;
use crate::output::Output;
use crate::store::{Open, StoreArgs};

/// `rotate-keys`' arguments: none (the keys come with the store's).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Re-wraps, then says under which key and how many this run did.
pub(crate) fn run(store_args: &StoreArgs, _args: &Args, out: &mut Output) -> Result<(), Failure> {
    let store = store_args.open(Open::Existing)?;
    if !store.keyed {
        return Err(Failure::usage(
            "rotate-keys needs the new key in CIPHER_KEY and the old one in CIPHER_KEY_PREVIOUS",
        ));
    }
    let app = store_args.application(&store)?;
    let rotation = app.rotate_keys().map_err(|e| store.failure(e))?;
    out.either(
        || json!({ "fingerprint": rotation.fingerprint, "rewrapped": rotation.rewrapped }),
        || {
            format!(
                "every data key is wrapped under the key {}: {} re-wrapped by this run",
                rotation.fingerprint, rotation.rewrapped
            )
        },
    )
}

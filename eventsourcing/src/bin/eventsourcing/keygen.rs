//! `keygen`: a new application key for `CIPHER_KEY`.

use eventsourcing::json::json;

use crate::failure::Failure;
use crate::output::Output;

/// `keygen`'s arguments: none.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Prints 32 random bytes from the operating system, in standard base64:
/// `export CIPHER_KEY=$(eventsourcing keygen)`.
pub(crate) fn run(_args: &Args, out: &mut Output) -> Result<(), Failure> {
    let key = eventsourcing::generate_cipher_key().map_err(|e| Failure::store(e.to_string()))?;
    out.either(|| json!({ "cipher_key": key }), || key.clone())
}

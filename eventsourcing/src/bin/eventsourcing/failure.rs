//! Why a subcommand failed, and the exit code that tells a script.

use std::fmt;
use std::io;
use std::process::ExitCode;

use eventsourcing::json::json;
use eventsourcing::{Error, Uuid};

use crate::output::Output;

/// The kinds of failure, each with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Exit 1: the stored events do not check out.
    Verification,
    /// Exit 2: bad arguments or configuration.
    Usage,
    /// Exit 3: the database cannot be opened, read or written.
    Store,
    /// Exit 4: there is nothing of that name.
    NotFound,
    /// Exit 0 without a word: standard output was closed (`| head`).
    Closed,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Closed => 0,
            Kind::Verification => 1,
            Kind::Usage => 2,
            Kind::Store => 3,
            Kind::NotFound => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Closed => "closed",
            Kind::Verification => "verification",
            Kind::Usage => "usage",
            Kind::Store => "store",
            Kind::NotFound => "not_found",
        }
    }
}

/// A failed subcommand: its kind, what to tell the user and, for a
/// fault in the stored events, where it is.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: Kind,
    pub(crate) message: String,
    /// The aggregate and version at fault, when there is one.
    pub(crate) at: Option<(Uuid, u64)>,
}

impl Failure {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            at: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Usage, message)
    }

    pub(crate) fn store(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Store, message)
    }

    /// A failure of the stored events at aggregate `id`, version `version`.
    pub(crate) fn verification(id: Uuid, version: u64, message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Verification,
            message: message.into(),
            at: Some((id, version)),
        }
    }

    /// The failure a library error amounts to. A record that cannot be
    /// decrypted is a verification failure when a key was given, and a
    /// usage error (a key is needed) when none was.
    pub(crate) fn from_error(error: Error, keyed: bool) -> Failure {
        match error {
            Error::Integrity { id, version, .. } | Error::Corrupt { id, version, .. } => {
                Failure::verification(id, version, error.to_string())
            }
            Error::Decryption { id, version, .. } if keyed => {
                Failure::verification(id, version, error.to_string())
            }
            Error::Decryption { id, version, .. } => Failure {
                kind: Kind::Usage,
                message: format!(
                    "aggregate {id} version {version} is encrypted: set CIPHER_KEY \
                     (or --cipher-key) to the application's key to read it"
                ),
                at: Some((id, version)),
            },
            Error::NotFound { .. } => Failure::new(Kind::NotFound, error.to_string()),
            Error::Config { .. } | Error::InvalidArgument { .. } => {
                Failure::usage(error.to_string())
            }
            other => Failure::store(other.to_string()),
        }
    }

    /// A failed write to standard output or to a file.
    pub(crate) fn io(error: &io::Error, what: &str) -> Failure {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Failure::new(Kind::Closed, "")
        } else {
            Failure::new(Kind::Usage, format!("{what}: {error}"))
        }
    }

    /// Tells the user (standard error; also standard output as JSON with
    /// `--json`) and returns the exit code.
    pub(crate) fn report(self, out: &mut Output) -> ExitCode {
        if self.kind == Kind::Closed {
            return ExitCode::SUCCESS;
        }
        eprintln!("eventsourcing: error: {self}");
        if out.is_json() {
            let (aggregate, version) = match self.at {
                Some((id, version)) => (Some(id.to_string()), Some(version)),
                None => (None, None),
            };
            // Standard output may be gone too; the message went to stderr.
            let _ = out.json(&json!({
                "error": {
                    "kind": self.kind.name(),
                    "exit_code": self.kind.code(),
                    "message": self.message,
                    "aggregate": aggregate,
                    "version": version,
                }
            }));
        }
        ExitCode::from(self.kind.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

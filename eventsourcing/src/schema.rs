//! Schema drift checks: the schemas of an application's events and
//! aggregate states, compared with a committed file.
//!
//! Stored events are never rewritten, so a change to an event's fields must
//! come with a new schema version (`#[event(Name, version = N)]`) and an
//! upcaster from the old one; the macros make a missing upcaster a compile
//! error. What they cannot see is a field changed *without* a version bump.
//! A test that calls [`Schemas::assert_file`] catches that: it compares the
//! schemas the macros expose with a file committed next to the code, and
//! fails with a readable diff.
//!
//! ```no_run
//! # use eventsourcing::prelude::*;
//! # #[aggregate] #[derive(Default)] struct World { history: Vec<String> }
//! # #[aggregate] impl World { #[created(Created)] fn create(&mut self) {} }
//! use eventsourcing::schema::Schemas;
//!
//! #[test]
//! fn schemas_are_committed() {
//!     Schemas::new()
//!         .aggregate::<World>()
//!         .assert_file(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/world.txt"));
//! }
//! ```
//!
//! After a deliberate change (a new event, or a new version with its
//! upcaster), update the file with
//!
//! ```text
//! UPDATE_SCHEMAS=1 cargo test
//! ```
//!
//! which rewrites it, except when the change breaks the rule above: then it
//! fails as the plain test does, and the file stays as it was.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;

use crate::domain::{Aggregate, Event};
use crate::keys::Encryption;

/// The environment variable that makes [`Schemas::assert_file`] write the
/// file instead of only comparing.
pub const UPDATE_VARIABLE: &str = "UPDATE_SCHEMAS";

/// The schemas of some aggregates: each one's state and each of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schemas {
    entries: BTreeMap<String, Entry>,
}

/// One schema: of an aggregate's state, or of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    version: u32,
    fields: Vec<(String, String)>,
    /// How its records are stored under a key, when not the default:
    /// `key=per_aggregate` or `public` (a state line speaks for the whole
    /// aggregate type).
    storage: Option<&'static str>,
}

/// The storage words a schema line may carry.
const STORAGE_WORDS: [&str; 2] = ["public", "key=per_aggregate"];

impl Entry {
    fn line(&self, key: &str) -> String {
        let head = match self.storage {
            Some(storage) => format!("{} {key} v{} {storage}", self.kind, self.version),
            None => format!("{} {key} v{}", self.kind, self.version),
        };
        let fields = self
            .fields
            .iter()
            .map(|(name, ty)| format!("{name}: {ty}"))
            .collect::<Vec<_>>()
            .join(", ");
        if fields.is_empty() {
            format!("{head} {{}}")
        } else {
            format!("{head} {{ {fields} }}")
        }
    }
}

/// One difference between the committed schemas and the code's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The state or event it concerns (`World`, `World.SomethingHappened`).
    pub key: String,
    /// The committed line, if any.
    pub committed: Option<String>,
    /// The code's line, if any.
    pub current: Option<String>,
    /// Why it matters.
    pub reason: String,
    /// Whether it breaks the rule (stored records would no longer load as
    /// written), rather than only needing the file updated.
    pub breaking: bool,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.key, self.reason)?;
        if let Some(line) = &self.committed {
            writeln!(f, "  - {line}")?;
        }
        if let Some(line) = &self.current {
            writeln!(f, "  + {line}")?;
        }
        Ok(())
    }
}

impl Schemas {
    /// No schemas yet.
    #[must_use]
    pub fn new() -> Schemas {
        Schemas::default()
    }

    /// Adds the schemas of aggregate `A`: its state and every event.
    #[must_use]
    pub fn aggregate<A: Aggregate>(mut self) -> Schemas {
        self.entries.insert(
            A::NAME.to_owned(),
            Entry {
                kind: "state",
                version: A::STATE_VERSION,
                fields: owned(A::STATE_SCHEMA),
                storage: match A::ENCRYPTION {
                    Encryption::PerAggregate => Some("key=per_aggregate"),
                    Encryption::Public => Some("public"),
                    _ => None,
                },
            },
        );
        for event in <A::Event as Event>::SCHEMA {
            let base = crate::format::split_topic(event.topic).map_or(event.topic, |(b, _)| b);
            self.entries.insert(
                base.to_owned(),
                Entry {
                    kind: "event",
                    version: event.version,
                    fields: owned(event.fields),
                    storage: event.public.then_some("public"),
                },
            );
        }
        self
    }

    /// The schemas as the file holds them: one line each, sorted.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Event and state schemas, checked by a test; update with UPDATE_SCHEMAS=1 cargo test\n",
        );
        for (key, entry) in &self.entries {
            let _ = writeln!(out, "{}", entry.line(key));
        }
        out
    }

    /// Reads schemas in the form [`render`](Self::render) writes.
    ///
    /// # Errors
    ///
    /// A line that is not of that form, with its number.
    pub fn parse(text: &str) -> Result<Schemas, String> {
        let mut entries = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("line {}: cannot read `{line}`", number + 1);
            let (head, body) = line.split_once('{').ok_or_else(bad)?;
            let body = body.trim().strip_suffix('}').ok_or_else(bad)?.trim();
            let mut words = head.split_whitespace();
            let kind = match words.next() {
                Some("state") => "state",
                Some("event") => "event",
                _ => return Err(bad()),
            };
            let key = words.next().ok_or_else(bad)?;
            let version = words
                .next()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|v| v.parse().ok())
                .ok_or_else(bad)?;
            let storage = match words.next() {
                None => None,
                Some(word) => Some(
                    STORAGE_WORDS
                        .into_iter()
                        .find(|known| *known == word)
                        .ok_or_else(bad)?,
                ),
            };
            if words.next().is_some() {
                return Err(bad());
            }
            let mut fields = Vec::new();
            if !body.is_empty() {
                for field in split_fields(body) {
                    let (name, ty) = field.split_once(':').ok_or_else(bad)?;
                    fields.push((name.trim().to_owned(), ty.trim().to_owned()));
                }
            }
            entries.insert(
                key.to_owned(),
                Entry {
                    kind,
                    version,
                    fields,
                    storage,
                },
            );
        }
        Ok(Schemas { entries })
    }

    /// The differences between `committed` and these (the code's) schemas.
    #[must_use]
    pub fn drift_from(&self, committed: &Schemas) -> Vec<Drift> {
        let mut drifts = Vec::new();
        for (key, old) in &committed.entries {
            let old_line = Some(old.line(key));
            let Some(new) = self.entries.get(key) else {
                drifts.push(Drift {
                    key: key.clone(),
                    committed: old_line,
                    current: None,
                    reason: format!(
                        "the {} is gone, but stored records of it would no longer load; keep it (and upcast it if it changed)",
                        old.kind
                    ),
                    breaking: true,
                });
                continue;
            };
            let new_line = Some(new.line(key));
            let (reason, breaking) = if new.version < old.version {
                (
                    format!(
                        "the schema version went down from {} to {}",
                        old.version, new.version
                    ),
                    true,
                )
            } else if new.fields != old.fields && new.version == old.version {
                (
                    format!(
                        "the fields changed but the schema version is still {}; records stored with the old fields would not load. Bump the version (`version = {}`) and add an upcaster from version {}",
                        old.version,
                        old.version + 1,
                        old.version
                    ),
                    true,
                )
            } else if new.storage != old.storage {
                let shown =
                    |storage: Option<&'static str>| storage.unwrap_or("under the application key");
                let was_public = old.storage == Some("public");
                let reason = if was_public {
                    format!(
                        "the records were public and are now stored `{}`: the plaintext records already stored would be refused under a key (allow plaintext records while they are there, or keep it public)",
                        shown(new.storage)
                    )
                } else {
                    format!(
                        "the records were stored `{}` and new ones will be `{}`; records stored before keep their own flags: update the committed file",
                        shown(old.storage),
                        shown(new.storage)
                    )
                };
                (reason, was_public)
            } else if new != old {
                (
                    format!(
                        "new schema version {} (was {}): update the committed file",
                        new.version, old.version
                    ),
                    false,
                )
            } else {
                continue;
            };
            drifts.push(Drift {
                key: key.clone(),
                committed: old_line,
                current: new_line,
                reason,
                breaking,
            });
        }
        for (key, new) in &self.entries {
            if !committed.entries.contains_key(key) {
                drifts.push(Drift {
                    key: key.clone(),
                    committed: None,
                    current: Some(new.line(key)),
                    reason: format!("a new {}: update the committed file", new.kind),
                    breaking: false,
                });
            }
        }
        drifts
    }

    /// Compares these schemas with the file at `path`, and panics with a
    /// readable diff when they differ.
    ///
    /// With `UPDATE_SCHEMAS=1` in the environment it writes the file
    /// instead (creating it if missing), unless a difference breaks the
    /// rule: a changed event or state without a new version, a lower
    /// version, or a removed one.
    ///
    /// # Panics
    ///
    /// On any difference (or, when updating, on a breaking one), and when
    /// the file cannot be read, parsed or written. This is a test helper.
    #[track_caller]
    pub fn assert_file(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let update = std::env::var_os(UPDATE_VARIABLE).is_some_and(|v| v == "1");
        let committed = match std::fs::read_to_string(path) {
            Ok(text) => match Schemas::parse(&text) {
                Ok(schemas) => schemas,
                Err(e) => panic!("schema file {}: {e}", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && update => Schemas::new(),
            Err(e) => panic!(
                "cannot read the schema file {}: {e}; create it with {UPDATE_VARIABLE}=1 cargo test",
                path.display()
            ),
        };
        let drifts = self.drift_from(&committed);
        if drifts.is_empty() {
            return;
        }
        let breaking = drifts.iter().any(|d| d.breaking);
        if update && !breaking {
            if let Err(e) = std::fs::write(path, self.render()) {
                panic!("cannot write the schema file {}: {e}", path.display());
            }
            return;
        }
        let mut report = format!("schemas differ from {}:\n\n", path.display());
        for drift in &drifts {
            let _ = writeln!(report, "{drift}");
        }
        if breaking {
            report.push_str(
                "Stored events are never rewritten: fix the breaking changes above first.",
            );
        } else {
            let _ = write!(
                report,
                "If these changes are meant, update the file: {UPDATE_VARIABLE}=1 cargo test"
            );
        }
        panic!("{report}");
    }
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, ty)| ((*name).to_owned(), (*ty).to_owned()))
        .collect()
}

/// Splits `a: A, b: Map<K, V>` at the commas outside angle brackets,
/// parentheses and square brackets.
fn split_fields(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(body[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(body[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas(lines: &str) -> Schemas {
        Schemas::parse(lines).expect("parses")
    }

    #[test]
    fn render_then_parse_is_the_identity() {
        let original = schemas(
            "state World v2 { history: Vec<String>, map: BTreeMap<String, (u8, i64)> }\nevent World.Created v1 {}\n",
        );
        assert_eq!(
            Schemas::parse(&original.render()).expect("parses"),
            original
        );
    }

    #[test]
    fn an_unversioned_change_breaks() {
        let committed = schemas("event World.Moved v1 { x: u8 }");
        let current = schemas("event World.Moved v1 { x: u16 }");
        let drifts = current.drift_from(&committed);
        assert_eq!(drifts.len(), 1);
        assert!(drifts[0].breaking);
        assert!(
            drifts[0].reason.contains("version = 2"),
            "{}",
            drifts[0].reason
        );
    }

    #[test]
    fn a_versioned_change_only_needs_the_file_updated() {
        let committed = schemas("event World.Moved v1 { x: u8 }");
        let current = schemas("event World.Moved v2 { x: u16 }");
        let drifts = current.drift_from(&committed);
        assert_eq!(drifts.len(), 1);
        assert!(!drifts[0].breaking);
    }

    #[test]
    fn removals_and_lower_versions_break_and_additions_do_not() {
        let committed = schemas("event World.Moved v2 { x: u8 }\nevent World.Gone v1 {}");
        let current = schemas("event World.Moved v1 { x: u8 }\nevent World.New v1 {}");
        let drifts = current.drift_from(&committed);
        let by_key = |k: &str| drifts.iter().find(|d| d.key == k).expect("drift");
        assert!(by_key("World.Moved").breaking);
        assert!(by_key("World.Gone").breaking);
        assert!(!by_key("World.New").breaking);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let error = Schemas::parse("# comment\nevent World.Moved 1 { x: u8 }").expect_err("bad");
        assert!(error.starts_with("line 2"), "{error}");
    }
}

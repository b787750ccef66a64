//! What the macros cost at build time: this program writes the same
//! aggregates twice as throwaway crates, once with `#[aggregate]` and once
//! by hand (serde's derives and a `match`), and measures both in the same
//! run: the lines that macro expansion produces, and the time a debug build
//! and a `cargo check` of each crate take once its dependencies are built.
//!
//! ```text
//! cargo bench --bench compile_cost                   # 10 aggregates x 20 events, median of 5
//! cargo bench --bench compile_cost -- --quick        # the same crates, median of 3
//! cargo bench --bench compile_cost -- --aggregates 5 --events 40
//! cargo bench --profile dev --bench compile_cost     # a smoke run: 2 x 3, one repetition
//! ```
//!
//! Every figure is one `name: value` line; `BENCH_SAMPLES=1` adds the
//! samples behind each median. Times are wall-clock (`compile_time_*`),
//! with the processor time of the same builds next to them
//! (`compile_cpu_*`, Linux only), which other work on the machine disturbs
//! less.
//!
//! The crates go to `compile_cost/` in cargo's scratch directory for
//! benchmarks (`target/tmp/`), next to the target directories they share,
//! so that their dependencies are built once (once for builds and once for
//! expansions: the first run takes a few minutes); each crate's
//! `expanded.rs` is its expansion as counted. The crates are always debug
//! builds; a debug build of this program without arguments does a smoke
//! run (2 aggregates x 3 events, one repetition) whose figures mean
//! nothing.
//!
//! The crates, for `N` aggregates of `M` events with two fields each:
//!
//! - `macros`: each aggregate as a user writes it, `#[aggregate]` on the
//!   struct and on its impl block, one `#[created]` and `M` `#[event]`
//!   methods, depending on this workspace's `eventsourcing` by path;
//! - `plain`: the same state and events by hand: the struct with serde's
//!   derives (snapshot-ready, as the macros make it), an event enum with
//!   `Clone, Debug, PartialEq` and serde's derives, and `apply` with a
//!   `match` whose arms hold the same bodies; it depends on serde alone;
//! - for the lines per event only: `bare`, the plain crate without serde's
//!   derives on the event enums, and `*_base`, each style with the creation
//!   event alone.
//!
//! Both crates are libraries that must compile without a warning (they deny
//! `warnings`), and both use the workspace's `Cargo.lock`, so they get the
//! same dependency versions as the workspace.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

type BoxError = Box<dyn std::error::Error>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    name: &'static str,
    aggregates: usize,
    /// Events per aggregate, besides its creation event.
    events: usize,
    /// Timed builds of each crate (the median is reported).
    reps: usize,
}

const FULL_PLAN: Plan = Plan {
    name: "full",
    aggregates: 10,
    events: 20,
    reps: 5,
};

const QUICK_PLAN: Plan = Plan {
    name: "quick",
    reps: 3,
    ..FULL_PLAN
};

const SMOKE_PLAN: Plan = Plan {
    name: "smoke",
    aggregates: 2,
    events: 3,
    reps: 1,
};

// ---------------------------------------------------------------- the crates

/// How a generated crate writes its aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// `#[aggregate]` on the struct and on its impl block.
    Macros,
    /// By hand: serde's derives on the state and on the event enum, and
    /// `apply` with a `match`.
    Plain,
    /// `Plain` without serde's derives on the event enum, the code that
    /// serde's share of the plain crate is measured against.
    Bare,
}

impl Style {
    fn name(self) -> &'static str {
        match self {
            Style::Macros => "macros",
            Style::Plain => "plain",
            Style::Bare => "bare",
        }
    }
}

/// The state every aggregate keeps, the same in every style.
const STATE_FIELDS: &[&str] = &["pub count: u64", "pub total: u64", "pub note: String"];

/// The body of every event, the same in every style: the event's fields
/// are `amount: u64` and `note: String`.
const EVENT_BODY: &[&str] = &[
    "self.count += 1;",
    "self.total += amount;",
    "self.note = note;",
];

/// One generated crate.
struct Crate {
    style: Style,
    /// Events per aggregate, besides its creation event.
    events: usize,
    /// The package name, which is also the name of its directory.
    name: String,
    dir: PathBuf,
}

impl Crate {
    /// `base` crates have the creation event alone.
    fn new(scratch: &Path, style: Style, base: bool, plan: &Plan) -> Crate {
        let suffix = if base { "_base" } else { "" };
        let name = format!("compile_cost_{}{suffix}", style.name());
        Crate {
            style,
            events: if base { 0 } else { plan.events },
            dir: scratch.join(&name),
            name,
        }
    }

    fn lib_rs(&self) -> PathBuf {
        self.dir.join("src").join("lib.rs")
    }

    /// Writes the crate (manifest, source and the workspace's lockfile),
    /// replacing what an earlier run wrote.
    fn write(&self, workspace: &Path, aggregates: usize) -> Result<()> {
        let src = self.dir.join("src");
        std::fs::create_dir_all(&src)
            .map_err(|e| format!("cannot create {}: {e}", src.display()))?;
        let manifest = self.manifest(workspace);
        let source = match self.style {
            Style::Macros => macros_source(aggregates, self.events)?,
            Style::Plain | Style::Bare => plain_source(self.style, aggregates, self.events)?,
        };
        write_file(&self.dir.join("Cargo.toml"), &manifest)?;
        write_file(&self.lib_rs(), &source)?;
        let lock = workspace.join("Cargo.lock");
        std::fs::copy(&lock, self.dir.join("Cargo.lock"))
            .map_err(|e| format!("cannot copy {}: {e}", lock.display()))?;
        Ok(())
    }

    fn manifest(&self, workspace: &Path) -> String {
        let dependency = match self.style {
            Style::Macros => format!(
                "eventsourcing = {{ path = {} }}",
                toml_string(&workspace.join("eventsourcing"))
            ),
            Style::Plain | Style::Bare => {
                r#"serde = { version = "1", features = ["derive"] }"#.to_owned()
            }
        };
        format!(
            r#"# Written by benches/compile_cost.rs of the eventsourcing workspace; every
# run replaces it.
[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
{dependency}

# The two crates are compared as written: neither may need a fix.
[lints.rust]
warnings = "deny"

# A workspace of its own, not a member of the one it sits in.
[workspace]
"#,
            name = self.name,
        )
    }

    /// Marks the source as changed, so that the next build compiles the
    /// crate again (its dependencies stay built).
    fn touch(&self) -> Result<()> {
        let path = self.lib_rs();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(SystemTime::now()))
            .map_err(|e| format!("cannot touch {}: {e}", path.display()).into())
    }
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents)
        .map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `aggregates` aggregates of `events` events each (plus creation), as a
/// user writes them with the macros.
fn macros_source(aggregates: usize, events: usize) -> Result<String, std::fmt::Error> {
    let mut s = String::new();
    writeln!(
        s,
        "//! {aggregates} aggregates x {events} events with `#[aggregate]` \
         (written by benches/compile_cost.rs)."
    )?;
    writeln!(s, "\nuse eventsourcing::prelude::*;")?;
    for k in 1..=aggregates {
        writeln!(s, "\n#[aggregate]\n#[derive(Debug, Default)]")?;
        writeln!(s, "pub struct Agg{k} {{")?;
        for field in STATE_FIELDS {
            writeln!(s, "    {field},")?;
        }
        writeln!(s, "}}\n\n#[aggregate]\nimpl Agg{k} {{")?;
        writeln!(
            s,
            "    #[created(Created)]\n    pub fn create(&mut self) {{}}"
        )?;
        for j in 1..=events {
            writeln!(s, "\n    #[event(Ev{j})]")?;
            writeln!(
                s,
                "    pub fn ev_{j}(&mut self, amount: u64, note: String) {{"
            )?;
            for line in EVENT_BODY {
                writeln!(s, "        {line}")?;
            }
            writeln!(s, "    }}")?;
        }
        writeln!(s, "}}")?;
    }
    Ok(s)
}

/// The same aggregates by hand: `Plain` with serde's derives on the event
/// enums, `Bare` without.
fn plain_source(style: Style, aggregates: usize, events: usize) -> Result<String, std::fmt::Error> {
    let mut s = String::new();
    let (how, event_derives) = if style == Style::Bare {
        ("by hand, events without serde", "Clone, Debug, PartialEq")
    } else {
        (
            "by hand with serde's derives",
            "Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize",
        )
    };
    writeln!(
        s,
        "//! {aggregates} aggregates x {events} events {how} \
         (written by benches/compile_cost.rs)."
    )?;
    for k in 1..=aggregates {
        writeln!(
            s,
            "\n#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]"
        )?;
        writeln!(s, "pub struct Agg{k} {{")?;
        for field in STATE_FIELDS {
            writeln!(s, "    {field},")?;
        }
        writeln!(s, "}}\n\n#[derive({event_derives})]")?;
        writeln!(s, "pub enum Agg{k}Event {{\n    Created,")?;
        for j in 1..=events {
            writeln!(s, "    Ev{j} {{ amount: u64, note: String }},")?;
        }
        writeln!(s, "}}\n\nimpl Agg{k} {{")?;
        writeln!(s, "    pub fn apply(&mut self, event: Agg{k}Event) {{")?;
        writeln!(s, "        match event {{")?;
        writeln!(s, "            Agg{k}Event::Created => {{}}")?;
        for j in 1..=events {
            writeln!(s, "            Agg{k}Event::Ev{j} {{ amount, note }} => {{")?;
            for line in EVENT_BODY {
                writeln!(s, "                {line}")?;
            }
            writeln!(s, "            }}")?;
        }
        writeln!(s, "        }}\n    }}\n}}")?;
    }
    Ok(s)
}

// ---------------------------------------------------------------- cargo

/// Runs cargo on the generated crates, which share one target directory
/// for builds and another for expansions: `RUSTC_BOOTSTRAP` changes what
/// some build scripts do (proc-macro2's looks for a nightly compiler), so
/// switching it in one directory would rebuild half the dependencies each
/// time.
struct Cargo {
    program: OsString,
    target_dir: PathBuf,
    expand_target_dir: PathBuf,
}

impl Cargo {
    /// Runs `cargo <args>` in `krate`'s directory and returns its output and
    /// how long it took; a failure is an error carrying cargo's stderr.
    /// `unstable` lets the stable toolchain accept `-Z` flags.
    fn run(&self, krate: &Crate, args: &[&str], unstable: bool) -> Result<(Output, Timing)> {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .current_dir(&krate.dir)
            // A full build of the crate each time, not an incremental one
            // (after `touch`, incremental compilation would reuse nearly
            // everything).
            .env("CARGO_INCREMENTAL", "0")
            .env("CARGO_TERM_COLOR", "never")
            // Cargo's jobserver belongs to the `cargo bench` that started us.
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS");
        if unstable {
            command
                .env("CARGO_TARGET_DIR", &self.expand_target_dir)
                .env("RUSTC_BOOTSTRAP", "1");
        } else {
            command
                .env("CARGO_TARGET_DIR", &self.target_dir)
                .env_remove("RUSTC_BOOTSTRAP");
        }
        let cpu_before = children_cpu();
        let start = Instant::now();
        let output = command.output().map_err(|e| {
            format!(
                "cannot run {} in {}: {e}",
                self.program.display(),
                krate.dir.display()
            )
        })?;
        let timing = Timing {
            wall: start.elapsed(),
            cpu: children_cpu()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before)),
        };
        if !output.status.success() {
            return Err(format!(
                "`cargo {}` failed in {} ({}):\n{}",
                args.join(" "),
                krate.dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok((output, timing))
    }

    /// The non-empty lines of the crate's expansion (which is also kept,
    /// as `expanded.rs` next to the crate's manifest).
    fn expanded_lines(&self, krate: &Crate) -> Result<usize> {
        krate.touch()?;
        let (output, _) = self.run(
            krate,
            &["rustc", "--lib", "--", "-Zunpretty=expanded"],
            true,
        )?;
        let expanded = String::from_utf8(output.stdout)
            .map_err(|e| format!("the expansion of {} is not UTF-8: {e}", krate.name))?;
        write_file(&krate.dir.join("expanded.rs"), &expanded)?;
        match expanded.lines().filter(|l| !l.trim().is_empty()).count() {
            0 => Err(format!("cargo printed no expansion of {}", krate.name).into()),
            lines => Ok(lines),
        }
    }

    /// Compiles the crate again with `cargo <step> --lib` (`build` or
    /// `check`) and times it; it is an error if cargo did not compile it.
    fn timed(&self, krate: &Crate, step: Step) -> Result<Timing> {
        krate.touch()?;
        let (output, timing) = self.run(krate, &[step.command(), "--lib"], false)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !compiled(&stderr, step.verb(), &krate.name) {
            return Err(format!(
                "`cargo {}` did not compile {} again after touching it:\n{stderr}",
                step.command(),
                krate.name
            )
            .into());
        }
        Ok(timing)
    }

    /// Times `cargo build --lib` with nothing to do: cargo's own share of
    /// a build (reading manifests and checking every unit's fingerprint).
    fn noop(&self, krate: &Crate) -> Result<Duration> {
        let (output, timing) = self.run(krate, &["build", "--lib"], false)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if compiled(&stderr, Step::Build.verb(), &krate.name) {
            return Err(format!(
                "`cargo build` compiled {} again with nothing changed:\n{stderr}",
                krate.name
            )
            .into());
        }
        Ok(timing.wall)
    }
}

/// How long a cargo command took.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// On the clock: what the issue's targets are about.
    wall: Duration,
    /// The processor time of cargo and of the compilers it ran (user and
    /// system, every thread), which moves less than `wall` when other
    /// work competes for the processors; `None` where Linux's `/proc` is
    /// not there to tell it.
    cpu: Option<Duration>,
}

/// The processor time, user and system, of every child process this one
/// has waited for, and of their waited-for descendants: fields 16 and 17
/// (`cutime`, `cstime`) of `/proc/self/stat`, in clock ticks of 1/100 s
/// (`USER_HZ`, 100 on every Linux platform Rust supports).
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3.
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(16)? + ticks(17)?) * 10))
}

/// Whether cargo's `stderr` says it compiled the package `name`
/// (`   Compiling name v0.0.0 (path)`).
fn compiled(stderr: &str, verb: &str, name: &str) -> bool {
    let needle = format!("{verb} {name} v");
    stderr.lines().any(|l| l.trim_start().starts_with(&needle))
}

/// A timed cargo command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Build,
    Check,
}

impl Step {
    fn command(self) -> &'static str {
        match self {
            Step::Build => "build",
            Step::Check => "check",
        }
    }

    /// How cargo reports that it compiles the crate.
    fn verb(self) -> &'static str {
        match self {
            Step::Build => "Compiling",
            Step::Check => "Checking",
        }
    }
}

// ---------------------------------------------------------------- figures

fn line(name: &str, value: impl std::fmt::Display) {
    println!("{name}: {value}");
}

/// Progress, on stderr so that stdout holds only figures.
fn progress(message: &str) {
    eprintln!("# {message}");
}

fn median<T: Copy + PartialOrd>(mut samples: Vec<T>) -> Option<T> {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    samples.get(samples.len() / 2).copied()
}

#[allow(clippy::cast_precision_loss, reason = "line counts are far below 2^52")]
fn as_f64(count: usize) -> f64 {
    count as f64
}

/// The lines one more event adds to a style's expansion: the difference
/// between the crate with `events` events per aggregate and its base, per
/// event.
fn per_event(full: usize, base: usize, plan: &Plan) -> f64 {
    (as_f64(full) - as_f64(base)) / as_f64(plan.aggregates * plan.events)
}

/// Counts the expanded lines of every crate and prints the line figures.
fn lines(cargo: &Cargo, crates: &Crates, plan: &Plan) -> Result<()> {
    let count = |krate: &Crate| {
        progress(&format!("expanding {}", krate.name));
        cargo.expanded_lines(krate)
    };
    let macros = count(&crates.macros)?;
    let plain = count(&crates.plain)?;
    let macros_base = count(&crates.macros_base)?;
    let plain_base = count(&crates.plain_base)?;
    let bare = count(&crates.bare)?;
    let bare_base = count(&crates.bare_base)?;
    line("compile_lines_macros", macros);
    line("compile_lines_plain", plain);
    line(
        "compile_lines_ratio",
        format_args!("{:.3}", as_f64(macros) / as_f64(plain)),
    );
    line("compile_lines_base_macros", macros_base);
    line("compile_lines_base_plain", plain_base);
    let per_macros = per_event(macros, macros_base, plan);
    let per_plain = per_event(plain, plain_base, plan);
    let per_bare = per_event(bare, bare_base, plan);
    let serde = per_plain - per_bare;
    let generated = per_macros - per_bare;
    line(
        "compile_lines_per_event_macros",
        format_args!("{per_macros:.1}"),
    );
    line(
        "compile_lines_per_event_plain",
        format_args!("{per_plain:.1}"),
    );
    line(
        "compile_lines_per_event_bare",
        format_args!("{per_bare:.1}"),
    );
    line("compile_lines_per_event_serde", format_args!("{serde:.1}"));
    line(
        "compile_lines_per_event_generated",
        format_args!("{generated:.1}"),
    );
    line(
        "compile_lines_per_event_ratio",
        format_args!("{:.3}", generated / serde),
    );
    Ok(())
}

/// Which of the two measured crates a sample belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Macros,
    Plain,
}

/// The timed builds of one step, both crates taking turns.
#[derive(Default)]
struct Samples {
    macros: Vec<Duration>,
    plain: Vec<Duration>,
}

impl Samples {
    fn push(&mut self, side: Side, sample: Duration) {
        match side {
            Side::Macros => self.macros.push(sample),
            Side::Plain => self.plain.push(sample),
        }
    }

    /// Prints the medians and, with `ratio`, the median of the
    /// per-repetition ratios (macros ÷ plain, both of the same repetition).
    fn print(self, prefix: &str, ratio: bool) {
        if std::env::var_os("BENCH_SAMPLES").is_some() {
            let ms = |v: &[Duration]| {
                v.iter()
                    .map(|d| d.as_millis().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "# {prefix} samples (ms): macros {} / plain {}",
                ms(&self.macros),
                ms(&self.plain)
            );
        }
        let ratios: Vec<f64> = self
            .macros
            .iter()
            .zip(&self.plain)
            .map(|(m, p)| m.as_secs_f64() / p.as_secs_f64().max(1e-9))
            .collect();
        let seconds = |v: Vec<Duration>| median(v).unwrap_or_default().as_secs_f64();
        line(
            &format!("{prefix}_macros_s"),
            format_args!("{:.2}", seconds(self.macros)),
        );
        line(
            &format!("{prefix}_plain_s"),
            format_args!("{:.2}", seconds(self.plain)),
        );
        if ratio {
            line(
                &format!("{prefix}_ratio"),
                format_args!("{:.3}", median(ratios).unwrap_or(f64::NAN)),
            );
        }
    }
}

/// Times debug builds, then checks, of the two crates, which take turns
/// in each repetition (in rotated order), so that a change in the
/// machine's load hits both alike. After each build, a build with nothing
/// to do measures cargo's own share of it.
fn times(cargo: &Cargo, crates: &Crates, plan: &Plan) -> Result<()> {
    let workspace_lock =
        locked_versions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))?;
    for krate in [&crates.macros, &crates.plain] {
        progress(&format!(
            "building {} and its dependencies once (the first run builds them all)",
            krate.name
        ));
        cargo.run(krate, &["build", "--lib"], false)?;
        cargo.run(krate, &["check", "--lib"], false)?;
        check_versions(krate, &workspace_lock)?;
    }
    let mut noop = Samples::default();
    for step in [Step::Build, Step::Check] {
        let (mut wall, mut cpu) = (Samples::default(), Samples::default());
        let mut cpu_known = true;
        for rep in 0..plan.reps {
            progress(&format!(
                "cargo {} {}/{}",
                step.command(),
                rep + 1,
                plan.reps
            ));
            let mut order = [(&crates.macros, Side::Macros), (&crates.plain, Side::Plain)];
            if rep % 2 == 1 {
                order.reverse();
            }
            for (krate, side) in order {
                let timing = cargo.timed(krate, step)?;
                wall.push(side, timing.wall);
                match timing.cpu {
                    Some(t) => cpu.push(side, t),
                    None => cpu_known = false,
                }
                if step == Step::Build {
                    noop.push(side, cargo.noop(krate)?);
                }
            }
        }
        let (wall_prefix, cpu_prefix) = match step {
            Step::Build => ("compile_time", "compile_cpu"),
            Step::Check => ("compile_time_check", "compile_cpu_check"),
        };
        wall.print(wall_prefix, true);
        if cpu_known {
            cpu.print(cpu_prefix, true);
        }
    }
    noop.print("compile_time_noop", false);
    Ok(())
}

/// The `(name, version)` of every package in a lockfile.
fn locked_versions(lockfile: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(lockfile)
        .map_err(|e| format!("cannot read {}: {e}", lockfile.display()))?;
    let value = |line: &str, key: &str| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(" = "))
            .map(|v| v.trim_matches('"').to_owned())
    };
    let mut packages = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = value(line, "name") {
            name = Some(n);
        } else if let (Some(v), Some(n)) = (value(line, "version"), name.take()) {
            packages.push((n, v));
        }
    }
    Ok(packages)
}

/// Checks that cargo resolved `krate`'s dependencies to the versions of
/// the workspace's lockfile, so that the comparison is with the same
/// serde the workspace builds.
fn check_versions(krate: &Crate, workspace: &[(String, String)]) -> Result<()> {
    for (name, version) in locked_versions(&krate.dir.join("Cargo.lock"))? {
        if name != krate.name && !workspace.iter().any(|(n, v)| *n == name && *v == version) {
            return Err(format!(
                "{} uses {name} {version}, which the workspace's Cargo.lock does not have",
                krate.name
            )
            .into());
        }
    }
    Ok(())
}

/// Every crate of a run.
struct Crates {
    macros: Crate,
    plain: Crate,
    macros_base: Crate,
    plain_base: Crate,
    bare: Crate,
    bare_base: Crate,
}

impl Crates {
    fn new(scratch: &Path, plan: &Plan) -> Crates {
        Crates {
            macros: Crate::new(scratch, Style::Macros, false, plan),
            plain: Crate::new(scratch, Style::Plain, false, plan),
            macros_base: Crate::new(scratch, Style::Macros, true, plan),
            plain_base: Crate::new(scratch, Style::Plain, true, plan),
            bare: Crate::new(scratch, Style::Bare, false, plan),
            bare_base: Crate::new(scratch, Style::Bare, true, plan),
        }
    }

    fn all(&self) -> [&Crate; 6] {
        [
            &self.macros,
            &self.plain,
            &self.macros_base,
            &self.plain_base,
            &self.bare,
            &self.bare_base,
        ]
    }
}

fn run(plan: &Plan) -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile_cost");
    let cargo = Cargo {
        program: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        target_dir: scratch.join("target"),
        expand_target_dir: scratch.join("target-expand"),
    };
    line("plan", plan.name);
    line(
        "sizes",
        format_args!(
            "{} aggregates x {} events of two fields (u64, String), \
             3 state fields; times: median of {}",
            plan.aggregates, plan.events, plan.reps
        ),
    );
    line("scratch", scratch.display());
    if let Some(load) = load_average() {
        line("load_start", load);
    }
    let started = Instant::now();
    let crates = Crates::new(&scratch, plan);
    for krate in crates.all() {
        krate.write(workspace, plan.aggregates)?;
    }
    lines(&cargo, &crates, plan)?;
    times(&cargo, &crates, plan)?;
    line(
        "elapsed_s",
        format_args!("{:.1}", started.elapsed().as_secs_f64()),
    );
    if let Some(load) = load_average() {
        line("load_end", load);
    }
    Ok(())
}

/// The machine's load averages over 1, 5 and 15 minutes, where Linux
/// tells them: the times are only as good as the machine was quiet.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

// ---------------------------------------------------------------- main

const USAGE: &str =
    "usage: compile_cost [--quick | --smoke | --full] [--aggregates N] [--events M]";

/// A whole number of at least 1 after `flag`.
fn count_arg(flag: &str, value: Option<&String>) -> Result<usize> {
    let value = value.ok_or_else(|| format!("{flag} needs a number\n{USAGE}"))?;
    match value.parse() {
        Ok(n) if n >= 1 => Ok(n),
        _ => {
            Err(format!("{flag} takes a whole number of at least 1, not `{value}`\n{USAGE}").into())
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The crates are always built in debug mode, whatever this program's
    // own build; a debug build of it (as CI builds things) defaults to the
    // smoke sizes, which only check that every step works.
    let mut plan = if cfg!(debug_assertions) {
        SMOKE_PLAN
    } else {
        FULL_PLAN
    };
    let (mut aggregates, mut events) = (None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => plan = QUICK_PLAN,
            "--smoke" => plan = SMOKE_PLAN,
            "--full" => plan = FULL_PLAN,
            "--aggregates" => aggregates = Some(count_arg(arg, args.next())?),
            "--events" => events = Some(count_arg(arg, args.next())?),
            // `cargo bench` passes this to every benchmark.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
        }
    }
    plan.aggregates = aggregates.unwrap_or(plan.aggregates);
    plan.events = events.unwrap_or(plan.events);
    if plan.name == SMOKE_PLAN.name {
        line(
            "note",
            "smoke run: the crates are too small for meaningful figures",
        );
    }
    run(&plan)
}

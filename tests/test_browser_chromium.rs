//! The event browser's pages rendered by a real browser: headless
//! Chromium (Debian's `chromium`) loads them from a server on 127.0.0.1;
//! the test asserts on the DOM it built and keeps a screenshot in
//! `target/ci-artifacts/browser.png` for CI. Skipped, saying why, where
//! Chromium is not installed, unless `EVENTSOURCING_REQUIRE_CHROMIUM` is
//! set (CI sets it).

#[allow(dead_code)]
mod browser_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use browser_support::{first_column, key, record_hostile, serve};
use support::ledger::fill;
use support::sqlite::FileDb;

/// Where CI keeps the screenshot: `target/ci-artifacts/` of the workspace.
fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts")
}

/// The headless Chromium to drive, if installed.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// Runs headless Chromium with `args` on `url` (a fresh profile each
/// time), stopping it if it has not finished in two minutes; its stdout.
fn run_chromium(chromium: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_mins(2);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish with {args:?} {url} in two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success(),
        "chromium {args:?} {url}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 DOM")
}

/// Width and height of a PNG, from its header.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "a PNG header");
    let number = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (number(16), number(20))
}

#[test]
fn chromium_renders_the_pages() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("EVENTSOURCING_REQUIRE_CHROMIUM").is_none(),
            "EVENTSOURCING_REQUIRE_CHROMIUM is set but Chromium is not installed (apt-get install chromium)"
        );
        eprintln!(
            "skipped: Chromium is not installed (/usr/bin/chromium; apt-get install chromium)"
        );
        return;
    };
    let file = FileDb::new();
    let app = file
        .builder()
        .name("Accounts")
        .cipher_key(key())
        .build()
        .expect("app");
    let ids = fill(&app, 3, 4);
    let id = *ids.keys().next().expect("an account");
    let server = serve(&app, 50);
    let base = server.url();

    // The log, as the browser built its DOM.
    let dom = run_chromium(&chromium, &["--dump-dom"], &format!("{base}/"));
    assert!(
        dom.contains("<title>Notification log · Accounts</title>"),
        "{dom}"
    );
    assert!(dom.contains("Notifications 1 to 15 of 15."), "{dom}");
    assert_eq!(first_column(&dom, "log"), (1..=15).collect::<Vec<_>>());

    // The history, decoded, with its chain verified.
    let url = format!("{base}/aggregates/{id}");
    let dom = run_chromium(&chromium, &["--dump-dom"], &url);
    let head = app.event_store().verify(id).expect("verifies");
    assert!(
        dom.contains("<strong>Chain verified</strong>: versions 1 to 5"),
        "{dom}"
    );
    assert!(dom.contains(&head.to_hex()), "{dom}");
    assert_eq!(first_column(&dom, "history"), [1, 2, 3, 4, 5]);
    assert!(dom.contains("\"secret note 3\""), "{dom}");
    // A hostile topic is text in the DOM, not an element: no script at all.
    let hostile = record_hostile(&app);
    let dom = run_chromium(
        &chromium,
        &["--dump-dom"],
        &format!("{base}/aggregates/{hostile}"),
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{dom}"
    );
    assert!(!dom.contains("<script"), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");

    // The screenshot CI keeps: the verified history.
    let dir = artifacts();
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let png = dir.join("browser.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &chromium,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,900",
        ],
        &url,
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert_eq!(png_size(&bytes), (1280, 900));
    assert!(
        bytes.len() > 10_000,
        "a screenshot of a page, not a blank: {} bytes",
        bytes.len()
    );
    println!("screenshot: {}", png.display());
    server.stop().expect("stops");
}

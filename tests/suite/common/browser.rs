//! Headless Chromium, to look at a page as a person would.
//!
//! [`load`] runs Debian's `chromium` twice against a URL: once to dump the
//! DOM after the page has loaded, once to take a [`WIDTH`]×[`HEIGHT`] PNG
//! screenshot. When Chromium is not installed the test fails, telling to run
//! `scripts/install-test-deps.sh`; with `OKRD_TEST_SKIP_BROWSER=1`, [`load`]
//! returns `None` and says so instead:
//!
//! ```ignore
//! let Some(page) = browser::load(&url) else { return };
//! assert!(page.dom.contains("id=\"kr-onboarding-activation\""));
//! let png = std::fs::read(&page.screenshot).unwrap();
//! ```
//!
//! It blocks; from async code use [`load_async`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The variable that, set to `1`, skips browser tests.
pub const SKIP_VAR: &str = "OKRD_TEST_SKIP_BROWSER";

/// Screenshot width in CSS pixels (and PNG pixels: the scale factor is 1).
pub const WIDTH: u32 = 1280;

/// Screenshot height.
pub const HEIGHT: u32 = 900;

/// One Chromium run may take this long before it is killed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Without these, headless Chromium tries to reach Google's services; on a
/// closed network those connections are refused and the run can stall.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// A page as Chromium saw it.
pub struct Page {
    /// The serialized DOM after load (`--dump-dom`).
    pub dom: String,
    /// The PNG screenshot, [`WIDTH`]×[`HEIGHT`]; deleted with the `Page`.
    pub screenshot: PathBuf,
    // Holds the screenshot.
    _dir: TempDir,
}

/// Whether browser tests should be skipped (`OKRD_TEST_SKIP_BROWSER=1`);
/// prints a note when they are, so a skip is never silent.
pub fn skip() -> bool {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("skipped: {SKIP_VAR}=1, not running headless Chromium");
    }
    skip
}

/// The Chromium binary: `chromium` on `PATH`. Panics, naming the install
/// script, when there is none.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed for this test but `chromium` is not on PATH: \
                 run scripts/install-test-deps.sh (or set {SKIP_VAR}=1 to skip browser tests)"
            )
        })
}

/// Loads `url` in headless Chromium: its DOM and a screenshot. `None` when
/// browser tests are skipped.
pub fn load(url: &str) -> Option<Page> {
    if skip() {
        return None;
    }
    let chromium = chromium();
    let dir = tempfile::tempdir().expect("temp dir");

    let dom_file = dir.path().join("dom.html");
    run(
        &chromium,
        dir.path(),
        "dom",
        &["--dump-dom", url],
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).expect("read dumped DOM");
    assert!(
        !dom.trim().is_empty(),
        "Chromium dumped an empty DOM for {url}"
    );

    let screenshot = dir.path().join("screenshot.png");
    run(
        &chromium,
        dir.path(),
        "screenshot",
        &[
            &format!("--window-size={WIDTH},{HEIGHT}"),
            &format!("--screenshot={}", screenshot.display()),
            url,
        ],
        &dir.path().join("screenshot.out"),
    );
    assert!(
        screenshot.is_file(),
        "Chromium wrote no screenshot of {url}"
    );

    Some(Page {
        dom,
        screenshot,
        _dir: dir,
    })
}

/// [`load`] for async tests: runs Chromium on a blocking thread.
pub async fn load_async(url: String) -> Option<Page> {
    tokio::task::spawn_blocking(move || load(&url))
        .await
        .expect("browser thread panicked")
}

/// Runs Chromium once with a fresh profile under `dir`, its stdout into
/// `stdout` (a file, so a large DOM never fills a pipe), and panics with its
/// stderr when it fails or outlives [`TIMEOUT`].
fn run(chromium: &Path, dir: &Path, name: &str, args: &[&str], stdout: &Path) {
    let profile = dir.join(format!("profile-{name}"));
    let stderr_path = dir.join(format!("{name}.err"));
    let mut child = Command::new(chromium)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(stdout).expect("create stdout file"))
        .stderr(File::create(&stderr_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("chromium ({name}) failed with {s}:\n{stderr}"),
        None => panic!("chromium ({name}) did not finish within {TIMEOUT:?}:\n{stderr}"),
    }
}

/// Decodes a PNG into its width, height and RGB pixels.
pub fn decode_png(png_bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "expected a colour screenshot, got {info:?}");
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

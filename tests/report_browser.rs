//! report.html in headless Chromium: a screenshot shows the charts and the page logs no console
//! errors. Skipped (with a message) only when /usr/bin/chromium is absent and `CI` is unset; CI
//! installs Chromium with scripts/install-ci-deps.sh.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

/// True when the test should run (`common::tools_present`: fails under CI without Chromium).
fn chromium_available() -> bool {
    let missing: &[&str] = if Path::new(CHROMIUM).exists() {
        &[]
    } else {
        &[CHROMIUM]
    };
    common::tools_present(missing)
}

/// What Chromium showed and logged for a page.
struct Shot {
    png: PathBuf,
    /// Console messages and uncaught exceptions from the log.
    console: Vec<String>,
}

/// Screenshots `page` at 1200×2000 in a fresh profile, capturing the log (killed after 120 s).
fn screenshot(page: &Path, work: &Path) -> Shot {
    let png = work.join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    let stderr_path = work.join("chromium.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "chromium failed: {status}\n{log}");
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    Shot { png, console }
}

/// Pixels within 40 of `rgb` in every channel.
fn pixels_near(png: &common::Png, rgb: [u8; 3]) -> usize {
    let (_, _, bpp, buf) = png;
    buf.chunks(*bpp)
        .filter(|p| (0..3).all(|k| p[k].abs_diff(rgb[k]) <= 40))
        .count()
}

/// Screenshots a report and checks it: no console output, not blank, the chart colours shown.
fn check_report(html: &Path, work: &Path) {
    let shot = screenshot(html, work);
    assert!(
        shot.console.is_empty(),
        "console messages: {:#?}",
        shot.console
    );
    let png = common::decode_png(&shot.png);
    assert_eq!((png.0, png.1), (1200, 2000));
    let total = (png.0 * png.1) as usize;
    let white = pixels_near(&png, [255, 255, 255]);
    assert!(
        white < total - total / 50,
        "the screenshot is (nearly) blank: {white} of {total} white"
    );
    // the first series colour (front lines, β = 0 line), drawn only inside the charts
    let blue = pixels_near(&png, [0, 114, 178]);
    assert!(
        blue > 300,
        "no chart visible in the screenshot ({blue} chart-blue pixels)"
    );
}

#[test]
fn report_html_renders_in_headless_chromium_without_console_errors() {
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (run, dq) = (tmp.path().join("run"), tmp.path().join("dq"));
    let sensitivity = tmp.path().join("sensitivity");
    common::write_run(&run, "ddpg-bitfusion", "ddpg", 7, 40);
    common::write_dq(&dq);
    common::write_sensitivity(&sensitivity);
    for dir in [run, dq, sensitivity] {
        let files = bitsearch::report::write_report(&dir).unwrap();
        check_report(&files.html, &dir);
    }
}

#[test]
fn the_console_check_catches_script_errors() {
    // guards the harness itself: a page that logs and throws must be reported
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("bad.html");
    let body =
        "<html><body><script>console.error('boom'); missingFunction();</script></body></html>";
    std::fs::write(&page, body).unwrap();
    let shot = screenshot(&page, tmp.path());
    assert!(
        shot.console.iter().any(|l| l.contains("boom")),
        "{:#?}",
        shot.console
    );
    assert!(
        shot.console.iter().any(|l| l.contains("Uncaught")),
        "{:#?}",
        shot.console
    );
}

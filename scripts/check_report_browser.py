#!/usr/bin/env python3
"""Drives report.html's explorer in headless Chromium the way a person would, for the Rust
integration test: real mouse events on a point, its tooltip, a click that pins it, an axis
change. Prints ONE JSON line on stdout and leaves every judgement to the caller:

  python3 scripts/check_report_browser.py REPORT.html --run RUN --episode N [--reference]
      [--toggle-run NAME] [--check-view] [--screenshot PNG]

  {"tooltip": str | null,          the tooltip's text while the mouse is on the point
   "pinned": {"episode", "policy", "accuracy", "robust_accuracy", "latency_s", "energy_j",
              "size_bytes", "bits": [[w, a], ...], "broken_by": str | null} | null,
                                   read from the pinned row's data-value attributes (raw numbers;
                                   broken_by as episodes.csv's cell text)
   "pinned_layers": [{"latency_s", "energy_j", "bound", "mode", "kernel"}, ...],   the row's
                                    per-layer costs, and the kernel measured.csv names (or null)
   "pinned_attacks": [{"source", "attack", "eps", "accuracy"}, ...],   the row's per-attack lines
   "pinned_measured": [{"batch", "measured_latency_s", "predicted_latency_s", "text"}, ...],
                                    the row's lines of latency measured in a real runtime, and
                                    "pinned_hosts": [str], where they were measured
   "axis_change_moved": bool,       the point moved on screen when the x axis changed
   "axis_field": str,               the x field switched to (the first other field the point has)
   "console_errors": [str],         SEVERE browser-log entries (console.error, uncaught errors)
   "network_requests": [str],       every request to anything but file: or data: (must be empty)
   "ready_ms": float,               navigation start to the explorer's first painted frame (usable)
   "load_ms": float,                navigation start to the later of that frame and the load event
                                    (the whole page parsed, the static charts below included)
   "click_to_pin_ms": float | null, the click event to the frame after the pinned row appeared
   "hover_ms": float | null,        the mouse move to the frame after the tooltip shows the point
   "axis_change_ms": float | null,  the select's change event to the next frame
   "visible_count": int,            points plotted after load (window.bitsearchExplorer)
   "legend_toggle": {"before", "after", "restored"} | null,   with --toggle-run: points plotted
                                    before, after one click on that run's legend button, and
                                    after a second click
   "view": {"default", "log_x", "linear_again", "wheel", "pan", "all", "fit_searched": VIEW,
            "in_view", "visible"} | null,
                                    with --check-view, before the point is hovered: the view
                                    (window.bitsearchExplorer.view(): {"mode", "x": {"type",
                                    "min", "max"}, "y": …}, raw units) after load, after ticking
                                    #log-x, after unticking it, after a wheel up on the chart's
                                    centre, after dragging it 120 px right, after #view-fit-all,
                                    after #view-fit-searched; then the points in view and plotted
   "errors": [str]}                 steps that could not be done (point not plotted, timeouts)

A point that the default axes (latency, accuracy) cannot place, such as a failed episode, is
pinned with its button under the chart instead; tooltip and axis change are then skipped. A point
outside the default view (it fits the searched policies; the FP32 reference lies to the right)
is brought in with the "Show all" button first. --screenshot saves the window after load.
Exits 2 when the browser or driver itself fails (or the report is missing), else 0. Needs
Debian's chromium and chromium-driver and PyPI's selenium.
"""
import argparse
import json
import math
import pathlib
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXES = ["accuracy", "robust_accuracy", "latency_s", "energy_j", "size_bytes"]
WAIT_S = 15

# A stopwatch inside the page, so the times exclude WebDriver round trips: it starts at the last
# `event` (capture phase, before Chart.js sees it) and stops at the frame after `root` is shown
# and holds `done`. window.__bx[name] is then the time in ms.
STOPWATCH = """
const [name, event, rootSel, done] = arguments;
window.__bx = window.__bx || {};
window.__bx[name] = undefined;
let t0 = null;
const mark = () => { t0 = performance.now(); };
document.addEventListener(event, mark, {capture: true});
const root = document.querySelector(rootSel);
const check = (m, obs) => {
  if (t0 === null || getComputedStyle(root).display === 'none' || !root.querySelector(done)) return;
  obs.disconnect();
  document.removeEventListener(event, mark, {capture: true});
  const start = t0;
  requestAnimationFrame(() => { window.__bx[name] = performance.now() - start; });
};
new MutationObserver(check).observe(root, {childList: true, subtree: true, attributes: true});
"""

AXIS_STOPWATCH = """
window.__bx.axis = undefined;
document.getElementById('x-axis').addEventListener('change', () => {
  const t0 = performance.now();
  requestAnimationFrame(() => { window.__bx.axis = performance.now() - t0; });
}, {capture: true, once: true});
"""

READ_ROW = """
const row = document.querySelector(arguments[0]);
if (!row) return null;
const out = {};
for (const td of row.children) if (td.dataset.field) out[td.dataset.field] = td.dataset.value;
const layers = [...row.querySelectorAll('td.layer')].map((td) => {
  const f = (name) => { const s = td.querySelector('[data-field="' + name + '"]');
                        return s ? s.dataset.value : null; };
  return {bits: f('bits'), latency_s: f('layer_latency_s'), energy_j: f('layer_energy_j'),
          bound: f('bound'), mode: f('mode'), kernel: f('kernel')};
});
const measured = [...row.querySelectorAll('[data-field="measured"]')].map((s) => (
  {batch: s.dataset.batch, measured: s.dataset.value, predicted: s.dataset.predicted, text: s.textContent}));
const hosts = [...row.querySelectorAll('.measured-host')].map((s) => s.textContent);
const attacks = [...row.querySelectorAll('.attack-line')].map((s) => (
  {source: s.dataset.source, attack: s.dataset.attack, eps: s.dataset.eps, accuracy: s.dataset.value}));
const broken = row.querySelector('[data-field="broken_by"]');
return {fields: out, layers, attacks, measured, hosts, broken_by: broken ? broken.dataset.value : null};
"""


def number(v):
    """A data-value as a JSON number (null stays null)."""
    if v is None or v == "null":
        return None
    return float(v)


def css_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def point_selector(run, episode, reference):
    return "[data-run=%s][data-episode=\"%d\"][data-reference=\"%s\"]" % (
        css_string(run), episode, "true" if reference else "false")


def position(driver, run, episode, reference):
    return driver.execute_script(
        "const h = window.bitsearchExplorer;"
        "return h ? h.pointScreenPosition(arguments[0], arguments[1], arguments[2]) : null;",
        run, episode, reference)


def move_mouse(driver, pos):
    # duration 0: one pointer move straight to the point (the default glides for 250 ms)
    actions = ActionChains(driver, duration=0)
    actions.w3c_actions.pointer_action.move_to_location(int(round(pos["x"])), int(round(pos["y"])))
    actions.perform()


def stopwatch(driver, wait, name, errors, what):
    """The time a STOPWATCH armed as `name` measured, or None (noted in errors) on a timeout."""
    try:
        wait.until(lambda d: d.execute_script("return window.__bx[arguments[0]] !== undefined", name))
        return driver.execute_script("return window.__bx[arguments[0]]", name)
    except TimeoutException:
        errors.append("%s: nothing within %d s" % (what, WAIT_S))
        return None


def start_driver(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--user-data-dir=" + profile, "--window-size=1280,1000"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    return driver


def toggle_run(driver, name):
    """Points plotted before, after one click on the run's legend button, and after another."""
    count = "return window.bitsearchExplorer.visibleCount()"
    button = driver.find_element(By.CSS_SELECTOR, "#legend .legend-run[data-run=%s]" % css_string(name))
    before = driver.execute_script(count)
    ActionChains(driver, duration=0).move_to_element(button).click().perform()
    after = driver.execute_script(count)
    ActionChains(driver, duration=0).move_to_element(button).click().perform()
    return {"before": before, "after": after, "restored": driver.execute_script(count)}


VIEW = "return window.bitsearchExplorer.view()"


def click(driver, css):
    ActionChains(driver, duration=0).move_to_element(driver.find_element(By.CSS_SELECTOR, css)).click().perform()


def check_view(driver):
    """The view after load and after each view control, as documented in the header."""
    out = {"default": driver.execute_script(VIEW)}
    click(driver, "#log-x")
    out["log_x"] = driver.execute_script(VIEW)
    click(driver, "#log-x")
    out["linear_again"] = driver.execute_script(VIEW)
    canvas = driver.find_element(By.ID, "explorer-chart")
    ActionChains(driver, duration=0).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -200).perform()
    out["wheel"] = driver.execute_script(VIEW)
    (ActionChains(driver, duration=0).move_to_element(canvas).click_and_hold()
     .move_by_offset(60, 0).move_by_offset(60, 0).release().perform())
    out["pan"] = driver.execute_script(VIEW)
    click(driver, "#view-fit-all")
    out["all"] = driver.execute_script(VIEW)
    click(driver, "#view-fit-searched")
    out["fit_searched"] = driver.execute_script(VIEW)
    out["in_view"] = driver.execute_script("return window.bitsearchExplorer.inViewCount()")
    out["visible"] = driver.execute_script("return window.bitsearchExplorer.visibleCount()")
    return out


def exercise(driver, report, run, episode, reference, toggle, view, screenshot):
    out = {"tooltip": None, "pinned": None, "pinned_layers": None, "pinned_attacks": None,
           "pinned_measured": None, "pinned_hosts": None,
           "axis_change_moved": False, "legend_toggle": None,
           "console_errors": [], "network_requests": [], "ready_ms": None, "load_ms": None, "click_to_pin_ms": None,
           "hover_ms": None, "axis_change_ms": None, "visible_count": None, "view": None, "errors": []}
    errors = out["errors"]
    sel = point_selector(run, episode, reference)
    wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.02)

    # drop what the browser logged before the report (its start page), then load the report
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(pathlib.Path(report).resolve().as_uri())
    try:
        wait.until(lambda d: d.execute_script(
            "return !!(window.bitsearchExplorer && window.bitsearchExplorer.readyAt !== null)"))
        # (driver.get returns after the load event; this only makes sure its end is recorded)
        wait.until(lambda d: d.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; return !n || n.loadEventEnd > 0"))
        out["ready_ms"], out["load_ms"] = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "const ready = window.bitsearchExplorer.readyAt;"
            "return [ready, Math.max(ready, n ? n.loadEventEnd : 0)];")
        out["visible_count"] = driver.execute_script("return window.bitsearchExplorer.visibleCount()")
    except TimeoutException:
        errors.append("the explorer did not start within %d s (window.bitsearchExplorer.readyAt)" % WAIT_S)
        return out

    driver.execute_script("document.getElementById('explorer-chart').scrollIntoView({block: 'center'})")
    if screenshot:
        driver.save_screenshot(screenshot)
    if view:
        out["view"] = check_view(driver)
    pos = position(driver, run, episode, reference)
    if pos is None and driver.find_elements(By.ID, "view-fit-all"):
        # plotted outside the default view (a reference far to the right): show every point
        click(driver, "#view-fit-all")
        pos = position(driver, run, episode, reference)

    # hover: the real pointer on the point's centre; the tooltip must show this point
    if pos is None:
        errors.append("%s episode %d is not plotted on the default axes" % (run, episode))
    else:
        tip_point = ".tt-point" + sel
        driver.execute_script(STOPWATCH, "hover", "mousemove", "#tooltip", tip_point)
        move_mouse(driver, pos)
        out["hover_ms"] = stopwatch(driver, wait, "hover", errors, "tooltip after hovering the point")
        if out["hover_ms"] is not None:
            out["tooltip"] = driver.find_element(By.ID, "tooltip").text

    # click: on the point where it is plotted, else on its button under the chart
    driver.execute_script(STOPWATCH, "pin", "click", "#pinned", "tr.pinned-row" + sel)
    buttons = [] if pos is not None else driver.find_elements(By.CSS_SELECTOR, "#unplotted .pin-button" + sel)
    if pos is not None:
        ActionChains(driver, duration=0).click().perform()
    elif buttons:
        ActionChains(driver, duration=0).move_to_element(buttons[0]).click().perform()
    else:
        errors.append("no way to pin the point: neither plotted nor listed under the chart")
    if pos is not None or buttons:
        out["click_to_pin_ms"] = stopwatch(driver, wait, "pin", errors, "pinned row after the click")
    row = driver.execute_script(READ_ROW, "#pinned tr.pinned-row" + sel)
    if row is not None:
        f = row["fields"]
        out["pinned"] = {
            "episode": int(f["episode"]),
            "policy": f.get("policy"),
            **{k: number(f.get(k)) for k in
               ["accuracy", "robust_accuracy", "latency_s", "energy_j", "size_bytes"]},
            "bits": [[int(b) for b in layer["bits"].split("/")] for layer in row["layers"]],
            "broken_by": row["broken_by"],
        }
        out["pinned_layers"] = [{"latency_s": number(layer["latency_s"]),
                                 "energy_j": number(layer["energy_j"]), "bound": layer["bound"],
                                 "mode": layer["mode"], "kernel": layer["kernel"]}
                                for layer in row["layers"]]
        out["pinned_measured"] = [{"batch": int(m["batch"]), "measured_latency_s": number(m["measured"]),
                                   "predicted_latency_s": number(m["predicted"]), "text": m["text"]}
                                  for m in row["measured"]]
        out["pinned_hosts"] = row["hosts"]
        out["pinned_attacks"] = [{"source": a["source"], "attack": a["attack"], "eps": number(a["eps"]),
                                  "accuracy": number(a["accuracy"])} for a in row["attacks"]]

    # axis change: another x field on which the point has a value; the point must move
    if pos is not None:
        x_select = Select(driver.find_element(By.ID, "x-axis"))
        current = [Select(driver.find_element(By.ID, i)).first_selected_option.get_attribute("value")
                   for i in ("x-axis", "y-axis")]
        for field in [a for a in AXES if a not in current]:
            # refresh() runs inside the change event, so the next frame shows the new axes
            driver.execute_script(AXIS_STOPWATCH)
            x_select.select_by_value(field)
            out["axis_change_ms"] = stopwatch(driver, wait, "axis", errors, "redraw after changing the x axis")
            after = position(driver, run, episode, reference)
            if after is not None:
                out["axis_change_moved"] = math.hypot(after["x"] - pos["x"], after["y"] - pos["y"]) > 1.0
                out["axis_field"] = field
                break
        else:
            errors.append("the point has no value on any other x axis")

    if toggle is not None:
        out["legend_toggle"] = toggle_run(driver, toggle)
    return out


def collect_logs(driver, out):
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            out["console_errors"].append(entry.get("message", ""))
    for entry in driver.get_log("performance"):
        try:
            msg = json.loads(entry["message"])["message"]
        except (KeyError, ValueError):
            continue
        method, params = msg.get("method", ""), msg.get("params", {})
        url = None
        # the browser's own pages (its start page keeps loading while the report opens, in the
        # same tab) are not the report's doing; a file:// page cannot open a chrome:// one
        if str(params.get("documentURL", "")).startswith(("chrome://", "chrome-untrusted://", "devtools://")):
            continue
        if method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url")
        elif method in ("Network.webSocketCreated", "Network.eventSourceMessageReceived"):
            url = params.get("url", method)
        if url is not None and not url.startswith(("file:", "data:")) and url not in out["network_requests"]:
            out["network_requests"].append(url)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="report.html")
    ap.add_argument("--run", required=True, help="run name, as in the legend (data-run)")
    ap.add_argument("--episode", required=True, type=int)
    ap.add_argument("--reference", action="store_true", help="the uniform reference policy of that number")
    ap.add_argument("--toggle-run", help="also hide and show this run from the legend")
    ap.add_argument("--check-view", action="store_true", help="also exercise the view controls")
    ap.add_argument("--screenshot", help="save the window after load as this PNG")
    args = ap.parse_args()
    if not pathlib.Path(args.report).is_file():
        print("no such file: %s" % args.report, file=sys.stderr)
        return 2

    profile = tempfile.mkdtemp(prefix="bitsearch-chromium-")
    driver = None
    try:
        driver = start_driver(profile)
        out = exercise(driver, args.report, args.run, args.episode, args.reference, args.toggle_run,
                       args.check_view, args.screenshot)
        collect_logs(driver, out)
    except WebDriverException as e:
        print("driver failure: %s" % e, file=sys.stderr)
        return 2
    finally:
        if driver is not None:
            try:
                driver.quit()
            except WebDriverException:
                pass
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

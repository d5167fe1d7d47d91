"""Helpers for the browser test: a `dagster dev` server in its own process group, the
GraphQL API (for reading state; the UI triggers every action), and Chromium via Playwright.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
CHROMIUM = os.environ.get("NIGHTJAR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

# Run statuses of Dagster's GraphQL API.
RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
# Settings a `dagster dev` child must not inherit from the caller's shell: it sees only its shop.
SETTINGS_VARS = ("NIGHTJAR_DATA_DIR", "NIGHTJAR_WAREHOUSE", "NIGHTJAR_SHOP_DB_URL", "NIGHTJAR_ALERTS_FILE")


def simulate_shop(out: Path, *, days: int = 60, customers: int = 200, seed: int = 7) -> None:
    """`nightjar simulate` into `out` (landing files + shop.sqlite), as a user would run it."""
    cmd = [str(VENV_BIN / "nightjar"), "simulate", "--out", str(out), "--days", str(days),
           "--customers", str(customers), "--seed", str(seed)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DagsterDev:
    base_url: str
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.base_url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            payload = json.loads(r.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]


def plain_shell_env(**settings: str) -> dict[str, str]:
    """The environment of a user's plain shell: no venv activated, the venv's bin not on
    PATH (even when pytest was started by `make test`, which puts it there), no Nightjar
    or Dagster settings from the caller, plus `settings`."""
    venv = str(VENV_BIN.resolve())
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "DAGSTER_HOME", "PYTHONPATH") and not k.startswith("NIGHTJAR_")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and str(Path(p).resolve()) != venv)
    return {**env, **settings}


@contextmanager
def dagster_dev(
    *,
    workspace: Path,
    cwd: Path,
    dagster_home: Path,
    env: dict[str, str],
    log_path: Path,
    startup_timeout: float = 150,
) -> Iterator[DagsterDev]:
    """`dagster dev` in its own session/process group; the whole group is killed on exit."""
    from nightjar.dagster_home import init_instance

    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster_project" / "dagster.yaml", dagster_home / "dagster.yaml")
    init_instance(dagster_home)  # as `make ui` does: the pool's limit exists before any run
    port = free_port()
    # `env` is the child's whole environment (not merged with ours), plus DAGSTER_HOME.
    full_env = {**env, "DAGSTER_HOME": str(dagster_home), "PYTHONUNBUFFERED": "1"}
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    cmd = [str(VENV_BIN / "dagster"), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    with _serve(cmd, cwd, full_env, log_path, f"http://127.0.0.1:{port}", startup_timeout) as dev:
        yield dev


@contextmanager
def make_ui(repo: Path, env: dict[str, str], log_path: Path, startup_timeout: float = 180) -> Iterator[DagsterDev]:
    """`make ui` exactly as a user types it, in `repo`, with `env` (see plain_shell_env); the
    port comes from NIGHTJAR_UI_URL, as the README says."""
    port = free_port()
    full_env = {**env, "NIGHTJAR_UI_URL": f"http://127.0.0.1:{port}", "PYTHONUNBUFFERED": "1"}
    with _serve(["make", "ui"], repo, full_env, log_path, f"http://127.0.0.1:{port}", startup_timeout) as dev:
        yield dev


@contextmanager
def _serve(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, base_url: str,
           startup_timeout: float) -> Iterator[DagsterDev]:
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # own process group: dagster dev ignores signals otherwise
    )
    dev = DagsterDev(base_url, proc, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{dev.log_tail()}")
            try:
                with urllib.request.urlopen(f"{dev.base_url}/server_info", timeout=3) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(cmd)} did not answer /server_info in {startup_timeout}s:\n{dev.log_tail()}")
            time.sleep(0.5)
        yield dev
    finally:
        _kill_group(proc)
        log.close()


def _kill_group(proc: subprocess.Popen, grace: float = 20) -> None:
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no child of the group survives
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 1.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


# --------------------------------------------------------------------------- GraphQL reads

RUNS_QUERY = """
query Runs { runsOrError(limit: 20) { __typename ... on Runs { results { runId status jobName } } } }
"""

RUN_QUERY = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { runId status
  stepStats { stepKey status } } } }
"""

LOCATION_QUERY = """
query Locations { workspaceOrError { __typename ... on Workspace { locationEntries { name
  loadStatus
  locationOrLoadError { __typename
    ... on PythonError { message stack }
    ... on RepositoryLocation { repositories { name
        assetNodes { assetKey { path } }
        schedules { name scheduleState { status } }
        sensors { name sensorState { status } } } } } } } } }
"""


def runs(dev: DagsterDev) -> list[dict]:
    data = dev.graphql(RUNS_QUERY)["runsOrError"]
    assert data["__typename"] == "Runs", data
    return data["results"]


def run_status(dev: DagsterDev, run_id: str) -> dict:
    return dev.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]


def location_state(dev: DagsterDev) -> dict:
    """The first code location: assets, schedules and sensors with their states (or its load error)."""
    entries = dev.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    assert entries, "no code location in the workspace"
    return entries[0]


def wait_location_loaded(dev: DagsterDev, timeout: float = 180) -> dict:
    def loaded():
        e = location_state(dev)
        return e if e["loadStatus"] == "LOADED" else None

    entry = wait_until(loaded, timeout, what="the code location to load")
    loc = entry["locationOrLoadError"]
    if loc["__typename"] == "PythonError":
        raise AssertionError(f"code location failed to load:\n{loc['message']}\n{''.join(loc.get('stack') or [])[-3000:]}")
    return entry


def automation_of(entry: dict) -> tuple[dict[str, str], dict[str, str]]:
    """({schedule: status}, {sensor: status}) of a loaded location entry."""
    schedules, sensors = {}, {}
    for repo in entry["locationOrLoadError"]["repositories"]:
        schedules.update({s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]})
        sensors.update({s["name"]: s["sensorState"]["status"] for s in repo["sensors"]})
    return schedules, sensors


def asset_keys_of(entry: dict) -> set[str]:
    return {
        "/".join(a["assetKey"]["path"])
        for repo in entry["locationOrLoadError"]["repositories"]
        for a in repo["assetNodes"]
    }


# --------------------------------------------------------------------------- browser (Playwright)
#
# Selectors (Dagster 1.13 UI):
#   global asset lineage  /asset-groups, header "Global asset lineage", button "Materialize all"
#   launch toast          [class*="Toaster_toastContainer"] "Launched run <8 hex>", link "View" -> /runs/<run id>
#   run page              status tag with the exact text "Success" in the run header
#   automation list       /automation: one virtualized row `[data-index]` per schedule/sensor,
#                         holding a link a[href$="/schedules/<name>"] or a[href$="/sensors/<name>"]
#                         and a toggle `label[class*="formatSwitch"] > input[type=checkbox]`
#   first-visit dialog    "Join the Dagster community" -> button "Skip" (dismissed by a locator handler)

LAUNCHED_RUN = r"Launched run [0-9a-f]{8}"
RUN_URL = r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} not found: `apt-get install -y chromium` (Debian's package)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def mark_nux_seen(dev: DagsterDev) -> None:
    """Tell the instance the first-visit "Join the Dagster community" dialog was seen.

    (UI chrome, not the behaviour under test: it would otherwise cover the page in
    screenshots; the locator handler of `new_dagster_page` remains as a fallback.)
    """
    try:
        dev.graphql("mutation SetNuxSeen { setNuxSeen }")
    except (AssertionError, OSError):
        pass


def new_dagster_page(browser, timeout_ms: float = 30_000):
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    page.set_default_timeout(timeout_ms)
    # The UI greets a fresh instance with a newsletter dialog that covers the page.
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )
    return page


def open_asset_graph(page, base_url: str) -> None:
    page.goto(f"{base_url}/asset-groups")
    page.get_by_text("Global asset lineage").first.wait_for()
    button = page.get_by_role("button", name="Materialize all")
    button.wait_for()
    from playwright.sync_api import Error, expect

    expect(button).to_be_enabled(timeout=60_000)
    try:  # cosmetic (screenshots): let the group nodes finish "fetching statuses"
        expect(page.get_by_text("fetching statuses")).to_have_count(0, timeout=20_000)
    except (AssertionError, Error):
        pass


def click_materialize_all(page, timeout_ms: float = 60_000) -> str:
    """Click "Materialize all" (confirming a launch dialog if one opens); returns the run id."""
    import re

    from playwright.sync_api import expect

    page.get_by_role("button", name="Materialize all").click()
    toast = page.locator('[class*="Toaster_toastContainer"]').filter(has_text=re.compile(LAUNCHED_RUN))
    # Partitioned or configured assets open a launch dialog instead of launching directly.
    dialog_launch = page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^Launch"))
    expect(toast.or_(dialog_launch).first).to_be_visible(timeout=timeout_ms)
    if not toast.first.is_visible():
        # The dbt models are daily-partitioned: the dialog starts with no partition selected.
        dialog = page.get_by_role("dialog")
        if dialog.get_by_text("Partition selection").count():
            latest = dialog.get_by_role("button", name="Latest", exact=True)
            expect(latest.first).to_be_visible(timeout=timeout_ms)
            latest.first.click()
        expect(dialog_launch.first).to_be_enabled(timeout=timeout_ms)
        dialog_launch.first.click()
    expect(toast.first).to_be_visible(timeout=timeout_ms)
    toast.first.get_by_role("link", name="View").click()
    page.wait_for_url(re.compile(RUN_URL), timeout=timeout_ms)
    return re.search(RUN_URL, page.url).group(1)


def wait_run_success(page, dev: DagsterDev, run_id: str, timeout: float) -> dict:
    """Wait until the run ends (GraphQL), then see "Success" on its page in the UI."""
    from playwright.sync_api import expect

    state = wait_until(
        lambda: (s := run_status(dev, run_id)) and s.get("status") in RUN_DONE and s,
        timeout,
        interval=2,
        what=f"run {run_id} to finish",
    )
    if state["status"] != "SUCCESS":
        failed = [s["stepKey"] for s in state.get("stepStats") or [] if s["status"] == "FAILURE"]
        raise AssertionError(f"run {run_id} ended {state['status']}; failed steps: {failed}\n{dev.log_tail(80)}")
    if f"/runs/{run_id}" not in page.url:
        page.goto(f"{dev.base_url}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=60_000)
    return state


def automation_row(page, kind: str, name: str):
    """The row of schedule/sensor `name` on /automation (kind: "schedules" or "sensors")."""
    return page.locator("[data-index]").filter(has=page.locator(f'a[href$="/{kind}/{name}"]'))


def turn_on_in_ui(page, base_url: str, kind: str, name: str) -> None:
    from playwright.sync_api import expect

    if "/automation" not in page.url:
        page.goto(f"{base_url}/automation")
    row = automation_row(page, kind, name)
    # The list is virtualized: a row far down is only rendered once scrolled to.
    page.get_by_text("Select all").first.wait_for(timeout=60_000)
    for _ in range(20):
        if row.count():
            break
        page.locator('[class*="VirtualizedTable_container"]').first.hover()
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(250)
    expect(row).to_have_count(1, timeout=60_000)
    row.scroll_into_view_if_needed()
    switch = row.locator('label[class*="formatSwitch"]')
    box = switch.locator('input[type="checkbox"]')
    expect(box).to_be_enabled(timeout=60_000)  # disabled until the instigator state loaded
    if not box.is_checked():
        switch.click()
    expect(box).to_be_checked(timeout=30_000)

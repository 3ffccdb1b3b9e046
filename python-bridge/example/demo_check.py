"""End-to-end check of the running demo, as ``scripts/demo --check`` runs it.

Signs up a user over HTTP like a browser (GET the form, POST it with the CSRF
token), checks the profile page, then edits the profile; after each step it
reads the SQLite database to check that the profile row holds the submitted
data and that the Swift worker recorded the message in
``signal_worker_applied`` (so the worker, not Python, wrote it). Standard
library only.

    python demo_check.py --url http://127.0.0.1:8000 --database /abs/db.sqlite3 [--mode sync|async] \
        [--metrics-url http://127.0.0.1:9557/metrics]

With ``--metrics-url`` it also reads the worker's Prometheus metrics: one
``created`` and one ``updated`` request, as the worker counted them.

Exit status 0 when every check passed, 1 otherwise.
"""

import argparse
import html
import http.cookiejar
import re
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

HTTP_TIMEOUT = 10
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class CheckFailed(Exception):
    pass


class Browser:
    """Cookies, CSRF tokens and redirects, like a browser."""

    def __init__(self, base_url):
        self.base_url = base_url.rstrip("/")
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path):
        return self._open(urllib.request.Request(self.base_url + path))

    def submit(self, path, fields):
        """GET the form at ``path``, POST ``fields`` with its CSRF token."""
        _, page = self.get(path)
        match = CSRF_INPUT.search(page)
        if not match:
            raise CheckFailed(f"GET {path}: no csrfmiddlewaretoken in the form")
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": match.group(1), **fields}).encode()
        return self._open(urllib.request.Request(self.base_url + path, data=data, method="POST"))

    def _open(self, request):
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                final_path = urllib.parse.urlsplit(response.geturl()).path
                return final_path, response.read().decode("utf-8")
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            raise CheckFailed(
                f"{request.get_method()} {request.full_url}: HTTP {error.code}\n{body[:2000]}"
            ) from None


def field_text(page, element_id):
    """Text of ``<dd id="...">`` on the profile page, tags stripped."""
    match = re.search(rf'<dd id="{element_id}">(.*?)</dd>', page, re.S)
    if not match:
        return None
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def read_profile_page(browser, username, mode):
    """The profile page's three values; waits a little in async mode."""
    path = f"/profile/{urllib.parse.quote(username)}/"
    deadline = time.monotonic() + (10 if mode == "async" else 0)
    while True:
        _, page = browser.get(path)
        if 'id="profile"' in page:
            return {
                "profile_type": field_text(page, "profile-type"),
                "sex": field_text(page, "profile-sex"),
                "birthdate": field_text(page, "profile-birthdate"),
            }
        if time.monotonic() >= deadline:
            hint = "" if mode == "async" else " (sync mode: it must be there after the redirect)"
            raise CheckFailed(f"GET {path}: 'No profile yet'{hint}")
        time.sleep(0.2)


class Database:
    def __init__(self, path):
        self.path = path

    def query(self, sql, params=()):
        con = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def has_table(self, name):
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def profile(self, username):
        rows = self.query(
            "SELECT p.profile_type, p.sex, p.birthdate FROM accounts_userprofile p"
            " JOIN auth_user u ON u.id = p.user_id WHERE u.username = ?",
            (username,),
        )
        return rows[0] if rows else None

    def applied_count(self):
        return self.query("SELECT count(*) FROM signal_worker_applied")[0][0]


def expect(label, actual, wanted):
    if actual != wanted:
        raise CheckFailed(f"{label}: expected {wanted!r}, got {actual!r}")
    print(f"  ok  {label}: {actual!r}")


def wait_until(label, predicate, seconds=5):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            raise CheckFailed(f"{label}: still not true after {seconds}s")
        time.sleep(0.1)
    print(f"  ok  {label}")


def requests_total(metrics_url):
    """``signal_worker_requests_total`` by label set, e.g. ``{'status="ok",action="created"': 1.0}``."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=HTTP_TIMEOUT) as response:
            text = response.read().decode()
    except OSError as error:
        raise CheckFailed(f"GET {metrics_url}: {error}") from error
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^signal_worker_requests_total\{([^}]*)\} (\S+)$", text, re.M)
    }


def run(url, database_path, mode, metrics_url=None):
    browser = Browser(url)
    db = Database(database_path)
    if not db.has_table("signal_worker_applied"):
        raise CheckFailed("no table signal_worker_applied: is signal-worker serving this database?")
    applied_before = db.applied_count()
    username = f"check-{uuid.uuid4().hex[:10]}"

    print(f"sign up {username!r} (business, F, 1990-01-02) at {url}/signup/")
    path, page = browser.submit(
        "/signup/",
        {
            "username": username,
            "password": "demo-check-password",
            "profile_type": "business",
            "sex": "F",
            "birthdate": "1990-01-02",
        },
    )
    if 'class="errorlist' in page:
        raise CheckFailed(f"POST /signup/: the form came back with errors:\n{page[:3000]}")
    expect("redirected to", path, f"/profile/{username}/")
    expect(
        "profile page",
        read_profile_page(browser, username, mode),
        {"profile_type": "Business", "sex": "Female", "birthdate": "1990-01-02"},
    )
    expect("accounts_userprofile row", db.profile(username), ("business", "F", "1990-01-02"))
    expect("signal_worker_applied rows added", db.applied_count() - applied_before, 1)

    print("edit: profile_type -> personal, sex -> empty (None), birthdate unchanged (absent)")
    path, page = browser.submit(
        f"/profile/{username}/edit/",
        {"profile_type": "personal", "sex": "", "birthdate": "1990-01-02"},
    )
    if 'class="errorlist' in page:
        raise CheckFailed(f"POST edit: the form came back with errors:\n{page[:3000]}")
    expect("redirected to", path, f"/profile/{username}/")
    if mode == "async":
        wait_until("worker applied the update", lambda: db.applied_count() - applied_before >= 2, 10)
    expect(
        "profile page",
        read_profile_page(browser, username, mode),
        {"profile_type": "Personal", "sex": "not set", "birthdate": "1990-01-02"},
    )
    expect("accounts_userprofile row", db.profile(username), ("personal", None, "1990-01-02"))
    expect("signal_worker_applied rows added", db.applied_count() - applied_before, 2)

    _, page = browser.get("/")
    expect("user listed on /", f">{username}<" in page, True)

    if metrics_url:
        print(f"metrics at {metrics_url}")
        counts = requests_total(metrics_url)
        expect("signal_worker_requests_total created", counts.get('status="ok",action="created"'), 1.0)
        expect("signal_worker_requests_total updated", counts.get('status="ok",action="updated"'), 1.0)

    # The bridge's own tables, when it has them: every message acknowledged
    # (acked outbox rows are deleted in the background) and none refused.
    if db.has_table("signal_bridge_outbox"):
        wait_until(
            "signal_bridge_outbox drained",
            lambda: db.query("SELECT count(*) FROM signal_bridge_outbox")[0][0] == 0,
        )
    if db.has_table("signal_bridge_deadletter"):
        expect(
            "signal_bridge_deadletter rows",
            db.query("SELECT count(*) FROM signal_bridge_deadletter")[0][0],
            0,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the demo's base URL")
    parser.add_argument("--database", required=True, help="path of the SQLite database")
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    parser.add_argument("--metrics-url", help="the worker's /metrics (a worker that served only this check)")
    args = parser.parse_args()
    try:
        run(args.url, args.database, args.mode, args.metrics_url)
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

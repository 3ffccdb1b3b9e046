"""Machine-readable benchmark results (``Benchmarks/results/*.json``): their shape, the tables and
the chart generated from them, and the regression check of ``Benchmarks/run --check``.

Python standard library only (matplotlib for the chart, imported when drawn), so that the check
and its unit test (``Benchmarks/tests``) run with any Python 3.10+.

Every results file is one JSON object::

    {"schema": 1, "benchmark": "django-save", "about": "...", "meta": {...},
     ...the benchmark's own figures...,
     "checks": {"<what is compared, in words>": {"value": 0.93, "better": "higher"}, ...}}

``checks`` holds only figures that may be compared across runs and machines: ratios of two
configurations measured in the same run (saves/s of sync over the in-process receiver, CPU per
save over no receiver, ...) and deterministic counts (callgrind instructions per save). Absolute
rates are in the file too, but never checked: they follow the machine and its load.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

SCHEMA = 1
TOLERANCE = 0.15  # a checked figure may be this much worse than the committed one

PHASES = ("create", "update")
PATTERNS = ("autocommit", "atomic")
# The Django-side configurations, in the order of the tables: (key, name in the tables).
MODES = (("none", "no receiver"), ("in_process", "in-process receiver"), ("sync", "`sync`"),
         ("async", "`async`"), ("outbox", "`outbox`"))


# ------------------------------------------------------------------------------------------
# reading and writing


def write(path: str | Path, data: dict) -> None:
    """``data`` as indented JSON (keys in insertion order, a newline at the end)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def load_dir(folder: str | Path) -> dict[str, dict]:
    """``{file name: parsed JSON}`` of every ``*.json`` results file in ``folder`` (schema checked)."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            out[path.name] = data
    return out


# ------------------------------------------------------------------------------------------
# the regression check


def check(committed: dict[str, dict], current: dict[str, dict], tolerance: float = TOLERANCE,
          confirmation: dict[str, dict] | None = None):
    """Compare the ``checks`` of ``current`` results files with the ``committed`` ones.

    Both are ``{file name: results}``. A committed file missing from ``current`` was not re-run:
    listed in ``skipped``, not a failure. Within a re-run file every committed check must be
    present and have a value; a ``better: higher`` figure fails below ``committed × (1 −
    tolerance)``, a ``better: lower`` one above ``committed × (1 + tolerance)``. Figures only the
    current run has are new, not compared.

    ``confirmation``, when given, is a second run of some of the files (same shape): a figure of
    such a file that regressed in ``current`` fails only if it regressed in the second run too (a
    regression the change caused shows in both; on a noisy machine a figure can miss once). A
    figure missing or without a value fails whatever the second run says, and so do the figures
    of files the second run does not have.

    Returns ``(failures, passed, skipped)``: failures and passed as lines naming the file and the
    figure, skipped as file names.
    """
    failures, passed, skipped = [], [], []
    for name, old in sorted(committed.items()):
        if "checks" not in old:
            continue
        new = current.get(name)
        if new is None:
            skipped.append(name)
            continue
        new_checks = new.get("checks") or {}
        second = None if confirmation is None or name not in confirmation else confirmation[name].get("checks") or {}
        reference = old.get("reference", "committed")  # what the file's figures are held to
        for key, was in old["checks"].items():
            now = new_checks.get(key)
            if now is None:
                failures.append(f"{name}: {key}: missing from the new results "
                                f"({reference}: {show(was['value'])})")
                continue
            if was.get("value") is None:
                continue  # the committed run failed there: nothing to hold the new run to
            if now.get("value") is None:
                failures.append(f"{name}: {key}: no value in the new results (the configuration failed; "
                                f"{reference}: {show(was['value'])})")
                continue
            regressed, line = judge(name, key, was, now["value"], tolerance, reference)
            if not regressed:
                passed.append(line)
                continue
            if second is None:
                failures.append(line + f": regressed by more than {100 * tolerance:.0f} %")
                continue
            again = (second.get(key) or {}).get("value")
            if again is None:
                failures.append(line + f": regressed by more than {100 * tolerance:.0f} %, and the re-run has no value")
                continue
            still, second_line = judge(name, key, was, again, tolerance, reference)
            if still:
                failures.append(line + f": regressed by more than {100 * tolerance:.0f} %, and again in the re-run "
                                       f"({show(again)})")
            else:
                passed.append(second_line + f" in the re-run; the first run's {show(now['value'])} was more than "
                                            f"{100 * tolerance:.0f} % worse: not confirmed")
    return failures, passed, skipped


def in_run_references(committed: dict[str, dict], current: dict[str, dict]) -> dict[str, dict]:
    """``committed``, with every file of ``current`` that carries a baseline measured in the same run
    (``"baseline": {"bridge", "checks"}``, from ``--baseline``) replaced by that baseline: then
    ``check`` holds the run to the code it was compared with side by side, not to figures measured
    at another hour (on a shared 2-core machine, ratios that involve no bridge code at all moved by
    more than 15 % between such hours)."""
    out = dict(committed)
    for name, new in current.items():
        baseline = new.get("baseline")
        if isinstance(baseline, dict) and baseline.get("checks"):
            out[name] = {"checks": baseline["checks"],
                         "reference": f"the baseline bridge ({baseline.get('bridge', '?')}) in the same run"}
    return out


def judge(name: str, key: str, was: dict, value: float, tolerance: float,
          reference: str = "committed") -> tuple[bool, str]:
    """Whether ``value`` is more than ``tolerance`` worse than the check ``was`` (of the
    ``reference``: the committed results, or a baseline), and the line that says so."""
    better = was.get("better", "higher")
    old_value = was["value"]
    change = value / old_value - 1 if old_value else 0.0
    worse = -change if better == "higher" else change
    line = (f"{name}: {key}: {show(value)} against {show(old_value)} {reference} "
            f"({100 * change:+.1f} %, {better} is better)")
    return worse > tolerance, line


def show(value) -> str:
    if value is None:
        return "none"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


# ------------------------------------------------------------------------------------------
# the Django-side save benchmark: results of Benchmarks/django/save_benchmark.py


def spread(values: list[float]) -> dict:
    """Median and interquartile range (``statistics.quantiles``, inclusive) of ``values``."""
    if not values:
        return {"median": None, "q1": None, "q3": None, "rounds": 0}
    if len(values) < 2:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": round(statistics.median(values), 1), "q1": round(q1, 1), "q3": round(q3, 1),
            "rounds": len(values)}


def django_targets() -> list[dict]:
    """The targets of issues 20 and 22 on the Django-side benchmark, as data.

    ``kind`` ``rate``: ``config``'s saves/s ≥ ``factor`` × ``reference``'s; ``cpu``: ``config``'s CPU
    µs per save ≤ ``reference``'s + ``plus`` µs. Every target holds for creates and for updates.
    """
    return [
        {"config": "sync", "reference": "in_process", "kind": "rate", "factor": 1.0, "issue": 20},
        {"config": "sync", "reference": "in_process", "kind": "cpu", "plus": 0.0, "issue": 22},
        {"config": "async", "reference": "none", "kind": "rate", "factor": 0.9, "issue": 20},
        {"config": "async", "reference": "none", "kind": "cpu", "plus": 40.0, "issue": 20},
        {"config": "outbox", "reference": "none", "kind": "rate", "factor": 0.8, "issue": 20},
    ]


def target_text(t: dict) -> str:
    ref = "no receiver" if t["reference"] == "none" else "in-process"
    if t["kind"] == "rate":
        return f"saves/s ≥ {t['factor']:.2f}× {ref}" if t["factor"] != 1.0 else f"saves/s ≥ {ref}"
    return f"CPU/save ≤ {ref}" + (f" + {t['plus']:.0f} µs" if t["plus"] else "")


BASELINE_SUFFIX = "@baseline"  # save_benchmark's key of a configuration run with the --baseline bridge


def django_save(meta: dict, summaries: dict[str, dict[str, dict]], about: str,
                baseline: str | None = None) -> dict:
    """The results file of one Django-side run.

    ``summaries``: ``{database: {configuration key: summary}}`` where a summary is
    ``{"failed": [problems], "per_round": [{"create.save": saves/s, "create.cpu_us": µs, ...}]}``
    (what save_benchmark.summarize returns). Configuration keys: ``none``, ``sync+atomic``, ...;
    a key ending in ``@baseline`` is that configuration with the ``--baseline`` bridge, named by
    ``baseline`` (e.g. its commit): its figures go to ``"baseline": {"bridge", "checks"}``, the
    checks computed as if its rows were this run's, and nowhere else.
    """
    baseline_summaries = {db: {key: s for key, s in configs.items() if key.endswith(BASELINE_SUFFIX)}
                          for db, configs in summaries.items()}
    summaries = {db: {key: s for key, s in configs.items() if not key.endswith(BASELINE_SUFFIX)}
                 for db, configs in summaries.items()}
    if not any(baseline_summaries.values()):
        baseline = None
    configurations = {}
    for db, configs in summaries.items():
        for key, s in configs.items():
            entry = {"failed": bool(s["failed"])}
            if s["failed"]:
                entry["problems"] = list(dict.fromkeys(s["failed"]))[:5]
            for phase in PHASES:
                entry[phase] = {
                    "saves_per_s": spread([r[f"{phase}.save"] for r in s["per_round"] if r.get(f"{phase}.save")]),
                    "cpu_us_per_save": spread([r[f"{phase}.cpu_us"] for r in s["per_round"]
                                               if r.get(f"{phase}.cpu_us") is not None]),
                }
            configurations.setdefault(db, {})[key] = entry
    out = {"schema": SCHEMA, "benchmark": "django-save", "about": about, "meta": meta,
           "configurations": configurations}
    out["targets"] = django_target_results(configurations)
    out["checks"] = django_checks(configurations)
    if baseline:
        # The same figures with the baseline's bridge (`--baseline`) in place of this one's, from
        # the same rounds: what `Benchmarks/run --check` holds this run's figures to.
        swapped = {db: {key: baseline_summaries[db].get(key + BASELINE_SUFFIX, s) for key, s in configs.items()}
                   for db, configs in summaries.items()}
        out["baseline"] = {"bridge": baseline, "checks": django_save(meta, swapped, about)["checks"]}
    return out


def _median(configurations: dict, db: str, key: str, phase: str, metric: str):
    entry = configurations.get(db, {}).get(key)
    if entry is None or entry["failed"]:
        return None
    return entry[phase][metric]["median"]


def config_key(mode: str, pattern: str) -> str:
    return mode + ("+atomic" if pattern == "atomic" else "")


def django_target_results(configurations: dict) -> list[dict]:
    """Each target of ``django_targets`` per database and pattern: the medians, met or not."""
    rows = []
    for db in configurations:
        for pattern in PATTERNS:
            for t in django_targets():
                num, ref = config_key(t["config"], pattern), config_key(t["reference"], pattern)
                if num not in configurations[db] or ref not in configurations[db]:
                    continue
                metric = "saves_per_s" if t["kind"] == "rate" else "cpu_us_per_save"
                values, met = {}, True
                for phase in PHASES:
                    a, b = (_median(configurations, db, k, phase, metric) for k in (num, ref))
                    if a is None or b is None:
                        values[phase] = None
                        met = False
                        continue
                    if t["kind"] == "rate":
                        values[phase] = {"ratio": round(a / b, 4)}
                        met = met and a / b >= t["factor"]
                    else:
                        values[phase] = {"cpu_us": a, "limit_us": round(b + t["plus"], 1)}
                        met = met and a <= b + t["plus"]
                rows.append({"database": db, "pattern": pattern, "config": t["config"], "issue": t["issue"],
                             "target": target_text(t), "values": values, "met": met})
    return rows


def django_checks(configurations: dict) -> dict:
    """The ratios a later run is held to: every mode's saves/s and CPU per save against no receiver,
    sync's and async's saves/s against the in-process receiver; per database, pattern and phase."""
    checks = {}
    for db in configurations:
        for pattern in PATTERNS:
            pairs = [(m, "none", "saves_per_s", "higher") for m in ("in_process", "sync", "async", "outbox")]
            pairs += [(m, "in_process", "saves_per_s", "higher") for m in ("sync", "async")]
            pairs += [(m, "none", "cpu_us_per_save", "lower") for m in ("in_process", "sync", "async", "outbox")]
            for mode, ref, metric, better in pairs:
                num, den = config_key(mode, pattern), config_key(ref, pattern)
                if num not in configurations[db] or den not in configurations[db]:
                    continue
                for phase in PHASES:
                    a, b = (_median(configurations, db, k, phase, metric) for k in (num, den))
                    what = "saves/s" if metric == "saves_per_s" else "CPU µs/save"
                    key = f"{db} {pattern}: {what} of {mode} / {ref}, {phase}s"
                    checks[key] = {"value": round(a / b, 4) if a is not None and b else None, "better": better}
    return checks


# ------------------------------------------------------------------------------------------
# the worker side (Benchmarks/compare/compare.py)


def worker_throughput(meta: dict, rates: dict[str, dict[str, list[float]]], limits: dict, about: str) -> dict:
    """The results file of the comparison's worker side.

    ``rates``: ``{database: {worker kind: [profiles/s per round]}}`` (kinds ``swift``, ``pyzmq``,
    ``celery``, ``celery-tuned``; a failed kind absent); ``limits``: ``{database: {"raw": rows/s of
    the hand-written batched INSERT, "store": the worker's store alone, "worker": worker-benchmark's
    creates/s}}`` (any may be absent).
    """
    workers = {db: {kind: spread(values) for kind, values in kinds.items()} for db, kinds in rates.items()}
    checks = {}
    for db, kinds in workers.items():
        swift = kinds.get("swift", {}).get("median")
        for other in ("celery", "pyzmq"):
            theirs = kinds.get(other, {}).get("median")
            checks[f"{db}: profiles/s of the Swift worker / {other}"] = {
                "value": round(swift / theirs, 4) if swift and theirs else None, "better": "higher"}
        lim = limits.get(db, {})
        for ref in ("raw", "store"):
            if lim.get("worker") and lim.get(ref):
                checks[f"{db}: worker-benchmark creates/s / {ref} batched writes"] = {
                    "value": round(lim["worker"] / lim[ref], 4), "better": "higher"}
    return {"schema": SCHEMA, "benchmark": "worker-throughput", "about": about, "meta": meta,
            "workers": workers, "limits": limits, "checks": checks}


# ------------------------------------------------------------------------------------------
# tables generated from the results


def fmt(value, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _rate_cell(entry: dict | None, phase: str) -> str:
    if entry is None:
        return "—"
    if entry["failed"]:
        return "FAILED"
    s = entry[phase]["saves_per_s"]
    return f"{fmt(s['median'])} ({fmt(s['q1'])}–{fmt(s['q3'])})"


def _cpu_cell(entry: dict | None) -> str:
    if entry is None or entry["failed"]:
        return "—"
    return " / ".join(fmt(entry[p]["cpu_us_per_save"]["median"]) for p in PHASES)


def _target_cells(targets: list[dict], db: str, pattern: str, mode: str) -> tuple[str, str, str]:
    """(ratio c / u, target, met) of ``mode``'s targets on ``db``/``pattern``."""
    mine = [t for t in targets if t["database"] == db and t["pattern"] == pattern and t["config"] == mode]
    if not mine:
        return "", "—", "—"
    ratio, goals, met = "", [], []
    for t in mine:
        goals.append(t["target"])
        met.append("yes" if t["met"] else "**NO**")
        first = t["values"].get("create")
        if first and "ratio" in first and not ratio:
            ratio = " / ".join(f"{t['values'][p]['ratio']:.2f}×" if t["values"].get(p) else "—" for p in PHASES)
    return ratio, "; ".join(goals), " / ".join(met)


def _reference_ratio(configurations: dict, db: str, pattern: str, mode: str) -> str:
    """saves/s against no receiver, for rows whose target compares something else (or none)."""
    num, den = config_key(mode, pattern), config_key("none", pattern)
    cells = []
    for phase in PHASES:
        a = _median(configurations, db, num, phase, "saves_per_s")
        b = _median(configurations, db, den, phase, "saves_per_s")
        cells.append(f"{a / b:.2f}×" if a and b else "—")
    return " / ".join(cells)


def cost_table(results: dict) -> list[str]:
    """The README's and RESULTS.md's table: one row per database, pattern and mode."""
    conf = results["configurations"]
    targets = results["targets"]
    lines = ["| database | `save()` | creates/s (IQR) | updates/s (IQR) | CPU µs/save, c / u "
             "| ratio, c / u | target | met |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for db in conf:
        for pattern in PATTERNS:
            for mode, name in MODES:
                key = config_key(mode, pattern)
                entry = conf[db].get(key)
                if entry is None:
                    continue
                ratio, goal, met = _target_cells(targets, db, pattern, mode)
                if entry["failed"]:
                    ratio = "—"
                elif not ratio and mode != "none":
                    ratio = _reference_ratio(conf, db, pattern, mode) + " none"
                elif ratio:
                    ref = "in-proc." if mode == "sync" else "none"
                    ratio += f" {ref}"
                shown = name + (", `atomic()`" if pattern == "atomic" else "")
                lines.append(f"| {db} | {shown} | {_rate_cell(entry, 'create')} | {_rate_cell(entry, 'update')} "
                             f"| {_cpu_cell(entry)} | {ratio or '—'} | {goal} | {met} |")
    return lines


def cost_section(results: dict) -> list[str]:
    """The README's generated block: the run, the table, how to read it, the chart."""
    meta = results.get("meta", {})
    n = meta.get("n")
    lines = [f"From `{meta.get('command', '?')}` ({meta.get('date', '?')}, commit {meta.get('commit', '?')}, "
             f"{meta.get('worker', 'signal-worker')}), table generated by `Benchmarks/report generate` from "
             "[`Benchmarks/results/django-save.json`](Benchmarks/results/django-save.json). "
             + results.get("about", ""), ""]
    lines += cost_table(results)
    lines += ["", f"Median over {meta.get('rounds', '?')} interleaved rounds (interquartile range in parentheses) "
              f"of `User.save()` per second, {n if n else 'N'} creates then {n if n else 'N'} updates per "
              "configuration; *CPU µs/save*: the Django process's CPU time (every thread) per save, which moves "
              "far less with the machine's load than the rates; *ratio*: saves/s against the reference named "
              "(none: no receiver; in-proc.: the in-process receiver). Targets from issues 20 and 22; *met* per "
              "target, in the order listed.", "",
              "![save() per second by mode](Benchmarks/results/django-save-chart.png)"]
    return lines


def callgrind_path(path: str) -> tuple[str, str]:
    """A bridge-callgrind path's mode and what it saves: ``"async-create"`` -> ``("async", "creates")``.

    The sync paths keep their first names (``create``, ``update``), without a prefix.
    """
    mode, _, action = path.rpartition("-")
    return mode or "sync", action + "s"


def callgrind_lines(results: dict) -> list[str]:
    meta = results.get("meta", {})
    paths = results.get("paths", {})

    def name(path: str) -> str:
        mode, saves = callgrind_path(path)
        return f"{mode} {saves}" + (" (save()'s thread)" if mode == "async" else "")

    cells = ", ".join(f"{name(p)} {fmt(v['instructions_per_save'])}" for p, v in paths.items())
    return [f"Bridge's path in `save()` (no network), callgrind instructions per save: {cells} "
            f"(`{meta.get('command', '?')}`, {meta.get('date', '?')}, commit {meta.get('commit', '?')}; "
            "[`Benchmarks/results/bridge-callgrind.json`](results/bridge-callgrind.json))."]


def allocation_lines(results: dict) -> list[str]:
    """RESULTS.md's line on the worker's allocations per request (Benchmarks/allocations/run)."""
    meta = results.get("meta", {})
    workers = results.get("workers", {})
    cells = ", ".join(f"{name} {counts['total']:.1f} ({counts['socket thread']:.1f} on the socket thread)"
                      for name, counts in ((name, figures["allocations per request"])
                                           for name, figures in workers.items()))
    return [f"Worker's allocations per request (`malloc`, `calloc`, `realloc`, every thread): {cells} "
            f"(`{meta.get('command', '?')}`, {meta.get('date', '?')}, commit {meta.get('commit', '?')}; "
            "[`Benchmarks/results/worker-allocations.json`](results/worker-allocations.json))."]


def worker_table(results: dict) -> list[str]:
    """RESULTS.md's worker-side lines: profiles/s per worker and the ratios."""
    names = {"swift": "Swift signal-worker", "pyzmq": "pyzmq Python worker", "celery": "Celery (prefork ×2)",
             "celery-tuned": "Celery, CONN_MAX_AGE=None"}
    lines = ["| database | worker | profiles/s (IQR) | vs Swift |", "| --- | --- | ---: | ---: |"]
    for db, kinds in results["workers"].items():
        swift = kinds.get("swift", {}).get("median")
        for kind, name in names.items():
            s = kinds.get(kind)
            if not s:
                continue
            vs = f"{swift / s['median']:.1f}× slower" if swift and s["median"] and kind != "swift" else "—"
            lines.append(f"| {db} | {name} | {fmt(s['median'])} ({fmt(s['q1'])}–{fmt(s['q3'])}) | {vs} |")
    return lines


def _block_pattern(name: str) -> re.Pattern:
    return re.compile(r"(<!-- begin generated %s\b[^>]*-->\n)(?:.*?\n)??(<!-- end generated %s -->)"
                      % (re.escape(name), re.escape(name)), re.S)


def replace_block(text: str, name: str, lines: list[str]) -> str:
    """``text`` with the lines between ``<!-- begin generated NAME ... -->`` and
    ``<!-- end generated NAME -->`` replaced by ``lines``.

    Raises ``ValueError`` when the markers are missing (the generator never guesses where to write).
    """
    pattern = _block_pattern(name)
    if not pattern.search(text):
        raise ValueError(f"no <!-- begin generated {name} --> ... <!-- end generated {name} --> block")
    body = "".join(line + "\n" for line in lines)
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def block(name: str, source: str, lines: list[str]) -> list[str]:
    """``lines`` between the markers ``replace_block`` finds (for a report written whole)."""
    return [f"<!-- begin generated {name}: by Benchmarks/report from {source}; edits here are overwritten -->",
            *lines, f"<!-- end generated {name} -->"]


def has_block(text: str, name: str) -> bool:
    return bool(_block_pattern(name).search(text))


# ------------------------------------------------------------------------------------------
# the chart


def chart(results: dict, path: str | Path) -> None:
    """Bars of the median saves/s per mode (creates, IQR as error bars), one panel per database."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = results["configurations"]
    dbs = list(conf)
    fig, axes = plt.subplots(1, len(dbs), figsize=(6.5 * len(dbs), 4.6), squeeze=False)
    colors = {"autocommit": "#4b8bbe", "atomic": "#f0a030"}
    for ax, db in zip(axes[0], dbs):
        width = 0.38
        for i, pattern in enumerate(PATTERNS):
            xs, ys, lo, hi = [], [], [], []
            for j, (mode, _) in enumerate(MODES):
                entry = conf[db].get(config_key(mode, pattern))
                if entry is None or entry["failed"]:
                    continue
                s = entry["create"]["saves_per_s"]
                xs.append(j + (i - 0.5) * width)
                ys.append(s["median"])
                lo.append(s["median"] - s["q1"])
                hi.append(s["q3"] - s["median"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=colors[pattern],
                   label="autocommit save()" if pattern == "autocommit" else "save() in atomic()")
            for x, y in zip(xs, ys):
                ax.text(x, y, f"{y:,.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(MODES)), [name.replace("`", "") for _, name in MODES], fontsize=8)
        ax.set_ylabel("User.save() creates per second (median, IQR)")
        ax.set_title(f"{db}: save() throughput by mode")
        ax.legend(fontsize=8)
    meta = results.get("meta", {})
    fig.suptitle(f"Benchmarks/results/django-save.json, {meta.get('date', '')}: n = {meta.get('n', '?')}, "
                 f"{meta.get('rounds', '?')} rounds", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)

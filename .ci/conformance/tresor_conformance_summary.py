"""pytest plugin loaded by .ci/conformance.sh (-p tresor_conformance_summary).

1. Skip lists: ``--conformance-skips FILE`` (repeatable). Each non-comment line is
   ``<pytest node id> # <reason>``; the reason is mandatory. Matching tests are
   deselected by EXACT node id (pytest's own ``--deselect`` matches by prefix, so
   ``...::test_create_acl_policy`` would also drop ``...::test_create_acl_policy_dict_0_pretty``).
   Entries whose module was collected but that matched no test are reported as stale.
2. Optional request trace: with CONFORMANCE_TRACE=<file>, every HTTP request the tests
   make (through requests.Session) is appended to <file> as
   "<test node id>\t<METHOD>\t<path>\t<status>", to see which endpoints a module needs.
3. A per-module outcome table and the list of deselected tests with their reasons,
   printed in the terminal summary, i.e. before pytest's own closing
   "N passed, N failed ..." line, which stays the last line of the run.
"""

import os
from collections import defaultdict
from urllib.parse import urlsplit

import pytest

_counts = defaultdict(lambda: defaultdict(int))
_skips = {}  # node id -> (reason, "file:line")
_deselected = []  # (node id, reason)
_stale = []  # (node id, where)


def _module(nodeid):
    return nodeid.split("::", 1)[0]


def _load_skips(path):
    entries = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            nodeid, sep, reason = line.partition("#")
            nodeid, reason = nodeid.strip(), reason.strip()
            where = f"{path}:{lineno}"
            if not sep or not reason:
                raise pytest.UsageError(f"{where}: skip entry without a reason: {line}")
            if " " in nodeid:
                raise pytest.UsageError(f"{where}: malformed node id: {nodeid!r}")
            entries[nodeid] = (reason, where)
    return entries


_current_test = ["(setup)"]


def _install_trace(path):
    import requests

    original = requests.Session.request

    def traced(self, method, url, *args, **kwargs):
        status = "EXC"
        try:
            response = original(self, method, url, *args, **kwargs)
            status = str(response.status_code)
            return response
        finally:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{_current_test[0]}\t{method.upper()}\t{urlsplit(url).path}\t{status}\n")

    requests.Session.request = traced


def pytest_runtest_logstart(nodeid, location):
    _current_test[0] = nodeid


def pytest_addoption(parser):
    parser.addoption(
        "--conformance-skips",
        action="append",
        default=[],
        metavar="FILE",
        help="file of '<node id> # reason' lines to deselect (exact node id match)",
    )


def pytest_configure(config):
    if os.environ.get("CONFORMANCE_TRACE"):
        _install_trace(os.environ["CONFORMANCE_TRACE"])
    for path in config.getoption("conformance_skips"):
        _skips.update(_load_skips(path))


def pytest_collection_modifyitems(config, items):
    if not _skips:
        return
    keep, drop, matched = [], [], set()
    for item in items:
        if item.nodeid in _skips:
            drop.append(item)
            matched.add(item.nodeid)
            _deselected.append((item.nodeid, _skips[item.nodeid][0]))
        else:
            keep.append(item)
    collected_modules = {_module(item.nodeid) for item in items}
    for nodeid, (_, where) in sorted(_skips.items()):
        if nodeid not in matched and _module(nodeid) in collected_modules:
            _stale.append((nodeid, where))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_logreport(report):
    counts = _counts[_module(report.nodeid)]
    if report.when == "call":
        if report.passed:
            counts["passed"] += 1
        elif report.failed:
            counts["failed"] += 1
        elif report.skipped:
            counts["skipped"] += 1
    elif report.failed:
        # setup/teardown failure (e.g. the server did not start): pytest calls it an error
        counts["error"] += 1
    elif report.when == "setup" and report.skipped:
        counts["skipped"] += 1


def pytest_collectreport(report):
    if report.failed:
        _counts[_module(report.nodeid)]["error"] += 1


def pytest_deselected(items):
    for item in items:
        _counts[_module(item.nodeid)]["deselected"] += 1


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if _deselected:
        tr.section("conformance: deselected by skip list")
        for nodeid, reason in _deselected:
            tr.write_line(f"DESELECTED {nodeid}: {reason}")
    if _stale:
        tr.section("conformance: stale skip entries (matched no collected test)")
        for nodeid, where in _stale:
            tr.write_line(f"STALE {nodeid} ({where})", yellow=True)
    if not _counts:
        return
    cols = ["passed", "failed", "error", "skipped", "deselected"]
    tr.section("conformance: per-module results")
    width = max(len(m) for m in _counts)
    tr.write_line(f"{'module'.ljust(width)}  " + "  ".join(c.rjust(10) for c in cols))
    total = defaultdict(int)
    for module in sorted(_counts):
        c = _counts[module]
        for k in cols:
            total[k] += c[k]
        tr.write_line(f"{module.ljust(width)}  " + "  ".join(str(c[k]).rjust(10) for k in cols))
    tr.write_line(f"{'TOTAL'.ljust(width)}  " + "  ".join(str(total[k]).rjust(10) for k in cols))

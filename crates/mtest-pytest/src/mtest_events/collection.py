"""Collection: an `item` event per test (its file, line, markers, timeout, xdist group),
collection progress, collection errors and module-level skips."""

import json
import os
import time

import pytest

from . import channel, leaks, options, reporting
from .state import S


def markers_of(item):
    """Marker names as a tuple, the item's own first, then its parents' (as
    `iter_markers`), with the parents' looked up once per parent, not once per
    parametrized case."""
    parent = item.parent
    inherited = S.inherited.get(id(parent))
    if inherited is None:
        names = (m.name for m in parent.iter_markers()) if parent is not None else ()
        inherited = tuple(dict.fromkeys(names))
        S.inherited[id(parent)] = inherited
    own = item.own_markers
    if not own:
        return inherited
    key = (inherited, tuple([m.name for m in own]))
    names = S.combined.get(key)
    if names is None:
        names = S.combined[key] = tuple(dict.fromkeys(key[1] + inherited))
    return names


def group_of(item):
    """`@pytest.mark.xdist_group("name")`'s name, as pytest-xdist reads it."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    return str(name)


def timeout_of(item):
    mark = item.get_closest_marker("timeout")
    if mark is None:
        return None
    value = mark.args[0] if mark.args else mark.kwargs.get("timeout")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def relfile(item):
    path = str(item.path)
    rel = S.relfiles.get(path)
    if rel is None:
        try:
            rel = os.path.relpath(path, str(item.config.rootpath)).replace(os.sep, "/")
        except Exception:
            rel = item.nodeid.split("::", 1)[0]
        S.relfiles[path] = rel
    return rel


def line_of(item):
    """The 1-based line of a test. `item.location` costs ~40 us a test (it inspects the
    source); for a plain function its code object says the same, once for all its
    parametrizations. The zygote must stay cheap: it does this for every test, serially."""
    if "location" in item.__dict__:
        return location_line(item)
    obj = item.__dict__.get("_obj")  # the function a Function item was made with
    if obj is None:
        return code_line(item)
    line = S.lines.get(id(obj))
    if line is None:
        line = S.lines[id(obj)] = code_line(item)
    return line


def code_line(item):
    function = getattr(item, "function", None)
    code = getattr(getattr(function, "__wrapped__", function), "__code__", None)
    if code is not None:
        return code.co_firstlineno
    return location_line(item)


def location_line(item):
    loc = item.location
    return (loc[1] + 1) if loc and loc[1] is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    """`MTEST_IGNORE_LATER=1`: the files to leave out are not known yet when pytest starts
    (`mtest --changed` checks the project beside this start): wait for mtest's `ignore`
    command and add them to `--ignore` before anything is collected."""
    if S.env.get("MTEST_IGNORE_LATER") != "1" or S.commands is None:
        return
    command = read_command(S.commands)
    if command.get("c") != "ignore":
        raise pytest.UsageError("mtest sent %r where it sends `ignore`" % command)
    ignore = session.config.option.ignore
    session.config.option.ignore = list(ignore or ()) + list(command["paths"])


def read_command(fd):
    """One command line from `fd`: what follows it is kept for the zygote's loop."""
    buf = S.command_buf
    while b"\n" not in buf:
        data = os.read(fd, 65536)
        if not data:
            os._exit(0)  # mtest is gone: nobody waits for this collection
        buf += data
    line, S.command_buf = buf.split(b"\n", 1)
    return json.loads(line)


def pytest_collection_modifyitems(session, config, items):
    path = S.env.get("MTEST_SELECT")
    if S.fd is None or not path:
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        order = {}
        for line in f:
            nodeid = line.rstrip("\n")
            if nodeid:
                order.setdefault(nodeid, len(order))
    keep, drop = [], []
    for item in items:
        (keep if item.nodeid in order else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    # Run in the order mtest's selection plugin chose (as pytest's own --ff reorders).
    keep.sort(key=lambda item: order[item.nodeid])
    items[:] = keep


def is_file_collector(collector):
    directory = getattr(pytest, "Directory", None)
    return isinstance(collector, pytest.File) or (
        directory is not None and isinstance(collector, directory)
    )


def as_collected(session):
    """A process-mode chunk names its files on pytest's command line, which would make
    them "initial paths": pytest rewrites the asserts of such a module and collects it
    even when it does not match `python_files`. The chunk's session takes the initial
    paths of the run's own collection instead, so each file is judged as it was there
    (and as under plain pytest)."""
    path = S.env.get("MTEST_INITPATHS")
    if not path or not hasattr(session, "_initialpaths"):
        return
    from pathlib import Path

    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        session._initialpaths = frozenset(Path(line.rstrip("\n")) for line in f if line.strip())


def pytest_collectstart(collector):
    """Collection progress: a module that crashes or hangs on import is the last one
    started and not done."""
    if isinstance(collector, pytest.Session):
        # Its own collection starts after pytest has set its initial paths, before any
        # file is collected.
        if S.fd is not None:
            as_collected(collector)
        return
    if S.fd is None or not S.collect or not is_file_collector(collector):
        return
    channel.emit({"e": "collect_start", "id": collector.nodeid, "path": str(collector.path),
                  "t": time.time()})


def pytest_collection_finish(session):
    if S.fd is None or not S.collect:
        return
    # One line a test, for every test, serially in the zygote (~10 us a test before these
    # caches: 0.6 s of a 64k-test collection): the parts shared by a module's tests (its
    # file) are encoded once per parent, a set of marker names once per set.
    quote = json.encoder.encode_basestring
    shared = {}
    marker_json = {}
    pend = S.pending.append
    for item in session.items:
        parent = item.parent
        part = shared.get(id(parent))
        if part is None:
            part = shared[id(parent)] = ',"file":%s,"line":' % quote(relfile(item))
        markers = markers_of(item)
        names = marker_json.get(markers)
        if names is None:
            names = marker_json[markers] = channel.dumps(list(markers)) if markers else "[]"
        timeout = None
        if "timeout" in markers:
            timeout = timeout_of(item)
            S.timeout_marked.add(id(item))
        line = line_of(item)
        group = group_of(item) if "xdist_group" in markers else None
        pend(
            '{"e":"item","id":%s%s%s,"markers":%s,"timeout":%s%s}'
            % (
                quote(item.nodeid),
                part,
                "null" if line is None else int(line),
                names,
                "null" if timeout is None else channel.dumps(timeout),
                "" if group is None else ',"group":%s' % quote(group),
            )
        )
    S.marks_known = True
    initial = getattr(session, "_initialpaths", None)
    S.pending.append(channel.dumps({
        "e": "collected",
        "count": len(session.items),
        "threads": leaks.other_threads(),
        "initpaths": None if initial is None else sorted(map(str, initial)),
        "cache_dir": options.cache_dir(session.config),
        "maxfail": S.pytest_maxfail or None,
    }))
    channel.write_pending()


def pytest_collectreport(report):
    if S.fd is None:
        return
    if report.failed:
        channel.emit({"e": "collect_error", "id": report.nodeid,
                      "text": channel.cap(str(report.longrepr), "collect")}, flush=False)
    elif report.skipped and S.collect:
        # A module that skips itself at import (`pytest.importorskip` at module level):
        # one skipped outcome under the module's id, as pytest counts it.
        message = channel.cap(reporting.crash_message(report), "message")
        channel.emit({"e": "collect_skip", "id": report.nodeid, "message": message},
                     flush=False)
    if S.collect:
        channel.emit({"e": "collect_done", "id": report.nodeid, "t": time.time()})
    else:
        channel.write_pending()

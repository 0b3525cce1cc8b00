"""The event channel: one JSON object a line, written with one os.write() on an O_APPEND
file, so every event written survives a crash of this process (see the package docstring)."""

import json
import os

from .state import S


# Longest text kept in one field of an event: head and tail of this many characters each.
CAP = 64 * 1024


def encode(text):
    return text.encode("utf-8", "surrogatepass")


def dumps(event):
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


def emit(event, flush=True):
    S.pending.append(dumps(event))
    if flush:
        write_pending()


def write_all(data):
    write_fd(S.fd, data)


def write_fd(fd, data):
    while data:
        written = os.write(fd, data)
        data = data[written:]


def write_pending():
    if S.fd is None or not S.pending:
        return
    data = encode("\n".join(S.pending) + "\n")
    S.pending = []
    write_all(data)


def cap(text, what):
    """Head and tail of a long text; the whole of it goes to a file beside the events."""
    if text is None or len(text) <= 2 * CAP:
        return text
    S.big_texts += 1
    path = "%s.%d.%s.txt" % (S.env.get("MTEST_EVENTS", "mtest"), S.big_texts, what)
    try:
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        where = "the whole of it is in %s" % path
    except OSError as e:
        where = "it could not be saved (%s)" % e
    return "%s\n\n[... mtest cut %d characters here; %s ...]\n\n%s" % (
        text[:CAP],
        len(text) - 2 * CAP,
        where,
        text[-CAP:],
    )


quote = json.encoder.encode_basestring

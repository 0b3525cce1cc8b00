"""The event channel: one JSON object a line, written with one os.write() on an O_APPEND
file, so every event written survives a crash of this process (see the package docstring)."""

import json
import os

from .state import S


# Longest text kept in one field of an event: head and tail of this many characters each.
CAP = 64 * 1024


def encode(text):
    return text.encode("utf-8", "surrogatepass")


# One encoder for every event (json.dumps with options makes a new one each call).
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def emit(event, flush=True):
    emit_line(dumps(event), flush)


def emit_line(line, flush=True):
    """An event already encoded: one JSON object, without the newline."""
    S.pending.append(line)
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

"""Runs a command on a pseudo-terminal, as a person at a terminal would: each time the
output shows a prompt, it types the next answer.

    python on_a_terminal.py ANSWERS_JSON -- COMMAND ARGS...

ANSWERS_JSON is a list of [prompt, answer] pairs, answered in order (the answer gets a
newline). Everything the command wrote goes to stdout, then a last line `exit: N` (the exit
code, or -SIGNAL). Each prompt is waited for at most 60 s; one that never comes ends the
command and this script with exit 3.
"""

import json
import os
import pty
import select
import signal
import sys
import time

WAIT_S = 60


def main():
    answers = json.loads(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    seen = b""
    given = 0  # bytes of `seen` already answered
    deadline = time.monotonic() + WAIT_S
    while True:
        if answers:
            prompt = answers[0][0].encode()
            at = seen.find(prompt, given)
            if at >= 0:
                given = at + len(prompt)
                os.write(fd, answers.pop(0)[1].encode() + b"\n")
                deadline = time.monotonic() + WAIT_S
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            sys.stdout.write(seen.decode(errors="replace"))
            sys.stdout.write("\non_a_terminal: waited %d s for %r\n" % (WAIT_S, answers[0][0]))
            sys.exit(3)
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the command and every process on the terminal are gone
            data = b""
        if not data:
            break
        seen += data
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.stdout.write(seen.decode(errors="replace").replace("\r\n", "\n"))
    sys.stdout.write("\nexit: %d\n" % code)


if __name__ == "__main__":
    main()

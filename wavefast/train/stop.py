"""Stopping a long run cleanly: the first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the
current step and save; a second one aborts. Installed explicitly, so it also works in a job started in
the background (``nohup ... &``), where a non-interactive shell makes the process ignore SIGINT."""

from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
    """``with StopRequest() as stop: ... if stop.requested: break`` (handlers only in the main thread)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested:  # the second signal: stop now
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nwavefast: {signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              "(send it again to abort)", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        return False

"""systemd's notify protocol (sd_notify(3)) without a C dependency.

Under `Type=notify` the daemon reports READY=1 once its config is loaded and its
services started, STATUS= lines a technician sees in `systemctl status`,
WATCHDOG=1 pings while it is healthy, RELOADING=1 and STOPPING=1. Outside
systemd ($NOTIFY_SOCKET unset) every call is a no-op, so the same code runs in
a terminal and in tests.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._socket: socket.socket | None = None
        if address:
            # A leading '@' names a socket in the abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, **fields: str | int) -> bool:
        """Send e.g. notify(READY=1, STATUS="registered; 0 calls"); False if not delivered."""
        if self._socket is None or self._address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            self._socket.sendto(payload, self._address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def reloading(self) -> bool:
        return self.notify(RELOADING=1, STATUS="reloading configuration")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec (systemd's advice), or None when no watchdog is armed for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None

"""pjsua2 objects that pjsua2's own threads call back into can be dropped at any moment.

A FramePort gets a callback from pjmedia's clock thread every 20 ms while it is in the
conference bridge; dropping it while that thread waits for the GIL used to run the
callback on the half-deallocated Python object (a double free in pymalloc, SIGSEGV
later: after a hang-up in `make demo`, at endpoint stop in tests/sip). The stress runs
in a child process, so a crash fails this test instead of ending the test session.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import asyncio, ctypes, sys
    import pjsua2 as pj
    from edgecall.telephony.media import FramePort, frame_format

    ROUNDS, PORTS = int(sys.argv[1]), int(sys.argv[2])
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.sndAutoCloseTime = -1  # keep the clock ticking with nothing connected
    cfg.medConfig.maxMediaPorts = PORTS * 2 + 8
    ep.libInit(cfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    lib = getattr(pj, "_pjsua2", None) or sys.modules["_pjsua2"]
    active = ctypes.CDLL(lib.__file__).pjsua_conf_get_active_ports
    loop = asyncio.new_event_loop()
    sys.setswitchinterval(0.02)  # the clock thread waits longer for the GIL: wider race
    for i in range(ROUNDS):
        ports = []
        for k in range(PORTS):
            p = FramePort(lambda frame: None, loop)
            p.createPort(f"rx-{i}-{k}", frame_format())
            ports.append(p)
        ep.libHandleEvents(25)  # the clock calls every port meanwhile
        del p
        while ports:
            x = 0
            for j in range(5000):  # hold the GIL, as the SIP thread's Python code does
                x += j
            ports.pop()  # the clock thread may be waiting for the GIL in its callback
    ep.libHandleEvents(100)
    left = active()
    ep.libDestroy()
    print("ports left", left)
    """
)


def test_frame_ports_dropped_while_the_clock_thread_calls_them():
    rounds, ports = 200, 8
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(rounds), str(ports)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    tail = (proc.stdout + proc.stderr)[-3000:]
    # before the fix: AttributeError on the dying port, then SIGSEGV within ~100 rounds
    assert proc.returncode == 0, tail
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, tail
    # every port left the conference bridge (only the bridge's own port 0 remains)
    assert "ports left 1" in proc.stdout, tail

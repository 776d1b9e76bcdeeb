"""A PJSUA2 user agent listening on SIP over TLS only, for the TLS tests (its own process).

It stands in for a PBX's TLS port: a TLS listener on 127.0.0.1 with the given server
certificate, no registrar (a REGISTER gets pjsip's 501), and an account that answers
every INVITE, plays a WAV to the caller and records what it hears. JSON events, one per
line on stdout: ready (port), tls (cipher suite and verify status of each connection),
incoming, state, media, recorded. Commands on stdin: {"cmd": "hangup"}, {"cmd": "quit"}.

    python tests/sip/tls_peer.py --cert server.crt --key server.key --play a.wav --record b.wav
        [--tls 1.2]     (TLS versions offered; default 1.2,1.3)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import sys
import time
import traceback
from typing import Any


def _emit(**ev: Any) -> None:
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def main() -> None:
    import pjsua2 as pj

    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--rtp-port", type=int, default=0)
    ap.add_argument("--play", default="")
    ap.add_argument("--record", default="")
    ap.add_argument("--tls", default="1.2,1.3", help="versions offered, e.g. 1.2")
    opts = ap.parse_args()

    class PeerEndpoint(pj.Endpoint):
        def onTransportState(self, prm: Any) -> None:  # noqa: N802
            info = prm.tlsInfo
            if not info.isEmpty() and info.established:
                # the negotiated version shows in the suite: TLS 1.3's are named TLS_*
                _emit(event="tls", cipher=info.cipherName, verify_status=info.verifyStatus)

    ep = PeerEndpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = False
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 2
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.jbInit = cfg.medConfig.jbMinPre = 10
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = "127.0.0.1"
    tcfg.tlsConfig.certFile = opts.cert
    tcfg.tlsConfig.privKeyFile = opts.key
    # pjsip's default (PJSIP_SSL_DEFAULT_PROTO) is TLS 1.0-1.2; a current PBX offers 1.3
    tcfg.tlsConfig.proto = 0
    for version in opts.tls.split(","):
        tcfg.tlsConfig.proto |= getattr(pj, "PJ_SSL_SOCK_PROTO_TLS" + version.replace(".", "_"))
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg)
    port = int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
    ep.libStart()
    ep.audDevManager().setNullDev()

    calls: list[Any] = []

    class PeerCall(pj.Call):
        aud: Any = None
        player: Any = None
        recorder: Any = None
        silence: Any = None

        def onCallState(self, prm: Any) -> None:  # noqa: N802
            ci = self.getInfo()
            _emit(event="state", state=ci.stateText, code=ci.lastStatusCode)
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.player = None
                if self.recorder is not None:
                    self.recorder = None  # closes the WAV file
                    _emit(event="recorded", path=opts.record)

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            try:
                self._media()
            except Exception:  # a director callback must not raise into pjsua
                traceback.print_exc()
                _emit(event="error", msg=traceback.format_exc(limit=1))

        def _media(self) -> None:
            ci = self.getInfo()  # keep it: ci.media is a view into it
            for mi in ci.media:
                if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                    continue
                if self.aud is not None:
                    continue
                self.aud = self.getAudioMedia(mi.index)
                self.silence = pj.ToneGenerator()
                self.silence.createToneGenerator(16000, 1)
                self.silence.startTransmit(self.aud)
                if opts.record:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(opts.record)
                    self.aud.startTransmit(self.recorder)
                if opts.play:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(opts.play, pj.PJMEDIA_FILE_NO_LOOP)
                    self.player.startTransmit(self.aud)
                si = self.getStreamInfo(mi.index)
                _emit(event="media", codec=si.codecName)

    class PeerAccount(pj.Account):
        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
            call = PeerCall(self, prm.callId)
            calls.append(call)
            _emit(event="incoming", remote=call.getInfo().remoteUri)
            op = pj.CallOpParam()
            op.statusCode = 200
            call.answer(op)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:pbx@127.0.0.1:{port};transport=tls"
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.port = opts.rtp_port
    acfg.mediaConfig.transportConfig.portRange = 20 if opts.rtp_port else 0
    acc = PeerAccount()
    acc.create(acfg)

    def hangup_all() -> None:
        for call in calls:
            with contextlib.suppress(pj.Error):
                call.hangup(pj.CallOpParam(True))

    _emit(event="ready", port=port, pid=os.getpid())
    running = True
    buf = ""
    while running:
        ep.libHandleEvents(10)
        if not select.select([sys.stdin], [], [], 0)[0]:
            continue
        chunk = os.read(sys.stdin.fileno(), 65536).decode()
        if not chunk:
            break
        buf += chunk
        while "\n" in buf:
            line, buf = buf.split("\n", 1)
            cmd = json.loads(line) if line.strip() else {}
            if cmd.get("cmd") == "quit":
                running = False
            elif cmd.get("cmd") == "hangup":
                hangup_all()
    hangup_all()
    end = time.monotonic() + 1
    while time.monotonic() < end:
        ep.libHandleEvents(10)
    calls.clear()  # every pjsua2 Call goes before the library
    acc.shutdown()
    ep.libDestroy()


if __name__ == "__main__":
    main()

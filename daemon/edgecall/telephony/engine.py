"""SIP-thread side of the telephony layer: account, calls, media wiring, timers.

Every method here runs on the PjRuntime thread (callbacks from pjsua2 and
commands submitted by `Telephony`). Results that the event loop needs go out as
events through `emit` or as loop futures resolved with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pjsua2 as pj

from edgecall.config.sip import SipConfig
from edgecall.telephony.account import SipAccount
from edgecall.telephony.call import SipCall
from edgecall.telephony.endpoint import PjRuntime, TelephonyError
from edgecall.telephony.events import (
    CallStateChanged,
    DtmfReceived,
    IncomingCall,
    MessageReceived,
    MessageResult,
    PlaybackFinished,
    QualitySample,
    RegistrationChanged,
    SipHeaderValue,
    TelephonyEvent,
    TransferResult,
)
from edgecall.telephony.media import AudioSink, FramePort, PromptPlayer, frame_format
from edgecall.telephony.outcome import call_outcome, match_rule
from edgecall.telephony.quality import RtpCounters, interval_figures
from edgecall.telephony.sip_headers import all_headers, header_values

log = logging.getLogger("edgecall.telephony")

_STATES = {
    pj.PJSIP_INV_STATE_CALLING: "calling",
    pj.PJSIP_INV_STATE_INCOMING: "incoming",
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONNECTING: "connecting",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}
_TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}
# Call slots asked for beyond max_concurrent_calls: an INVITE over the limit still gets a
# slot, so our own 486 answers it (and it is published), and a call still disconnecting
# does not hold up the next one. pjsua clamps the request to its PJSUA_MAX_CALLS.
_SPARE_CALL_SLOTS = 4
_SAFE_REASON = re.compile(r"[^\w .,:;/()+-]")


def library_max_calls() -> int:
    """Call slots pjsua granted this process: uaConfig.maxCalls clamped to the linked
    library's compile-time PJSUA_MAX_CALLS (third_party/pjproject/config_site.h for the
    build we make; 4 in the pjsua2-python wheel). Valid after libInit; the pjsua2 C++ API
    does not expose it, so it is read from the binding's own library."""
    lib = getattr(pj, "_pjsua2", None) or sys.modules["_pjsua2"]
    fn = ctypes.CDLL(lib.__file__).pjsua_call_get_max_count
    fn.restype = ctypes.c_uint
    return int(fn())


def _host_of(uri: str) -> str:
    """'sip:host:port;params' -> 'host:port'."""
    rest = uri.split(":", 1)[1] if uri.lower().startswith(("sip:", "sips:")) else uri
    return rest.split(";", 1)[0].split("@")[-1]


class SipEngine:
    def __init__(
        self,
        cfg: SipConfig,
        password: str,
        runtime: PjRuntime,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[TelephonyEvent], None],
        register_sink: Callable[[str, AudioSink], None],
        *,
        watch_headers: Sequence[str],
        auto_answer: bool,
        log_level: int,
    ) -> None:
        self.cfg = cfg
        self._password = password
        self.rt = runtime
        self.loop = loop
        self.emit = emit
        self._register_sink = register_sink
        self.watch = tuple(watch_headers)
        self.auto_answer = auto_answer
        self.log_level = log_level
        self.domain = cfg.domain or _host_of(cfg.registrar)
        self.acc: SipAccount | None = None
        self.silence: pj.ToneGenerator | None = None
        self.calls: dict[str, SipCall] = {}
        self.refused: dict[int, SipCall] = {}
        self.pending_messages: list[tuple[str, str, pj.Buddy, asyncio.Future]] = []
        self.closing = False
        self.registered = False
        self.local_port = 0
        self.transport_id = -1

    # -- URIs ------------------------------------------------------------------------------

    def _uri_params(self) -> str:
        return "" if self.cfg.transport == "udp" else f";transport={self.cfg.transport}"

    def target_uri(self, number_or_uri: str, prefix: str = "") -> str:
        if number_or_uri.lower().startswith(("sip:", "sips:")):
            return number_or_uri
        if not re.fullmatch(r"[0-9A-Za-z*#+._-]+", number_or_uri):
            raise TelephonyError(f"not a dialable number or SIP URI: {number_or_uri!r}")
        return f"sip:{prefix}{number_or_uri}@{self.domain}{self._uri_params()}"

    # -- startup ---------------------------------------------------------------------------

    def ep_config(self, cfg: pj.EpConfig) -> None:
        cfg.uaConfig.maxCalls = self.cfg.max_concurrent_calls + _SPARE_CALL_SLOTS
        if self.cfg.nat.stun_servers:
            cfg.uaConfig.stunServer = pj.StringVector(self.cfg.nat.stun_servers)
            cfg.uaConfig.stunIgnoreFailure = True
        med = cfg.medConfig
        med.clockRate = 16000
        med.sndClockRate = 16000
        med.channelCount = 1
        med.audioFramePtime = 20
        med.ptime = 20
        med.noVad = True
        med.ecTailLen = 0
        med.quality = 4
        med.threadCnt = 1
        # a busy edge box schedules media threads late now and then: keep enough queued
        # that a late tick is absorbed instead of becoming a concealed (inserted) frame
        med.jbInit = med.jbMinPre = max(1, self.cfg.jitter_buffer_ms // 20)
        med.maxMediaPorts = max(64, self.cfg.max_concurrent_calls * 6 + 8)

    def configure(self, ep: pj.Endpoint) -> None:
        """Transports, codecs, account; on failure releases what it made, then raises."""
        try:
            self._configure(ep)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Drop every pjsua2 object this engine holds (SIP thread, before libDestroy)."""
        self.rt.on_rejected_call = None
        self.calls.clear()
        self.refused.clear()
        self.pending_messages.clear()
        if self.acc is not None:
            with contextlib.suppress(pj.Error):
                self.acc.shutdown()
            self.acc = None
        self.silence = None
        gc.collect()

    def _configure(self, ep: pj.Endpoint) -> None:
        slots = library_max_calls()
        if slots < self.cfg.max_concurrent_calls:
            raise TelephonyError(
                f"sip.max_concurrent_calls is {self.cfg.max_concurrent_calls} but the linked "
                f"pjsua2 carries at most {slots} calls per process (its compile-time "
                "PJSUA_MAX_CALLS); lower it, or install the pjsua2 that "
                "third_party/build-pjsua2.sh builds"
            )
        self.rt.on_rejected_call = self.on_rejected_call
        ep.audDevManager().setNullDev()
        # Calls always send RTP, silence between prompts: PBXs drop calls on RTP timeout,
        # and a steady stream keeps the far end's jitter buffer settled for the prompt.
        self.silence = pj.ToneGenerator()
        self.silence.createToneGenerator(16000, 1)
        self._set_codecs(ep)
        tcfg = pj.TransportConfig()
        tcfg.port = self.cfg.local_port
        if self.cfg.bind_address not in ("0.0.0.0", ""):
            tcfg.boundAddress = self.cfg.bind_address
        if self.cfg.nat.public_address:
            tcfg.publicAddress = self.cfg.nat.public_address
        if self.cfg.transport == "tls":
            tls = self.cfg.tls
            assert tls is not None
            tcfg.tlsConfig.CaListFile = str(tls.ca_file or "")
            tcfg.tlsConfig.certFile = str(tls.cert_file or "")
            tcfg.tlsConfig.privKeyFile = str(tls.key_file or "")
            tcfg.tlsConfig.verifyServer = tls.verify_server
            # pjsip's compiled-in default (PJSIP_SSL_DEFAULT_PROTO) is TLS 1.0 to 1.2:
            # offer 1.2 and 1.3, which OpenSSL 3 supports, and nothing older
            tcfg.tlsConfig.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
        self.transport_id = ep.transportCreate(_TRANSPORTS[self.cfg.transport], tcfg)
        name = ep.transportGetInfo(self.transport_id).localName
        self.local_port = int(name.rsplit(":", 1)[1])
        self.acc = SipAccount(self)
        self.acc.create(self._account_config())
        log.info(
            "SIP %s transport on %s; registering %s at %s",
            self.cfg.transport,
            name,
            self.cfg.extension,
            self.cfg.registrar,
        )

    def _set_codecs(self, ep: pj.Endpoint) -> None:
        wanted = [c.upper() for c in self.cfg.codecs]
        for info in ep.codecEnum2():
            name = info.codecId.split("/")[0].upper()
            prio = 250 - 10 * wanted.index(name) if name in wanted else 0
            ep.codecSetPriority(info.codecId, prio)

    def _account_config(self) -> pj.AccountConfig:
        c = self.cfg
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{c.extension}@{self.domain}"
        reg = acfg.regConfig
        reg.registrarUri = c.registrar + self._uri_params()
        reg.timeoutSec = c.register_expiry_s
        reg.retryIntervalSec = c.register_retry_s
        reg.firstRetryIntervalSec = min(c.register_retry_s, 5)
        reg.delayBeforeRefreshSec = min(5, c.register_expiry_s // 3)
        reg.dropCallsOnFail = False
        reg.unregWaitMsec = 2000
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", c.auth_user or c.extension, 0, self._password)
        )
        acfg.sipConfig.transportId = self.transport_id
        media = acfg.mediaConfig.transportConfig
        media.port = c.rtp_port_min
        media.portRange = c.rtp_port_max - c.rtp_port_min
        if c.bind_address not in ("0.0.0.0", ""):
            media.boundAddress = c.bind_address
        if c.nat.public_address:
            media.publicAddress = c.nat.public_address
        nat = acfg.natConfig
        stun = pj.PJSUA_STUN_USE_DEFAULT if c.nat.stun_servers else pj.PJSUA_STUN_USE_DISABLED
        nat.sipStunUse = stun
        nat.mediaStunUse = stun
        if c.nat.public_address:
            nat.contactRewriteUse = 0
            nat.viaRewriteUse = 0
        acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
        return acfg

    def shutdown(self) -> None:
        """Hang up, unregister, drop every pjsua2 object; runs on the SIP thread."""
        self.closing = True
        for call in list(self.calls.values()):
            if not call.disconnected:
                self._hangup(call, "shutdown")
        self.rt.pump(3.0, until=lambda: all(c.disconnected for c in self.calls.values()))
        for call in list(self.calls.values()):
            self._forget(call)
        if self.acc is not None:
            if self.registered:
                try:
                    self.acc.setRegistration(False)
                    self.rt.pump(3.0, until=lambda: not self.registered)
                except pj.Error as exc:
                    log.warning("unregister failed: %s", exc.info())
            self.acc.shutdown()
            self.acc = None
        for _, _, _, fut in self.pending_messages:
            self._resolve(fut, MessageResult("", 0, "telephony stopped"))
        # pjsua2 objects caught in reference cycles must die here, before libDestroy and
        # on this thread, not later in whichever thread the garbage collector runs.
        self.release()

    # -- registration ----------------------------------------------------------------------

    def on_reg_state(self, prm: pj.OnRegStateParam) -> None:
        assert self.acc is not None
        info = self.acc.getInfo()
        registered = bool(info.regIsActive) and prm.code // 100 == 2 and prm.expiration > 0
        self.registered = registered
        level = logging.INFO if registered or prm.code // 100 == 2 else logging.WARNING
        log.log(
            level,
            "registration of %s: %s %s (expires %ss)",
            self.cfg.extension,
            prm.code,
            prm.reason,
            prm.expiration,
        )
        self.emit(
            RegistrationChanged(
                registered, int(prm.code), str(prm.reason), int(prm.expiration) if registered else 0
            )
        )

    # -- inbound ---------------------------------------------------------------------------

    def _new_sink(self, key_ref: list[str]) -> AudioSink:
        def barge() -> None:  # runs on the loop thread
            if self.rt.running and key_ref:
                self.rt.submit(lambda: self.stop_prompt(key_ref[0], "barge_in"))

        return AudioSink(
            self.cfg.audio_queue_frames,
            barge,
            self.cfg.barge_in_level_dbfs,
            self.cfg.barge_in_min_ms,
        )

    def on_incoming_call(self, prm: pj.OnIncomingCallParam) -> None:
        assert self.acc is not None
        key_ref: list[str] = []
        call = SipCall(self.acc, self, "inbound", self._new_sink(key_ref), prm.callId)
        info = call.getInfo()
        call.key = info.callIdString
        key_ref.append(call.key)
        self.loop.call_soon_threadsafe(self._register_sink, call.key, call.sink)
        call.remote_uri = info.remoteUri
        message = prm.rdata.wholeMsg
        headers = all_headers(message)
        op = pj.CallOpParam()
        if self.closing or len(self.calls) >= self.cfg.max_concurrent_calls:
            log.warning(
                "call %s from %s refused: 486 Busy Here (%d calls active)",
                call.key,
                info.remoteUri,
                len(self.calls),
            )
            self.refused[info.id] = call
            call.rejected_locally = True
            self.emit(
                IncomingCall(
                    call.key, info.remoteUri, info.localUri, headers, None, refused_busy=True
                )
            )
            op.statusCode = 486
            call.hangup(op)
            return
        self.calls[call.key] = call
        rule = (
            match_rule(self.cfg.auto_answer, info.remoteUri, info.localUri)
            if self.auto_answer
            else None
        )
        log.info("incoming call %s from %s (rule %s)", call.key, info.remoteUri, rule)
        self.emit(IncomingCall(call.key, info.remoteUri, info.localUri, headers, rule))
        self._emit_watched(call, message, "INVITE")
        op.statusCode = 180
        call.answer(op)
        if not self.auto_answer:
            return
        if rule is None or not self.cfg.auto_answer[rule].answer:
            self.reject(call.key, 603)
            return
        delay = self.cfg.auto_answer[rule].delay_ms / 1000
        key = call.key  # timers hold keys, never Call objects (see _forget)
        self.rt.schedule(delay, lambda: self._auto_answer(key))

    def on_rejected_call(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        """pjsua answered an INVITE itself (no free call slot): publish it like our 486s."""
        headers = all_headers(prm.rdata.wholeMsg)
        key = headers.get("Call-ID") or headers.get("i") or f"refused-{time.monotonic_ns()}"
        code, reason = int(prm.statusCode), str(prm.reason)
        log.warning(
            "call %s from %s refused by the SIP stack: %s %s", key, prm.remoteInfo, code, reason
        )
        self.emit(
            IncomingCall(
                key, str(prm.remoteInfo), str(prm.localInfo), headers, None, refused_busy=True
            )
        )
        outcome = "busy" if code in (486, 600) else "rejected"
        self.emit(
            CallStateChanged(
                key, "inbound", "disconnected", code, reason, str(prm.remoteInfo), outcome, "local"
            )
        )

    def _auto_answer(self, key: str) -> None:
        call = self.calls.get(key)
        if call is not None and not call.disconnected and not call.confirmed:
            try:
                self.answer(key)
            except TelephonyError as exc:
                log.warning("auto-answer of %s failed: %s", key, exc)

    def _call(self, key: str) -> SipCall:
        call = self.calls.get(key)
        if call is None or call.disconnected:
            raise TelephonyError(f"no active call {key!r}")
        return call

    def answer(self, key: str) -> None:
        call = self._call(key)
        if call.direction != "inbound":
            raise TelephonyError("only inbound calls can be answered")
        op = pj.CallOpParam()
        op.statusCode = 200
        call.answer(op)

    def reject(self, key: str, code: int) -> None:
        call = self._call(key)
        if call.confirmed or call.direction != "inbound":
            raise TelephonyError("only a ringing inbound call can be rejected")
        call.rejected_locally = True
        call.ended_by = "local"
        op = pj.CallOpParam()
        op.statusCode = code
        call.hangup(op)

    # -- outbound --------------------------------------------------------------------------

    def originate(self, number: str, headers: dict[str, str] | None = None) -> str:
        if self.closing:
            raise TelephonyError("telephony is shutting down")
        if len(self.calls) >= self.cfg.max_concurrent_calls:
            raise TelephonyError(f"{len(self.calls)} calls active, the configured maximum")
        assert self.acc is not None
        uri = self.target_uri(number, self.cfg.dial_prefix)
        key_ref: list[str] = []
        call = SipCall(self.acc, self, "outbound", self._new_sink(key_ref))
        call.remote_uri = uri
        op = pj.CallOpParam(True)
        for name, value in (headers or {}).items():
            h = pj.SipHeader()
            h.hName, h.hValue = name, value
            op.txOption.headers.append(h)
        call.makeCall(uri, op)
        key = call.key or call.getInfo().callIdString
        call.key = key
        key_ref.append(key)
        self.loop.call_soon_threadsafe(self._register_sink, key, call.sink)
        if call.disconnected:  # failed at once; its events are already out
            return key
        self.calls[key] = call
        log.info("outbound call %s to %s", key, uri)
        self.rt.schedule(self.cfg.ring_timeout_s, lambda: self._ring_timeout(key))
        return key

    def _ring_timeout(self, key: str) -> None:
        call = self.calls.get(key)
        if call is not None and not call.confirmed and not call.disconnected:
            log.info("call %s not answered within %ss", key, self.cfg.ring_timeout_s)
            call.ring_timed_out = True
            self._hangup(call, "no answer")

    # -- actions on a call -----------------------------------------------------------------

    def hangup(self, key: str, reason: str) -> None:
        self._hangup(self._call(key), reason)

    def _hangup(self, call: SipCall, reason: str) -> None:
        call.ended_by = call.ended_by or "local"
        op = pj.CallOpParam(True)
        if call.direction == "inbound" and not call.confirmed:
            op.statusCode = 603
            call.rejected_locally = True
        text = _SAFE_REASON.sub("", reason)[:100]
        if text and call.confirmed:
            h = pj.SipHeader()
            h.hName, h.hValue = "Reason", f'Q.850;cause=16;text="{text}"'
            op.txOption.headers.append(h)
        try:
            call.hangup(op)
        except pj.Error as exc:
            log.warning("hangup of %s: %s", call.key, exc.info())

    def play(self, key: str, wav: str, barge_in: bool, fut: asyncio.Future) -> None:
        call = self._call(key)
        if call.player is not None:
            self.stop_prompt(key, "replaced")
        call.prompt_token += 1
        token = call.prompt_token
        player = PromptPlayer(lambda: self.rt.submit(lambda: self._prompt_eof(key, token)))
        try:
            player.createPlayer(wav, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            raise TelephonyError(f"cannot play {wav}: {exc.reason}") from None
        call.player, call.prompt_wav, call.prompt_future = player, wav, fut
        if call.audio is not None:
            player.startTransmit(call.audio)
        self.loop.call_soon_threadsafe(call.sink.arm_barge_in, barge_in)
        log.info("call %s: playing %s%s", key, wav, " (barge-in)" if barge_in else "")

    def _prompt_eof(self, key: str, token: int) -> None:
        call = self.calls.get(key)
        if call is not None and call.prompt_token == token:
            self.stop_prompt(key, "completed")

    def stop_prompt(self, key: str, reason: str) -> bool:
        call = self.calls.get(key)
        if call is None or call.player is None:
            return False
        player, call.player = call.player, None
        if call.audio is not None and not call.disconnected:
            with contextlib.suppress(pj.Error):
                player.stopTransmit(call.audio)
        self.loop.call_soon_threadsafe(call.sink.arm_barge_in, False)
        # destroy the player outside its own callback, on a later iteration
        self.rt.schedule(0, lambda: player)
        log.info("call %s: prompt %s ended (%s)", key, call.prompt_wav, reason)
        self.emit(PlaybackFinished(key, call.prompt_wav, reason))  # type: ignore[arg-type]
        if call.prompt_future is not None:
            self._resolve(call.prompt_future, reason)
            call.prompt_future = None
        return True

    def transfer(self, key: str, target: str, fut: asyncio.Future) -> None:
        call = self._call(key)
        if not call.confirmed:
            raise TelephonyError("only a connected call can be transferred")
        if call.transfer_future is not None:
            raise TelephonyError("a transfer of this call is already in progress")
        uri = self.target_uri(target)
        call.transfer_target, call.transfer_future = target, fut
        log.info("call %s: blind transfer to %s", key, uri)
        try:
            call.xfer(uri, pj.CallOpParam(True))
        except pj.Error:
            call.transfer_future = None
            raise

    def on_transfer_status(self, call: SipCall, prm: pj.OnCallTransferStatusParam) -> None:
        code = int(prm.statusCode)
        if not prm.finalNotify and code < 200:
            return
        prm.cont = False
        result = TransferResult(call.key, call.transfer_target, code, str(prm.reason))
        log.info(
            "call %s: transfer to %s -> %s %s", call.key, call.transfer_target, code, prm.reason
        )
        self.emit(result)
        if call.transfer_future is not None:
            self._resolve(call.transfer_future, result)
            call.transfer_future = None
        if result.ok:
            call.transferred = True
            self._hangup(call, "transferred")

    def send_message(self, number_or_uri: str, text: str, fut: asyncio.Future) -> None:
        assert self.acc is not None
        uri = self.target_uri(number_or_uri)
        buddy = pj.Buddy()
        bcfg = pj.BuddyConfig()
        bcfg.uri = uri
        bcfg.subscribe = False
        buddy.create(self.acc, bcfg)
        prm = pj.SendInstantMessageParam()
        prm.content = text
        prm.contentType = "text/plain;charset=UTF-8"
        buddy.sendInstantMessage(prm)
        self.pending_messages.append((uri, text, buddy, fut))
        log.info("MESSAGE to %s (%d chars)", uri, len(text))

    def on_instant_message_status(self, prm: pj.OnInstantMessageStatusParam) -> None:
        to, body = str(prm.toUri), str(prm.msgBody)
        for i, (uri, text, buddy, fut) in enumerate(self.pending_messages):
            if uri in to and text == body:
                del self.pending_messages[i]
                self.rt.schedule(0, lambda b=buddy: b)  # drop the buddy on a later iteration
                result = MessageResult(uri, int(prm.code), str(prm.reason))
                log.log(
                    logging.INFO if result.ok else logging.WARNING,
                    "MESSAGE to %s -> %s %s",
                    uri,
                    prm.code,
                    prm.reason,
                )
                self.emit(result)
                self._resolve(fut, result)
                return

    def on_instant_message(self, prm: pj.OnInstantMessageParam) -> None:
        self.emit(MessageReceived(str(prm.fromUri), str(prm.msgBody), str(prm.contentType)))

    # -- call callbacks --------------------------------------------------------------------

    def on_call_state(self, call: SipCall) -> None:
        info = call.getInfo()
        if not call.key:
            call.key = info.callIdString
        state = _STATES.get(info.state)
        if state is None:
            return
        if state == "confirmed":
            call.confirmed = True
        outcome = ended_by = None
        if state == "disconnected":
            if call.disconnected:
                return
            call.disconnected = True
            outcome = call_outcome(
                call.direction,
                confirmed=call.confirmed,
                code=int(info.lastStatusCode),
                ring_timed_out=call.ring_timed_out,
                transferred=call.transferred,
                rejected_locally=call.rejected_locally,
            )
            ended_by = call.ended_by or "remote"
            log.info(
                "call %s ended: %s (%s %s, by %s)",
                call.key,
                outcome,
                info.lastStatusCode,
                info.lastReason,
                ended_by,
            )
        self.emit(
            CallStateChanged(
                call.key,
                call.direction,
                state,
                int(info.lastStatusCode),  # type: ignore[arg-type]
                str(info.lastReason),
                info.remoteUri,
                outcome,
                ended_by,
            )
        )  # type: ignore[arg-type]
        if state == "disconnected":
            # Release it now, while pjsua still owns the call slot: a pjsua2 Call destroyed
            # after its slot was reused detaches (and hangs up) the new call in that slot.
            self._forget(call)

    def _forget(self, call: SipCall) -> None:
        """Release a disconnected call and its media objects (SIP thread).

        After this no reference to the SipCall may remain: pjsua2's Call destructor
        detaches and hangs up whatever call holds its slot id at that moment, which is
        a new call once pjsua has reused the slot. Hence timers capture call keys only.
        """
        if call.player is not None:
            self.stop_prompt(call.key, "hangup")
        if call.transfer_future is not None:
            self._resolve(
                call.transfer_future,
                TransferResult(call.key, call.transfer_target, 487, "call ended"),
            )
            call.transfer_future = None
        self.loop.call_soon_threadsafe(call.sink.close)
        call.port = None
        call.audio = None
        if self.calls.get(call.key) is call:
            del self.calls[call.key]
        self.refused = {k: c for k, c in self.refused.items() if c is not call}

    def on_call_media_state(self, call: SipCall) -> None:
        info = call.getInfo()
        for mi in info.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            aud = call.getAudioMedia(mi.index)
            call.audio, call.audio_index = aud, mi.index
            if call.port is None:
                port = FramePort(call.sink.deliver, self.loop)
                port.createPort(f"rx-{info.id}-{call.key[:8]}", frame_format())
                call.port = port
            aud.startTransmit(call.port)
            self.silence.startTransmit(aud)
            if call.player is not None:
                call.player.startTransmit(aud)
            return

    def on_dtmf(self, call: SipCall, digit: str) -> None:
        self.emit(DtmfReceived(call.key, str(digit)))

    def on_tsx_state(self, call: SipCall, prm: pj.OnCallTsxStateParam) -> None:
        if not self.watch:
            return
        e = prm.e
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        ts = e.body.tsxState
        if ts.type != pj.PJSIP_EVENT_RX_MSG:
            return
        tsx = ts.tsx
        if tsx.role == pj.PJSIP_ROLE_UAS:
            if tsx.state != pj.PJSIP_TSX_STATE_TRYING:
                return
            label = tsx.method
        else:
            label = f"{tsx.statusCode} {tsx.method}"
        self._emit_watched(call, ts.src.rdata.wholeMsg, label)

    def _emit_watched(self, call: SipCall, message: str, label: str) -> None:
        for name, value in header_values(message, self.watch):
            self.emit(SipHeaderValue(call.key, name, value, label))

    # -- once a second ---------------------------------------------------------------------

    def sample_quality(self) -> None:
        now = time.monotonic()
        for call in list(self.calls.values()):
            if not call.confirmed or call.disconnected or call.audio_index < 0:
                continue
            try:
                st = call.getStreamStat(call.audio_index)
                codec = call.getStreamInfo(call.audio_index).codecName
            except pj.Error:
                continue
            rx = st.rtcp.rxStat
            rtt = st.rtcp.rttUsec
            cur = RtpCounters(
                rx_packets=int(rx.pkt),
                rx_lost=int(rx.loss),
                rx_discarded=int(st.jbuf.discard),
                jitter_ms=rx.jitterUsec.last / 1000.0,
                rtt_ms=rtt.last / 1000.0 if rtt.n > 0 else None,
                jbuf_delay_ms=float(st.jbuf.avgDelayMsec),
            )
            fig = interval_figures(call.prev_counters, cur, codec)
            call.prev_counters = cur
            if fig.rx_packets == 0:
                call.silent_seconds += 1
                if call.silent_seconds in (2, 10) or call.silent_seconds % 60 == 0:
                    log.warning("call %s: no RTP received for %d s", call.key, call.silent_seconds)
            else:
                call.silent_seconds = 0
            self.emit(
                QualitySample(
                    **dataclasses.asdict(fig),
                    call_id=call.key,
                    monotonic_s=now,
                    codec=codec,
                    frames_dropped=call.sink.dropped,
                )
            )

    # -- helpers ---------------------------------------------------------------------------

    def _resolve(self, fut: asyncio.Future, value: Any) -> None:
        def setter() -> None:
            if not fut.done():
                fut.set_result(value)

        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(setter)

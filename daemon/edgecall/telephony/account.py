"""The pjsua2 Account subclass: forwards registration, incoming calls and MESSAGEs.

Only the SIP-thread side (`SipEngine` in service.py) receives these callbacks.
"""

from __future__ import annotations

from typing import Protocol

import pjsua2 as pj


class AccountHandler(Protocol):
    def on_reg_state(self, prm: pj.OnRegStateParam) -> None: ...
    def on_incoming_call(self, prm: pj.OnIncomingCallParam) -> None: ...
    def on_instant_message(self, prm: pj.OnInstantMessageParam) -> None: ...
    def on_instant_message_status(self, prm: pj.OnInstantMessageStatusParam) -> None: ...


class SipAccount(pj.Account):
    def __init__(self, handler: AccountHandler) -> None:
        super().__init__()
        self._handler = handler

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802 - pjsua2 API
        self._handler.on_reg_state(prm)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self._handler.on_incoming_call(prm)

    def onInstantMessage(self, prm: pj.OnInstantMessageParam) -> None:  # noqa: N802
        self._handler.on_instant_message(prm)

    def onInstantMessageStatus(self, prm: pj.OnInstantMessageStatusParam) -> None:  # noqa: N802
        self._handler.on_instant_message_status(prm)

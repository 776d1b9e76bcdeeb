"""The call controller's `Analyzer`, served by the inference worker processes.

Each chunk of caller audio is one request (high priority: losing it loses words),
kept on one worker per call; results that did not arrive (timeout, worker
crash, overload) are logged with their reason and the call goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from edgecall.calls import HeardUtterance
from edgecall.inference.protocol import Priority
from edgecall.inference.worker import InferenceClient

log = logging.getLogger("edgecall.analysis")

# A long utterance is transcribed when its end is heard: allow for that on a busy box.
FEED_TIMEOUT_S = 15.0


class InferenceAnalyzer:
    def __init__(
        self,
        client: InferenceClient,
        languages: Collection[str],
        timeout_s: float = FEED_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._languages = frozenset(languages)  # those an ASR model in config.yaml covers
        self._timeout_s = timeout_s
        self._unheard: set[str] = set()  # calls in a language no model covers
        self.missing = 0  # chunks whose analysis never came back

    def _covered(self, call_id: str, language: str) -> bool:
        if language in self._languages:
            return True
        if call_id not in self._unheard:
            self._unheard.add(call_id)
            log.warning(
                "no ASR model for language %r (models.asr covers %s): the caller's words "
                "are not analysed",
                language,
                sorted(self._languages),
                extra={"call_id": call_id},
            )
        return False

    async def feed(self, call_id: str, pcm: bytes, language: str) -> list[HeardUtterance]:
        if not self._covered(call_id, language):
            return []
        result = await self._client.call(
            "analysis",
            "feed",
            {"call_id": call_id, "language": language},
            audio=pcm,
            timeout=self._timeout_s,
            priority=Priority.HIGH,
            key=call_id,
        )
        return self._heard(call_id, result)

    async def flush(self, call_id: str, language: str) -> list[HeardUtterance]:
        if not self._covered(call_id, language):
            return []
        result = await self._client.call(
            "analysis",
            "flush",
            {"call_id": call_id, "language": language},
            timeout=self._timeout_s,
            priority=Priority.HIGH,
            key=call_id,
        )
        return self._heard(call_id, result)

    async def close_call(self, call_id: str) -> None:
        if call_id in self._unheard:
            self._unheard.discard(call_id)
            return
        await self._client.call(
            "analysis",
            "close",
            {"call_id": call_id},
            priority=Priority.LOW,
            key=call_id,
            last_for_key=True,
        )

    def _heard(self, call_id: str, result: Any) -> list[HeardUtterance]:
        if result.status != "ok":
            self.missing += 1
            log.warning("analysis %s: %s", result.status, result.reason, extra={"call_id": call_id})
            return []
        heard = []
        for u in result.value:
            if u["missing"]:
                log.info(
                    "utterance estimates missing: %s", u["missing"], extra={"call_id": call_id}
                )
            heard.append(HeardUtterance(u["text"], u["end_s"], u["acoustic"], u["text_score"]))
        return heard

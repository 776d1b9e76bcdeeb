"""Tiny handlers the inference tests register with the worker (imported in the worker)."""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path
from typing import Any


class EchoHandler:
    """Answers from its arguments; some methods misbehave on purpose."""

    def load(self, config: Any) -> None:
        self.config = config

    def echo(self, value: Any = None) -> Any:
        return value

    def config_value(self) -> Any:
        return self.config

    def pid(self) -> int:
        return os.getpid()

    def pcm(self, audio: Any) -> dict[str, Any]:
        return {"samples": int(audio.size), "dtype": str(audio.dtype), "sum": int(audio.sum())}

    def boom(self) -> None:
        raise RuntimeError("boom on purpose")

    def sleep(self, seconds: float, marker: str | None = None) -> float:
        if marker:  # tells a test the worker is now inside the handler
            Path(marker).touch()
        time.sleep(seconds)
        return seconds

    def spin(self, seconds: float) -> int:
        """Pure-Python CPU work holding the worker's GIL, like a model in Python would."""
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            n += sum(i * i for i in range(200))
        return n

    def worker_only(self) -> Any:
        """An object of a class that exists only in the worker process."""
        module = types.ModuleType("edgecall_worker_only")
        exec("class Thing:\n    pass\n", module.__dict__)
        sys.modules[module.__name__] = module
        return module.Thing()

    def exit_now(self, code: int = 3) -> None:
        os._exit(code)

    def unpicklable(self) -> Any:
        return lambda: None


class BrokenLoadHandler:
    """A model whose file is missing."""

    def load(self, config: Any) -> None:
        raise FileNotFoundError("no such model file: /nonexistent/model.onnx")

    def run(self) -> str:
        return "never"


class SlowLoadHandler:
    def load(self, config: Any) -> None:
        time.sleep(3.0)

    def ready(self) -> bool:
        return True

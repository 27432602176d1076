"""Run untrusted (model-written) Python in an isolated, single-use child process.

`Sandbox.run(code)` -> `SandboxResult`; `Sandbox.check()` -> the isolation layers found.
See service.py for the lifecycle and launch.py for the layers.
"""

from __future__ import annotations

from core.sandbox.limits import SandboxLimits
from core.sandbox.result import Layer, SandboxResult, Status
from core.sandbox.service import Sandbox

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "Layer", "Status"]

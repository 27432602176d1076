"""One process-wide lock around transformers/peft model loading.

`from_pretrained` initialises modules on the meta device by patching process-global state,
so two loads on two threads at once can corrupt each other ("lm_head MISSING", then "cannot
call item() on meta tensors": seen when the encoder and the chat model loaded together). Loads
are rare and slow anyway; serialising them costs nothing that matters. This lock is the one
piece of module-level state we keep on purpose: it guards a library's global, not ours.
"""

from __future__ import annotations

import threading

__all__ = ["HF_LOAD_LOCK"]

HF_LOAD_LOCK = threading.RLock()

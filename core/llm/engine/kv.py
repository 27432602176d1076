"""A KV cache for continuous batching: sequences right-aligned in one preallocated buffer.

Every row of the batch ends at the same column, so a decode step is one forward pass over
`[batch, 1]` tokens. Shorter rows are left-padded; the attention mask hides the padding and
explicit position ids keep RoPE positions true to each sequence. Requests join (`add_row`)
and leave (`keep_rows`) between steps; leading columns that became padding everywhere are
trimmed so a long finished request does not tax the others.

Buffers grow in chunks instead of `torch.cat` per token (transformers' DynamicLayer), which
would copy the whole cache at every step. They may be stored in a narrower dtype than the
model computes in (fp16 for the native decode attention, `core.llm.engine.native`); transformers'
forward then reads fp32 copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

__all__ = ["BatchKV"]

GROW_TOKENS = 64  # capacity added at a time (8 rows x 192 more were 18-35 MB of slack)
TRIM_MIN_COLUMNS = 32  # trim leading padding once at least this many columns are dead


class _BufferLayer(DynamicLayer):
    """One layer's K/V in `[batch, heads, capacity, head_dim]` buffers; `length` columns used."""

    def __init__(self, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.dtype = dtype  # storage dtype (None: the incoming states')
        self.k_buf: torch.Tensor | None = None
        self.v_buf: torch.Tensor | None = None
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        """transformers' entry point: append, return the whole K/V in the states' dtype."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self._extend(key_states.shape[-2], key_states)
        self.k_buf[:, :, start : self.length] = key_states  # cast to the storage dtype
        self.v_buf[:, :, start : self.length] = value_states
        if self.keys.dtype != key_states.dtype:
            return self.keys.to(key_states.dtype), self.values.to(key_states.dtype)
        return self.keys, self.values

    def add_column(self) -> int:
        """Make room for one more column and count it; the caller writes it (the native
        decode layer). Returns its index."""
        assert self.k_buf is not None, "add_column extends existing rows"
        return self._extend(1, self.k_buf)

    def _extend(self, n: int, like: torch.Tensor) -> int:
        """Count `n` more columns (growing the buffers if needed); returns the first one."""
        self._reserve(self.length + n, like)
        self.length += n
        self._expose()
        return self.length - n

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def set(self, k_buf: torch.Tensor, v_buf: torch.Tensor, length: int) -> None:
        self.k_buf, self.v_buf, self.length = k_buf, v_buf, length
        self.is_initialized = True
        self.device = k_buf.device
        self._expose()

    def _reserve(self, needed: int, like: torch.Tensor) -> None:
        if self.k_buf is not None and self.k_buf.shape[2] >= needed:
            return
        if self.k_buf is not None:
            like = self.k_buf
        b, h, _, d = like.shape
        capacity = needed + GROW_TOKENS
        k = like.new_zeros((b, h, capacity, d), dtype=self.dtype or like.dtype)
        v = like.new_zeros((b, h, capacity, d), dtype=self.dtype or like.dtype)
        if self.k_buf is not None:
            k[:, :, : self.length] = self.k_buf[:, :, : self.length]
            v[:, :, : self.length] = self.v_buf[:, :, : self.length]
        self.k_buf, self.v_buf = k, v

    def _expose(self) -> None:
        self.keys = self.k_buf[:, :, : self.length]
        self.values = self.v_buf[:, :, : self.length]


class BatchKV:
    """The batch's cache plus the bookkeeping a decode step needs (mask, positions)."""

    def __init__(self, num_layers: int, dtype: torch.dtype | None = None) -> None:
        """`dtype`: how K/V are stored (None: as the model computes them)."""
        self.num_layers = num_layers
        self.dtype = dtype
        self._reset()

    def _reset(self) -> None:
        self.cache = DynamicCache()
        self.cache.layers = [_BufferLayer(self.dtype) for _ in range(self.num_layers)]
        self.mask: torch.Tensor | None = None  # [batch, length] 1 = real token, 0 = padding
        self.real_lengths: list[int] = []  # real tokens per row (= next RoPE position)

    @property
    def rows(self) -> int:
        return len(self.real_lengths)

    @property
    def length(self) -> int:
        return self.cache.layers[0].length if self.rows else 0

    def add_row(self, prefill: DynamicCache | Sequence[tuple[torch.Tensor, ...]]) -> None:
        """Append one sequence whose prompt was prefilled alone into `prefill` (batch of 1)."""
        self.add_rows([prefill])

    def add_rows(
        self, prefills: Sequence[DynamicCache | Sequence[tuple[torch.Tensor, ...]]]
    ) -> None:
        """Append sequences prefilled alone (each a batch of 1: a DynamicCache or per-layer
        (k, v) pairs); the existing buffers are copied once for all of them."""
        news = [[(k, v) for k, v, *_rest in prefill] for prefill in prefills]
        new_lens = [layers[0][0].shape[-2] for layers in news]
        width = max(self.length, *new_lens)
        for i, layer in enumerate(self.cache.layers):
            like = news[0][i][0]
            k_buf, v_buf = self._widened(layer, width, like)
            shape = (len(news), *k_buf.shape[1:])
            rows_k, rows_v = k_buf.new_zeros(shape), k_buf.new_zeros(shape)
            for row, (layers, n) in enumerate(zip(news, new_lens)):
                k_new, v_new = layers[i]
                rows_k[row, :, width - n : width] = k_new[0]
                rows_v[row, :, width - n : width] = v_new[0]
            if self.rows:
                rows_k, rows_v = torch.cat([k_buf, rows_k]), torch.cat([v_buf, rows_v])
            layer.set(rows_k, rows_v, width)
        device = news[0][0][0].device
        columns = torch.arange(width, device=device)
        lengths = torch.tensor(new_lens, device=device).unsqueeze(1)
        rows_mask = (columns >= width - lengths).long()  # right-aligned: padding on the left
        old_mask = self._widened_mask(width, rows_mask)
        self.mask = rows_mask if old_mask is None else torch.cat([old_mask, rows_mask])
        self.real_lengths.extend(new_lens)

    def append_step(self) -> None:
        """Account for the token every row just wrote (the model already extended the buffers)."""
        ones = self.mask.new_ones((self.rows, 1))
        self.mask = torch.cat([self.mask, ones], dim=1)
        self.real_lengths = [n + 1 for n in self.real_lengths]

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention_mask including the incoming token, position_ids) for one decode step."""
        ones = self.mask.new_ones((self.rows, 1))
        positions = torch.tensor(self.real_lengths, device=self.mask.device).unsqueeze(1)
        return torch.cat([self.mask, ones], dim=1), positions

    def decode_bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        """Additive attention bias [batch, 1, 1, length + 1] for one decode step (the new
        token included), or None when no row has padding. Built once, shared by all layers."""
        if all(n == self.length for n in self.real_lengths):  # rows are right-aligned
            return None
        bias = torch.zeros((self.rows, 1, 1, self.length + 1), dtype=dtype, device=self.mask.device)
        bias[:, 0, 0, :-1].masked_fill_(self.mask == 0, torch.finfo(dtype).min)
        return bias

    def keep_rows(self, keep: list[int]) -> None:
        """Keep only these rows (in this order); trim padding columns no row needs any more."""
        if len(keep) == self.rows:
            return
        if not keep:
            self._reset()
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.real_lengths = [self.real_lengths[i] for i in keep]
        self.mask = self.mask.index_select(0, index)
        dead = self.length - max(self.real_lengths)
        start = dead if dead >= TRIM_MIN_COLUMNS else 0
        for layer in self.cache.layers:
            k = layer.k_buf.index_select(0, index)[:, :, start:]
            v = layer.v_buf.index_select(0, index)[:, :, start:]
            layer.set(k.contiguous(), v.contiguous(), layer.length - start)
        self.mask = self.mask[:, start:]

    def _widened(self, layer: _BufferLayer, width: int, like: torch.Tensor):
        """Existing buffers, shifted right so that they end at `width` (empty if no rows)."""
        if self.rows == 0:
            shape = (0, like.shape[1], width + GROW_TOKENS, like.shape[3])
            dtype = self.dtype or like.dtype
            return like.new_zeros(shape, dtype=dtype), like.new_zeros(shape, dtype=dtype)
        shift = width - layer.length
        if shift == 0:
            return layer.k_buf, layer.v_buf
        b, h, _, d = layer.k_buf.shape
        k = layer.k_buf.new_zeros((b, h, width + GROW_TOKENS, d))
        v = layer.v_buf.new_zeros((b, h, width + GROW_TOKENS, d))
        k[:, :, shift:width] = layer.k_buf[:, :, : layer.length]
        v[:, :, shift:width] = layer.v_buf[:, :, : layer.length]
        return k, v

    def _widened_mask(self, width: int, like: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None or self.rows == 0:
            return None
        shift = width - self.mask.shape[1]
        if shift == 0:
            return self.mask
        pad = like.new_zeros((self.rows, shift))
        return torch.cat([pad, self.mask], dim=1)

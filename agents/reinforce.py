"""The paper's meta-controller: a BiLSTM encoder, wider and deeper actors, REINFORCE.

Cai et al. (AAAI 2018): each layer is one token (``conv-f-k``, ``pool``, ``fc-u``), embedded in
16 dimensions and read by a one-layer BiLSTM with 50 units per direction. The wider actor is one
shared sigmoid per layer (widen or not; masked layers never widen). The deeper actor is an LSTM
decoder (100 units) started from the encoder's final state that makes three masked choices in
turn: the block, the position in the block, the kernel (skipped after an FC). Episodes run in
batches of environments (the paper: 10); after each batch one REINFORCE step is made on the
episode returns minus a moving baseline ``b <- b + 0.95 (mean_return - b)``, with Adam (lr 2e-3)
and an entropy bonus (weight 1e-5). No discount.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from agents.base import split_masks
from eas_gym.net2net import LayerKind

__all__ = ["Controller", "Reinforce"]

_T = TypeVar("_T")


class Controller(nn.Module):
    """The BiLSTM encoder with the wider and deeper actors.

    Args:
        num_widths: Entries of the observation's width index (W).
        num_kernels: Kernels the space allows (K).
        max_layers: Layer slots (L); also bounds blocks and positions per block.
        embed: Token embedding size (paper: 16).
        hidden: Encoder units per direction (paper: 50); the decoder has twice as many.
    """

    def __init__(
        self, num_widths: int, num_kernels: int, max_layers: int, embed: int = 16, hidden: int = 50
    ) -> None:
        super().__init__()
        self.num_widths, self.num_kernels, self.max_layers = num_widths, num_kernels, max_layers
        vocab = 3 + num_widths * num_kernels + num_widths  # pad, conv(w, k), pool, fc(w)
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.encoder = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.wider_head = nn.Linear(2 * hidden, 1)
        self.decoder = nn.LSTMCell(embed, 2 * hidden)
        self.start_token = nn.Parameter(torch.zeros(embed))
        self.block_embedding = nn.Embedding(max_layers, embed)
        self.position_embedding = nn.Embedding(max_layers, embed)
        self.block_head = nn.Linear(2 * hidden, max_layers)
        self.position_head = nn.Linear(2 * hidden, max_layers)
        self.kernel_head = nn.Linear(2 * hidden, num_kernels)

    def tokens(self, obs: dict[str, Tensor]) -> Tensor:
        """``(B, L)`` token ids from the observation's kind, width and kernel indices."""
        kind, width, kernel = obs["kind"], obs["width"], obs["kernel"]
        conv = 1 + width * self.num_kernels + kernel
        pool = torch.full_like(kind, 1 + self.num_widths * self.num_kernels)
        fc = 2 + self.num_widths * self.num_kernels + width
        pool_or_fc = torch.where(kind == LayerKind.POOL, pool, fc)
        tokens = torch.where(kind == LayerKind.CONV, conv, pool_or_fc)
        return torch.where(kind == LayerKind.PAD, torch.zeros_like(tokens), tokens)

    def encode(self, obs: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Per-layer features ``(B, L, 2H)`` and the final state ``((B, 2H), (B, 2H))``."""
        lengths = obs["num_layers"].clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(self.tokens(obs)), lengths, batch_first=True, enforce_sorted=False
        )
        out, (h, c) = self.encoder(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=self.max_layers
        )
        # (2, B, H) forward/backward final states -> (B, 2H)
        return out, (torch.cat([h[0], h[1]], dim=1), torch.cat([c[0], c[1]], dim=1))


def _sample(logits: Tensor, legal: Tensor, generator: torch.Generator) -> tuple[Tensor, ...]:
    """Masked categorical draw: (choice, log prob, entropy), each ``(B,)``."""
    logits = logits.masked_fill(~legal, float("-inf"))
    log_probs = torch.log_softmax(logits, dim=-1)
    choice = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs.masked_fill(~legal, 0.0)).sum(-1)
    return choice, log_probs.gather(1, choice[:, None]).squeeze(1), entropy


def _on_the_cpu(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run `method` with the CPU as torch's default device.

    The controller lives there whatever a script's ``torch.set_default_device`` says (its
    draws come from a CPU generator, its inputs from numpy).
    """

    @functools.wraps(method)
    def on_the_cpu(*args: Any, **kwargs: Any) -> _T:
        with torch.device("cpu"):
            return method(*args, **kwargs)

    return on_the_cpu


class Reinforce:
    """The paper's REINFORCE meta-controller as an :class:`agents.base.Agent`.

    Args:
        observation_space: The env's single observation space (a ``Dict``).
        action_space: The env's single ``MultiDiscrete`` action space.
        seed: Seeds the controller's weights and its sampling.
        lr: Adam learning rate (paper: 2e-3).
        entropy_weight: Weight of the entropy bonus (paper: 1e-5).
        baseline_decay: The baseline moves this far to the batch's mean return (paper: 0.95).
    """

    @_on_the_cpu
    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.MultiDiscrete,
        *,
        seed: int,
        lr: float = 2e-3,
        entropy_weight: float = 1e-5,
        baseline_decay: float = 0.95,
    ) -> None:
        self.action_space = action_space
        kind, width, kernel = (_per_slot(observation_space, k) for k in ("kind", "width", "kernel"))
        self.max_layers = int(kind.shape[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.controller = Controller(int(width.nvec[0]), int(kernel.nvec[0]), self.max_layers)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.baseline: float | None = None
        self.num_updates = 0
        self._log_probs: list[Tensor] = []  # one (B,) per step of the running episodes
        self._entropies: list[Tensor] = []
        self._rewards: list[np.ndarray] = []

    @_on_the_cpu
    def act(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        """Sample the step's actions; the step kind comes from ``obs["step_kind"]``."""
        t_obs = {k: torch.as_tensor(np.asarray(v), dtype=torch.long) for k, v in obs.items()}
        parts = [torch.as_tensor(m) for m in split_masks(masks, self.action_space)]
        features, state = self.controller.encode(t_obs)
        batch = features.shape[0]
        actions = torch.zeros(batch, len(parts), dtype=torch.long)
        log_prob = torch.zeros(batch)
        entropy = torch.zeros(batch)
        wider = t_obs["step_kind"] == 0
        if wider.any():
            a, lp, ent = self._widen(features, parts)
            actions[wider, : self.max_layers] = a[wider]
            log_prob, entropy = torch.where(wider, lp, log_prob), torch.where(wider, ent, entropy)
        if (~wider).any():
            a, lp, ent = self._deepen(t_obs["kind"], state, parts)
            actions[~wider, self.max_layers :] = a[~wider]
            log_prob, entropy = torch.where(~wider, lp, log_prob), torch.where(~wider, ent, entropy)
        self._log_probs.append(log_prob)
        self._entropies.append(entropy)
        return actions.numpy()

    def observe(self, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Keep the rewards; returns are summed at :meth:`update` (no discount)."""
        self._rewards.append(np.asarray(rewards, dtype=np.float64))

    @_on_the_cpu
    def update(self) -> dict[str, float]:
        """One REINFORCE step on the finished batch of episodes."""
        if not self._log_probs:
            return {}
        returns = np.sum(self._rewards, axis=0)  # (B,)
        mean_return = float(returns.mean())
        baseline = mean_return if self.baseline is None else self.baseline
        advantages = torch.as_tensor(returns - baseline, dtype=torch.float32)
        log_probs = torch.stack(self._log_probs).sum(0)  # (B,)
        entropy = torch.stack(self._entropies).sum(0).mean()
        policy_loss = -(advantages * log_probs).mean()
        loss = policy_loss - self.entropy_weight * entropy
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.baseline = baseline + self.baseline_decay * (mean_return - baseline)
        self.num_updates += 1
        self._log_probs, self._entropies, self._rewards = [], [], []
        return {
            "losses/policy_loss": float(policy_loss.detach()),
            "losses/entropy": float(entropy.detach()),
            "charts/mean_return": mean_return,
            "charts/baseline": self.baseline,
        }

    def state_dict(self) -> dict[str, Any]:
        """Controller, optimiser, baseline, update count and sampling RNG."""
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "num_updates": self.num_updates,
            "generator": self.generator.get_state(),
        }

    @_on_the_cpu
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.num_updates = state["num_updates"]
        self.generator.set_state(state["generator"])

    # ---- actors --------------------------------------------------------------------------

    def _widen(self, features: Tensor, parts: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Shared sigmoid per layer; layers whose flag cannot be 1 never widen."""
        legal = torch.stack([m[:, 1] for m in parts[: self.max_layers]], dim=1)  # (B, L)
        p = torch.sigmoid(self.controller.wider_head(features).squeeze(-1))  # (B, L)
        draws = torch.rand(p.shape, generator=self.generator) < p.detach()
        flags = draws & legal
        eps = 1e-8
        log_prob = torch.where(flags, torch.log(p + eps), torch.log(1 - p + eps))
        entropy = -(p * torch.log(p + eps) + (1 - p) * torch.log(1 - p + eps))
        legal_f = legal.float()
        return flags.long(), (log_prob * legal_f).sum(1), (entropy * legal_f).sum(1)

    def _deepen(
        self, kind: Tensor, state: tuple[Tensor, Tensor], parts: list[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder choices: block, position in the block, kernel (convs only)."""
        layer_legal, kernel_legal = parts[self.max_layers], parts[self.max_layers + 1]
        block_of, position_of = _block_positions(kind)  # (B, L) each; -1 for pools/padding
        batch, slots = kind.shape
        # legal[b, block, position] from the per-layer insert mask
        legal = torch.zeros(batch, slots, slots, dtype=torch.bool)
        b_idx, layer = torch.nonzero(layer_legal & (block_of >= 0), as_tuple=True)
        legal[b_idx, block_of[b_idx, layer], position_of[b_idx, layer]] = True
        fallback = ~legal.flatten(1).any(1)  # no legal insert: the env's no-op position 0
        h, c = self.controller.decoder(self.controller.start_token.expand(batch, -1), state)
        block_legal = legal.any(2) | (fallback[:, None] & (torch.arange(slots) == 0))
        block, lp_block, ent_block = _sample(
            self.controller.block_head(h), block_legal, self.generator
        )
        h, c = self.controller.decoder(self.controller.block_embedding(block), (h, c))
        pos_legal = legal[torch.arange(batch), block] | (
            fallback[:, None] & (torch.arange(slots) == 0)
        )
        position, lp_pos, ent_pos = _sample(
            self.controller.position_head(h), pos_legal, self.generator
        )
        h, c = self.controller.decoder(self.controller.position_embedding(position), (h, c))
        kernel, lp_kernel, ent_kernel = _sample(
            self.controller.kernel_head(h), kernel_legal, self.generator
        )
        match = (block_of == block[:, None]) & (position_of == position[:, None])
        layer = torch.where(fallback, torch.zeros_like(block), match.long().argmax(1))
        is_conv = (kind[torch.arange(batch), layer] == LayerKind.CONV) & ~fallback
        log_prob = lp_block + lp_pos + torch.where(is_conv, lp_kernel, torch.zeros_like(lp_kernel))
        entropy = (
            ent_block + ent_pos + torch.where(is_conv, ent_kernel, torch.zeros_like(ent_kernel))
        )
        return torch.stack([layer, kernel], dim=1), log_prob, entropy


def _block_positions(kind: Tensor) -> tuple[Tensor, Tensor]:
    """Block index and position in block of each layer (conv blocks split by pools, then FCs)."""
    is_pool = (kind == LayerKind.POOL).long()
    block = torch.cumsum(is_pool, dim=1)
    block = torch.where(kind == LayerKind.FC, is_pool.sum(1, keepdim=True) + 1, block)
    layer = (kind == LayerKind.CONV) | (kind == LayerKind.FC)
    position = torch.zeros_like(kind)
    for b in range(kind.shape[0]):  # small: L <= a few dozen
        counts: dict[int, int] = {}
        for i in torch.nonzero(layer[b]).flatten().tolist():
            k = int(block[b, i])
            position[b, i] = counts.get(k, 0)
            counts[k] = int(position[b, i]) + 1
    minus = torch.full_like(kind, -1)
    return torch.where(layer, block, minus), torch.where(layer, position, minus)


def _per_slot(observation_space: spaces.Dict, key: str) -> spaces.MultiDiscrete:
    """The observation's per-slot entry `key`, a ``MultiDiscrete([n] * L)`` in the env's layout."""
    return cast(spaces.MultiDiscrete, observation_space[key])

"""TinyHAR (Zhou et al. 2022, "TinyHAR: A Lightweight Deep Learning Model Designed for Human
Activity Recognition", ISWC '22, doi:10.1145/3544794.3558467), configured as the label-leakage
paper ran it (Bock et al. 2025, arXiv:2505.20924: ``conv_kernels: 20, conv_layers: 4,
conv_kernel_size: 9, dropout: 0.5``; component choices of the authors' and Bock et al.'s code:
attention interaction, FC fusion, LSTM, "naive" attention aggregation).

With F = 20 filters, C sensor channels and window T:

1. channel-wise feature extraction: four ``Conv2d`` layers with kernel (9, 1) (time only, weights
   shared across channels), F filters, no padding, strides 1, 2, 1, 2 along time, each followed by
   ReLU and then ``BatchNorm2d`` -> [B, F, T', C];
2. cross-channel interaction: at every time step the C channel vectors
   x_1..x_C (each in R^F) attend to each other, ``o_j = x_j + gamma * sum_i a_ij W_v x_i`` with
   ``a_ij = softmax_i((W_q x_i) . (W_k x_j))`` (no scaling; gamma is a learned scalar starting at 0,
   so the block starts as the identity), followed by dropout p = 0.5;
3. cross-channel fusion: the C vectors of a time step are concatenated (channel-major) and mapped
   by ``Linear(C F, 2F)`` + ReLU -> [B, T', 2F];
4. temporal interaction: a 1-layer LSTM with 2F units -> [B, T', 2F];
5. temporal aggregation: scores ``s_t = w . u_t + c`` (``Linear(2F, 1)``), weights
   ``softmax_t(s)``, embedding ``h = sum_t softmax_t(s) u_t`` (d = 2F = 40). This is the
   ``"naive"`` aggregation, the default of Bock et al.'s TinyHAR code; the authors' ``"tnaive"``
   variant (extra tanh layer, last step + gated context) would add 1,640 parameters, which the
   paper's ~36 k count for WEAR rules out;
6. ``Linear(2F, num_classes)`` (the ``head``), with no dropout right before it: ``head_dropout``
   is the identity and the model's only dropout sits after step 2, so ``features`` is stochastic
   in train mode.

Time-axis collapse: with kernel 9 and strides 1, 2, 1, 2 a 50-sample window shrinks
50 -> 42 -> 17 -> 9 -> 1, so T' = 1. The LSTM then runs a single step and the temporal softmax
is over one element (weight 1): ``h`` is the LSTM output of that step, and neither the
aggregation layer ``temporal_attention`` nor the LSTM's recurrent matrix ``weight_hh_l0`` (it
only meets the zero initial state) ever receives a gradient. At the untrained initialisation the
attention projections query/key/value get none either, until gamma moves away from 0. This is
kept because it is what the paper's configuration (kernel 9, 50-sample windows) computes; the
minimum window is 49. Longer windows (e.g. T = 100 -> T' = 13) exercise the full temporal part.

Parameter counts (BatchNorm affine parameters included, running statistics excluded):
36,001 for 12 channels / 19 classes (WEAR), 28,555 for 3 / 13 (HAPT), 28,391 for 3 / 9 (Wetlab).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from fl_har.models.base import HARModel
from fl_har.models.initialization import global_rng_preserved, init_untrained


class ChannelSelfAttention(nn.Module):
    """Cross-channel self-attention with a zero-initialised residual gate (TinyHAR step 2).

    Input and output [N, C, F]: N independent sets of C channel vectors. The softmax normalises
    over the *source* channel i for every target channel j, as in the authors' implementation.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.query = nn.Linear(features, features, bias=False)
        self.key = nn.Linear(features, features, bias=False)
        self.value = nn.Linear(features, features, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        scores = torch.bmm(self.query(x), self.key(x).transpose(1, 2))  # [N, i, j] = q_i . k_j
        weights = torch.softmax(scores, dim=1)
        attended = torch.bmm(weights.transpose(1, 2), self.value(x))  # row j = sum_i a_ij v_i
        return x + self.gamma * attended

    def reset_own_parameters(self) -> None:
        """Untrained state of the gate: gamma = 0 (deterministic, used by ``init_untrained``)."""
        with torch.no_grad():
            self.gamma.zero_()


class TinyHAR(HARModel):
    """Per-channel convolutions, channel attention, channel fusion, LSTM, temporal attention."""

    name: ClassVar[str] = "tinyhar"
    conv_kernel: ClassVar[int] = 9
    conv_strides: ClassVar[tuple[int, ...]] = (1, 2, 1, 2)
    filters: ClassVar[int] = 20
    dropout: ClassVar[float] = 0.5

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        window: int = 50,
        *,
        head_bias: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(in_channels, num_classes, window, head_bias, seed)
        hidden = 2 * self.filters
        with global_rng_preserved():
            self.conv_blocks = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(
                        1 if i == 0 else self.filters,
                        self.filters,
                        (self.conv_kernel, 1),
                        stride=(stride, 1),
                    ),
                    nn.ReLU(),
                    nn.BatchNorm2d(self.filters),
                )
                for i, stride in enumerate(self.conv_strides)
            )
            self.channel_interaction = ChannelSelfAttention(self.filters)
            self.interaction_dropout = nn.Dropout(self.dropout)
            self.channel_fusion = nn.Linear(self.in_channels * self.filters, hidden)
            self.activation = nn.ReLU()
            self.temporal_lstm = nn.LSTM(hidden, hidden, batch_first=True)
            self.temporal_attention = nn.Linear(hidden, 1)
            self._attach_head(hidden, dropout=0.0)
        init_untrained(self, seed)

    def _embed(self, x: Tensor) -> Tensor:
        maps = x.unsqueeze(1)  # [B, 1, T, C]
        for block in self.conv_blocks:
            maps = block(maps)
        batch, filters, steps, channels = maps.shape
        # All (window, time step) pairs attend in one batched call: [B * T', C, F].
        tokens = maps.permute(0, 2, 3, 1).reshape(batch * steps, channels, filters)
        tokens = self.interaction_dropout(self.channel_interaction(tokens))
        fused = self.activation(self.channel_fusion(tokens.reshape(batch, steps, -1)))
        sequence, _ = self.temporal_lstm(fused)  # [B, T', 2F]
        weights = torch.softmax(self.temporal_attention(sequence), dim=1)  # [B, T', 1]
        return (weights * sequence).sum(dim=1)

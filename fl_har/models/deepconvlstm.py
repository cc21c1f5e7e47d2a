"""DeepConvLSTM (Ordonez & Roggen 2016, Sensors 16(1):115) as the label-leakage paper ran it.

Architecture (Bock et al. 2025, arXiv:2505.20924, config ``conv_kernels: 64, conv_kernel_size: 9,
lstm_units: 128, lstm_layers: 2, dropout: 0.5``):

1. four ``Conv2d`` layers, 64 filters, kernel (9, 1), stride 1, no padding, each followed by ReLU.
   The (9, 1) kernel slides along time only, so every sensor channel is filtered separately with
   shared weights; a window of T samples leaves ``T - 32`` steps (18 for T = 50);
2. the 64 feature maps of all C channels are concatenated per time step (channel-major, i.e.
   feature ``c * 64 + f``) into a ``64 C`` vector and fed to a 2-layer LSTM with 128 units;
3. the LSTM output of the last time step is the embedding ``h`` (d = 128);
4. dropout p = 0.5 on ``h``, then ``Linear(128, num_classes)`` (the ``head``).

Ordonez & Roggen used kernel 5 and windows of 24 samples; the leakage paper's kernel 9 is kept
here. There is no dropout inside the LSTM stack (as in Bock et al.'s implementation).

Parameter counts: 705,747 for 12 channels / 19 classes (WEAR), 409,545 for 3 / 9 (Wetlab),
410,061 for 3 / 13 (HAPT).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from fl_har.models.base import HARModel
from fl_har.models.initialization import global_rng_preserved, init_untrained


class DeepConvLSTM(HARModel):
    """Four temporal convolutions, a 2-layer LSTM, the last step, dropout, linear head."""

    name: ClassVar[str] = "deepconvlstm"
    conv_kernel: ClassVar[int] = 9
    conv_strides: ClassVar[tuple[int, ...]] = (1, 1, 1, 1)
    filters: ClassVar[int] = 64
    lstm_units: ClassVar[int] = 128
    lstm_layers: ClassVar[int] = 2
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
        with global_rng_preserved():
            self.conv_layers = nn.ModuleList(
                nn.Conv2d(1 if i == 0 else self.filters, self.filters, (self.conv_kernel, 1))
                for i in range(len(self.conv_strides))
            )
            self.activation = nn.ReLU()
            self.lstm = nn.LSTM(
                self.in_channels * self.filters,
                self.lstm_units,
                num_layers=self.lstm_layers,
                batch_first=True,
            )
            self._attach_head(self.lstm_units, self.dropout)
        init_untrained(self, seed)

    def _embed(self, x: Tensor) -> Tensor:
        # [B, T, C] -> [B, 1, T, C]: one input plane, the (9, 1) kernels run along T per channel.
        maps = x.unsqueeze(1)
        for conv in self.conv_layers:
            maps = self.activation(conv(maps))
        batch, filters, steps, channels = maps.shape
        # [B, F, T', C] -> [B, T', C * F], channel-major as in the reference implementation.
        sequence = maps.permute(0, 2, 3, 1).reshape(batch, steps, channels * filters)
        outputs, _ = self.lstm(sequence)
        return outputs[:, -1, :]

"""``digits_cnn``: a small CNN in the spirit of the classic Keras "cnn2" teaching net.

Two conv-BN-ReLU blocks per stage, max-pooling between stages, a small dense layer with dropout,
then the classifier. Input float32 [B, 1, 28, 28]; output logits [B, 10].
"""

from __future__ import annotations

from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_chans, 32), nn.MaxPool2d(2),   # 28 -> 14
            _block(32, 64), nn.MaxPool2d(2),         # 14 -> 7
            _block(64, 128),                         # 7x7 maps: the last conv block
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(128, 128), nn.ReLU(inplace=True),
                                   nn.Dropout(0.3))
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.fc(self.embed(self.pool(self.features(x))))

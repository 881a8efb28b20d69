#!/usr/bin/python3
"""Time one PyTorch training step of the CIFAR ResNet-32 (He et al., option-A
shortcuts, as METHOD.md describes it): forward, cross-entropy, backward and an
SGD step with momentum, batch 128 of 3 x 32 x 32 images, 100 classes, 2 CPU
threads. Prints the median and appends `resnet32_step_ms <median>` to the
file named by the first argument (the baseline file bench_batch reads).

Usage: /usr/bin/python3 bench/pytorch_resnet32_step.py BASELINE_FILE [--quick]
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            shortcut = x
        else:  # option A: every second pixel, channels zero-padded on both sides
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class ResNet32(nn.Module):
    def __init__(self, classes=100, blocks=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(blocks):
                layers.append(Block(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    quick = "--quick" in sys.argv[2:]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = ResNet32()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    x = torch.randn(128, 3, 32, 32)
    y = torch.randint(0, 100, (128,))
    times = []
    for rep in range(3 + (3 if quick else 12)):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if rep >= 3:  # after warm-up
            times.append(time.perf_counter() - t0)
    ms = 1e3 * statistics.median(times)
    print(f"PyTorch {torch.__version__} ResNet-32 training step, batch 128, 3x32x32, 100 classes, "
          f"2 threads: {ms:.1f} ms median ({128 / ms * 1e3:.0f} images/s)")
    with open(sys.argv[1], "a", encoding="ascii") as f:
        f.write(f"resnet32_step_ms {ms:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

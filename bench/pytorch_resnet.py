#!/usr/bin/python3
"""Time PyTorch's CPU training step and inference for the CIFAR ResNet-32
(He et al., option-A shortcuts, as docs/method.md describes it), batch 128, at
3 x 32 x 32 with 100 classes and 1 x 28 x 28 with 10 classes, on 1 and 2
threads: the baseline bench_resnet compares libmislas with in the same run.
A training step is forward, cross-entropy, backward and an SGD step with
momentum; inference is an eval-mode forward without autograd.

Appends `resnet32_<train|inference>_<shape>_t<threads> <images/s>` lines,
and `resnet32_step_ms <ms>` (3x32x32, 2 threads, for bench_batch), to the
file named by the first argument.

Usage: /usr/bin/python3 bench/pytorch_resnet.py BASELINE_FILE [--quick]
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
    def __init__(self, channels=3, classes=100, blocks=5):
        super().__init__()
        self.conv = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
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


def median_seconds(work, reps):
    times = []
    for rep in range(3 + reps):
        t0 = time.perf_counter()
        work()
        if rep >= 3:  # after warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(channels, side, classes, threads, reps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ResNet32(channels, classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    x = torch.randn(128, channels, side, side)
    y = torch.randint(0, classes, (128,))

    def train():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)

    model.train()
    train_s = median_seconds(train, reps)
    model.eval()
    infer_s = median_seconds(infer, reps)
    return train_s, infer_s


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    reps = 3 if "--quick" in sys.argv[2:] else 11
    lines = []
    for channels, side, classes in ((3, 32, 100), (1, 28, 10)):
        shape = f"{channels}x{side}x{side}"
        for threads in (1, 2):
            train_s, infer_s = measure(channels, side, classes, threads, reps)
            print(f"PyTorch {torch.__version__} ResNet-32, batch 128, {shape}, {classes} classes, "
                  f"{threads} thread(s): training step {128 / train_s:.0f} images/s, "
                  f"inference {128 / infer_s:.0f} images/s")
            lines.append(f"resnet32_train_{shape}_t{threads} {128 / train_s:.1f}")
            lines.append(f"resnet32_inference_{shape}_t{threads} {128 / infer_s:.1f}")
            if shape == "3x32x32" and threads == 2:
                lines.append(f"resnet32_step_ms {1e3 * train_s:.3f}")
    with open(sys.argv[1], "a", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

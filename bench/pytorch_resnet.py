#!/usr/bin/python3
"""Time PyTorch's CPU training step and inference for the CIFAR ResNet-32
(He et al., option-A shortcuts, as docs/method.md describes it), batch 128, at
3 x 32 x 32 with 100 classes and 1 x 28 x 28 with 10 classes, on 1 and 2
threads, and for the ImageNet ResNet-50 (torchvision's layout: stride on the
bottleneck's 3x3), batch 32, 3 x 224 x 224, 1000 classes, on 2 threads: the
baseline bench_resnet compares libmislas with in the same run. A training
step is forward, cross-entropy, backward and an SGD step with momentum;
inference is an eval-mode forward without autograd. Each figure is the
better of the NCHW and channels_last memory formats (oneDNN's blocked
kernels often prefer the latter).

Appends `<resnet32|resnet50>_<train|inference>_<shape>_t<threads> <images/s>`
lines, and `resnet32_step_ms <ms>` (3x32x32, 2 threads, for bench_batch), to
the file named by the first argument.

Usage: /usr/bin/python3 bench/pytorch_resnet.py BASELINE_FILE [--quick] [--no-resnet50]
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


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for b in range(blocks):
                layers.append(Bottleneck(cin, planes, stride if b == 0 else 1))
                cin = planes * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layers(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def median_seconds(work, reps):
    times = []
    for rep in range(3 + reps):
        t0 = time.perf_counter()
        work()
        if rep >= 3:  # after warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_format(model, batch, channels, side, classes, reps, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    x = torch.randn(batch, channels, side, side).to(memory_format=fmt)
    y = torch.randint(0, classes, (batch,))

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


def measure(make, batch, channels, side, classes, threads, reps):
    """The better of the two memory formats, for training and inference apart."""
    torch.set_num_threads(threads)
    results = [measure_format(make(), batch, channels, side, classes, reps, cl) for cl in (False, True)]
    return min(r[0] for r in results), min(r[1] for r in results)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    reps = 3 if "--quick" in sys.argv[2:] else 11
    lines = []
    for channels, side, classes in ((3, 32, 100), (1, 28, 10)):
        shape = f"{channels}x{side}x{side}"
        for threads in (1, 2):
            train_s, infer_s = measure(lambda: ResNet32(channels, classes), 128, channels, side, classes,
                                       threads, reps)
            print(f"PyTorch {torch.__version__} ResNet-32, batch 128, {shape}, {classes} classes, "
                  f"{threads} thread(s): training step {128 / train_s:.0f} images/s, "
                  f"inference {128 / infer_s:.0f} images/s")
            lines.append(f"resnet32_train_{shape}_t{threads} {128 / train_s:.1f}")
            lines.append(f"resnet32_inference_{shape}_t{threads} {128 / infer_s:.1f}")
            if shape == "3x32x32" and threads == 2:
                lines.append(f"resnet32_step_ms {1e3 * train_s:.3f}")
    if "--no-resnet50" not in sys.argv[2:]:
        train_s, infer_s = measure(ResNet50, 32, 3, 224, 1000, 2, 1 if "--quick" in sys.argv[2:] else 3)
        print(f"PyTorch {torch.__version__} ResNet-50, batch 32, 3x224x224, 1000 classes, 2 thread(s): "
              f"training step {32 / train_s:.1f} images/s, inference {32 / infer_s:.1f} images/s")
        lines.append(f"resnet50_train_3x224x224_t2 {32 / train_s:.2f}")
        lines.append(f"resnet50_inference_3x224x224_t2 {32 / infer_s:.2f}")
    with open(sys.argv[1], "a", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

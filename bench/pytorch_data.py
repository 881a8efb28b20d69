#!/usr/bin/python3
"""Write a set of JPEGs shaped like ImageNet's (sides 240 to 640, quality 90,
4:2:0, smooth content with noise, a few greyscale) and time PIL +
torchvision 0.14 reading and transforming them on one thread, as the MiSLAS
reference's data loaders do: the training transform (RandomResizedCrop(224),
RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4, 0), ToTensor, Normalize)
and the test transform (Resize(256), CenterCrop(224), ToTensor, Normalize).
bench_data times libmislas on the same files and prints the ratio.

Writes FOLDER/list.txt ("name label" lines) and the images, and appends
`data_train_images_per_s <x>` and `data_test_images_per_s <x>` (one core) to
BASELINE_FILE.

Usage: /usr/bin/python3 bench/pytorch_data.py BASELINE_FILE FOLDER [--quick]
"""
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

baseline_file, folder = sys.argv[1], sys.argv[2]
quick = "--quick" in sys.argv[3:]
count = 40 if quick else 200
os.makedirs(folder, exist_ok=True)
rng = np.random.default_rng(7)
lines = []
for i in range(count):
    w, h = int(rng.integers(240, 641)), int(rng.integers(240, 501))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / rng.uniform(20, 90) + c) * np.cos(y / rng.uniform(20, 90) - c)
                     for c in range(3)], axis=2)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if i % 25 == 0:
        image = image.convert("L")
    name = f"img{i:04d}.jpg"
    image.save(os.path.join(folder, name), quality=90)
    lines.append(f"{name} {i % 10}\n")
with open(os.path.join(folder, "list.txt"), "w") as f:
    f.writelines(lines)

torch.set_num_threads(1)
normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
train = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                            transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0),
                            transforms.ToTensor(), normalize])
test = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
paths = [os.path.join(folder, line.split()[0]) for line in lines]


def rate(transform):
    best = 0.0
    for _ in range(2 if quick else 3):
        start = time.perf_counter()
        for p in paths:
            with open(p, "rb") as f:
                transform(Image.open(f).convert("RGB"))
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


train_rate, test_rate = rate(train), rate(test)
print(f"PIL + torchvision, 1 thread: training transform {train_rate:.0f} images/s, test transform "
      f"{test_rate:.0f} images/s ({count} JPEGs)")
with open(baseline_file, "a") as f:
    f.write(f"data_train_images_per_s {train_rate:.3f}\ndata_test_images_per_s {test_rate:.3f}\n")

#!/usr/bin/python3
"""The training transform's random draws (RandomResizedCrop's boxes,
ColorJitter's factors and order) against torchvision 0.14's own, drawn here
from torch's generator: the distributions must agree (two-sample
Kolmogorov-Smirnov tests on each quantity, chi-square on the orders), since
our draws come from the library's generator and cannot be the same bits.
Usage: transforms_check.py TRANSFORM_DUMP. Exit 77 when torchvision is missing."""
import math
import subprocess
import sys

try:
    import numpy as np
    import torch
    from torchvision import transforms
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

N = 20000
dump = sys.argv[1]
failures = []


def ks_statistic(a, b):
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def same_distribution(what, ours, theirs):
    d = ks_statistic(np.asarray(ours, float), np.asarray(theirs, float))
    n, m = len(ours), len(theirs)
    limit = 1.95 * math.sqrt((n + m) / (n * m))     # alpha = 0.001
    status = "ok" if d <= limit else "DIFFERENT"
    print(f"  {what:<34} KS D = {d:.4f} (limit {limit:.4f}) {status}")
    if d > limit:
        failures.append(what)


def ours_crops(h, w, scale_min):
    out = subprocess.run([dump, "crop", str(h), str(w), str(scale_min), str(N)], check=True,
                         capture_output=True, text=True).stdout
    return np.array([[int(v) for v in line.split()] for line in out.splitlines()])


def torchvision_crops(h, w, scale_min):
    image = torch.zeros(1, h, w)    # get_params reads only the size
    rrc = transforms.RandomResizedCrop
    rows = [rrc.get_params(image, (scale_min, 1.0), (3.0 / 4.0, 4.0 / 3.0)) for _ in range(N)]
    return np.array(rows)


torch.manual_seed(0)
# shapes: typical photos, a square, and ones too thin for most attempts
# (the fall-back centre crop)
for h, w, scale_min in [(375, 500, 0.08), (500, 333, 0.08), (256, 256, 0.08), (64, 640, 0.08),
                        (900, 60, 0.08), (224, 300, 0.5)]:
    print(f"RandomResizedCrop on {h} x {w}, scale ({scale_min}, 1):")
    ours, theirs = ours_crops(h, w, scale_min), torchvision_crops(h, w, scale_min)
    for k, name in enumerate(["top", "left", "height", "width"]):
        same_distribution(name, ours[:, k], theirs[:, k])
    same_distribution("area fraction", ours[:, 2] * ours[:, 3] / (h * w), theirs[:, 2] * theirs[:, 3] / (h * w))
    same_distribution("aspect ratio", ours[:, 3] / ours[:, 2], theirs[:, 3] / theirs[:, 2])
    if np.any(ours[:, 0] + ours[:, 2] > h) or np.any(ours[:, 1] + ours[:, 3] > w) or np.any(ours < 0):
        failures.append(f"a crop outside the {h} x {w} image")

print("ColorJitter(0.4, 0.4, 0.4, 0):")
out = subprocess.run([dump, "jitter", "0.4", str(N)], check=True, capture_output=True, text=True).stdout
ours = np.array([[float(v) for v in line.split()] for line in out.splitlines()])
jitter = transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0)
theirs_f, theirs_order = [], []
for _ in range(N):
    fn_idx, b, c, s, hue = jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
    assert hue is None
    theirs_f.append([b, c, s])
    theirs_order.append(tuple(int(i) for i in fn_idx if int(i) != 3))   # hue (3) is not applied
theirs_f = np.array(theirs_f)
for k, name in enumerate(["brightness factor", "contrast factor", "saturation factor"]):
    same_distribution(name, ours[:, k], theirs_f[:, k])
    if ours[:, k].min() < 0.6 or ours[:, k].max() > 1.4:
        failures.append(f"{name} outside [0.6, 1.4]")
# the six orders, equally likely in both
orders = sorted(set(theirs_order))
ours_order = [tuple(int(v) for v in row[3:]) for row in ours]
chi2 = 0.0
for o in orders:
    a, b = ours_order.count(o), theirs_order.count(o)
    chi2 += (a - b) ** 2 / (a + b)
print(f"  order of the three: chi-square {chi2:.2f} over {len(orders)} orders (limit 20.5)")
if len(orders) != 6 or set(ours_order) != set(orders) or chi2 > 20.5:     # 5 dof, alpha = 0.001
    failures.append("the order of brightness, contrast and saturation")

if failures:
    print("FAILED:", "; ".join(failures))
    sys.exit(1)
print("all draws distributed as torchvision's")

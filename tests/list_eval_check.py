#!/usr/bin/python3
"""mislas-eval on a list-file JPEG set against the reference's evaluation in
PyTorch, end to end (issue 18, item 5).

Usage: list_eval_check.py MISLAS_EVAL [IMPORTER]

1. A small long-tailed set is written with PIL in a temporary folder: 5
   classes of 9 / 6 / 4 / 2 / 1 training images under labels 3 / 0 / 4 / 1 / 2
   (not in count order, so the class map matters) and 6 test images per
   class, of sizes 300x200, 200x300, 256x256, 500x375, 224x224 and 257x300,
   each a different smooth random field with random shapes and noise; among
   them greyscale, CMYK, progressive and 4:4:4 JPEGs, a PNG named .JPEG, and
   one truncated JPEG in the test list.
2. A network in the reference's format (models/resnet.py's resnet50_fe, its
   Classifier(2048, 5) and stage 2's LearnableWeightScaling, built with
   tests/import_imagenet_check.py's modules) gets random weights, batch-norm
   statistics measured on 12 training images and then moved off, random
   scales, and its classifier's logits centred and spread on those images
   (else a deep random network predicts one class for every image); it is
   saved as train_stage2.py saves it (DataParallel keys) and converted with
   tools/import_reference.py.
3. PyTorch evaluates it as the reference's validate() does on the test list
   less the truncated file: PIL open + convert("RGB"), Resize(256),
   CenterCrop(224), ToTensor, Normalize(ImageNet), eval mode, float32; the
   test labels mapped by the class map of the training counts computed the
   reference's way (np.argsort(-counts)); top-1, ECE (15 bins, boundaries
   linspace(0, 1, 16), a confidence in (lo, hi] as np.digitize(right=True)
   puts it, |accuracy - confidence| weighted by the bin's share), NLL, the
   per-class accuracies and the reliability bins.
4. mislas-eval on the converted checkpoint with --dataset list --data-dir
   --train-list --test-list: without --skip-bad it refuses the set, naming
   the truncated file (exit 1, no --json written); with --skip-bad it says
   one file was left out, and its --json gives top-1 and ECE within 0.01
   points of PyTorch's and NLL within 1e-3; the same per-class accuracies,
   the bins' counts, the class map (train_counts 9..1, list_labels 3 0 4 1 2),
   and Many / Medium / Few by the > 100 / < 20 thresholds: all five classes
   Few, Few the mean of the per-class accuracies, Many and Medium null.
The PyTorch figures are also computed in float64, to show that the float32
ones are not on a knife edge (no top-2 margin or bin boundary so close that
rounding could move an image). Exits 77 (skipped) without torch, torchvision,
numpy or PIL.
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torchvision
    from torchvision import transforms
    from PIL import Image, ImageDraw
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"list_eval: skipped: {e} (install Debian's python3-torch, python3-torchvision, python3-pil)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# the reference's module trees and the random initialisation of the import check
from import_imagenet_check import FeatureNet, Classifier, Scales, Chain, randomise, state  # noqa: E402

IMPORTER = os.path.join(HERE, os.pardir, "tools", "import_reference.py")
K = 5
TRAIN_COUNTS = {3: 9, 0: 6, 4: 4, 1: 2, 2: 1}      # label: training images, not in label order
TEST_PER_CLASS = 6
SIZES = [(300, 200), (200, 300), (256, 256), (500, 375), (224, 224), (257, 300)]   # (w, h)
CORRUPT = "test/2_corrupt.JPEG"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BINS = 15
SEED = 5
TOP1_TOL, ECE_TOL, NLL_TOL = 0.01, 0.01, 1e-3      # points, points, nats

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)
    return condition


# ------------------------------------------------------------------ the images

def picture(rng, w, h):
    """A smooth random colour field (a 5x5 grid of colours, bicubic), a few
    random ellipses and rectangles, and pixel noise: every image different."""
    grid = Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), "RGB")
    im = grid.resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    pixels = np.asarray(im, dtype=np.int16) + rng.integers(-25, 26, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def save(im, path, n):
    """Image n in one of the forms the library must read as PIL does."""
    kind = n % 6
    if kind == 1:
        im.convert("L").save(path, "JPEG", quality=90)                   # greyscale
    elif kind == 2:
        im.convert("CMYK").save(path, "JPEG", quality=90)                # CMYK (PIL writes Adobe inverted)
    elif kind == 3:
        im.save(path, "JPEG", quality=85, progressive=True)              # progressive
    elif kind == 4:
        im.save(path, "JPEG", quality=95, subsampling=0)                 # 4:4:4
    else:
        im.save(path, "JPEG", quality=75)                                # baseline 4:2:0
    return ("grey", "cmyk", "progressive", "4:4:4")[kind - 1] if 1 <= kind <= 4 else "baseline"


def make_set(root):
    """train.txt and test.txt under root; returns the test entries (path,
    label) that PIL can read, and what kinds of file were written."""
    rng = np.random.default_rng(2024)
    for sub in ("train", "test"):
        os.makedirs(os.path.join(root, sub))
    kinds = {}
    n = 0
    lines = []
    for label, count in TRAIN_COUNTS.items():
        for i in range(count):
            w, h = SIZES[n % len(SIZES)]
            path = "train/%d_%02d.JPEG" % (label, i)
            kind = save(picture(rng, w, h), os.path.join(root, path), n)
            kinds[kind] = kinds.get(kind, 0) + 1
            lines.append("%s %d" % (path, label))
            n += 1
    order = rng.permutation(len(lines))
    with open(os.path.join(root, "train.txt"), "w") as f:
        f.write("".join(lines[i] + "\n" for i in order))
    test = []
    lines = []
    for label in range(K):
        for i in range(TEST_PER_CLASS):
            w, h = SIZES[(n + i) % len(SIZES)]
            path = "test/%d_%d.JPEG" % (label, i)
            im = picture(rng, w, h)
            if label == 1 and i == 5:
                im.save(os.path.join(root, path), "PNG")                 # a PNG named .JPEG
                kind = "png"
            else:
                kind = save(im, os.path.join(root, path), n)
            kinds[kind] = kinds.get(kind, 0) + 1
            test.append((path, label))
            lines.append("%s %d" % (path, label))
            n += 1
            if label == 2 and i == 2:
                # a truncated JPEG: the first 60% of a whole one
                whole = os.path.join(root, "whole.jpg")
                picture(rng, 300, 200).save(whole, "JPEG", quality=90)
                with open(whole, "rb") as f:
                    data = f.read()
                os.unlink(whole)
                with open(os.path.join(root, CORRUPT), "wb") as f:
                    f.write(data[:len(data) * 6 // 10])
                lines.append("%s %d" % (CORRUPT, label))
    with open(os.path.join(root, "test.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return test, kinds


# -------------------------------------------------------- the reference's side

def class_map(counts_by_label):
    """datasets/imagenet.py's renumbering: class_map[old] = rank by count."""
    order = np.argsort(-np.array(counts_by_label))
    mapping = [0] * len(counts_by_label)
    for new, old in enumerate(order):
        mapping[old] = new
    return mapping


def reference_transform(mean=MEAN, std=STD):
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


def load(root, path, transform):
    with open(os.path.join(root, path), "rb") as f:      # the reference's LT_Dataset
        return transform(Image.open(f).convert("RGB"))


def calibration(labels, predictions, confidences, num_bins=BINS):
    """The reference's ECE: a confidence c goes to bin b when
    edges[b] < c <= edges[b + 1] (edges = linspace(0, 1, num_bins + 1); a
    confidence of 0 to none); ECE = sum over bins of |acc - conf| x share."""
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    where = np.digitize(confidences, edges, right=True)
    bins = []
    ece = 0.0
    for b in range(num_bins):
        chosen = np.where(where == b + 1)[0]
        if len(chosen) == 0:
            bins.append((0, None, None))
            continue
        acc = float(np.mean(labels[chosen] == predictions[chosen]))
        conf = float(np.mean(confidences[chosen]))
        bins.append((len(chosen), acc, conf))
        ece += abs(acc - conf) * len(chosen) / len(labels)
    return ece, bins


def figures(logits, labels):
    """top-1 (%), ECE (%), NLL, per-class accuracies (%), bins, from logits
    (as float64 NumPy) and remapped labels."""
    logits = torch.from_numpy(logits)
    probs = torch.softmax(logits, dim=1).numpy()
    predictions = probs.argmax(1)
    confidences = probs.max(1)
    nll = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels)))
    ece, bins = calibration(labels, predictions, confidences)
    per_class = [100.0 * float(np.mean(predictions[labels == c] == c)) for c in range(K)]
    return {"top1": 100.0 * float(np.mean(predictions == labels)), "ece": 100.0 * ece, "nll": nll,
            "class_accuracy": per_class, "bins": bins, "predictions": predictions, "confidences": confidences}


def knife_edges(logits):
    """The smallest top-2 logit margin and the smallest distance of a
    confidence to a bin edge: how far rounding would have to move them."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    confidences = torch.softmax(torch.from_numpy(logits), dim=1).numpy().max(1)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    return float((top2[:, 1] - top2[:, 0]).min()), float(np.abs(confidences[:, None] - edges[None, :]).min())


def build_model(root, images_for_stats, path):
    """The reference's stage-2 ResNet-50 with random weights, saved as its
    train_stage2.py saves it; returns the chain (eval mode)."""
    gen = torch.Generator().manual_seed(SEED)
    model = FeatureNet(50)
    clf = Classifier(model.features, K)
    lws = Scales(K)
    chain = Chain([model, clf, lws])
    randomise(chain, images_for_stats, gen)
    # A deep random network maps every image to nearly the same features, and
    # a random classifier then picks one class for all: centre each class's
    # logit on these images and give it a spread of 1.5, so that the
    # predictions differ between images (the classifier stays random).
    with torch.no_grad():
        z = clf.fc(model(images_for_stats))
        spread = z.std(dim=0)
        clf.fc.weight.mul_((1.5 / spread)[:, None])
        clf.fc.bias.copy_((clf.fc.bias - z.mean(dim=0)) * 1.5 / spread
                          + torch.randn(K, generator=gen) * 0.3)
    torch.save({"epoch": 10, "state_dict_model": state(model, True), "state_dict_classifier": state(clf, True),
                "state_dict_lws_model": state(lws, True), "best_acc1": torch.tensor(30.0)}, path)
    return chain


def evaluate_reference(chain, root, test, mapping, transform, dtype):
    images = torch.stack([load(root, p, transform) for p, _ in test])
    net = chain if dtype == torch.float32 else copy.deepcopy(chain).to(dtype)
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(images[i:i + 10].to(dtype)) for i in range(0, len(test), 10)])
    labels = np.array([mapping[label] for _, label in test], dtype=np.int64)
    return logits.double().numpy(), labels


# ------------------------------------------------------------------ our side

def run(cmd):
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: list_eval_check.py MISLAS_EVAL [IMPORTER]", file=sys.stderr)
        return 2
    evaluate = os.path.abspath(sys.argv[1])
    importer = sys.argv[2] if len(sys.argv) == 3 else IMPORTER
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="mislas-list-eval-") as tmp:
        root = os.path.join(tmp, "root")
        test, kinds = make_set(root)
        print("set: %d training images (labels 3 0 4 1 2: 9 6 4 2 1), %d readable test images + 1 truncated; "
              "files: %s" % (sum(TRAIN_COUNTS.values()), len(test),
                             ", ".join("%s %d" % kv for kv in sorted(kinds.items()))), flush=True)
        try:
            with open(os.path.join(root, CORRUPT), "rb") as f:
                Image.open(f).convert("RGB")
            check(False, "PIL reads the truncated file: it is no test of --skip-bad")
        except OSError:
            pass
        counts = [TRAIN_COUNTS[label] for label in range(K)]
        mapping = class_map(counts)
        by_count = [mapping.index(c) for c in range(K)]
        print("class map (np.argsort(-counts)): label -> class %s; classes 0..4 are labels %s"
              % (mapping, by_count))

        # the model, its statistics measured on the training images
        transform = reference_transform()
        with open(os.path.join(root, "train.txt")) as f:
            train_paths = [line.split()[0] for line in f if line.strip()]
        stats_images = torch.stack([load(root, p, transform) for p in train_paths[:12]])
        src, ckpt = os.path.join(tmp, "model_best.pth.tar"), os.path.join(tmp, "imported.ckpt")
        chain = build_model(root, stats_images, src)
        r = run([sys.executable, importer, src, ckpt])
        if r.returncode != 0:
            print("the importer failed (%d): %s" % (r.returncode, r.stderr.strip()), file=sys.stderr)
            return 1
        print("imported: %s" % r.stdout.strip())

        t0 = time.time()
        logits, labels = evaluate_reference(chain, root, test, mapping, transform, torch.float32)
        ref = figures(logits, labels)
        exact_logits, _ = evaluate_reference(chain, root, test, mapping, transform, torch.float64)
        exact = figures(exact_logits, labels)
        margin, edge = knife_edges(logits)
        print("PyTorch (float32, %.1f s): top-1 %.4f%%  ECE %.4f%%  NLL %.6f; float64: top-1 %.4f%%  ECE %.4f%%  "
              "NLL %.6f; predictions per class %s; smallest top-2 margin %.3g, confidence to a bin edge %.3g"
              % (time.time() - t0, ref["top1"], ref["ece"], ref["nll"], exact["top1"], exact["ece"], exact["nll"],
                 np.bincount(ref["predictions"], minlength=K).tolist(), margin, edge), flush=True)
        check(len(set(ref["predictions"].tolist())) >= 3,
              "the model's predictions vary between images (%s)" % np.bincount(ref["predictions"], minlength=K))
        check(0 < ref["top1"] < 100, "top-1 %.2f%% is neither 0 nor 100" % ref["top1"])
        check(np.array_equal(ref["predictions"], exact["predictions"]) and margin > 1e-3 and edge > 1e-4,
              "no knife edge: float32 and float64 predictions agree, the smallest top-2 margin (%.3g) and the "
              "smallest distance of a confidence to a bin edge (%.3g) are far above rounding" % (margin, edge))

        common = [evaluate, ckpt, "--dataset", "list", "--data-dir", root,
                  "--train-list", os.path.join(root, "train.txt"), "--test-list", os.path.join(root, "test.txt"),
                  "--threads", "2", "--quiet"]
        out = os.path.join(tmp, "figures.json")

        # the truncated file refuses the set by default
        r = run(common + ["--json", out])
        check(r.returncode == 1 and CORRUPT in r.stderr and "--skip-bad" in r.stderr,
              "without --skip-bad mislas-eval refuses the set naming %s (exit %d: %r)"
              % (CORRUPT, r.returncode, r.stderr.strip()))
        check(not os.path.exists(out), "a refused set writes no --json")

        t0 = time.time()
        r = run(common + ["--skip-bad", "--json", out])
        took = time.time() - t0
        if not check(r.returncode == 0, "mislas-eval --skip-bad succeeds (exit %d: %r)"
                     % (r.returncode, r.stderr.strip())):
            return 1
        check("1 file of" in r.stderr and "left out" in r.stderr,
              "--skip-bad says 1 file was left out (%r)" % r.stderr.strip())
        with open(out) as f:
            fig = json.load(f)
        print("mislas-eval (%.1f s): top-1 %.4f%%  ECE %.4f%%  NLL %.6f  few %.4f%% (%d classes); per class: "
              "ours %s, PyTorch %s" % (took, fig["top1"], fig["ece"], fig["nll"], fig["few"], fig["few_classes"],
                                       ["%.2f" % a for a in fig["class_accuracy"]],
                                       ["%.2f" % a for a in ref["class_accuracy"]]))
        check(fig["dataset"] == "list" and fig["count"] == len(test),
              "the JSON names the list set and counts %d images (%r, %r)" % (len(test), fig["dataset"], fig["count"]))
        check(fig["train_counts"] == sorted(counts, reverse=True) and fig.get("list_labels") == by_count,
              "the class map: train_counts %r, list_labels %r (want %r, %r)"
              % (fig["train_counts"], fig.get("list_labels"), sorted(counts, reverse=True), by_count))
        check(abs(fig["top1"] - ref["top1"]) <= TOP1_TOL,
              "top-1: ours %.4f%%, PyTorch %.4f%%" % (fig["top1"], ref["top1"]))
        check(abs(fig["ece"] - ref["ece"]) <= ECE_TOL, "ECE: ours %.4f%%, PyTorch %.4f%%" % (fig["ece"], ref["ece"]))
        check(abs(fig["nll"] - ref["nll"]) <= NLL_TOL, "NLL: ours %.6f, PyTorch %.6f" % (fig["nll"], ref["nll"]))
        ours_pc = fig["class_accuracy"]
        check(len(ours_pc) == K and all(abs(a - b) <= TOP1_TOL for a, b in zip(ours_pc, ref["class_accuracy"])),
              "per-class accuracies: ours %r, PyTorch %r" % (ours_pc, ref["class_accuracy"]))
        got_bins = [(b["count"], b["accuracy"], b["confidence"]) for b in fig["bins"]]
        same_bins = len(got_bins) == BINS and all(
            g[0] == w[0] and (w[0] == 0 or (abs(g[1] - w[1]) < 1e-9 and abs(g[2] - w[2]) < 1e-4))
            for g, w in zip(got_bins, ref["bins"]))
        check(same_bins, "the reliability bins: ours %r, PyTorch %r" % (got_bins, ref["bins"]))
        # Many / Medium / Few by the training counts: 9..1 are all Few (< 20)
        few = sum(ref["class_accuracy"]) / K
        check((fig["many_classes"], fig["medium_classes"], fig["few_classes"]) == (0, 0, K)
              and fig["many"] is None and fig["medium"] is None and abs(fig["few"] - few) <= TOP1_TOL,
              "Many / Medium / Few: ours %r/%r/%r of %d/%d/%d classes, PyTorch's per-class mean %.4f%% over 5 Few"
              % (fig["many"], fig["medium"], fig["few"], fig["many_classes"], fig["medium_classes"],
                 fig["few_classes"], few))
    if failures:
        print("list_eval: %d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("list_eval: all checks passed in %.0f s" % (time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())

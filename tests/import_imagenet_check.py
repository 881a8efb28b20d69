#!/usr/bin/python3
"""tools/import_reference.py on the ImageNet family, against PyTorch.

The MiSLAS reference trains ImageNet-LT and iNaturalist 2018 with
models/resnet.py (resnet50_fe: a ResNet without fc, pooled to 2048 features,
and a separate Classifier with fc), and Places-LT with models/resnet_places.py
(resnet152_fe with layer4 cut to two blocks and no pooling, a separately
trained Bottleneck(2048, 512) saved as 'state_dict_block', and a Classifier
that pools, then fc). Stage 2 adds LearnableWeightScaling (learned_norm
[1, K]). This script writes those networks here in PyTorch, with the same
module and parameter names (and torchvision's own resnet50/101/152 when
torchvision is installed), gives them random weights, batch-norm running
statistics measured on random images and then moved off, random affine
parameters and scales, saves them as the reference's scripts (with and
without nn.DataParallel's 'module.', in both serialisation formats) or as a
plain torchvision state dict, and then for each:
  - runs the importer (the image size from --size, or its default 224);
  - reads the written file back with import_reference_check.read_checkpoint
    (our own parser of docs/checkpoint.md): MODL's fields, and every tensor's
    name, order and float32 bits against the PyTorch model's state dict;
  - runs tests/eval_dump (the library loads the file, EVAL mode, logits of N
    random images) and compares with PyTorch's eval-mode logits computed in
    float64 on the same float32 weights and images:
        err = max |logit_C - logit_ref| / max |logit_ref|  must be <= 1e-4.
ResNet-152 and ResNet-101 run at small sizes (ResNet-152 at 224 on two cores
would take most of a minute per image in float64); ResNet-50 at 224 and at a
non-square size.
Then --num-classes (a fresh classifier, drawn as the documentation says)
and the refusals: torchvision's ResNet-18, a ResNeXt and a wide ResNet, a
Places block with a projection or a tensor missing, a Places model whose
layer4 is already whole, a missing projection, a classifier of the wrong
width, a backbone with its own fc, a NaN, a plain CIFAR state dict (each exit
1 with a message, OUTPUT untouched), and bad --num-classes / --seed (exit 2).
Exits 77 (meson's "skipped") when torch or numpy cannot be imported; the
torchvision cases are skipped, with a line saying so, without torchvision.

Usage: import_imagenet_check.py PATH_TO_EVAL_DUMP [IMPORTER]
"""
import copy
import os
import shlex
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (install Debian's python3-torch)")
    sys.exit(77)
try:
    import torchvision
except ImportError:  # pragma: no cover - depends on the machine
    torchvision = None

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from import_reference_check import read_checkpoint  # noqa: E402  (our parser of the format)

IMPORTER = os.path.join(HERE, os.pardir, "tools", "import_reference.py")
TOLERANCE = 1e-4
WRAPPER = shlex.split(os.environ.get("MISLAS_TEST_WRAPPER", ""))
ARCH = {10: 5, 50: 6, 101: 7, 152: 8}
DEPTH = {10: ("basic", (1, 1, 1, 1)), 50: ("bottleneck", (3, 4, 6, 3)),
         101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


# ------------------------------------------- the reference's networks
# Module trees and parameter names as in the reference's models/resnet.py,
# models/resnet_places.py and methods.py (which are torchvision's names):
# stride on the 3x3 convolution of a bottleneck, projection shortcuts
# "downsample" = (1x1 conv with the stride, BN).

def bn(c):
    return nn.BatchNorm2d(c)


class Projection(nn.Sequential):
    def __init__(self, cin, cout, stride):
        super().__init__(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), bn(cout))


class Bottleneck(nn.Module):
    widen = 4

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.widen
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), bn(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = bn(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), bn(cout)
        self.downsample = Projection(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class Basic(nn.Module):
    widen = 1

    def __init__(self, cin, width, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1, bias=False), bn(width)
        self.downsample = Projection(cin, width, stride) if stride != 1 or cin != width else None

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class FeatureNet(nn.Module):
    """resnetN_fe: stem, four stages; pooled to features unless pool=False
    (the Places variant, whose Classifier pools). last_stage: blocks of layer4
    (the Places variant keeps 2 of ResNet-152's 3)."""

    def __init__(self, depth, in_channels=3, last_stage=None, pool=True):
        super().__init__()
        kind, counts = DEPTH[depth]
        unit = Bottleneck if kind == "bottleneck" else Basic
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = bn(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for s, n in enumerate(counts):
            if s == 3 and last_stage is not None:
                n = last_stage
            blocks = []
            for b in range(n):
                blocks.append(unit(cin, 64 << s, 2 if (b == 0 and s > 0) else 1))
                cin = (64 << s) * unit.widen
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.features = cin
        self.pool = pool

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3)) if self.pool else x


class Classifier(nn.Module):
    """The reference's Classifier: fc (the Places one pools first)."""

    def __init__(self, d, k, pool=False):
        super().__init__()
        self.pool = pool
        self.fc = nn.Linear(d, k)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)) if self.pool else x)


class Scales(nn.Module):
    """methods.py's LearnableWeightScaling."""

    def __init__(self, k):
        super().__init__()
        self.learned_norm = nn.Parameter(torch.ones(1, k))

    def forward(self, x):
        return self.learned_norm * x


class Chain(nn.Module):
    """What validate() computes: lws(classifier([block](model(x))))."""

    def __init__(self, parts):
        super().__init__()
        self.parts = nn.ModuleList([p for p in parts if p is not None])

    def forward(self, x):
        for p in self.parts:
            x = p(x)
        return x


def randomise(chain, calibration, gen):
    """Kaiming-normal (fan-in) convolutions, random BN affine parameters;
    running statistics measured on `calibration` in train mode, then moved
    off (eval-mode BN is then no near-identity); random fc and scales."""
    with torch.no_grad():
        for m in chain.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
                m.reset_running_stats()
                m.momentum = None
            elif isinstance(m, nn.Linear):
                d = m.weight.shape[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / d ** 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)
            elif isinstance(m, Scales):
                m.learned_norm.copy_(torch.rand(m.learned_norm.shape, generator=gen) * 1.5 + 0.5)
        chain.train()
        chain(calibration)
        for m in chain.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
                c = m.running_mean.numel()
                m.running_mean.add_(torch.randn(c, generator=gen) * 0.3 * m.running_var.sqrt())
                m.running_var.mul_(torch.rand(c, generator=gen) * 0.9 + 0.6)
                m.num_batches_tracked.fill_(4321)
    chain.eval()


def logits_of(chain, images, dtype):
    c = copy.deepcopy(chain).to(dtype)
    with torch.no_grad():
        return c(images.to(dtype)).double().numpy()


def state(module, wrap):
    return (nn.DataParallel(module) if wrap else module).state_dict()


# --------------------------------------------------------------- running

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def importer(*args, **kw):
    return run([sys.executable, IMPORTER, *[str(a) for a in args]], **kw)


class Case:
    def __init__(self, title, chain, expected, h, w, k, head, n_images):
        self.title, self.chain, self.expected = title, chain, expected
        self.h, self.w, self.k, self.head, self.n = h, w, k, head, n_images


RESULTS = []


def check(tmp, driver, case, payload, legacy, size_args, depth, gen, extra_args=()):
    """Save payload, import, read back, evaluate, compare."""
    t0 = time.time()
    src, dst = os.path.join(tmp, "in.pth"), os.path.join(tmp, "out.ckpt")
    torch.save(payload, src, _use_new_zipfile_serialization=not legacy)
    r = importer(src, dst, *size_args, *extra_args)
    if r.returncode != 0:
        raise AssertionError(f"{case.title}: importer failed ({r.returncode}): {r.stderr.strip()}")
    modl, tensors = read_checkpoint(dst)
    want = {"arch": ARCH[depth], "in_channels": 3, "height": case.h, "width": case.w,
            "num_classes": case.k, "head": case.head, "mode": 1, "backbone_frozen": 0, "seed": 0}
    assert modl == want, f"{case.title}: MODL {modl}, want {want}"
    names = [n for n, _, _ in tensors]
    want_names = [n for n, _ in case.expected]
    if names != want_names:
        first = next((i for i, (a, b) in enumerate(zip(names, want_names)) if a != b),
                     min(len(names), len(want_names)))
        raise AssertionError(f"{case.title}: tensor {first} is "
                             f"{names[first] if first < len(names) else '(none)'}, want "
                             f"{want_names[first] if first < len(want_names) else '(none)'}")
    for (name, dims, values), (_, t) in zip(tensors, case.expected):
        assert tuple(dims) == tuple(t.shape), f"{case.title}: {name} dims {dims}"
        assert np.array_equal(values.view(np.uint32),
                              t.numpy().astype("<f4").reshape(-1).view(np.uint32)), \
            f"{case.title}: {name} values differ"
    del tensors

    images = torch.randn(case.n, 3, case.h, case.w, generator=gen)
    img_path, out_path = os.path.join(tmp, "images.bin"), os.path.join(tmp, "logits.bin")
    images.numpy().astype(np.float32).tofile(img_path)
    r = run(WRAPPER + [driver, dst, img_path, str(case.n), out_path])
    if r.returncode != 0:
        raise AssertionError(f"{case.title}: eval_dump failed ({r.returncode}): {r.stderr.strip()}")
    got = np.fromfile(out_path, dtype=np.float32).astype(np.float64)
    assert got.size == case.n * case.k, f"{case.title}: eval_dump wrote {got.size} values"
    got = got.reshape(case.n, case.k)
    exact = logits_of(case.chain, images, torch.float64)
    single = logits_of(case.chain, images, torch.float32)
    peak = float(np.abs(exact).max())
    err = float(np.abs(got - exact).max()) / peak
    err32 = float(np.abs(single - exact).max()) / peak
    agree = int((got.argmax(1) == exact.argmax(1)).sum())
    print(f"  {case.title}: max|logit| {peak:.3g}, library error {err:.2e} (PyTorch float32 "
          f"{err32:.2e}), arg-max agrees {agree}/{case.n} [{time.time() - t0:.1f} s]",
          flush=True)
    RESULTS.append((case.title, err))
    if not err <= TOLERANCE:
        row, col = np.unravel_index(np.argmax(np.abs(got - exact)), got.shape)
        raise AssertionError(f"{case.title}: logits differ: relative error {err:.3e} > "
                             f"{TOLERANCE} (image {row}, class {col}: library {got[row, col]!r}, "
                             f"PyTorch {exact[row, col]!r})")
    os.unlink(src)
    os.unlink(dst)


def plain(sd):
    return {n: t.detach() for n, t in sd.items() if not n.endswith("num_batches_tracked")}


def reference_case(tmp, driver, title, depth, k, h, w, lws, wrap, legacy, seed, default_size=False,
                   n_images=3):
    """The reference's ImageNet-LT / iNaturalist network (models/resnet.py)."""
    gen = torch.Generator().manual_seed(seed)
    model = FeatureNet(depth)
    clf = Classifier(model.features, k)
    scales = Scales(k) if lws else None
    chain = Chain([model, clf, scales])
    randomise(chain, torch.randn(6, 3, h, w, generator=gen), gen)
    payload = {"epoch": 10, "state_dict_model": state(model, wrap),
               "state_dict_classifier": state(clf, wrap),
               "best_acc1": torch.tensor(52.5), "its_ece": np.float64(4.25)}
    if lws:
        payload["state_dict_lws_model"] = state(scales, wrap)
    expected = list(plain(model.state_dict()).items()) + list(plain(clf.state_dict()).items())
    expected.append(("learned_norm", scales.learned_norm.detach().reshape(-1) if lws
                     else torch.ones(k)))
    case = Case(title, chain, expected, h, w, k, 3 if lws else 0, n_images)
    check(tmp, driver, case, payload, legacy, [] if default_size else ["--size", h, w], depth, gen)


def places_case(tmp, driver, title, k, h, w, lws, wrap, legacy, seed):
    """The reference's Places-LT network (models/resnet_places.py and the
    'block' of train_stage1.py / train_stage2.py)."""
    gen = torch.Generator().manual_seed(seed)
    model = FeatureNet(152, last_stage=2, pool=False)
    block = Bottleneck(2048, 512)
    clf = Classifier(2048, k, pool=True)
    scales = Scales(k) if lws else None
    chain = Chain([model, block, clf, scales])
    randomise(chain, torch.randn(6, 3, h, w, generator=gen), gen)
    payload = {"epoch": 30, "state_dict_model": state(model, wrap),
               "state_dict_classifier": state(clf, wrap), "state_dict_block": state(block, wrap),
               "best_acc1": torch.tensor(40.0), "its_ece": np.float64(3.5)}
    if lws:
        payload["state_dict_lws_model"] = state(scales, wrap)
    expected = list(plain(model.state_dict()).items())
    expected += [(f"layer4.2.{n}", t) for n, t in plain(block.state_dict()).items()]
    expected += list(plain(clf.state_dict()).items())
    expected.append(("learned_norm", scales.learned_norm.detach().reshape(-1) if lws
                     else torch.ones(k)))
    case = Case(title, chain, expected, h, w, k, 3 if lws else 0, 3)
    check(tmp, driver, case, payload, legacy, ["--size", h, w], 152, gen)


def torchvision_case(tmp, driver, title, depth, h, w, wrap, seed, default_size=False,
                     num_classes=None, fresh_seed=0):
    """torchvision.models.resnetN's own state dict (fc included)."""
    gen = torch.Generator().manual_seed(seed)
    net = getattr(torchvision.models, f"resnet{depth}")()
    randomise(net, torch.randn(6, 3, h, w, generator=gen), gen)
    payload = state(net, wrap)
    expected = [(n, t) for n, t in plain(net.state_dict()).items() if not n.startswith("fc.")]
    extra = []
    if num_classes is None:
        k = 1000
        expected += [("fc.weight", net.fc.weight.detach()), ("fc.bias", net.fc.bias.detach())]
        chain = net
    else:
        # the fresh classifier as docs/import.md says it is drawn
        k = num_classes
        g = torch.Generator().manual_seed(fresh_seed)
        bound = 1.0 / 2048 ** 0.5
        weight = ((torch.rand(k, 2048, generator=g, dtype=torch.float64) * 2 - 1) * bound).float()
        bias = ((torch.rand(k, generator=g, dtype=torch.float64) * 2 - 1) * bound).float()
        chain = copy.deepcopy(net)
        chain.fc = nn.Linear(2048, k)
        with torch.no_grad():
            chain.fc.weight.copy_(weight)
            chain.fc.bias.copy_(bias)
        chain.eval()
        expected += [("fc.weight", weight), ("fc.bias", bias)]
        extra = ["--num-classes", k] + (["--seed", fresh_seed] if fresh_seed else [])
    expected.append(("learned_norm", torch.ones(k)))
    case = Case(title, chain, expected, h, w, k, 0, 3)
    check(tmp, driver, case, payload, False, [] if default_size else ["--size", h, w], depth,
          gen, extra)


# -------------------------------------------------------------- refusals

def small_reference(depth=50, k=7, lws=True):
    """A reference checkpoint dict (weights not randomised: only names and
    shapes matter to the refusals), with 'module.' keys."""
    model = FeatureNet(depth)
    d = {"epoch": 1, "state_dict_model": state(model, True),
         "state_dict_classifier": state(Classifier(model.features, k), True)}
    if lws:
        d["state_dict_lws_model"] = state(Scales(k), True)
    return d


def small_places(k=5):
    model = FeatureNet(152, last_stage=2, pool=False)
    return {"state_dict_model": state(model, True),
            "state_dict_classifier": state(Classifier(2048, k, pool=True), True),
            "state_dict_block": state(Bottleneck(2048, 512), True)}


def check_refusals(tmp):
    out = os.path.join(tmp, "existing.ckpt")
    sentinel = b"previous checkpoint\n"

    def edited(d, edit):
        d = copy.deepcopy(d)
        edit(d)
        return d

    def nan_in_layer4(d):
        d["state_dict_model"]["module.layer4.2.bn3.running_var"][7] = float("nan")

    def whole_layer4(d):
        # a Places file whose model already has all three blocks of layer4
        full = FeatureNet(152, pool=False)
        d["state_dict_model"] = state(full, True)

    def block_with_projection(d):
        d["state_dict_block"]["module.downsample.0.weight"] = torch.zeros(2048, 2048, 1, 1)

    r50 = small_reference()
    cases = [
        ("a missing projection (layer3.0.downsample.1.running_var)",
         edited(r50, lambda d: d["state_dict_model"].pop(
             "module.layer3.0.downsample.1.running_var")),
         "layer3.0.downsample.1.running_var"),
        ("a classifier of 512 features on ResNet-50",
         edited(r50, lambda d: d["state_dict_classifier"].__setitem__("module.fc.weight",
                                                                      torch.zeros(7, 512))),
         "want [K, 2048]"),
        ("a backbone with its own fc (the reference's resnet50(), not resnet50_fe())",
         edited(r50, lambda d: d["state_dict_model"].__setitem__("module.fc.weight",
                                                                 torch.zeros(7, 2048))),
         "module.fc.weight"),
        ("a NaN in layer4.2.bn3.running_var", edited(r50, nan_in_layer4), "NaN"),
        ("layer4 of 3-4-6-2 blocks (a block missing, no state_dict_block)",
         edited(r50, lambda d: [d["state_dict_model"].pop(n) for n in list(d["state_dict_model"])
                                if n.startswith("module.layer4.2.")]),
         "3-4-6-2"),
        ("a layer5", edited(r50, lambda d: d["state_dict_model"].__setitem__(
            "module.layer5.0.conv1.weight", torch.zeros(1))), "layer5"),
        ("a Places block with a projection", edited(small_places(), block_with_projection),
         "downsample.0.weight"),
        ("a Places block missing bn3.running_var",
         edited(small_places(), lambda d: d["state_dict_block"].pop("module.bn3.running_var")),
         "'state_dict_block' has no bn3.running_var"),
        ("a Places model whose layer4 is already whole (3-8-36-4 with the block)",
         edited(small_places(), whole_layer4), "3-8-36-4"),
        ("a plain state dict of a CIFAR network",
         {"conv1.weight": torch.zeros(16, 3, 3, 3), "linear.weight": torch.zeros(10, 64)},
         "CIFAR"),
    ]
    if torchvision is not None:
        cases += [
            ("torchvision's ResNet-18", torchvision.models.resnet18().state_dict(), "ResNet-18"),
            ("torchvision's ResNeXt-50 32x4d", torchvision.models.resnext50_32x4d().state_dict(),
             "ResNeXt"),
            ("torchvision's Wide ResNet-50-2", torchvision.models.wide_resnet50_2().state_dict(),
             "wide ResNet"),
        ]
    print("refusals (exit 1, a message naming the fault, OUTPUT untouched):")
    for title, payload, needle in cases:
        src = os.path.join(tmp, "bad.pth")
        torch.save(payload, src)
        with open(out, "wb") as f:
            f.write(sentinel)
        r = importer(src, out)
        assert r.returncode == 1, f"{title}: exit {r.returncode}, want 1 ({r.stderr.strip()})"
        assert "Traceback" not in r.stderr, f"{title}: {r.stderr}"
        assert needle in r.stderr, f"{title}: the message does not say {needle!r}: {r.stderr!r}"
        assert open(out, "rb").read() == sentinel, f"{title}: OUTPUT was changed"
        leftovers = [n for n in os.listdir(tmp) if n.endswith(".tmp")]
        assert not leftovers, f"{title}: temporary files left: {leftovers}"
        lines = [ln.strip() for ln in r.stderr.strip().splitlines()[1:]]
        shown = next((ln for ln in lines if needle in ln), lines[0] if lines else "")
        print(f"  {title}: {shown}")
    src = os.path.join(tmp, "bad.pth")
    torch.save(small_reference(depth=10), src)
    print("bad command lines (exit 2, nothing written):")
    for args in (["--num-classes", 0], ["--num-classes", (1 << 20) + 1], ["--seed", 3],
                 ["--num-classes", 5, "--seed", -1]):
        if os.path.exists(out):
            os.unlink(out)
        r = importer(src, out, *args)
        assert r.returncode == 2, f"{args}: exit {r.returncode}, want 2 ({r.stderr.strip()})"
        assert not os.path.exists(out), f"{args}: OUTPUT was written"
        print(f"  {' '.join(map(str, args))}: {r.stderr.strip().splitlines()[-1].strip()}")


def main():
    global IMPORTER
    args = sys.argv[1:]
    if len(args) not in (1, 2):
        print("usage: import_imagenet_check.py PATH_TO_EVAL_DUMP [IMPORTER]", file=sys.stderr)
        return 2
    driver = args[0]
    if len(args) == 2:
        IMPORTER = args[1]
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"imported ImageNet-family checkpoints against PyTorch (eval mode; error = "
              f"max|C - ref| / max|ref|, ref in float64, tolerance {TOLERANCE}):", flush=True)
        reference_case(tmp, driver, "reference ResNet-50 (ImageNet-LT) stage 2, K=1000, 224x224 "
                       "(the default size), DataParallel keys", 50, 1000, 224, 224, True, True,
                       False, 11, default_size=True)
        reference_case(tmp, driver, "reference ResNet-50 (iNaturalist) stage 1, K=8142, 96x80, "
                       "plain keys, legacy format", 50, 8142, 96, 80, False, False, True, 12)
        reference_case(tmp, driver, "reference ResNet-101 stage 2, K=100, 64x64, DataParallel keys",
                       101, 100, 64, 64, True, True, False, 13)
        reference_case(tmp, driver, "reference ResNet-10 stage 2, K=1000, 112x112, DataParallel "
                       "keys", 10, 1000, 112, 112, True, True, False, 15, n_images=4)
        places_case(tmp, driver, "reference Places-LT ResNet-152 stage 2 (state_dict_block as "
                    "layer4.2), K=365, 64x64, DataParallel keys", 365, 64, 64, True, True, False,
                    16)
        places_case(tmp, driver, "reference Places-LT ResNet-152 stage 1, K=365, 32x32, plain "
                    "keys, legacy format", 365, 32, 32, False, False, True, 17)
        if torchvision is None:
            print("  torchvision's state dicts: skipped (install Debian's python3-torchvision)")
        else:
            torchvision_case(tmp, driver, "torchvision resnet50, 224x224 (the default size)", 50,
                             224, 224, False, 21, default_size=True)
            torchvision_case(tmp, driver, "torchvision resnet101, 48x48, DataParallel keys", 101,
                             48, 48, True, 22)
            torchvision_case(tmp, driver, "torchvision resnet152, 32x32", 152, 32, 32, False, 23)
            torchvision_case(tmp, driver, "torchvision resnet50 with --num-classes 365 --seed 9, "
                             "64x64", 50, 64, 64, False, 24, num_classes=365, fresh_seed=9)
        check_refusals(tmp)
    worst = max(RESULTS, key=lambda r: r[1])
    print(f"all ImageNet import checks passed in {time.time() - start:.0f} s "
          f"(largest error {worst[1]:.2e}: {worst[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

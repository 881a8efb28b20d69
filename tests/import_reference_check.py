#!/usr/bin/python3
"""tools/import_reference.py and the library's model against PyTorch.

For each case this script builds, in PyTorch, the MiSLAS reference's CIFAR
network with the reference's module and parameter names (ResNet_fe backbone
with option-A shortcuts, Classifier with fc, LearnableWeightScaling with
learned_norm [1, K]), gives it random weights, batch-norm running statistics
measured on random images and then perturbed, and random scales, saves it as
the reference's training scripts do (a dict with 'state_dict_model',
'state_dict_classifier', 'state_dict_lws_model' after stage 2, plus 'epoch',
'best_acc1' as a tensor and 'its_ece' as a NumPy float), and then:
  - runs tools/import_reference.py on it;
  - reads the written file back with this script's own parser of
    docs/checkpoint.md (header, both CRC-32s, zlib, sections): MODL's fields,
    and every tensor's name, order, dims and float32 bits against the
    state dict;
  - runs the C driver (tests/eval_dump) on it: it loads the checkpoint with
    the library, switches to EVAL and writes the logits of N random images;
  - compares them with the PyTorch model in eval mode evaluated in float64
    on the same float32 weights and images:
        err = max |logit_C - logit_ref| / max |logit_ref|   (over all N x K)
    must be <= 1e-4. (PyTorch's own float32 error is printed beside it.)
Cases: ResNet-32, 3x32x32, K=10, stage 2 (with learned_norm), saved from
nn.DataParallel ('module.' keys); ResNet-32, 1x28x28, K=10, stage 1 (no
learned_norm), plain keys; ResNet-20, 3x32x32, K=13, stage 2, in PyTorch's
legacy (pre-1.6) serialisation, only the backbone wrapped in DataParallel.
Then it feeds the importer broken inputs (not a checkpoint, wrong object,
missing / unknown / misshapen / non-finite tensors, uneven stages, more input
channels than the library takes, a pickle naming a function to call, a zip
file with one byte of a tensor record flipped) and checks that each exits
with 1, prints a message and no traceback, leaves an existing OUTPUT
untouched and runs nothing from the file. The image sizes: --size outside
the library's [1, 4096] exits with 2 and writes nothing, the smallest size
(1x1) imports and gives PyTorch's logits, the largest (4096 per side)
imports into a file the library loads. OUTPUT naming INPUT (the same path,
another spelling of it, a symbolic or hard link to it) exits with 2, names
both and leaves INPUT as it was.
With --mislas-eval PATH, the 1x28x28 case's converted checkpoint is also
evaluated by that program on Fashion-MNIST's 10,000 test images (Debian's
dataset-fashion-mnist; this part is skipped without it), and its JSON must
agree with PyTorch evaluating the reference model in float32 on the same
normalised images: top-1 within 2 images, ECE (15 bins, the reference's
binning) within 0.02 points, NLL within 1e-4 relative.
Exits 77 (meson's "skipped") when torch or numpy cannot be imported.

Usage: import_reference_check.py PATH_TO_EVAL_DUMP [IMPORTER] [--mislas-eval PATH]
(IMPORTER defaults to tools/import_reference.py beside this tests folder.)
"""
import gzip
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import zlib

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (install Debian's python3-torch)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
IMPORTER = os.path.join(HERE, os.pardir, "tools", "import_reference.py")
TOLERANCE = 1e-4
N_IMAGES = 19


# ------------------------------------------------ the reference's network
# Same module tree and parameter names as the reference's resnet_cifar.py
# (ResNet_fe, BasicBlock, Classifier) and methods.py (LearnableWeightScaling).

class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.reshape = stride != 1 or cin != planes
        self.pad = planes // 4

    def shortcut(self, x):
        # option A: every second pixel, channels zero-padded on both sides
        if not self.reshape:
            return x
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNetFE(nn.Module):
    def __init__(self, blocks, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, planes in enumerate((16, 32, 64), start=1):
            layers = []
            for b in range(blocks):
                layers.append(BasicBlock(cin, planes, 2 if (b == 0 and s > 1) else 1))
                cin = planes
            setattr(self, f"layer{s}", nn.Sequential(*layers))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        y = F.avg_pool2d(y, y.size(3))
        return y.view(y.size(0), -1)


class Classifier(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.fc = nn.Linear(64, k)

    def forward(self, x):
        return self.fc(x)


class LearnableWeightScaling(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.learned_norm = nn.Parameter(torch.ones(1, k))

    def forward(self, x):
        return self.learned_norm * x


def randomised(blocks, cin, h, w, k, lws, gen):
    """Random weights; running statistics measured on random images, then
    moved off (so eval-mode BN is not a near-identity); random scales."""
    model, clf = ResNetFE(blocks, cin), Classifier(k)
    scale = LearnableWeightScaling(k) if lws else None
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
                m.reset_running_stats()
                m.momentum = None          # cumulative average over the calibration pass
        model.train()
        model(torch.randn(32, cin, h, w, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
                c = m.running_mean.numel()
                m.running_mean.add_(torch.randn(c, generator=gen) * 0.3 * m.running_var.sqrt())
                m.running_var.mul_(torch.rand(c, generator=gen) * 0.9 + 0.6)
                m.num_batches_tracked.fill_(1234)
        clf.fc.weight.copy_(torch.randn(k, 64, generator=gen) / 8.0)
        clf.fc.bias.copy_(torch.rand(k, generator=gen) - 0.5)
        if scale is not None:
            scale.learned_norm.copy_(torch.rand(1, k, generator=gen) * 1.5 + 0.5)
    for m in (model, clf, scale):
        if m is not None:
            m.eval()
    return model, clf, scale


def logits_of(model, clf, scale, images, dtype):
    import copy
    m, c = copy.deepcopy(model).to(dtype), copy.deepcopy(clf).to(dtype)
    s = copy.deepcopy(scale).to(dtype) if scale is not None else None
    with torch.no_grad():
        z = c(m(images.to(dtype)))
        if s is not None:
            z = s(z)
    return z.double().numpy()


# ------------------------------------------ docs/checkpoint.md, read back

def read_checkpoint(path):
    data = open(path, "rb").read()
    assert len(data) >= 40, "shorter than the header"
    magic, version, flags, size, csize, crc = struct.unpack_from("<8sIIQQI", data, 0)
    (hcrc,) = struct.unpack_from("<I", data, 36)
    assert magic == b"MISLASCK", f"magic {magic!r}"
    assert version == 1 and flags == 0, f"version {version}, flags {flags}"
    assert hcrc == zlib.crc32(data[:36]), "header CRC"
    assert len(data) == 40 + csize, "file size is not 40 + compressed size"
    content = zlib.decompress(data[40:])
    assert len(content) == size, "content size"
    assert zlib.crc32(content) == crc, "content CRC"
    sections, off = [], 0
    while off < len(content):
        tag = content[off:off + 4]
        (length,) = struct.unpack_from("<Q", content, off + 4)
        off += 12
        assert off + length <= len(content), "section past the content"
        sections.append((tag, content[off:off + length]))
        off += length
    assert sections and sections[0][0] == b"MODL", "MODL is not first"
    tags = [t for t, _ in sections]
    assert tags.count(b"MODL") == 1 and set(tags) <= {b"MODL", b"TENS"}, f"tags {set(tags)}"
    body = sections[0][1]
    assert len(body) == 40, f"MODL body is {len(body)} bytes"
    modl = dict(zip(("arch", "in_channels", "height", "width", "num_classes", "head", "mode",
                     "backbone_frozen", "seed"), struct.unpack("<IiiiiIIIQ", body)))
    tensors = []
    for tag, body in sections[1:]:
        (nlen,) = struct.unpack_from("<H", body, 0)
        name = body[2:2 + nlen].decode("ascii")
        (ndim,) = struct.unpack_from("<I", body, 2 + nlen)
        assert 1 <= ndim <= 4, f"{name}: ndim {ndim}"
        dims = struct.unpack_from("<%dQ" % ndim, body, 6 + nlen)
        start = 6 + nlen + 8 * ndim
        count = int(np.prod(dims))
        assert len(body) == start + 4 * count, f"{name}: body length"
        tensors.append((name, dims, np.frombuffer(body, dtype="<f4", offset=start, count=count)))
    return modl, tensors


def model_order(blocks):
    bn = ("weight", "bias", "running_mean", "running_var")
    names = ["conv1.weight"] + [f"bn1.{f}" for f in bn]
    for s in (1, 2, 3):
        for b in range(blocks):
            for i in (1, 2):
                names.append(f"layer{s}.{b}.conv{i}.weight")
                names += [f"layer{s}.{b}.bn{i}.{f}" for f in bn]
    return names + ["fc.weight", "fc.bias", "learned_norm"]


# ------------------------------------------------------------- the cases

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# MISLAS_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99") runs the C
# programs, not the Python importer, under a checker.
WRAPPER = shlex.split(os.environ.get("MISLAS_TEST_WRAPPER", ""))


def importer(*args, **kw):
    return run([sys.executable, IMPORTER, *[str(a) for a in args]], **kw)


def reference_dict(model, clf, scale, wrap_model, wrap_clf):
    wm = nn.DataParallel(model) if wrap_model else model
    wc = nn.DataParallel(clf) if wrap_clf else clf
    d = {"epoch": 200, "state_dict_model": wm.state_dict(),
         "state_dict_classifier": wc.state_dict(),
         "best_acc1": torch.tensor(61.25), "its_ece": np.float64(13.5)}
    if scale is not None:
        ws = nn.DataParallel(scale) if wrap_clf else scale
        d["state_dict_lws_model"] = ws.state_dict()
    return d


def check_case(tmp, driver, title, blocks, arch, cin, h, w, k, lws, wrap_model, wrap_clf,
               legacy, seed):
    gen = torch.Generator().manual_seed(seed)
    model, clf, scale = randomised(blocks, cin, h, w, k, lws, gen)
    ref = reference_dict(model, clf, scale, wrap_model, wrap_clf)
    src, dst = os.path.join(tmp, f"ref{seed}.pth.tar"), os.path.join(tmp, f"ours{seed}.ckpt")
    torch.save(ref, src, _use_new_zipfile_serialization=not legacy)
    size = [] if (h, w) == (32, 32) else ["--size", h, w]
    r = importer(src, dst, *size)
    if r.returncode != 0:
        raise AssertionError(f"{title}: importer failed ({r.returncode}): {r.stderr.strip()}")

    # the file, read back by our own parser
    modl, tensors = read_checkpoint(dst)
    want_modl = {"arch": arch, "in_channels": cin, "height": h, "width": w, "num_classes": k,
                 "head": 3 if lws else 0, "mode": 1, "backbone_frozen": 0, "seed": 0}
    assert modl == want_modl, f"{title}: MODL {modl}, want {want_modl}"
    names = [n for n, _, _ in tensors]
    assert names == model_order(blocks), f"{title}: tensor names or order differ"
    plain = dict(model.state_dict())
    plain.update(clf.state_dict())
    plain["learned_norm"] = (scale.learned_norm.detach().reshape(-1) if lws
                             else torch.ones(k))
    for name, dims, values in tensors:
        t = plain[name].detach()
        assert tuple(dims) == tuple(t.shape), f"{title}: {name} dims {dims}"
        assert np.array_equal(values.view(np.uint32),
                              t.numpy().astype("<f4").reshape(-1).view(np.uint32)), \
            f"{title}: {name} values differ"

    # the library's forward against PyTorch's
    images = torch.randn(N_IMAGES, cin, h, w, generator=gen)
    img_path, out_path = os.path.join(tmp, "images.bin"), os.path.join(tmp, "logits.bin")
    images.numpy().astype(np.float32).tofile(img_path)
    r = run(WRAPPER + [driver, dst, img_path, str(N_IMAGES), out_path])
    if r.returncode != 0:
        raise AssertionError(f"{title}: eval_dump failed ({r.returncode}): {r.stderr.strip()}")
    got = np.fromfile(out_path, dtype=np.float32).astype(np.float64)
    assert got.size == N_IMAGES * k, f"{title}: eval_dump wrote {got.size} values"
    got = got.reshape(N_IMAGES, k)
    exact = logits_of(model, clf, scale, images, torch.float64)
    single = logits_of(model, clf, scale, images, torch.float32)
    peak = float(np.abs(exact).max())
    err = float(np.abs(got - exact).max()) / peak
    err32 = float(np.abs(single - exact).max()) / peak
    agree = int((got.argmax(1) == exact.argmax(1)).sum())
    print(f"  {title}: max|logit| {peak:.3g}, library error {err:.2e} "
          f"(PyTorch float32 {err32:.2e}), arg-max agrees {agree}/{N_IMAGES}")
    if not err <= TOLERANCE:
        row, col = np.unravel_index(np.argmax(np.abs(got - exact)), got.shape)
        raise AssertionError(f"{title}: logits differ: relative error {err:.3e} > {TOLERANCE} "
                             f"(image {row}, class {col}: library {got[row, col]!r}, "
                             f"PyTorch {exact[row, col]!r})")
    return ref, (model, clf, scale, dst)


FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def reference_ece(conf, correct, bins=15):
    """The reference's ECE: bins (e_b, e_b+1], linspace edges, weighted gaps."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += abs(correct[inside].mean() - conf[inside].mean()) * inside.mean()
    return ece


def check_mislas_eval(tmp, program, case):
    """mislas-eval on a converted checkpoint against PyTorch on the same data."""
    model, clf, scale, path = case
    images_path = os.path.join(FASHION_MNIST, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(images_path):
        print(f"  mislas-eval on the converted checkpoint: skipped ({FASHION_MNIST} is missing)")
        return
    images = read_idx(images_path).astype(np.float64) / 255.0
    labels = read_idx(os.path.join(FASHION_MNIST, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    x = torch.from_numpy(((images - 0.2860) / 0.3530)[:, None, :, :])
    # float32 like the library (float64 convolutions would take minutes here);
    # the tolerances below are far above float32's rounding
    logits = np.concatenate([logits_of(model, clf, scale, x[i:i + 1000], torch.float32)
                             for i in range(0, len(x), 1000)])
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    pred, conf = logp.argmax(1), np.exp(logp.max(1))
    top1 = 100.0 * (pred == labels).mean()
    ece = 100.0 * reference_ece(conf, (pred == labels).astype(np.float64))
    nll = float(-logp[np.arange(len(labels)), labels].mean())
    out = os.path.join(tmp, "eval.json")
    r = run(WRAPPER + [program, path, "--dataset", "fashion-mnist", "--json", out, "--quiet"])
    if r.returncode != 0:
        raise AssertionError(f"mislas-eval failed ({r.returncode}): {r.stderr.strip()}")
    with open(out) as f:
        got = json.load(f)
    print(f"  mislas-eval on the converted checkpoint, 10,000 Fashion-MNIST test images: top-1 "
          f"{got['top1']:.2f} % (PyTorch {top1:.2f} %), ECE {got['ece']:.3f} % ({ece:.3f} %), "
          f"NLL {got['nll']:.5f} ({nll:.5f})")
    assert abs(got["top1"] - top1) <= 0.02 + 1e-9, "top-1 differs by more than 2 images"
    assert abs(got["ece"] - ece) <= 0.02, "ECE differs by more than 0.02 points"
    assert abs(got["nll"] - nll) <= 1e-4 * abs(nll), "NLL differs"


class Boom:
    """Unpickling this calls open(marker, 'w'): a file the loader must refuse."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def check_rejections(tmp, good):
    """good: a valid reference dict (stage 2, with 'module.' keys)."""
    import copy
    out = os.path.join(tmp, "existing.ckpt")
    marker = os.path.join(tmp, "pwned")

    def variant(edit):
        d = copy.deepcopy(good)
        edit(d)
        return d

    def sd(d, which="state_dict_model"):
        return d[which]

    def add_nan(d):
        sd(d)["module.layer2.1.bn1.running_var"][3] = float("nan")

    def drop_stage_block(d):
        for key in [k for k in sd(d) if k.startswith("module.layer3.4.")]:
            del sd(d)[key]

    cases = [
        ("random bytes", b"\x00\x01not a checkpoint\xff" * 20),
        ("an empty file", b""),
        ("a list, not a dict", [1, 2, 3]),
        ("no state_dict_classifier",
         variant(lambda d: d.pop("state_dict_classifier"))),
        ("a missing tensor (layer2.3.bn1.running_var)",
         variant(lambda d: sd(d).pop("module.layer2.3.bn1.running_var"))),
        ("an unknown tensor (layer1.0.extra.weight)",
         variant(lambda d: sd(d).__setitem__("module.layer1.0.extra.weight", torch.ones(3)))),
        ("fc.bias of K+1 values",
         variant(lambda d: sd(d, "state_dict_classifier").__setitem__(
             "module.fc.bias", torch.zeros(11)))),
        ("fc.weight with 32 features",
         variant(lambda d: sd(d, "state_dict_classifier").__setitem__(
             "module.fc.weight", torch.zeros(10, 32)))),
        ("learned_norm [1, K+1]",
         variant(lambda d: sd(d, "state_dict_lws_model").__setitem__(
             "module.learned_norm", torch.ones(1, 11)))),
        ("a NaN in a running variance", variant(add_nan)),
        ("stages of 5/5/4 blocks", variant(drop_stage_block)),
        ("a non-tensor value in a state dict",
         variant(lambda d: sd(d).__setitem__("module.bn1.weight", [1.0] * 16))),
        ("a pickle naming a function to call",
         variant(lambda d: d.__setitem__("extra", Boom(marker)))),
        ("conv1.weight with 4097 input channels (the library takes 1 to 4096)",
         variant(lambda d: sd(d).__setitem__("module.conv1.weight",
                                              torch.zeros(16, 4097, 3, 3)))),
    ]
    print("importer rejections (exit 1, message, OUTPUT untouched):")
    sentinel = b"previous checkpoint\n"
    for title, payload in cases:
        src = os.path.join(tmp, "bad.pth")
        if isinstance(payload, bytes):
            with open(src, "wb") as f:
                f.write(payload)
        else:
            torch.save(payload, src)
        with open(out, "wb") as f:
            f.write(sentinel)
        r = importer(src, out)
        first = r.stderr.strip().splitlines()[-1].strip() if r.stderr.strip() else ""
        assert r.returncode == 1, f"{title}: exit {r.returncode}, want 1 ({r.stderr.strip()})"
        assert r.stderr.strip() and "Traceback" not in r.stderr, f"{title}: stderr {r.stderr!r}"
        assert open(out, "rb").read() == sentinel, f"{title}: OUTPUT was changed"
        assert not os.path.exists(marker), f"{title}: the file's code ran"
        leftovers = [n for n in os.listdir(tmp) if n.endswith(".tmp")]
        assert not leftovers, f"{title}: temporary files left: {leftovers}"
        print(f"  {title}: {first}")
    r = importer(os.path.join(tmp, "no-such-file.pth"), out)
    assert r.returncode == 1 and "Traceback" not in r.stderr, f"missing input: {r.stderr}"
    print("  a missing input file: exit 1")
    r = importer("--help")
    assert r.returncode == 0 and "usage" in r.stdout, "--help"
    print("  --help: exit 0")


def flip_tensor_byte(src, dst):
    """dst: src, a zip-format PyTorch file, with one byte in the middle of
    its largest tensor record flipped; returns that member's name."""
    import zipfile
    data = bytearray(open(src, "rb").read())
    with zipfile.ZipFile(src) as z:
        records = [i for i in z.infolist() if "/data/" in i.filename and i.file_size > 0]
        assert records, f"{src}: no tensor records"
        info = max(records, key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED, "PyTorch stores tensor records uncompressed"
    at = info.header_offset
    assert data[at:at + 4] == b"PK\x03\x04", "local header"
    name_len, extra_len = struct.unpack_from("<HH", data, at + 26)
    data[at + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    with open(dst, "wb") as f:
        f.write(data)
    with zipfile.ZipFile(dst) as z:
        assert z.testzip() == info.filename, "the flipped byte is not where it was meant to be"
    return info.filename


def check_damaged_zip(tmp, good):
    """A zip-format file whose CRC-32 check fails is refused, not imported."""
    src, bad, out = (os.path.join(tmp, n) for n in ("zip-good.pth", "zip-bad.pth", "z.ckpt"))
    torch.save(good, src)
    member = flip_tensor_byte(src, bad)
    sentinel = b"previous checkpoint\n"
    with open(out, "wb") as f:
        f.write(sentinel)
    r = importer(bad, out)
    assert r.returncode == 1, \
        f"a flipped byte in {member}: exit {r.returncode}, want 1 ({r.stderr.strip()})"
    assert member in r.stderr and "Traceback" not in r.stderr, \
        f"a flipped byte in {member}: the message does not name the member: {r.stderr!r}"
    assert open(out, "rb").read() == sentinel, "a damaged zip: OUTPUT was changed"
    leftovers = [n for n in os.listdir(tmp) if n.endswith(".tmp")]
    assert not leftovers, f"a damaged zip: temporary files left: {leftovers}"
    print(f"  a flipped byte in tensor record {member}: "
          f"{r.stderr.strip().splitlines()[-1].strip()}")
    r = importer(src, out, "-q")
    assert r.returncode == 0, f"the same file undamaged: exit {r.returncode} ({r.stderr.strip()})"


def check_same_file(tmp, good):
    """OUTPUT that is INPUT, however spelt, is a bad command line."""
    folder = os.path.join(tmp, "same")
    os.mkdir(folder)
    src = os.path.join(folder, "same.pth")
    torch.save(good, src)
    original = open(src, "rb").read()
    os.symlink("same.pth", os.path.join(folder, "link.pth"))
    os.link(src, os.path.join(folder, "hard.pth"))
    print("OUTPUT naming INPUT (exit 2, both named, INPUT untouched):")
    for title, a, b in [("the same path", "same.pth", "same.pth"),
                        ("./same.pth and same.pth", "./same.pth", "same.pth"),
                        ("an absolute and a relative path", src, "same.pth"),
                        ("a symbolic link to INPUT as OUTPUT", "same.pth", "link.pth"),
                        ("a symbolic link as INPUT, its target as OUTPUT", "link.pth", "same.pth"),
                        ("a hard link to INPUT as OUTPUT", "same.pth", "hard.pth")]:
        r = importer(a, b, cwd=folder)
        assert r.returncode == 2, f"{title}: exit {r.returncode}, want 2 ({r.stderr.strip()})"
        assert a in r.stderr and b in r.stderr and "Traceback" not in r.stderr, \
            f"{title}: the message does not name both paths: {r.stderr!r}"
        assert open(src, "rb").read() == original, f"{title}: INPUT was changed"
        assert os.path.islink(os.path.join(folder, "link.pth")), f"{title}: the link was replaced"
        assert os.stat(os.path.join(folder, "hard.pth")).st_ino == os.stat(src).st_ino, \
            f"{title}: the hard link was replaced"
        leftovers = [n for n in os.listdir(folder) if n.endswith(".tmp")]
        assert not leftovers, f"{title}: temporary files left: {leftovers}"
        print(f"  {title}: {r.stderr.strip().splitlines()[-1].strip()}")
    r = importer("same.pth", "other.ckpt", "-q", cwd=folder)
    assert r.returncode == 0, f"an OUTPUT that does not exist yet: exit {r.returncode}"


MIN_SIDE, MAX_SIDE = 1, 4096    # the library's (mislas_model_new)


def check_sizes(tmp, driver, good):
    """--size: exactly the library's range, and the files at its ends load."""
    src, out = os.path.join(tmp, "sizes.pth"), os.path.join(tmp, "sizes.ckpt")
    torch.save(good, src)
    print(f"--size outside [{MIN_SIDE}, {MAX_SIDE}] (exit 2, the range named, nothing written):")
    for h, w in [(5000, 5000), (MAX_SIDE + 1, 32), (32, MAX_SIDE + 1), (0, 32), (32, 0),
                 (-1, 32)]:
        r = importer(src, out, "--size", h, w)
        assert r.returncode == 2, f"--size {h} {w}: exit {r.returncode}, want 2"
        assert f"[{MIN_SIDE}, {MAX_SIDE}]" in r.stderr, f"--size {h} {w}: message {r.stderr!r}"
        assert not os.path.exists(out), f"--size {h} {w}: OUTPUT was written"
        print(f"  --size {h} {w}: {r.stderr.strip().splitlines()[-1].strip()}")
    r = importer("--help")
    assert f"[{MIN_SIDE}, {MAX_SIDE}]" in " ".join(r.stdout.split()), \
        f"--help does not give the range [{MIN_SIDE}, {MAX_SIDE}]"
    # The largest sizes: the library loads the file (a forward pass at
    # 4096x4096 would need gigabytes): eval_dump, given no images, gets past
    # loading the checkpoint and reading its options and stops at the images.
    empty = os.path.join(tmp, "no-images.bin")
    open(empty, "wb").close()
    for h, w in [(MAX_SIDE, MAX_SIDE), (MIN_SIDE, MAX_SIDE), (MAX_SIDE, MIN_SIDE)]:
        r = importer(src, out, "--size", h, w, "-q")
        assert r.returncode == 0, f"--size {h} {w}: exit {r.returncode} ({r.stderr.strip()})"
        modl, _ = read_checkpoint(out)
        assert (modl["height"], modl["width"]) == (h, w), f"--size {h} {w}: MODL {modl}"
        r = run(WRAPPER + [driver, out, empty, "1", os.path.join(tmp, "unused.bin")])
        loaded = any(line.startswith(f"eval_dump: {empty}:") for line in r.stderr.splitlines())
        assert r.returncode == 1 and loaded, \
            f"--size {h} {w}: the library does not load the file: {r.stderr.strip()}"
        print(f"  --size {h} {w}: imported, and the library loads it")
        os.unlink(out)


def main():
    global IMPORTER
    args = sys.argv[1:]
    mislas_eval = None
    if "--mislas-eval" in args:
        at = args.index("--mislas-eval")
        mislas_eval = args[at + 1] if at + 1 < len(args) else None
        del args[at:at + 2]
    if len(args) not in (1, 2) or ("--mislas-eval" in sys.argv and mislas_eval is None):
        print("usage: import_reference_check.py PATH_TO_EVAL_DUMP [IMPORTER] [--mislas-eval PATH]",
              file=sys.stderr)
        return 2
    driver = args[0]
    if len(args) == 2:
        IMPORTER = args[1]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"imported checkpoints against PyTorch (eval mode, {N_IMAGES} images; "
              f"error = max|C - ref| / max|ref|, ref in float64, tolerance {TOLERANCE}):")
        good, _ = check_case(tmp, driver, "ResNet-32 3x32x32 K=10, learned_norm, DataParallel keys",
                          5, 1, 3, 32, 32, 10, True, True, True, False, 1)
        _, fmnist_case = check_case(tmp, driver, "ResNet-32 1x28x28 K=10, no learned_norm, plain keys",
                                    5, 1, 1, 28, 28, 10, False, False, False, False, 2)
        if mislas_eval is not None:
            check_mislas_eval(tmp, mislas_eval, fmnist_case)
        check_case(tmp, driver, "ResNet-20 3x32x32 K=13, learned_norm, legacy format, "
                   "backbone keys only with 'module.'", 3, 0, 3, 32, 32, 13, True, True, False,
                   True, 3)
        check_case(tmp, driver, "ResNet-20 3x1x1 K=7, learned_norm, the smallest --size",
                   3, 0, 3, 1, 1, 7, True, False, False, False, 4)
        check_rejections(tmp, good)
        check_damaged_zip(tmp, good)
        check_same_file(tmp, good)
        check_sizes(tmp, driver, good)
    print("all import checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

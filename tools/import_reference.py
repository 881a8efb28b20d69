#!/usr/bin/python3
"""Convert a MiSLAS reference checkpoint (PyTorch) into a libmislas checkpoint.

The reference's training scripts save a dict with 'state_dict_model' (the
backbone: ResNet_fe of models/resnet_cifar.py, or ResNet_FE of
models/resnet.py for ImageNet-LT and iNaturalist), 'state_dict_classifier'
(fc.weight [K, D], fc.bias [K]), after stage 2 'state_dict_lws_model'
(learned_norm [1, K]), and for Places-LT (models/resnet_places.py) a
ResNet-152 whose layer4 stops after two blocks plus 'state_dict_block', the
trained third one. A torchvision ResNet's own state dict (conv1.weight ...
fc.bias) is read as well. This tool reads such a file with torch.load (on the
CPU, through an unpickler that only accepts tensors, containers and numbers),
checks every tensor's name and shape, and writes the model as a version-1
libmislas checkpoint (docs/checkpoint.md): arch from the blocks per stage
(CIFAR 3/5/7/9/18: ResNet-20/32/44/56/110; ImageNet basic 1-1-1-1:
ResNet-10, bottlenecks 3-4-6-3 / 3-4-23-3 / 3-8-36-3: ResNet-50/101/152),
input channels from conv1.weight, K from fc.weight, head MiSLAS when
learned_norm is present (LINEAR otherwise, with the scales set to 1), mode
EVAL. See docs/import.md.

Exit status: 0 done, 1 the input cannot be imported (the message says why;
OUTPUT is left as it was), 2 bad command line (OUTPUT being INPUT included).
"""

import argparse
import io
import os
import pickle
import re
import struct
import sys
import tempfile
import types
import zipfile
import zlib

FORMAT_VERSION = 1
MAGIC = b"MISLASCK"

# mislas_arch for the CIFAR ResNets, by blocks per stage.
ARCH_BY_BLOCKS = {3: (0, "ResNet-20"), 5: (1, "ResNet-32"), 7: (2, "ResNet-44"),
                  9: (3, "ResNet-56"), 18: (4, "ResNet-110")}
# mislas_arch for the ImageNet ResNets, by (bottleneck blocks?, blocks per
# stage): the reference's models/resnet.py (and torchvision's) networks the
# library has.
IMAGENET_ARCHS = {(False, (1, 1, 1, 1)): (5, "ResNet-10"),
                  (True, (3, 4, 6, 3)): (6, "ResNet-50"),
                  (True, (3, 4, 23, 3)): (7, "ResNet-101"),
                  (True, (3, 8, 36, 3)): (8, "ResNet-152")}
OTHER_IMAGENET = {(False, (2, 2, 2, 2)): "ResNet-18", (False, (3, 4, 6, 3)): "ResNet-34"}
HEAD_LINEAR, HEAD_MISLAS = 0, 3
MODE_EVAL = 1
STAGE_PLANES = (16, 32, 64)
FEATURES = 64
BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
BLOCK_RE = re.compile(r"layer(\d+)\.(\d+)\.")
# The library's limits (lib/model/model.c, checked by mislas_model_new and so
# by the checkpoint loader): image sides, input channels and classes outside
# them make a file the library refuses. The CIFAR ResNets have no smaller
# minimum side: 3x3 convolutions with padding 1 take a 1x1 map.
MIN_SIDE, MAX_SIDE = 1, 4096
MAX_CHANNELS, MAX_CLASSES = 4096, 1 << 20
# What PyTorch's zip format (1.6 and later) starts with: torch.load reads
# such a file as a zip archive, the others as its legacy pickle stream.
ZIP_MAGIC = b"PK\x03\x04"


class Reject(Exception):
    """The input cannot be imported; the message says why."""


class WriteFailed(Reject):
    """OUTPUT cannot be written."""


# ---------------------------------------------------------------- loading

def restricted_pickle_module(torch):
    """A pickle module for torch.load whose unpickler resolves only the
    globals a checkpoint of tensors, dicts and numbers needs (what the
    reference's files hold: state dicts, an epoch, best_acc1 as a tensor,
    its_ece as a NumPy float). Anything else is refused, never executed."""
    allowed = {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.nn.parameter", "Parameter"),
        ("torch", "Tensor"),
        ("torch", "Size"),
        ("torch.serialization", "_get_layout"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
    }

    def permitted(module, name):
        if (module, name) in allowed:
            return True
        if module == "torch" and (name.endswith("Storage")
                                  or isinstance(getattr(torch, name, None), torch.dtype)):
            return True
        return module == "numpy.dtypes" and name.endswith("DType")

    mod = types.ModuleType("mislas_restricted_pickle")

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if permitted(module, name):
                mod.resolved += 1
                return super().find_class(module, name)
            raise pickle.UnpicklingError(
                f"the file refers to {module}.{name}, which a checkpoint of "
                "tensors and numbers does not need; refused (use --unsafe-load "
                "only if you trust the file)")

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    mod.Unpickler = Unpickler
    mod.resolved = 0
    mod.load = load
    mod.UnpicklingError = pickle.UnpicklingError
    return mod


def read_input(path):
    """The whole file, read once: the bytes checked are the bytes loaded."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise Reject(f"{path}: no such file") from None
    except IsADirectoryError:
        raise Reject(f"{path}: is a directory") from None
    except OSError as e:
        raise Reject(f"{path}: {e.strerror or e}") from None


def check_zip_members(path, data):
    """PyTorch's zip reader does not check the members' CRC-32s, so a
    damaged file would load with wrong weights: read every member of a
    zip-format file through zipfile, which checks each one's CRC-32 at its
    end, and Reject the file at the first member that fails."""
    if not data.startswith(ZIP_MAGIC):
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as e:  # BadZipFile, or worse for a mangled directory
        raise Reject(f"{path}: a damaged zip container ({type(e).__name__}: {e})") from None
    with archive:
        for info in archive.infolist():
            try:
                with archive.open(info) as member:
                    while member.read(1 << 20):
                        pass
            except Exception as e:  # BadZipFile (bad CRC-32 or header), zlib.error, EOFError
                raise Reject(f"{path}: damaged: member {info.filename} of the zip container "
                             f"fails its check ({type(e).__name__}: {e})") from None


def torch_load(torch, path, data, unsafe):
    kwargs = {"map_location": "cpu"}
    try:
        import inspect
        takes_weights_only = "weights_only" in inspect.signature(torch.load).parameters
    except (TypeError, ValueError):
        takes_weights_only = False
    if takes_weights_only:
        kwargs["weights_only"] = False
    restricted = None
    if not unsafe:
        restricted = restricted_pickle_module(torch)
        kwargs["pickle_module"] = restricted
    # PyTorch 1.13.0 ignores pickle_module (it always uses the pickle module
    # torch.serialization imported), so that name is pointed at the
    # restricted module too while loading; a canary load then proves that
    # the restricted unpickler is the one in use before the file is opened.
    serialization = getattr(torch, "serialization", None)
    patched = restricted is not None and serialization is not None \
        and getattr(serialization, "pickle", None) is pickle
    if patched:
        serialization.pickle = restricted
    try:
        if restricted is not None:
            canary = io.BytesIO()
            torch.save({"t": torch.zeros(1)}, canary)
            canary.seek(0)
            restricted.resolved = 0
            try:
                torch.load(canary, **kwargs)
            except Exception as e:
                raise Reject(f"this PyTorch cannot load through the restricted unpickler ({e}); "
                             "use --unsafe-load if you trust the file") from None
            if restricted.resolved == 0:
                raise Reject("this PyTorch bypasses the restricted unpickler; use --unsafe-load "
                             "if you trust the file")
        return torch.load(io.BytesIO(data), **kwargs)
    except Reject:
        raise
    except Exception as e:  # torch raises many kinds for a foreign or corrupt file
        text = str(e).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        raise Reject(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {msg})") \
            from None
    finally:
        if patched:
            serialization.pickle = pickle


# ------------------------------------------------------------- checking

def strip_state_dict(torch, sd, what):
    """name -> float32 tensor, without DataParallel's 'module.' prefix and
    without num_batches_tracked."""
    if not isinstance(sd, dict):
        raise Reject(f"'{what}' is a {type(sd).__name__}, not a state dict")
    out = {}
    for key, value in sd.items():
        if not isinstance(key, str):
            raise Reject(f"'{what}' has a key that is not a string: {key!r}")
        name = key[len("module."):] if key.startswith("module.") else key
        if name == "num_batches_tracked" or name.endswith(".num_batches_tracked"):
            continue
        if not isinstance(value, torch.Tensor):
            raise Reject(f"'{what}': {key} is a {type(value).__name__}, not a tensor")
        if name in out:
            raise Reject(f"'{what}': {name} appears both with and without the 'module.' prefix")
        if not value.is_floating_point():
            raise Reject(f"'{what}': {key} holds {value.dtype}, not floating-point values")
        if value.is_sparse or value.is_quantized:
            raise Reject(f"'{what}': {key} is not a dense tensor")
        out[name] = (key, value.detach().to(device="cpu", dtype=torch.float32).contiguous())
    return out


def blocks_per_stage(names):
    """Block counts of layer1..3 from the names; Reject if not a CIFAR ResNet."""
    seen = {}
    for name in names:
        m = BLOCK_RE.match(name)
        if m:
            seen.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    extra = sorted(s for s in seen if s not in (1, 2, 3))
    if extra:
        raise Reject(f"'state_dict_model' has layer{extra[-1]}; the CIFAR ResNets have "
                     "layer1 to layer3")
    counts = []
    for s in (1, 2, 3):
        idx = seen.get(s, set())
        if not idx:
            raise Reject(f"'state_dict_model' has no layer{s} blocks: not a CIFAR ResNet")
        n = max(idx) + 1
        if len(idx) != n:
            missing = min(set(range(n)) - idx)
            raise Reject(f"'state_dict_model': block layer{s}.{missing} is missing "
                         f"(layer{s} has blocks up to layer{s}.{n - 1})")
        counts.append(n)
    if len(set(counts)) != 1:
        raise Reject("'state_dict_model': blocks per stage differ (%d/%d/%d); the CIFAR "
                     "ResNets have the same number in each stage" % tuple(counts))
    if counts[0] not in ARCH_BY_BLOCKS:
        raise Reject(f"'state_dict_model': {counts[0]} blocks per stage is none of ResNet-20/32/"
                     "44/56/110 (3/5/7/9/18 blocks)")
    return counts[0]


def expected_tensors(blocks, in_channels, k):
    """(name, shape) in the model's tensor order."""
    out = []

    def conv(prefix, cout, cin):
        out.append((prefix + ".weight", (cout, cin, 3, 3)))

    def bn(prefix, c):
        out.extend((f"{prefix}.{f}", (c,)) for f in BN_FIELDS)

    conv("conv1", STAGE_PLANES[0], in_channels)
    bn("bn1", STAGE_PLANES[0])
    cin = STAGE_PLANES[0]
    for s, planes in enumerate(STAGE_PLANES, start=1):
        for b in range(blocks):
            p = f"layer{s}.{b}"
            conv(p + ".conv1", planes, cin)
            bn(p + ".bn1", planes)
            conv(p + ".conv2", planes, planes)
            bn(p + ".bn2", planes)
            cin = planes
    out.append(("fc.weight", (k, FEATURES)))
    out.append(("fc.bias", (k,)))
    out.append(("learned_norm", (k,)))
    return out


def shape_str(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_values(torch, sources, want, where_missing, problems):
    """The tensors of want [(name, shape)] from sources {name: (entry, key,
    tensor)} in want's order; each missing, misshapen, non-finite tensor or
    negative running variance is added to problems."""
    tensors = []
    for name, shape in want:
        if name not in sources:
            problems.append(where_missing(name))
            continue
        where, key, t = sources[name]
        if tuple(t.shape) != shape:
            problems.append(f"'{where}': {key} is {shape_str(t.shape)}, want {shape_str(shape)}")
            continue
        if not bool(torch.isfinite(t).all()):
            problems.append(f"'{where}': {key} holds NaN or infinite values"
                            " (after conversion to float32)")
            continue
        if name.endswith(".running_var") and bool((t < 0).any()):
            problems.append(f"'{where}': {key} has negative variances")
            continue
        tensors.append((name, t))
    return tensors


def add_sources(sources, entry, tensors, rename=None):
    """tensors {name: (key, tensor)} of file entry `entry` into sources
    {name: (entry, key, tensor)}, each name through rename if given."""
    for name, (key, t) in tensors.items():
        sources[rename(name) if rename else name] = (entry, key, t)


def scales_of(torch, lws, k):
    """learned_norm as a [K] tensor with its origin, or ones without lws."""
    if lws is None:
        return ("(none)", "learned_norm", torch.ones(k, dtype=torch.float32))
    key, t = lws["learned_norm"]
    if tuple(t.shape) not in ((1, k), (k,)):
        raise Reject(f"'state_dict_lws_model': {key} is {shape_str(t.shape)}, want [1, {k}]")
    return ("state_dict_lws_model", key, t.reshape(-1))


def fresh_classifier(torch, k, d, seed):
    """fc.weight [K, D] and fc.bias [K] as nn.Linear(D, K) initialises them
    (uniform in +-1/sqrt(D)), drawn from a generator seeded with seed."""
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / d ** 0.5
    weight = (torch.rand(k, d, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    bias = (torch.rand(k, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    return weight.to(torch.float32), bias.to(torch.float32)


def is_imagenet_backbone(names, tensors):
    """Whether a backbone's names are those of the ImageNet family: a
    layer4, or a stem that is not the CIFAR one (a 7x7 conv1)."""
    if any(n.startswith("layer4.") for n in names):
        return True
    conv1 = tensors.get("conv1.weight")
    return conv1 is not None and conv1[1].dim() == 4 and tuple(conv1[1].shape[2:]) == (7, 7)


def looks_like_plain_state_dict(obj):
    """A torchvision-style state dict: tensors under their module names,
    conv1.weight among them (with or without 'module.')."""
    return isinstance(obj, dict) and "state_dict_model" not in obj and any(
        isinstance(k, str) and k in ("conv1.weight", "module.conv1.weight") for k in obj)


def collect(torch, ckpt, num_classes=None, seed=0):
    """The checked model: Model(arch, name, family, in_channels, K, head,
    [(name, tensor)], origin). num_classes: replace the classifier by a fresh
    one of that many classes (head LINEAR)."""
    if looks_like_plain_state_dict(ckpt):
        sd = strip_state_dict(torch, ckpt, "state dict")
        if not is_imagenet_backbone(sd, sd):
            raise Reject("the file is a plain state dict of a network with a CIFAR-style stem "
                         "(no layer4, no 7x7 conv1): the importer takes a torchvision ImageNet "
                         "ResNet's state dict, or the reference's checkpoint dict (with "
                         "'state_dict_model' and 'state_dict_classifier') for the CIFAR ResNets")
        backbone = {n: v for n, v in sd.items() if not n.startswith("fc.")}
        classifier = {n: v for n, v in sd.items() if n.startswith("fc.")}
        return collect_imagenet(torch, "torchvision", backbone, "state dict", classifier,
                                "state dict", None, None, num_classes, seed)
    if not isinstance(ckpt, dict):
        raise Reject(f"the file holds a {type(ckpt).__name__}, not the reference's checkpoint dict "
                     "(with 'state_dict_model' and 'state_dict_classifier') nor a torchvision "
                     "state dict")
    need = ("state_dict_model",) if num_classes is not None else \
        ("state_dict_model", "state_dict_classifier")
    for key in need:
        if key not in ckpt:
            have = ", ".join(repr(k) for k in list(ckpt)[:8]) or "nothing"
            hint = ("" if "state_dict_model" in ckpt else "; neither the reference's checkpoint "
                    "dict nor a torchvision state dict (conv1.weight, layer1.0..., fc.weight)")
            raise Reject(f"the checkpoint has no '{key}' (it has {have}){hint}")

    model = strip_state_dict(torch, ckpt["state_dict_model"], "state_dict_model")
    classifier = None
    if num_classes is None:
        classifier = strip_state_dict(torch, ckpt["state_dict_classifier"],
                                      "state_dict_classifier")
    lws = None
    if num_classes is None and ckpt.get("state_dict_lws_model") is not None:
        lws = strip_state_dict(torch, ckpt["state_dict_lws_model"], "state_dict_lws_model")
    block = None
    if ckpt.get("state_dict_block") is not None:
        block = strip_state_dict(torch, ckpt["state_dict_block"], "state_dict_block")
    if block is not None or is_imagenet_backbone(model, model):
        return collect_imagenet(torch, "places" if block is not None else "reference", model,
                                "state_dict_model", classifier, "state_dict_classifier", lws,
                                block, num_classes, seed)
    return collect_cifar(torch, model, classifier, lws, num_classes, seed)


class Model:
    def __init__(self, arch, name, family, in_channels, k, head, tensors, origin):
        self.arch, self.name, self.family = arch, name, family
        self.in_channels, self.k, self.head = in_channels, k, head
        self.tensors, self.origin = tensors, origin


def check_lws(lws, problems):
    if lws is None:
        return
    for name in lws:
        if name != "learned_norm":
            problems.append(f"'state_dict_lws_model': unexpected tensor {lws[name][0]}")
    if "learned_norm" not in lws:
        problems.append("'state_dict_lws_model' has no learned_norm")


def check_classifier(classifier, entry, problems):
    if classifier is None:
        return
    for name in classifier:
        if name not in ("fc.weight", "fc.bias"):
            problems.append(f"'{entry}': unexpected tensor {classifier[name][0]}")
    if "fc.weight" not in classifier:
        problems.append(f"'{entry}' has no fc.weight")


def classes_of(classifier, entry, features):
    """K from fc.weight [K, D], D being the backbone's feature size."""
    key, fcw = classifier["fc.weight"]
    if fcw.dim() != 2 or fcw.shape[1] != features or fcw.shape[0] < 1:
        raise Reject(f"'{entry}': {key} is {shape_str(fcw.shape)}, want [K, {features}]")
    k = int(fcw.shape[0])
    if k > MAX_CLASSES:
        raise Reject(f"'{entry}': {key} has {k} classes; libmislas models take 1 to {MAX_CLASSES}")
    return k


def collect_cifar(torch, model, classifier, lws, num_classes, seed):
    problems = []
    for name in model:
        if name.startswith(("fc.", "linear.")) or name == "learned_norm":
            hint = (" (a backbone with its own linear layer, like the reference's ResNet_s; "
                    "the importer expects ResNet_fe, whose classifier is separate)"
                    if name.startswith("linear.") else "")
            problems.append(f"'state_dict_model': unexpected tensor {model[name][0]}{hint}")
    check_classifier(classifier, "state_dict_classifier", problems)
    check_lws(lws, problems)
    if "conv1.weight" not in model:
        problems.append("'state_dict_model' has no conv1.weight")
    if problems:
        raise Reject(problems)

    blocks = blocks_per_stage(model)
    arch, arch_name = ARCH_BY_BLOCKS[blocks]

    conv1 = model["conv1.weight"][1]
    if conv1.dim() != 4 or conv1.shape[0] != STAGE_PLANES[0] or tuple(conv1.shape[2:]) != (3, 3) \
            or conv1.shape[1] < 1:
        raise Reject(f"'state_dict_model': {model['conv1.weight'][0]} is {shape_str(conv1.shape)}, "
                     f"want [16, C, 3, 3]")
    in_channels = int(conv1.shape[1])
    if in_channels > MAX_CHANNELS:
        raise Reject(f"'state_dict_model': {model['conv1.weight'][0]} has {in_channels} input "
                     f"channels; libmislas models take 1 to {MAX_CHANNELS}")

    sources = {}
    add_sources(sources, "state_dict_model", model)
    if num_classes is None:
        k = classes_of(classifier, "state_dict_classifier", FEATURES)
        add_sources(sources, "state_dict_classifier", classifier)
        sources["learned_norm"] = scales_of(torch, lws, k)
    else:
        k = num_classes
        weight, bias = fresh_classifier(torch, k, FEATURES, seed)
        sources["fc.weight"] = ("(fresh)", "fc.weight", weight)
        sources["fc.bias"] = ("(fresh)", "fc.bias", bias)
        sources["learned_norm"] = ("(fresh)", "learned_norm", torch.ones(k, dtype=torch.float32))

    want = expected_tensors(blocks, in_channels, k)
    wanted = {name for name, _ in want}
    for name in sorted(set(sources) - wanted):
        where, key, _ = sources[name]
        hint = (", an option-B projection shortcut; the CIFAR ResNets here use option A"
                if ".shortcut." in name else "")
        problems.append(f"'{where}': unexpected tensor {key} (not in a CIFAR {arch_name}{hint})")

    def missing(name):
        where = "state_dict_classifier" if name.startswith("fc.") else "state_dict_model"
        return (f"'{where}' has no {name} (a CIFAR {arch_name} with {in_channels} input "
                "channels needs it)")

    tensors = check_values(torch, sources, want, missing, problems)
    if problems:
        raise Reject(problems)
    head = HEAD_MISLAS if lws is not None else HEAD_LINEAR
    return Model(arch, arch_name, "cifar", in_channels, k, head, tensors,
                 "the reference's checkpoint")


def imagenet_blocks(names, entry):
    """Blocks per stage of layer1..4 from the names; Reject if they are not
    four stages of consecutive blocks."""
    seen = {}
    for name in names:
        m = BLOCK_RE.match(name)
        if m:
            seen.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    extra = sorted(s for s in seen if s not in (1, 2, 3, 4))
    if extra:
        raise Reject(f"'{entry}' has layer{extra[-1]}; the ImageNet ResNets have layer1 to layer4")
    counts = []
    for s in (1, 2, 3, 4):
        idx = seen.get(s, set())
        if not idx:
            raise Reject(f"'{entry}' has no layer{s} blocks: not an ImageNet ResNet")
        n = max(idx) + 1
        if len(idx) != n:
            missing = min(set(range(n)) - idx)
            raise Reject(f"'{entry}': block layer{s}.{missing} is missing "
                         f"(layer{s} has blocks up to layer{s}.{n - 1})")
        counts.append(n)
    return counts


def imagenet_expected(bottleneck, counts, in_channels, k):
    """(name, shape) of an ImageNet ResNet in the library's tensor order
    (lib/model/resnet.c): stem, then per block its convolutions with their
    BNs, then the projection (downsample.0 / .1), then fc and learned_norm."""
    out = []

    def conv(prefix, cout, cin, kernel):
        out.append((prefix + ".weight", (cout, cin, kernel, kernel)))

    def bn(prefix, c):
        out.extend((f"{prefix}.{f}", (c,)) for f in BN_FIELDS)

    conv("conv1", 64, in_channels, 7)
    bn("bn1", 64)
    cin = 64
    for s in range(4):
        planes = 64 << s
        cout = planes * 4 if bottleneck else planes
        for b in range(counts[s]):
            p = f"layer{s + 1}.{b}"
            stride = 2 if (b == 0 and s > 0) else 1
            if bottleneck:
                conv(p + ".conv1", planes, cin, 1)
                bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3)
                bn(p + ".bn2", planes)
                conv(p + ".conv3", cout, planes, 1)
                bn(p + ".bn3", cout)
            else:
                conv(p + ".conv1", planes, cin, 3)
                bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3)
                bn(p + ".bn2", planes)
            if stride != 1 or cin != cout:
                conv(p + ".downsample.0", cout, cin, 1)
                bn(p + ".downsample.1", cout)
            cin = cout
    out.append(("fc.weight", (k, cin)))
    out.append(("fc.bias", (k,)))
    out.append(("learned_norm", (k,)))
    return out


BLOCK_PARTS = ("conv1.weight", "conv2.weight", "conv3.weight") + tuple(
    f"bn{i}.{f}" for i in (1, 2, 3) for f in BN_FIELDS)


def collect_imagenet(torch, kind, model, entry, classifier, clf_entry, lws, block,
                     num_classes, seed):
    """An ImageNet-family ResNet: the reference's ResNet_FE (models/resnet.py;
    kind 'reference'), its Places-LT split (models/resnet_places.py: layer4
    short of its last block, which is 'state_dict_block'; kind 'places'), or
    torchvision's ResNet (kind 'torchvision', classifier from the same dict)."""
    problems = []
    for name in model:
        if name.startswith("fc.") and kind != "torchvision" or name == "learned_norm":
            hint = (" (a backbone with its own fc, like the reference's resnet50(); its training "
                    "scripts pair resnet50_fe() with a separate Classifier)"
                    if name.startswith("fc.") else "")
            problems.append(f"'{entry}': unexpected tensor {model[name][0]}{hint}")
    if num_classes is None:
        check_classifier(classifier, clf_entry, problems)
    check_lws(lws, problems)
    if "conv1.weight" not in model:
        problems.append(f"'{entry}' has no conv1.weight")
    if block is not None:
        for name in block:
            if name not in BLOCK_PARTS:
                problems.append(f"'state_dict_block': unexpected tensor {block[name][0]} (the "
                                "Places-LT block is a Bottleneck(2048, 512) without a projection)")
    if problems:
        raise Reject(problems)

    counts = imagenet_blocks(model, entry)
    sources = {}
    add_sources(sources, entry, model)
    origin = {"torchvision": "a torchvision state dict",
              "reference": "the reference's checkpoint",
              "places": "the reference's Places-LT checkpoint"}[kind]
    if block is not None:
        # The reference's Places-LT ResNet-152 is resnet152_fe with layer4 cut
        # to 2 blocks; the trained Bottleneck(2048, 512) it feeds is the third.
        last = counts[3]
        add_sources(sources, "state_dict_block", block, lambda n: f"layer4.{last}.{n}")
        counts[3] += 1
        origin += f" ('state_dict_block' as layer4.{last})"
    bottleneck = any(n.endswith(".conv3.weight") for n in sources)
    known = IMAGENET_ARCHS.get((bottleneck, tuple(counts)))
    if known is None:
        what = "bottleneck" if bottleneck else "basic"
        named = OTHER_IMAGENET.get((bottleneck, tuple(counts)))
        places = (" (with 'state_dict_block' appended to layer4)" if block is not None else "")
        raise Reject(f"'{entry}': {what} blocks {'-'.join(map(str, counts))} per stage{places}"
                     + (f", a {named}," if named else "") + " is none of the library's ImageNet "
                     "ResNets (ResNet-10: basic 1-1-1-1; ResNet-50/101/152: bottlenecks "
                     "3-4-6-3, 3-4-23-3, 3-8-36-3)")
    arch, arch_name = known

    key, conv1 = model["conv1.weight"]
    if conv1.dim() != 4 or conv1.shape[0] != 64 or tuple(conv1.shape[2:]) != (7, 7) \
            or conv1.shape[1] < 1:
        raise Reject(f"'{entry}': {key} is {shape_str(conv1.shape)}, want [64, C, 7, 7]")
    in_channels = int(conv1.shape[1])
    if in_channels > MAX_CHANNELS:
        raise Reject(f"'{entry}': {key} has {in_channels} input channels; libmislas models "
                     f"take 1 to {MAX_CHANNELS}")
    features = 2048 if bottleneck else 512
    if num_classes is None:
        k = classes_of(classifier, clf_entry, features)
        add_sources(sources, clf_entry, classifier)
        sources["learned_norm"] = scales_of(torch, lws, k)
    else:
        k = num_classes
        for name in [n for n in sources if n.startswith("fc.")]:
            del sources[name]          # a torchvision fc, replaced
        weight, bias = fresh_classifier(torch, k, features, seed)
        sources["fc.weight"] = ("(fresh)", "fc.weight", weight)
        sources["fc.bias"] = ("(fresh)", "fc.bias", bias)
        sources["learned_norm"] = ("(fresh)", "learned_norm", torch.ones(k, dtype=torch.float32))

    want = imagenet_expected(bottleneck, counts, in_channels, k)
    wanted = {name for name, _ in want}
    for name in sorted(set(sources) - wanted):
        where, key, _ = sources[name]
        problems.append(f"'{where}': unexpected tensor {key} (not in an ImageNet {arch_name})")

    def missing(name):
        if name.startswith("fc."):
            where = clf_entry
        elif block is not None and name.startswith(f"layer4.{counts[3] - 1}."):
            where, name = "state_dict_block", name[len(f"layer4.{counts[3] - 1}."):]
        else:
            where = entry
        return f"'{where}' has no {name} (an ImageNet {arch_name} needs it)"

    tensors = check_values(torch, sources, want, missing, problems)
    widths = [p for p in problems if re.search(r"layer\d+\.\d+\.conv[12]\.weight is", p)]
    if widths and bottleneck:
        problems.insert(0, "bottleneck widths or groups other than those of torchvision's "
                        "ResNet (a wide ResNet or a ResNeXt) are not among the library's networks:")
    if problems:
        raise Reject(problems)
    head = HEAD_MISLAS if lws is not None else HEAD_LINEAR
    return Model(arch, arch_name, "imagenet", in_channels, k, head, tensors, origin)


# -------------------------------------------------------------- writing

def section(tag, body):
    return tag + struct.pack("<Q", len(body)) + body


def checkpoint_bytes(arch, in_channels, height, width, k, head, tensors):
    modl = struct.pack("<IiiiiIIIQ", arch, in_channels, height, width, k, head, MODE_EVAL, 0, 0)
    parts = [section(b"MODL", modl)]
    for name, t in tensors:
        raw = name.encode("ascii")
        dims = tuple(t.shape)
        body = (struct.pack("<H", len(raw)) + raw + struct.pack("<I", len(dims))
                + struct.pack("<%dQ" % len(dims), *dims)
                + t.numpy().astype("<f4", copy=False).tobytes())
        parts.append(section(b"TENS", body))
    content = b"".join(parts)
    packed = zlib.compress(content)
    header = MAGIC + struct.pack("<IIQQI", FORMAT_VERSION, 0, len(content), len(packed),
                                 zlib.crc32(content) & 0xFFFFFFFF)
    header += struct.pack("<I", zlib.crc32(header) & 0xFFFFFFFF)
    return header + packed


def write_atomically(path, data):
    """data to path through a temporary file beside it, flushed to disk and
    renamed over it: path holds the old file or the new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise WriteFailed(f"{path}: is a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as e:
        raise WriteFailed(f"{path}: cannot create a file in {folder}: {e.strerror}") from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise WriteFailed(f"{path}: cannot write: {e.strerror or e}") from None
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ----------------------------------------------------------------- main

def same_file(a, b):
    """Whether paths a and b name one file (symbolic links followed); a path
    that does not exist yet is no file."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Convert a checkpoint saved by the MiSLAS reference's training scripts "
                    "(backbone, linear classifier, and after stage 2 the learned scales) into a "
                    "libmislas checkpoint (format version 1): the CIFAR ResNet-20/32/44/56/110 "
                    "(models/resnet_cifar.py), the ImageNet-LT / iNaturalist ResNet-10/50/101/152 "
                    "(models/resnet.py) and the Places-LT ResNet-152 (models/resnet_places.py, "
                    "with 'state_dict_block'). Also torchvision's ImageNet ResNet-50/101/152 "
                    "weights (a plain state dict with fc.weight and fc.bias).",
        epilog="The model is written in EVAL mode with head MISLAS when the file has "
               "'state_dict_lws_model', LINEAR (scales 1) otherwise. Input channels and the "
               "number of classes come from the weights; the image size does not, so give "
               "--size for anything but 32x32 (CIFAR ResNets) or 224x224 (ImageNet ResNets); "
               "28 28 for MNIST and Fashion-MNIST. "
               "Exit status: 0 done, 1 the input cannot be imported, 2 bad command line "
               "(OUTPUT being INPUT included). "
               "See docs/import.md.")
    p.add_argument("input", metavar="INPUT", help="the reference's .pth / .pth.tar file, or "
                   "a torchvision ResNet's state dict")
    p.add_argument("output", metavar="OUTPUT", help="the libmislas checkpoint to write "
                   "(replaced atomically; not INPUT)")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=None,
                   help="input image height and width the model is made for, each in "
                        f"[{MIN_SIDE}, {MAX_SIDE}] (the library's limit; default 32 32 for the "
                        "CIFAR ResNets, 224 224 for the ImageNet ResNets)")
    p.add_argument("--num-classes", type=int, metavar="K", default=None,
                   help=f"replace the file's classifier (and scales) by a fresh linear one of K "
                        f"classes, K in [1, {MAX_CLASSES}], initialised as PyTorch's nn.Linear "
                        "(uniform in +-1/sqrt(D)) from --seed; head LINEAR. To fine-tune "
                        "torchvision's ImageNet weights on another label set (Places-LT: 365)")
    p.add_argument("--seed", type=int, metavar="S", default=0,
                   help="seed of the fresh classifier of --num-classes, in [0, 2^63) (default 0)")
    p.add_argument("--unsafe-load", action="store_true",
                   help="unpickle with Python's full pickle (runs whatever code the file "
                        "names: only for files you trust that the default loader refuses)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = p.parse_args(argv)
    if args.size is not None:
        h, w = args.size
        if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
            p.error(f"--size {h} {w}: height and width must each be in [{MIN_SIDE}, {MAX_SIDE}] "
                    "(the library's limit)")
    if args.num_classes is not None and not 1 <= args.num_classes <= MAX_CLASSES:
        p.error(f"--num-classes {args.num_classes}: must be in [1, {MAX_CLASSES}] "
                "(the library's limit)")
    if not 0 <= args.seed < 1 << 63:
        p.error(f"--seed {args.seed}: must be in [0, 2^63)")
    if args.seed != 0 and args.num_classes is None:
        p.error("--seed is the seed of --num-classes's fresh classifier; give --num-classes too")
    if same_file(args.input, args.output):
        p.error(f"INPUT {args.input} and OUTPUT {args.output} are the same file: writing "
                "OUTPUT would replace the input; give another OUTPUT")
    return args


DEFAULT_SIZE = {"cifar": (32, 32), "imagenet": (224, 224)}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(sys.argv[0] or "import_reference.py")
    try:
        import torch
    except ImportError as e:
        print(f"{prog}: needs PyTorch (Debian: apt-get install python3-torch): {e}",
              file=sys.stderr)
        return 1
    try:
        raw = read_input(args.input)
        check_zip_members(args.input, raw)
        ckpt = torch_load(torch, args.input, raw, args.unsafe_load)
        m = collect(torch, ckpt, args.num_classes, args.seed)
        h, w = args.size if args.size is not None else DEFAULT_SIZE[m.family]
        data = checkpoint_bytes(m.arch, m.in_channels, h, w, m.k, m.head, m.tensors)
        write_atomically(args.output, data)
    except Reject as e:
        problems = e.args[0] if isinstance(e.args[0], list) else [e.args[0]]
        if isinstance(e, WriteFailed):
            print(f"{prog}: cannot write the checkpoint:", file=sys.stderr)
        else:
            print(f"{prog}: {args.input}: cannot import:", file=sys.stderr)
        for line in problems[:20]:
            print(f"  {line}", file=sys.stderr)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more", file=sys.stderr)
        return 1
    if not args.quiet:
        head = "MISLAS (learned scales)" if m.head == HEAD_MISLAS else "LINEAR"
        if args.num_classes is not None:
            head += f", a fresh classifier (seed {args.seed})"
        print(f"{args.output}: {m.name} from {m.origin}, {m.in_channels}x{h}x{w} input, "
              f"{m.k} classes, head {head}, {len(m.tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())

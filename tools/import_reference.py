#!/usr/bin/python3
"""Convert a MiSLAS reference checkpoint (PyTorch) into a libmislas checkpoint.

The reference's training scripts save a dict with 'state_dict_model' (the
CIFAR ResNet backbone, ResNet_fe), 'state_dict_classifier' (fc.weight [K, 64],
fc.bias [K]) and, after stage 2, 'state_dict_lws_model' (learned_norm
[1, K]). This tool reads such a file with torch.load (on the CPU, through an
unpickler that only accepts tensors, containers and numbers), checks every
tensor's name and shape, and writes the model as a version-1 libmislas
checkpoint (docs/checkpoint.md): arch from the number of blocks per stage
(3/5/7/9/18: ResNet-20/32/44/56/110), input channels from conv1.weight, K
from fc.weight, head MiSLAS when learned_norm is present (LINEAR otherwise,
with the scales set to 1), mode EVAL. See docs/import.md.

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
        hint = (": an ImageNet-style ResNet (the reference's models/resnet.py), which this tool "
                "does not import" if extra[-1] == 4 else "")
        raise Reject(f"'state_dict_model' has layer{extra[-1]}{hint}; the CIFAR ResNets have "
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


def collect(torch, ckpt):
    """The checked model: (arch, arch name, in_channels, K, head, [(name, tensor)])."""
    if not isinstance(ckpt, dict):
        raise Reject(f"the file holds a {type(ckpt).__name__}, not the reference's checkpoint dict "
                     "(with 'state_dict_model' and 'state_dict_classifier')")
    for key in ("state_dict_model", "state_dict_classifier"):
        if key not in ckpt:
            have = ", ".join(repr(k) for k in list(ckpt)[:8]) or "nothing"
            raise Reject(f"the checkpoint has no '{key}' (it has {have})")
    if ckpt.get("state_dict_block") is not None:
        raise Reject("the checkpoint has 'state_dict_block' (a Places-LT ResNet-152 with an "
                     "extra block), which this tool does not import")

    model = strip_state_dict(torch, ckpt["state_dict_model"], "state_dict_model")
    classifier = strip_state_dict(torch, ckpt["state_dict_classifier"], "state_dict_classifier")
    lws = None
    if ckpt.get("state_dict_lws_model") is not None:
        lws = strip_state_dict(torch, ckpt["state_dict_lws_model"], "state_dict_lws_model")

    problems = []
    for name in model:
        if name.startswith(("fc.", "linear.")) or name == "learned_norm":
            hint = (" (a backbone with its own linear layer, like the reference's ResNet_s; "
                    "the importer expects ResNet_fe, whose classifier is separate)"
                    if name.startswith("linear.") else "")
            problems.append(f"'state_dict_model': unexpected tensor {model[name][0]}{hint}")
    for name in classifier:
        if name not in ("fc.weight", "fc.bias"):
            problems.append(f"'state_dict_classifier': unexpected tensor {classifier[name][0]}")
    if lws is not None:
        for name in lws:
            if name != "learned_norm":
                problems.append(f"'state_dict_lws_model': unexpected tensor {lws[name][0]}")
        if "learned_norm" not in lws:
            problems.append("'state_dict_lws_model' has no learned_norm")
    if "conv1.weight" not in model:
        problems.append("'state_dict_model' has no conv1.weight")
    if "fc.weight" not in classifier:
        problems.append("'state_dict_classifier' has no fc.weight")
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
    fcw = classifier["fc.weight"][1]
    if fcw.dim() != 2 or fcw.shape[1] != FEATURES or fcw.shape[0] < 1:
        raise Reject(f"'state_dict_classifier': {classifier['fc.weight'][0]} is "
                     f"{shape_str(fcw.shape)}, "
                     f"want [K, {FEATURES}]")
    k = int(fcw.shape[0])
    if in_channels > MAX_CHANNELS:
        raise Reject(f"'state_dict_model': {model['conv1.weight'][0]} has {in_channels} input "
                     f"channels; libmislas models take 1 to {MAX_CHANNELS}")
    if k > MAX_CLASSES:
        raise Reject(f"'state_dict_classifier': {classifier['fc.weight'][0]} has {k} classes; "
                     f"libmislas models take 1 to {MAX_CLASSES}")

    sources = {}
    for name, (key, t) in model.items():
        sources[name] = ("state_dict_model", key, t)
    for name, (key, t) in classifier.items():
        sources[name] = ("state_dict_classifier", key, t)
    if lws is not None and "learned_norm" in lws:
        key, t = lws["learned_norm"]
        if tuple(t.shape) not in ((1, k), (k,)):
            raise Reject(f"'state_dict_lws_model': {key} is {shape_str(t.shape)}, "
                         f"want [1, {k}]")
        t = t.reshape(-1)
        sources["learned_norm"] = ("state_dict_lws_model", key, t)
    else:
        sources["learned_norm"] = ("(none)", "learned_norm", torch.ones(k, dtype=torch.float32))

    want = expected_tensors(blocks, in_channels, k)
    wanted = {name for name, _ in want}
    for name in sorted(set(sources) - wanted):
        where, key, _ = sources[name]
        hint = (", an option-B projection shortcut; the CIFAR ResNets here use option A"
                if ".shortcut." in name else "")
        problems.append(f"'{where}': unexpected tensor {key} (not in a CIFAR {arch_name}{hint})")
    tensors = []
    for name, shape in want:
        if name not in sources:
            where = ("state_dict_classifier" if name.startswith("fc.") else "state_dict_model")
            problems.append(f"'{where}' has no {name} (a CIFAR {arch_name} "
                            f"with {in_channels} input channels needs it)")
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
    if problems:
        raise Reject(problems)
    head = HEAD_MISLAS if lws is not None else HEAD_LINEAR
    return arch, arch_name, in_channels, k, head, tensors


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
                    "(CIFAR ResNet-20/32/44/56/110 backbone, linear classifier, and after "
                    "stage 2 the learned scales) into a libmislas checkpoint (format version 1).",
        epilog="The model is written in EVAL mode with head MISLAS when the file has "
               "'state_dict_lws_model', LINEAR (scales 1) otherwise. Input channels and the "
               "number of classes come from the weights; the image size does not, so give "
               "--size for anything but 32x32 (28 28 for MNIST and Fashion-MNIST). "
               "Exit status: 0 done, 1 the input cannot be imported, 2 bad command line "
               "(OUTPUT being INPUT included). "
               "See docs/import.md.")
    p.add_argument("input", metavar="INPUT", help="the reference's .pth / .pth.tar file")
    p.add_argument("output", metavar="OUTPUT", help="the libmislas checkpoint to write "
                   "(replaced atomically; not INPUT)")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=[32, 32],
                   help="input image height and width the model is made for, each in "
                        f"[{MIN_SIDE}, {MAX_SIDE}] (the library's limit; default 32 32)")
    p.add_argument("--unsafe-load", action="store_true",
                   help="unpickle with Python's full pickle (runs whatever code the file "
                        "names: only for files you trust that the default loader refuses)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = p.parse_args(argv)
    h, w = args.size
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        p.error(f"--size {h} {w}: height and width must each be in [{MIN_SIDE}, {MAX_SIDE}] "
                "(the library's limit)")
    if same_file(args.input, args.output):
        p.error(f"INPUT {args.input} and OUTPUT {args.output} are the same file: writing "
                "OUTPUT would replace the input; give another OUTPUT")
    return args


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
        arch, arch_name, cin, k, head, tensors = collect(torch, ckpt)
        h, w = args.size
        data = checkpoint_bytes(arch, cin, h, w, k, head, tensors)
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
        print(f"{args.output}: {arch_name}, {cin}x{h}x{w} input, {k} classes, head "
              f"{'MISLAS (learned scales)' if head == HEAD_MISLAS else 'LINEAR'}, "
              f"{len(tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""lib/data/image.h against Debian's python3-pil 9.4 and python3-torchvision:

  - decoding: JPEGs PIL writes (sizes from 1x1 to very wide and tall, several
    qualities, 4:4:4 / 4:2:2 / 4:2:0, progressive, greyscale, CMYK, YCCK
    written by the helper through libjpeg, trailing bytes after the end,
    corrupted entropy data) and PNGs (RGB, RGBA, palette, L, LA, 1-bit,
    16-bit grey, one named .JPEG) equal Image.open(p).convert("RGB") bit for
    bit; truncated files fail where PIL fails, probe included;
  - resize: random sizes and boxes, up and down, equal img.resize(size,
    BILINEAR, box=box) bit for bit;
  - torchvision's Resize(256) + CenterCrop(224): every pixel equal;
  - ImageEnhance Brightness / Contrast / Color at several factors: equal.

Usage: image_check.py IMAGE_DUMP. Exit 77 (skipped) without PIL."""
import io
import os
import random
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image, ImageEnhance
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)
try:
    import torchvision.transforms as T
except ImportError:
    T = None

DUMP = sys.argv[1]
failures = []
counts = {}


def count(what):
    counts[what] = counts.get(what, 0) + 1


def check(ok, message):
    if not ok:
        failures.append(message)
        print("FAIL:", message)


def run(*args):
    return subprocess.run([DUMP] + [str(a) for a in args], capture_output=True, text=True)


def read_raw(path):
    with open(path, "rb") as f:
        data = f.read()
    h, w = struct.unpack("<ii", data[:8])
    return np.frombuffer(data[8:], dtype=np.uint8).reshape(h, w, 3)


def write_raw(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack("<ii", arr.shape[0], arr.shape[1]))
        f.write(arr.tobytes())


def picture(rng, h, w):
    """Smooth colour gradients, stripes, a disc and some noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / max(w, 1) * 6.3 + y / max(h, 1) * 2.0)
    g = 255 * (x + y) / max(h + w - 2, 1)
    b = 128 + 120 * np.cos(np.hypot(x - w / 2, y - h / 3) / 9.0)
    img = np.stack([r, g, b], axis=-1)
    img[(x // 7 + y // 5) % 2 == 0] *= 0.85
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def compare(what, ours, theirs):
    if ours.shape != theirs.shape:
        check(False, f"{what}: shape {ours.shape} != PIL's {theirs.shape}")
        return None
    diff = int(np.abs(ours.astype(np.int32) - theirs.astype(np.int32)).max()) if ours.size else 0
    check(diff == 0, f"{what}: max difference {diff} ({int((ours != theirs).sum())} bytes differ)")
    return diff


def decode_check(tmp, path, what):
    """Our decode and probe against PIL's open().convert("RGB")."""
    out = os.path.join(tmp, "out.raw")
    try:
        with Image.open(path) as im:
            size = im.size
            theirs = np.asarray(im.convert("RGB"))
        pil_error = None
    except Exception as e:      # noqa: BLE001 - any PIL failure is a refusal
        pil_error = e
    r = run("decode", path, out)
    p = run("probe", path)
    if pil_error is not None:
        check(r.returncode == 3, f"{what}: PIL refuses it ({pil_error}) but we decode it")
        count("refused as PIL does")
        return
    check(r.returncode == 0, f"{what}: PIL decodes it, we do not: {r.stderr.strip()}")
    if r.returncode != 0:
        return
    compare(f"{what} decode", read_raw(out), theirs)
    count("decoded")
    check(p.returncode == 0 and p.stdout.split() == [str(size[1]), str(size[0])],
          f"{what}: probe gives {p.stdout.strip()} {p.stderr.strip()}, PIL's size is {size}")


def main():
    rng = np.random.default_rng(20240611)
    prng = random.Random(7)
    tmp = tempfile.mkdtemp(prefix="mislas-image-")

    # ---- JPEG decoding
    sizes = [(1, 1), (2, 3), (7, 5), (9, 16), (17, 33), (375, 500), (500, 375), (333, 500),
             (64, 1000), (1000, 40), (256, 256), (224, 300), (481, 640), (113, 127)]
    jpegs = []
    for h, w in sizes:
        rgb = picture(rng, h, w)
        variants = [dict(quality=75, subsampling=2), dict(quality=95, subsampling=0),
                    dict(quality=50, subsampling=1), dict(quality=90, subsampling=2, progressive=True),
                    dict(quality=30, subsampling=2, optimize=True)]
        for i, opts in enumerate(variants):
            path = os.path.join(tmp, f"rgb_{h}x{w}_{i}.jpg")
            Image.fromarray(rgb).save(path, "JPEG", **opts)
            decode_check(tmp, path, f"JPEG {h}x{w} {opts}")
            jpegs.append(path)
        path = os.path.join(tmp, f"grey_{h}x{w}.jpg")
        Image.fromarray(rgb).convert("L").save(path, "JPEG", quality=85)
        decode_check(tmp, path, f"JPEG {h}x{w} greyscale")
        path = os.path.join(tmp, f"greyprog_{h}x{w}.jpg")
        Image.fromarray(rgb).convert("L").save(path, "JPEG", quality=70, progressive=True)
        decode_check(tmp, path, f"JPEG {h}x{w} greyscale progressive")
        for q in (60, 95):
            path = os.path.join(tmp, f"cmyk_{h}x{w}_{q}.jpg")
            Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=q)
            decode_check(tmp, path, f"JPEG {h}x{w} CMYK q{q}")
        raw = os.path.join(tmp, "in.raw")
        write_raw(raw, rgb)
        path = os.path.join(tmp, f"ycck_{h}x{w}.jpg")
        r = run("ycck", raw, path, 80)
        check(r.returncode == 0, f"writing a YCCK JPEG: {r.stderr.strip()}")
        decode_check(tmp, path, f"JPEG {h}x{w} YCCK (Adobe transform 2)")

    # Trailing bytes after the end marker, truncations, corrupted data.
    base = os.path.join(tmp, "rgb_375x500_0.jpg")
    with open(base, "rb") as f:
        data = f.read()
    for name, content in [("trailing", data + b"\0" * 100 + b"garbage"),
                          ("trailing_big", data + bytes(20000))]:
        path = os.path.join(tmp, name + ".jpg")
        with open(path, "wb") as f:
            f.write(content)
        decode_check(tmp, path, f"JPEG with {name} bytes")
    for cut in (len(data) - 2, len(data) - 300, len(data) // 2, 700, 200, 20):
        path = os.path.join(tmp, f"cut{cut}.jpg")
        with open(path, "wb") as f:
            f.write(data[:cut])
        decode_check(tmp, path, f"JPEG cut at {cut} of {len(data)} bytes")
        p = run("probe", path)
        check(p.returncode == 3 and "status -4" in p.stderr, f"probe of a JPEG cut at {cut}: {p.stdout}{p.stderr}")
    for k in range(12):
        corrupt = bytearray(data)
        for _ in range(1 + k % 4):
            i = prng.randrange(len(data) // 3, len(data) - 10)
            corrupt[i] = prng.randrange(256)
        path = os.path.join(tmp, f"corrupt{k}.jpg")
        with open(path, "wb") as f:
            f.write(corrupt)
        decode_check(tmp, path, f"JPEG with corrupted entropy data #{k}")

    # ---- PNG decoding
    rgb = picture(rng, 75, 61)
    pngs = {
        "rgb": Image.fromarray(rgb),
        "rgba": Image.fromarray(np.dstack([rgb, rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8)])),
        "palette": Image.fromarray(rgb).quantize(200),
        "palette16": Image.fromarray(rgb).quantize(16),
        "palette2": Image.fromarray(rgb).quantize(2),
        "l": Image.fromarray(rgb).convert("L"),
        "la": Image.fromarray(rgb).convert("LA"),
        "one_bit": Image.fromarray(rgb).convert("1"),
        "grey16": Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 3 - 200).clip(0, 65535).astype(np.uint16)),
        "grey16_small": Image.fromarray(rgb[:, :, 1].astype(np.uint16)),
    }
    for name, im in pngs.items():
        path = os.path.join(tmp, f"{name}.png")
        im.save(path, "PNG")
        decode_check(tmp, path, f"PNG {name} ({im.mode})")
    path = os.path.join(tmp, "n02105855_2933.JPEG")
    pngs["rgb"].save(path, "PNG")
    decode_check(tmp, path, "PNG named .JPEG")
    pngs["rgba"].save(path, "PNG")
    decode_check(tmp, path, "RGBA PNG named .JPEG")
    with open(os.path.join(tmp, "rgb.png"), "rb") as f:
        png = f.read()
    for cut in (len(png) // 2, 40, 10):
        path = os.path.join(tmp, f"cut{cut}.png")
        with open(path, "wb") as f:
            f.write(png[:cut])
        decode_check(tmp, path, f"PNG cut at {cut} of {len(png)} bytes")

    # ---- resize with random sizes and boxes
    worst = 0
    for k in range(120):
        h, w = prng.randint(1, 300), prng.randint(1, 300)
        src = picture(rng, h, w) if k % 3 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if k % 4 == 0:
            box = (0, 0, w, h)
        else:
            l, t = prng.uniform(0, w * 0.6), prng.uniform(0, h * 0.6)
            box = (l, t, prng.uniform(l, w), prng.uniform(t, h))
            if k % 7 == 0:
                box = tuple(float(int(v)) for v in box)
            if box[2] <= box[0] or box[3] <= box[1]:
                box = (0, 0, w, h)
        oh = prng.choice([prng.randint(1, 40), prng.randint(1, 700), h])
        ow = prng.choice([prng.randint(1, 40), prng.randint(1, 700), w])
        if k % 11 == 0:     # a crop of the output's size
            oh, ow = int(box[3] - box[1]) or 1, int(box[2] - box[0]) or 1
            box = (float(int(box[0])), float(int(box[1])), float(int(box[0]) + ow), float(int(box[1]) + oh))
        raw = os.path.join(tmp, "in.raw")
        out = os.path.join(tmp, "out.raw")
        write_raw(raw, src)
        theirs = np.asarray(Image.fromarray(src).resize((ow, oh), Image.BILINEAR, box=box))
        r = run("resize", raw, out, oh, ow, *(repr(float(v)) for v in box))
        check(r.returncode == 0, f"resize {h}x{w} -> {oh}x{ow} box {box}: {r.stderr.strip()}")
        if r.returncode == 0:
            d = compare(f"resize {h}x{w} -> {oh}x{ow} box {box}", read_raw(out), theirs)
            worst = max(worst, d or 0)
            count("resizes")
    print(f"resize: {counts.get('resizes', 0)} cases, max difference from PIL {worst}")

    # ---- torchvision Resize(256) + CenterCrop(224)
    if T is None:
        print("torchvision missing: Resize + CenterCrop not checked")
    else:
        tf = T.Compose([T.Resize(256), T.CenterCrop(224)])
        cases = [p for p in jpegs if p.endswith("_0.jpg")]
        for k in range(40):
            h, w = prng.randint(224, 900), prng.randint(224, 900)
            if k % 5 == 0:
                h, w = prng.choice([(375, 500), (500, 375), (333, 500), (500, 333), (256, 300), (257, 256)])
            path = os.path.join(tmp, f"tv{k}.jpg")
            Image.fromarray(picture(rng, h, w)).save(path, "JPEG", quality=90)
            cases.append(path)
        worst = 0
        for path in cases:
            with Image.open(path) as im:
                src = np.asarray(im.convert("RGB"))
                if min(src.shape[:2]) < 2:
                    continue
                theirs = np.asarray(tf(im.convert("RGB")))
            raw = os.path.join(tmp, "in.raw")
            out = os.path.join(tmp, "out.raw")
            write_raw(raw, src)
            r = run("center", raw, out, 256, 224)
            check(r.returncode == 0, f"Resize + CenterCrop of {path}: {r.stderr.strip()}")
            if r.returncode == 0:
                d = compare(f"Resize(256) + CenterCrop(224) of {src.shape[0]}x{src.shape[1]}", read_raw(out), theirs)
                worst = max(worst, d or 0)
                count("Resize + CenterCrop")
        print(f"Resize(256) + CenterCrop(224): {counts.get('Resize + CenterCrop', 0)} images, "
              f"max difference from torchvision {worst}")

    # ---- enhancements
    src = picture(rng, 61, 83)
    raw = os.path.join(tmp, "in.raw")
    out = os.path.join(tmp, "out.raw")
    write_raw(raw, src)
    factors = [0.0, 0.1, 0.3, 0.5, 0.77, 0.9, 1.0, 1.1, 1.2, 1.5, 1.9, 2.0] + [prng.uniform(0, 2) for _ in range(12)]
    kinds = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
             "saturation": ImageEnhance.Color}
    for f in factors:
        f = float(np.float32(f))        # a C float both ways
        for kind, cls in kinds.items():
            theirs = np.asarray(cls(Image.fromarray(src)).enhance(f))
            r = run("enhance", raw, out, kind, repr(f))
            check(r.returncode == 0, f"{kind} {f}: {r.stderr.strip()}")
            if r.returncode == 0:
                compare(f"{kind} {f!r}", read_raw(out), theirs)
                count("enhancements")

    print("checked:", ", ".join(f"{v} {k}" for k, v in counts.items()))
    if failures:
        print(f"{len(failures)} failures")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

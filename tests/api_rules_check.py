#!/usr/bin/env python3
"""The API's written rules (docs/api.md, "Rules"), checked on the public headers.

Usage: api_rules_check.py INCLUDE_DIR   (the folder holding mislas/*.h)

Each rule a reader can see in a declaration is checked on every one:
  1. a function starts with its header's prefix (common.h: plain mislas_),
     but an options struct's _init, which is named after its struct (declared
     in the same header);
  2. a call that takes a handle (and is not a constructor) takes it first;
     a function without a handle puts its outputs first: none of its
     pointer-to-non-const parameters follows a const or value input
     (a constructor's `**out` counts as an output; a callback's user pointer
     `void *` does not);
  5. booleans are int32_t: no `bool`, `_Bool` or plain `int` parameter or field
     (plain int is the status type, and mislas_status_string/mislas_comm_fail
     take a status);
  8. every struct named *_options, *_summary or *_report starts with
     `size_t struct_size` and has an _init function.
The behaviour behind rules 4 and 6 (getters on NULL, empty batches) is
checked by tests/test_status.c.
"""
import os
import re
import sys

# header -> the prefix its functions carry
PREFIX = {
    "common.h": "mislas_", "loss.h": "mislas_loss_", "calib.h": "mislas_calib_",
    "long_tail.h": "mislas_long_tail_", "sampler.h": "mislas_sampler_",
    "dataset.h": "mislas_dataset_", "mixup.h": "mislas_mixup", "model.h": "mislas_model_",
    "optimizer.h": "mislas_optimizer_", "schedule.h": "mislas_schedule_",
    "checkpoint.h": "mislas_checkpoint_", "comm.h": "mislas_comm_", "progress.h": "mislas_progress",
    "train.h": "mislas_train_", "eval.h": "mislas_eval_", "mpi.h": "mislas_mpi_",
}
# int parameters that are statuses, not booleans
STATUS_PARAMS = {("mislas_status_string", "status"), ("mislas_comm_fail", "status")}
# a handle: a pointer to one of the library's opaque types
HANDLE = re.compile(r"^(const\s+)?mislas_(calib|comm|dataset|loss|model|optimizer|sampler)\s*\*\s*\w+$")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def declarations(text):
    """(return type, name, [parameters]) of every MISLAS_API function."""
    for m in re.finditer(r"MISLAS_API\s+([^;(]*?)\b(mislas_\w+)\s*\(([^;]*?)\)\s*;", text, flags=re.S):
        params = [" ".join(p.split()) for p in m.group(3).split(",")]
        yield " ".join(m.group(1).split()), m.group(2), [p for p in params if p not in ("", "void")]


def is_output(param):
    """A parameter the function writes: a pointer to non-const data."""
    if param.startswith("const ") or "*" not in param:
        return False
    if re.match(r"^void\s*\*\s*(user|impl|user_data)$", param):
        return False  # a caller's context pointer, passed through
    return True


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    folder = os.path.join(sys.argv[1], "mislas")
    headers = sorted(h for h in os.listdir(folder) if h.endswith(".h") and h not in ("mislas.h", "version.h"))
    failures, functions = [], {}
    unknown = [h for h in headers if h not in PREFIX]
    if unknown:
        failures.append(f"headers with no prefix rule here (add them): {', '.join(unknown)}")
    for header in headers:
        text = strip_comments(open(os.path.join(folder, header)).read())
        prefix = PREFIX.get(header, "mislas_")
        for ret, name, params in declarations(text):
            functions[name] = header
            # rule 1
            own_init = name.endswith("_options_init") and re.search(
                r"\}\s*" + name[:-len("_init")] + r"\s*;", text)
            if not name.startswith(prefix) and not own_init:
                failures.append(f"{header}: {name} does not start with {prefix}")
            # rule 2: a call that takes a handle (and makes none) takes it first
            constructor = bool(params) and re.match(r"^mislas_\w+\s*\*\*", params[0])
            if not constructor and any(HANDLE.match(p) for p in params) and not HANDLE.match(params[0]):
                failures.append(f"{header}: {name}: takes a handle, but not first")
            # rule 2, for functions without a handle (constructors included:
            # their `**out` is first by the same rule)
            if not params or not HANDLE.match(params[0]):
                seen_input = False
                for p in params:
                    if is_output(p) and seen_input:
                        failures.append(f"{header}: {name}: output '{p}' follows an input")
                    if not is_output(p):
                        seen_input = True
            # rule 5
            for p in params:
                pname = p.split()[-1].lstrip("*")
                if re.match(r"^(bool|_Bool)\b", p) or (re.match(r"^int\s+\w+$", p) and (name, pname) not in STATUS_PARAMS):
                    failures.append(f"{header}: {name}: parameter '{p}' (booleans are int32_t, statuses int)")
            if ret in ("bool", "_Bool"):
                failures.append(f"{header}: {name} returns {ret}")
        # rules 5 and 8 on structs
        for m in re.finditer(r"typedef\s+struct\s+(mislas_\w+)\s*\{(.*?)\}\s*(mislas_\w+)\s*;", text, flags=re.S):
            sname, body = m.group(3), m.group(2)
            for field in body.split(";"):
                f = " ".join(field.split())
                if re.match(r"^(bool|_Bool|int)\s+\w+", f):
                    failures.append(f"{header}: {sname}: field '{f}' (booleans are int32_t)")
            if re.search(r"_(options|summary|report)$", sname):
                first = " ".join(body.split(";")[0].split())
                if first != "size_t struct_size":
                    failures.append(f"{header}: {sname} does not start with size_t struct_size")
                if f"{sname}_init" not in [n for _, n, _ in declarations(text)]:
                    failures.append(f"{header}: {sname} has no {sname}_init")
        for m in re.finditer(r"typedef\s+(bool|_Bool|int)\s*\(\s*\*\s*(mislas_\w+)\s*\)", text):
            failures.append(f"{header}: callback {m.group(2)} returns {m.group(1)} (booleans are int32_t)")
    if len(functions) < 100:
        failures.append(f"only {len(functions)} functions found: is {folder} the public headers' folder?")
    for f in failures:
        print("FAIL:", f)
    print(f"{len(functions)} functions in {len(headers)} headers; {len(failures)} rule violation(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

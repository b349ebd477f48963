"""Fuzz the CLI: random argument sets and mutated copies of the shipped specs, configs and grids.

Each case runs ``simulator.cli.main.main(argv)`` in-process with stdout and stderr captured and a
time bound (SIGALRM). A case passes when
  - the exit code is 0 or 2 (argparse's SystemExit(2) included),
  - nothing escapes main() (no traceback) and no RuntimeWarning is raised (a division by zero),
  - an exit-2 case prints one line on stderr ("llmsim: error: ...") and nothing on stdout,
  - an exit-0 case prints only finite, non-negative numbers: in text (no nan / inf, no minus
    sign before a number), in JSON (strict: no NaN or Infinity, every number >= 0) and in the
    sweep's CSV (an empty or nan cell only where the value is missing: a device without a
    price, a scenario that does not fit, the TPOT of a one-token output).
The quick profile (a few hundred cases) runs with the suite; LLMSIM_FUZZ_CASES=10000 (``make fuzz``)
is the long one, LLMSIM_FUZZ_SEED picks another sequence. ``python -m tests.test_fuzz`` prints the
counts of each outcome as JSON.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import io
import json
import math
import os
import random
import re
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

import yaml

from simulator.cli.main import main
from simulator.specs import registry

CASES = int(os.environ.get("LLMSIM_FUZZ_CASES", "300"))
SEED = int(os.environ.get("LLMSIM_FUZZ_SEED", "14"))
CASE_TIMEOUT_S = int(os.environ.get("LLMSIM_FUZZ_TIMEOUT", "20"))
ROOT = registry.data_root()

MODELS = sorted(registry.model_index())
HARDWARE = sorted(registry.hardware_index())
STACKS = sorted(registry.stack_index())
SMALL_MODELS = ["llama-3.2-1b", "smollm-135m", "llama-3.1-8b", "mixtral-8x7b", "qwen3-30b-a3b", "gpt-j-6b",
                "opt-6.7b", "deepseek-v3", "mistral-7b", "qwen1.5-moe-a2.7b"]
DTYPES = ["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4", "tf32"]
BAD_DTYPES = ["fp9", "", "BF16", "int4-g0", "int4-g-1", "int4-g128", "q4_0", "q8_0", "fp8-g99999999999999999999"]
INTS = [1, 1, 2, 2, 4, 8, 16, 3, 7, 33, 64, 128, 1024, 4096, 131072]
EDGE_INTS = ["0", "-1", "-8", str(2**31), str(2**63), str(2**70), str(2**40), str(2**53), str(2**62 - 1),
             str(2**63 - 1), str(2**31 - 1), "65", "100000", "99999999999999999999", "nan", "inf", "-inf",
             "1.5", "x", "", "1e3", " 8", "0x10", "٣", "--", "8 ", "+8", "1_000"]
FLOATS = ["0", "0.5", "0.7", "1", "1.0", "-0.1", "1.5", "nan", "inf", "x", "1e-300", "", "2**70"]
TIMES = ["500 ms", "50 ms", "2 s", "0.2", "0", "-1", "-5 ms", "nan", "inf", "1e-30", "abc", "5 kg", "1e308 s",
         "", "10 us", "1 h", "1 m" + " " * 50_000 + "s", "9" * 5000]
RATES = ["1", "100", "500", "0", "-5", "nan", "inf", "1e308", "x", "0.001"]
FORMATS = ["table", "json", "xml", ""]

NON_FINITE = re.compile(r"(?i)(?<![\w])(nan|[+-]?inf(inity)?)(?![\w])(?! Cache)")   # AMD's Infinity Cache
NEGATIVE = re.compile(r"(?<![\w.\-])-(?=\.?\d)")
# sweep CSV columns whose value may be missing (nan or empty): see _missing_allowed
MISSING_COLUMNS = {"usd_per_hour", "usd_per_million_output_tokens", "tdp_w"}
ENERGY_COLUMNS = {"energy_j", "tokens_per_j"}
FIT_COLUMNS = {"ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "energy_j", "tokens_per_j",
               "usd_per_million_output_tokens"}


class Hang(BaseException):
    """A case ran past CASE_TIMEOUT_S (a BaseException, so no `except Exception` swallows it)."""


# ---------------------------------------------------------------- spec mutations

def _leaves(data, path=()):
    """Every (path, value) of a parsed spec, mappings and lists included."""
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, path + (i,))


def _set(data, path, value, delete=False):
    target = data
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


def _bad_value(rng: random.Random):
    return rng.choice([-1, 0, -5, 2**70, 2**63, 2**31, 99999999999999999999, float("nan"), float("inf"), -1e308,
                       [], {}, {"a": 1}, [1, 2], "x", "", True, False, "false", "true", None, 1e308, 0.5, "-5 W",
                       "12 W", "1 TB/s", "0 GB", "nan GB", "inf TFLOP/s", "1e400 GB", "1 GiB", "-0", 3, 1, 7,
                       "1 T" + " " * 100_000 + "B/s", "x" * 100_000, "9" * 5000])


def mutate_data(data: dict, rng: random.Random, prefer: tuple = ()) -> dict:
    """A copy of ``data`` with one to three leaves deleted, retyped or set to an edge value."""
    data = json.loads(json.dumps(data, default=str))
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        leaves = [p for p, _ in _leaves(data) if p]
        if prefer and rng.random() < 0.7:
            leaves = [p for p in leaves if p[:len(prefer)] == prefer and len(p) > len(prefer)] or leaves
        if not leaves:
            break
        path = rng.choice(leaves)
        action = rng.random()
        if action < 0.2:
            _set(data, path, None, delete=True)
        elif action < 0.3 and isinstance(path[-1], str):     # a misspelt field name
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            parent[f"{path[-1]}x"] = parent.pop(path[-1])
        elif action < 0.65:
            value = data
            for part in path:
                value = value[part]
            _set(data, path, _same_kind(value, rng))
        else:
            _set(data, path, _bad_value(rng))
    return data


_QUANTITY = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*(\S.*)$")


def _same_kind(value, rng: random.Random):
    """An edge value of the same kind: a quantity with an extreme number and the same unit, an
    extreme integer or float, the other boolean; else a bad value."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, 1, 2, 3, -1, value * 2, value + 1, 2**20, 2**31 - 1, 2**53, 2**63 - 1])
    if isinstance(value, float):
        return rng.choice([0.0, 1e-300, 1e300, -value, value * 1e6, 1.0, 0.999999])
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        if match:
            number = rng.choice(["0", "-1", "1e-300", "1e300", "1e-30", "1e30", "nan", "inf", "0.0001", "1e400"])
            return f"{number} {match.group(1)}"
        return rng.choice(["", value + "x", value.upper(), "h100-sxm", "bf16", "gpu"])
    return _bad_value(rng)


def _dump(data, rng: random.Random, suffix: str) -> bytes:
    if suffix == ".json":
        return json.dumps(data, default=str).encode()
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()


def mutate_text(raw: bytes, rng: random.Random) -> bytes:
    """Damage a file's bytes: truncate, binary, UTF-16, deep nesting, an int past int64, a huge file."""
    kind = rng.randrange(10)
    if kind == 9:                  # "billion laughs": 9^9 strings through YAML aliases
        laughs = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
                         for p, a in zip(["", *"abcdefgh"], "abcdefghi"))
        return laughs.encode() + re.sub(rb"(?m)^(\w+): .+$", rb"\1: *i", raw, count=rng.randrange(1, 4))
    if kind == 0:
        return raw[:rng.randrange(max(1, len(raw)))]
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
    if kind == 2:
        return raw.decode("utf-8", "replace").encode("utf-16")
    if kind == 3:
        depth = rng.choice([100, 1000, 100_000])
        return b"name: x\nconfig: " + b"[" * depth + b"]" * depth + b"\n"
    if kind == 4:
        depth = rng.choice([100, 1000, 100_000])
        return b"{\"a\": " + b"{\"a\": " * depth + b"1" + b"}" * depth + b"}"
    if kind == 5:
        return raw + b"\nextra: 99999999999999999999\n"
    if kind == 6:
        return raw.replace(b":", b"", 1)
    if kind == 7:
        return raw + b"\n" + b"#" * (4 * 2**20 + 10)
    return b"\xff\xfe" + raw


def _shipped(rng: random.Random, kind: str) -> Path:
    if kind == "hardware":
        return registry.hardware_index()[rng.choice(HARDWARE)]
    if kind == "model":
        return registry.model_index()[rng.choice(MODELS)]
    if kind == "stack":
        return registry.stack_index()[rng.choice(STACKS)]
    return rng.choice(sorted((ROOT / "examples").glob("*.yaml")))


def mutated_file(rng: random.Random, kind: str, folder: Path, tag: str) -> Path:
    """A damaged copy of a shipped spec of ``kind`` (hardware, model, stack, config) in ``folder``."""
    source = _shipped(rng, "model" if kind == "config" else kind)
    raw = source.read_bytes()
    data = yaml.safe_load(raw)
    suffix = ".yaml"
    if kind == "config":                      # a raw Hugging Face config.json
        data, suffix = data["config"], ".json"
    if rng.random() < 0.8:
        prefer = ("config",) if kind == "model" else ()
        out = _dump(mutate_data(data, rng, prefer), rng, suffix)
    else:
        out = mutate_text(_dump(data, rng, suffix), rng)
    path = folder / f"{tag}-{kind}{suffix}"
    path.write_bytes(out)
    return path


# ---------------------------------------------------------------- argument sets

def _int_arg(rng: random.Random) -> str:
    return str(rng.choice(INTS)) if rng.random() < 0.85 else rng.choice(EDGE_INTS)


def _name(rng: random.Random, names: list[str], kind: str, folder: Path, tag: str) -> str:
    r = rng.random()
    if r < 0.8:
        return rng.choice(names)
    if r < 0.93 and kind:
        return str(mutated_file(rng, kind, folder, tag))
    return rng.choice(["nope", "", ",", "h100-sxn", "/proc/self/x.yaml", str(folder), "x.json", "/dev/null",
                       "../" * 3 + "etc/passwd", "a" * 300, "nul\x01l"])


def _workload_options(rng: random.Random, folder: Path, tag: str, model: str) -> list[str]:
    argv = []
    options = {
        "--batch": lambda: _int_arg(rng), "--prompt": lambda: _int_arg(rng), "--output": lambda: _int_arg(rng),
        "--tp": lambda: _int_arg(rng), "--pp": lambda: _int_arg(rng), "--dp": lambda: _int_arg(rng),
        "--ep": lambda: _int_arg(rng), "--microbatches": lambda: _int_arg(rng),
        "--weight-dtype": lambda: rng.choice(DTYPES + BAD_DTYPES), "--activation-dtype": lambda: rng.choice(DTYPES + BAD_DTYPES[:3]),
        "--kv-dtype": lambda: rng.choice(DTYPES + BAD_DTYPES[:3]),
        "--stack": lambda: _name(rng, STACKS, "stack", folder, tag),
        "--draft-model": lambda: rng.choice(["llama-3.2-1b", "smollm-135m", "nope", model]),
        "--draft-tokens": lambda: _int_arg(rng), "--acceptance": lambda: rng.choice(FLOATS),
        "--format": lambda: rng.choice(FORMATS),
    }
    for option in rng.sample(sorted(options), rng.randrange(0, 6)):
        argv += [option, options[option]()]
    if rng.random() < 0.05:           # a huge but valid pass: counts near int64 in the kernels
        argv += ["--batch", rng.choice([str(2**62 - 1), str(2**53 + 1), str(2**46 + 3)]), "--prompt",
                 rng.choice(["1", "3", "1024"]), "--output", rng.choice(["1", "2"])]
    if "--format" not in argv and rng.random() < 0.3:
        argv += ["--format", "json"]
    return argv


def _plot(rng: random.Random, folder: Path, tag: str) -> list[str]:
    if rng.random() > 0.04:
        return []
    return ["--plot", rng.choice(["/sys/x.png", "/proc/self/x.png", str(folder / f"{tag}.gif"),
                                  str(folder / "missing" / "x.png"), str(folder / f"{tag}.svg")])]


def _hardware_list(rng: random.Random, folder: Path, tag: str) -> str:
    r = rng.random()
    if r < 0.1:
        return rng.choice([",", "", "h100-sxm,nope", "h100-sxm,,mi300x", "h100-sxm,h100-sxm", " h100-sxm"])
    return ",".join(_name(rng, HARDWARE, "hardware", folder, f"{tag}{i}") for i in range(rng.randrange(1, 4)))


def _axis(rng: random.Random, small: list):
    r = rng.random()
    if r < 0.85:
        return rng.sample(small, rng.randrange(1, 3))
    if r < 0.93:
        start = rng.choice([1, 2, 16, 0, -1, 0.5])
        return {"from": start, "to": rng.choice([start, 4 * abs(start or 1), float("inf"), -3, 2**70]),
                rng.choice(["step", "factor"]): rng.choice([1, 2, 0, -1, 0.5, float("nan"), 4])}
    return rng.choice([[], [0], [-1], [2**70], ["x"], [1.5], "8", None, {"from": 1}, [float("nan")], 8])


def _shipped_grid(rng: random.Random) -> dict:
    """One of examples/*.yaml cut to a few scenarios (two models, two devices, short axes)."""
    grid = yaml.safe_load(_shipped(rng, "grid").read_text())
    grid["models"], grid["hardware"] = grid["models"][:2], grid["hardware"][:2]
    for axis, small in (("batch", [1, 8]), ("prompt", [128]), ("output", [16, 1])):
        grid[axis] = small if isinstance(grid.get(axis), dict) or len(grid.get(axis) or []) > 2 else grid.get(axis, small)
    if "whatif" in grid:
        grid["whatif"] = {k: [1, 2] for k in list(grid["whatif"])[:2]}
    return grid


def grid_file(rng: random.Random, folder: Path, tag: str) -> Path:
    """A small sweep grid (a few scenarios), possibly damaged."""
    if rng.random() < 0.3:
        grid = mutate_data(_shipped_grid(rng), rng)
        path = folder / f"{tag}-grid.yaml"
        path.write_bytes(yaml.safe_dump(grid, sort_keys=False).encode())
        return path
    grid = {"models": [rng.choice(SMALL_MODELS[:4]) for _ in range(rng.randrange(1, 3))],
            "hardware": [rng.choice(["h100-sxm", "mi300x", "tpu-v5e", "epyc-9654", "groq-lpu", "l4"])
                         for _ in range(rng.randrange(1, 3))],
            "batch": _axis(rng, [1, 2, 8, 16]), "prompt": _axis(rng, [16, 128, 1024]),
            "output": _axis(rng, [1, 2, 16, 64])}
    extras = {"tp": lambda: _axis(rng, [1, 2, 3]), "pp": lambda: _axis(rng, [1, 2]),
              "weight_dtype": lambda: rng.sample(["bf16", "fp8", "int4-g128", "fp9"], 2),
              "activation_dtype": lambda: [rng.choice(DTYPES)], "stacks": lambda: [rng.choice(STACKS + ["nope"])],
              "whatif": lambda: {"bandwidth": _axis(rng, [0.5, 1, 2]), "peak": [rng.choice([1, 2, 0, -1])]},
              "draft_model": lambda: [rng.choice(["llama-3.2-1b", None, "nope"])],
              "acceptance": lambda: [rng.choice([0.5, 1.5, -0.1, 0.7])]}
    for key in rng.sample(sorted(extras), rng.randrange(0, 3)):
        grid[key] = extras[key]()
    if rng.random() < 0.15:
        grid = mutate_data(grid, rng)
    raw = yaml.safe_dump(grid, sort_keys=False).encode()
    if rng.random() < 0.1:
        raw = mutate_text(raw, rng)
    path = folder / f"{tag}-grid.yaml"
    path.write_bytes(raw)
    return path


def make_case(rng: random.Random, folder: Path, tag: str) -> list[str]:
    """One argv for `llmsim`: predict, roofline, compare, sweep, plan or specs check."""
    command = rng.choices(["predict", "roofline", "compare", "sweep", "plan", "specs"],
                          weights=[30, 10, 15, 12, 10, 23])[0]
    if command == "specs":
        kind = rng.choice(["hardware", "model", "stack", "config"])
        files = [str(mutated_file(rng, kind, folder, f"{tag}{i}")) for i in range(rng.randrange(1, 3))]
        return ["specs", "check", *files]
    if command == "sweep":
        argv = ["sweep", str(grid_file(rng, folder, tag))]
        if rng.random() < 0.3:
            argv += ["--out", str(folder / f"{tag}-rows.{rng.choice(['csv', 'csv', 'txt'])}")]
        if rng.random() < 0.1:
            argv += ["--chunk", _int_arg(rng)]
        return argv + _plot(rng, folder, tag)
    model = _name(rng, SMALL_MODELS, "model" if rng.random() < 0.5 else "config", folder, tag)
    if command == "plan":
        argv = ["plan", "--model", model, "--prompt", _int_arg(rng), "--output", _int_arg(rng)]
        if rng.random() < 0.9:
            argv += ["--hardware", _hardware_list(rng, folder, tag)]
        options = {"--ttft-max": TIMES, "--tpot-max": TIMES, "--throughput-min": RATES, "--rate": RATES,
                   "--batch": None, "--max-batch": None, "--max-devices": None, "--format": FORMATS,
                   "--kv-dtype": DTYPES + BAD_DTYPES[:2], "--stack": STACKS + ["nope"]}
        for option in rng.sample(sorted(options), rng.randrange(0, 4)):
            argv += [option, rng.choice(options[option]) if options[option] else _int_arg(rng)]
        if "--format" not in argv and rng.random() < 0.3:
            argv += ["--format", "json"]
        return argv + _plot(rng, folder, tag)
    argv = [command, "--model", model]
    if command == "compare":
        argv += ["--hardware", _hardware_list(rng, folder, tag)]
    else:
        argv += ["--hardware", _name(rng, HARDWARE, "hardware", folder, tag)]
    argv += _workload_options(rng, folder, tag, model)
    return argv + (_plot(rng, folder, tag) if command != "compare" else [])


# ---------------------------------------------------------------- running and judging

def _alarm(_signum, _frame):
    raise Hang()


def run_case(argv: list[str]) -> dict:
    """Run main(argv) in-process; the outcome, stdout, stderr and any exception."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    code, problem = None, None
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    start = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Hang:
        problem = ("hang", f"ran past {CASE_TIMEOUT_S} s")
    except RuntimeWarning as exc:
        problem = ("warning", f"RuntimeWarning: {exc}")
    except BaseException as exc:  # noqa: BLE001 (a traceback is what the fuzzer looks for)
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        problem = ("traceback", f"{type(exc).__name__}: {str(exc)[:200]} at {where}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    elapsed = time.monotonic() - start
    if problem is None and elapsed > CASE_TIMEOUT_S:     # inside a numba kernel the alarm waits
        problem = ("hang", f"took {elapsed:.0f} s")
    out.flush()
    err.flush()
    return dict(code=code, problem=problem, stdout=out.buffer.getvalue().decode("utf-8", "replace"),
                stderr=err.buffer.getvalue().decode("utf-8", "replace"), elapsed_s=elapsed)


def _json_numbers(value, path="") -> list[tuple[str, float]]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, (int, float)):
        return [(path, value)]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _json_numbers(v, f"{path}.{k}")]
    return [n for i, v in enumerate(value) for n in _json_numbers(v, f"{path}.{i}")]


def _reject_constant(name):
    raise ValueError(f"{name} in JSON output")


def _missing_allowed(column: str, row: dict) -> bool:
    """May this CSV cell be missing (nan or empty)? A price or TDP the spec does not give, the
    energy of a device without power figures, the results of a scenario that does not fit, the
    TPOT of a one-token output."""
    no_power = row.get("tdp_w") in ("", "nan")
    return (column in MISSING_COLUMNS or (no_power and column in ENERGY_COLUMNS)
            or (row.get("fits", "True") != "True" and column in FIT_COLUMNS)
            or (column == "tpot_s" and row.get("output") == "1"))


def _check_csv(text: str) -> str | None:
    for i, row in enumerate(csv.DictReader(io.StringIO(text))):
        for column, cell in row.items():
            if column is None or cell is None:
                return f"row {i}: ragged CSV"
            if cell in ("", "nan", "NaN"):
                if _missing_allowed(column, row):
                    continue
                if cell == "" and column == "draft_model":
                    continue
                return f"row {i}: {column} = {cell!r}"
            try:
                value = float(cell)
            except ValueError:
                continue                  # a name, a dtype, True/False
            if not math.isfinite(value) or value < 0:
                return f"row {i}: {column} = {cell}"
    return None


def judge(argv: list[str], result: dict) -> tuple[str, str]:
    """(outcome, detail): outcome is ok-0, ok-2, or one of traceback, hang, warning, exit-code,
    noisy-error, bad-number."""
    if result["problem"]:
        return result["problem"]
    code, out, err = result["code"], result["stdout"], result["stderr"]
    if code == 2:
        lines = err.strip().splitlines()
        if out.strip() or len(lines) != 1 or not lines[0].startswith("llmsim: error: ") or "Traceback" in err:
            return "noisy-error", f"exit 2 with stdout {out[:80]!r} and stderr {err[:300]!r}"
        return "ok-2", lines[0]
    if code != 0:
        return "exit-code", f"exit {code}: {err[:300]!r}"
    if "Traceback" in err or "Traceback" in out:
        return "traceback", err[-300:]
    text = out
    if "--format" in argv and argv[argv.index("--format") + 1] == "json":
        try:
            data = json.loads(out, parse_constant=_reject_constant)
        except ValueError as exc:
            return "bad-number", f"invalid JSON output: {exc}"
        for path, value in _json_numbers(data):
            if not math.isfinite(value) or value < 0:
                return "bad-number", f"JSON {path} = {value}"
        return "ok-0", ""
    if argv[0] == "sweep" and "--out" not in argv:
        problem = _check_csv(out)
        return ("bad-number", f"CSV {problem}") if problem else ("ok-0", "")
    if argv[0] == "sweep" and "--out" in argv:
        target = Path(argv[argv.index("--out") + 1])
        if target.suffix == ".csv" and target.exists():
            problem = _check_csv(target.read_text())
            if problem:
                return "bad-number", f"CSV file {problem}"
    for line in text.splitlines():
        if NON_FINITE.search(line):
            return "bad-number", f"non-finite in {line.strip()[:160]!r}"
        if NEGATIVE.search(line):
            return "bad-number", f"negative in {line.strip()[:160]!r}"
    return "ok-0", ""


WARM_UP = [["predict"], ["predict", "--model", "mixtral-8x7b", "--hardware", "mi300x", "--tp", "2"],
           ["predict", "--draft-model", "llama-3.2-1b", "--batch", "1"], ["roofline"],
           ["compare", "--hardware", "h100-sxm,groq-lpu"],
           ["plan", "--model", "llama-3.2-1b", "--prompt", "16", "--output", "16", "--hardware", "h100-sxm"]]


def warm_up(folder: Path) -> None:
    """Run each command once without a time bound: numba compiles (or loads) its kernels here,
    not inside the first timed case."""
    grid = folder / "warm-up-grid.yaml"
    grid.write_text("models: [llama-3.2-1b]\nhardware: [h100-sxm]\nbatch: [1, 2]\n")
    for argv in WARM_UP + [["sweep", str(grid)]]:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(argv)


def fuzz(cases: int, seed: int, folder: Path, log=None):
    """Run ``cases`` generated cases; (Counter of outcomes, [(argv, outcome, detail)] failures)."""
    warm_up(folder)
    rng = random.Random(seed)
    counts, failures = collections.Counter(), []
    for i in range(cases):
        case_folder = folder / f"c{i // 500}"
        case_folder.mkdir(exist_ok=True)
        argv = make_case(rng, case_folder, f"case{i}")
        outcome, detail = judge(argv, run_case(argv))
        counts[outcome] += 1
        if not outcome.startswith("ok"):
            failures.append((argv, outcome, detail))
            if log:
                print(f"[{i}] {outcome}: {detail}\n    llmsim {' '.join(repr(a) if ' ' in a or not a else a for a in argv)}",
                      file=log, flush=True)
    return counts, failures


def test_fuzz_cli_and_mutated_specs(tmp_path):
    counts, failures = fuzz(CASES, SEED, tmp_path)
    report = "\n".join(f"{outcome}: {detail}\n    llmsim {' '.join(repr(a) for a in argv)}"
                       for argv, outcome, detail in failures[:25])
    assert not failures, f"{len(failures)} of {CASES} fuzzed cases failed ({dict(counts)}):\n{report}"
    assert counts["ok-0"] > CASES // 10 and counts["ok-2"] > CASES // 10, dict(counts)   # both kinds exercised


def test_a_few_cases_through_the_console_entry(tmp_path):
    """The installed entry point too (a subprocess): a damaged spec exits 2 with one line."""
    import subprocess

    rng = random.Random(SEED)
    for i in range(3):
        path = mutated_file(rng, rng.choice(["hardware", "model"]), tmp_path, f"sub{i}")
        path.write_bytes(mutate_text(path.read_bytes(), random.Random(i + 1)))
        proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", "specs", "check", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 2:
            assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr


if __name__ == "__main__":      # python -m tests.test_fuzz [cases] [seed]: counts as JSON, failures on stderr
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else CASES
    s = int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    with tempfile.TemporaryDirectory() as tmp:
        totals, _ = fuzz(n, s, Path(tmp), log=sys.stderr)
    print(json.dumps({"cases": n, "seed": s, **totals}, indent=1))

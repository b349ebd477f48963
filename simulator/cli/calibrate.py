"""`llmsim calibrate`: fit a stack's device entry from microbenchmark files, or measure this
machine's CPU (--this-machine) and write its hardware spec and entry. Returns text."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from simulator.cli.workload import name_list, positive_int
from simulator.errors import SimulatorError, SpecError
from simulator.report.table import render
from simulator.specs import registry

BEGIN = "# BEGIN devices fitted by `llmsim calibrate` from microbenchmarks (do not edit by hand)"
END = "# END devices"


def write_device_profile(stack_path: Path, hardware: str, fields: dict) -> bool:
    """Replace ``hardware``'s entry in the stack file's generated devices block, keeping the
    other devices and everything outside the block as it was. False, and the file untouched,
    when the entry already holds these fields (a tracked file is not rewritten for nothing)."""
    text = stack_path.read_text()
    devices = dict(registry.read_yaml(stack_path).get("devices") or {})
    if devices.get(hardware) == fields:
        return False
    devices[hardware] = fields
    block = f"{BEGIN}\n" + yaml.safe_dump({"devices": dict(sorted(devices.items()))}, sort_keys=False,
                                          width=100) + f"{END}\n"
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n" + block
    stack_path.write_text(text)
    return True


def _fit_report(fits) -> str:
    rows = [[f.name, str(s["n"]), f"{100 * s['median_abs_error']:.1f}%", f"{100 * s['p90_abs_error']:.1f}%",
             f"{100 * s['max_abs_error']:.1f}%"] for f in fits for s in [f.summary()]]
    return render(["fit", "n", "median |err|", "p90 |err|", "max |err|"], rows)


def _stack_path(stack: str) -> Path:
    path = registry.stack_index().get(stack)
    if path is None:
        raise SpecError(stack, "", "calibrate writes into a registry stack (hardware_specs/stacks/NAME.yaml)")
    return path


def _write_entry(stack: str, name: str, fields: dict) -> str:
    stack_path = _stack_path(stack)
    if not write_device_profile(stack_path, name, fields):    # the registry and the API edge see a new file
        return f"the {name} entry of {stack_path} is unchanged (not rewritten)"
    return f"wrote the {name} entry of {stack_path}"


DEFAULT_PARAMS = {"ttft_s": ("gemm_compute_scale", "prefill_step_overhead_s"),
                  "tpot_s": ("memory_scale", "decode_step_overhead_s"),
                  "e2e_s": ("gemm_compute_scale", "memory_scale", "decode_step_overhead_s"),
                  "output_tokens_per_s": ("gemm_compute_scale", "memory_scale", "decode_step_overhead_s")}


def _run_defaults(args) -> dict:
    """Fields the command line gives runs whose files do not carry them."""
    return {k: v for k, v in (("model", args.model), ("hardware", args.hardware), ("tp", args.tp),
                              ("weight_dtype", args.weight_dtype), ("activation_dtype", args.activation_dtype),
                              ("kv_dtype", args.kv_dtype)) if v is not None}


def _knobs(args, runs):
    """--params, else the knobs the measured metrics can tell apart (DEFAULT_PARAMS)."""
    from simulator.calibration.from_runs import parse_use
    from simulator.calibration.knobs import knob

    if args.params:
        return [parse_use(text) for text in args.params]
    metrics = {m for r in runs for m in r.measured()}
    return [knob(name) for name in dict.fromkeys(n for m in sorted(metrics) for n in DEFAULT_PARAMS[m])]


def _errors_table(rows) -> str:
    return render(["metric", "n", "median |err|", "p90 |err|", "max |err|", "mean bias"],
                  [[r["metric"], str(r["n"]), f"{100 * r['median_abs_error']:.1f}%", f"{100 * r['p90_abs_error']:.1f}%",
                    f"{100 * r['max_abs_error']:.1f}%", f"{100 * r['mean_bias']:+.1f}%"] for r in rows])


def _parameters_table(rows) -> str:
    def value(x, unit):
        return "n/a" if x is None else f"{x:.4g}{' ' + unit if unit else ''}"
    return render(["parameter", "value", "1-sigma", "bounds", "meaning"],
                  [[r["name"] + (" (at bound)" if r["at_bound"] else ""), value(r["value"], r["unit"]),
                    "not identified" if r["sigma"] is None else value(r["sigma"], r["unit"]),
                    f"[{value(r['bounds'][0], r['unit'])}, {value(r['bounds'][1], r['unit'])}]", r["meaning"]]
                   for r in rows])


def cmd_from_runs(args) -> str:
    """Fit a stack from end-to-end run files; write it to --out."""
    from simulator.calibration.from_runs import calibrate_from_runs
    from simulator.calibration.importers import load_runs
    from simulator.calibration.stack_file import base_path, stack_document
    from simulator.report.jsontext import json_text
    from simulator.report.output import writable_file

    if not args.name or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", args.name):
        raise SpecError("<arguments>", "--name", f"expected lower-case letters, digits, '.', '_' and '-', got {args.name!r}")
    if not args.out:
        raise SpecError("<arguments>", "--out", "name the stack file to write (STACK.yaml)")
    out = writable_file(args.out, "--out", (".yaml", ".yml"))
    defaults = _run_defaults(args)
    runs = [run for path in args.from_runs for run in load_runs(Path(path), defaults)]
    base = registry.stack(args.base)
    if args.eager_decode:
        base = base.model_copy(update={"decode_graphs": False})
    cal = calibrate_from_runs(runs, base, _knobs(args, runs), args.cv, args.per_profile)
    document = stack_document(cal, args.name, args.base, [str(p) for p in args.from_runs])
    if args.eager_decode:
        document["decode_graphs"] = False
    _write_stack(document, out)
    record = document["calibration"]
    if args.format == "json":
        return json_text({"stack": str(out), **record})
    return _calibration_text(f"{args.name}: {len(runs)} runs fitted on top of {base_path(args.base).stem}", record, out)


def _calibration_text(title: str, record: dict, out: Path) -> str:
    scheme = {"model": "leave one model out", "hardware": "leave one device out",
              "run": "leave one run out"}.get(record["cross_validation"]["scheme"])
    scheme = scheme or record["cross_validation"]["scheme"].replace("kfold:", "k-fold, k = ")
    return "\n".join([title, "", _parameters_table(record["parameters"]), "",
                      f"cross-validated error ({scheme}; each fold refitted without its runs):",
                      _errors_table(record["cross_validation"]["errors"]), "",
                      "in-sample error (the runs the final fit saw; not an accuracy estimate):",
                      _errors_table(record["in_sample"]), "", f"wrote {out}  (use it with --stack {out})"])


def _write_stack(document: dict, out: Path) -> None:
    from simulator.calibration.stack_file import stack_text
    from simulator.report.output import written_whole

    with written_whole(out) as partial:
        partial.write_text(stack_text(document))
    registry.stack(str(out))                    # what was written reads back as a stack


def cmd_published(args) -> str:
    """Each published file's calibration block fitted and written as its stack."""
    from simulator.accuracy.published import calibrate_file
    from simulator.calibration.files import relative_source
    from simulator.calibration.stack_file import stack_document

    texts = []
    for text in args.published:
        path = Path(text)
        cal, spec = calibrate_file(path)
        block = spec.calibration
        out = registry.data_root() / "hardware_specs" / "stacks" / f"{block.stack}.yaml"
        document = stack_document(cal, block.stack, spec.stack, [relative_source(path.resolve())], block.why)
        _write_stack(document, out)
        texts.append(_calibration_text(f"{block.stack}: {len(cal.problem.obs.runs)} published points of {path.name} "
                                       f"fitted on top of {spec.stack}", document["calibration"], out))
    return "\n\n".join(texts)


def cmd_calibrate(args) -> str:
    from simulator.calibration.calibrate import fit_device
    from simulator.calibration.files import newest_micros, relative_source
    from simulator.specs.measurement import measurement_root

    if args.from_runs:
        return cmd_from_runs(args)
    if args.published:
        return cmd_published(args)
    if args.this_machine:
        return cmd_this_machine(args)
    if not args.hardware:
        raise SpecError("--hardware", "", "name the device to fit (or --this-machine to measure this CPU)")
    hw = registry.hardware(args.hardware)
    paths = [Path(m) for m in args.micro] if args.micro else list(newest_micros(measurement_root() / hw.name).values())
    fields, fits = fit_device(hw, paths)
    fields, fits, links = _with_collectives(fields, fits, hw, args)
    text = f"{hw.name}: stack {args.stack} fitted from {', '.join(relative_source(p) for p in paths)}\n\n{_fit_report(fits)}{links}"
    if args.dry_run:
        return text + "\n\n" + yaml.safe_dump({hw.name: fields}, sort_keys=False)
    return text + "\n\n" + _write_entry(args.stack, hw.name, fields)


def _with_collectives(fields: dict, fits: list, hw, args) -> tuple[dict, list, str]:
    """The collective fits (calibration/collectives.py) from --collectives, else the device's
    collectives-*.json; nothing changes for a device without such files."""
    from simulator.calibration.collectives import device_files, fit_collectives, report_rows, with_collectives
    from simulator.specs.measurement import load_collectives

    paths = [Path(p) for p in args.collectives] if args.collectives else device_files(hw.name)
    if not paths:
        return fields, fits, ""
    algorithm = registry.stack(args.stack).collective_algorithm
    fields, fits = with_collectives(fields, fits, hw, paths, algorithm)
    rows = report_rows(fit_collectives([load_collectives(p) for p in paths], hw, algorithm))
    return fields, fits, "\n\n" + render(["collective fit", "fixed us", "per hop us", "bus GB/s", "of link"], rows)


def progress(message: str) -> None:
    """A long measurement's progress, on stderr (stdout keeps the report)."""
    print(message, file=sys.stderr, flush=True)


def cmd_this_machine(args) -> str:
    """Probe and measure this CPU; write hardware_specs/cpu/NAME.yaml and its stack entry."""
    from simulator.calibration import thismachine
    from simulator.calibration.calibrate import fit_device
    from simulator.calibration.files import relative_source

    if args.name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", args.name):
        raise SpecError("--name", "", f"expected lower-case letters, digits, '.' and '-', got {args.name!r}")
    try:
        thismachine.harness_cpu()
        missing = None
    except SimulatorError as err:             # the spec is still worth writing
        missing = str(err)
    probe = thismachine.probe(args.name, log=progress)
    spec, name = probe.spec, probe.spec["name"]
    spec_path = registry.data_root() / "hardware_specs" / "cpu" / f"{name}.yaml"
    header = f"# {spec['product']}: measured by `llmsim calibrate --this-machine` (rerun it to refresh).\n"
    spec_text = header + yaml.safe_dump(spec, sort_keys=False, width=100)
    lines = [f"{name}: hardware spec from this machine"]
    if args.dry_run:
        return "\n".join(lines) + "\n\n" + spec_text
    spec_path.write_text(spec_text)
    hw = registry.hardware(name)
    lines.append(f"wrote {spec_path}")
    if missing:
        return "\n".join(lines + [f"no {args.stack} entry written ({missing}); its cpu class default applies"])
    micro_paths = thismachine.measure_micro(probe, thismachine.session_dir(name), args.quick, log=progress)
    fields, fits = fit_device(hw, list(micro_paths.values()))
    lines += ["", f"stack {args.stack} fitted from " + ", ".join(relative_source(p) for p in micro_paths.values()), "",
              _fit_report(fits), "", _write_entry(args.stack, name, fields),
              f"next: llmsim validate --live --hardware {name}   (or llmsim predict --hardware {name} ...)"]
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a stack's profile for a device from its microbenchmarks, "
                                         "or measure this machine's CPU")
    p.add_argument("--hardware", help="the device whose micro files to fit (with --from-runs: the device of runs "
                                      "whose files do not name one)")
    p.add_argument("--stack", default="pytorch-ref")
    p.add_argument("--micro", action="append", help="microbenchmark JSON, repeatable, one per dtype "
                                                    "(default: the newest of each dtype under validation/measurements/HW)")
    p.add_argument("--collectives", action="append", help="collective microbenchmark JSON, repeatable (default: "
                                                          "the device's collectives-*.json, if any)")
    p.add_argument("--this-machine", action="store_true", help="measure this CPU: write hardware_specs/cpu/NAME.yaml "
                                                                "and, with torch installed, its stack entry")
    p.add_argument("--name", help="with --this-machine: the spec's name (default: from the CPU model, e.g. intel-xeon-2c-vm)")
    p.add_argument("--quick", action="store_true", help="with --this-machine: fewer microbenchmark shapes (~1 min)")
    p.add_argument("--dry-run", action="store_true", help="print the fit, write nothing")
    runs = p.add_argument_group("from end-to-end runs (--from-runs)")
    runs.add_argument("--from-runs", nargs="+", metavar="RUNS", help="fit a stack from run files: llmsim rows "
                      "(.jsonl/.csv), vllm bench serve, llama-bench, genai-perf/aiperf or llmsim-hf-generate JSON")
    runs.add_argument("--published", nargs="+", metavar="FILE", help="fit validation/published FILEs as their "
                      "calibration block says; write hardware_specs/stacks/<its stack>.yaml")
    runs.add_argument("--base", default="pytorch-ref", help="the stack the fitted parameters adjust (name or path)")
    runs.add_argument("--out", help="the stack YAML to write")
    runs.add_argument("--eager-decode", action="store_true", help="the runs' stack launches every decode step "
                      "eagerly, without CUDA graphs (Hugging Face generate()): the new stack's decode_graphs is false")
    runs.add_argument("--params", type=name_list, help="comma-separated parameters to fit, each NAME or NAME@PREFIX "
                                                       "(only the profiles whose address starts with PREFIX, e.g. "
                                                       "@classes.gpu; default: by the measured metrics); see README")
    runs.add_argument("--cv", help="cross-validation: model, hardware, run or kfold:K (default: model with 3+ models, "
                                   "else hardware with 3+ devices, else run)")
    runs.add_argument("--per-profile", action="store_true", help="one parameter set per distinct base profile the "
                                                                 "runs use (e.g. CUDA GPUs and Apple GPUs apart)")
    runs.add_argument("--model", help="the model of runs whose files do not name one")
    runs.add_argument("--tp", type=positive_int, help="tensor parallelism of runs whose files do not give it")
    runs.add_argument("--weight-dtype", help="weight format of runs whose files do not give it")
    runs.add_argument("--activation-dtype", help="compute dtype of runs whose files do not give it")
    runs.add_argument("--kv-dtype", help="KV-cache dtype of runs whose files do not give it")
    runs.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_calibrate)

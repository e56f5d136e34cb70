"""The ``imbench`` command line: ``imbench run ...`` and ``imbench ls ...``."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path

from .contract.errors import UsageError, unknown
from .executors import resolve_jobs

# Only light modules above: ``imbench --help``, ``imbench ls`` and argument errors import no torch;
# the suite, runner and tracks are imported where a run needs them.
LS_KINDS = ("methods", "datasets", "recipes", "models", "profiles", "suites", "tracks")
EXECUTORS = ("local", "ray")
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(p) for p in text.split(",")]
    except ValueError:
        raise UsageError(f"bad {what} {text!r}; expected numbers like 10,50") from None


def _one_float(text: str | None, what: str) -> float | None:
    values = _floats(text, what)
    if values is not None and len(values) != 1:
        raise UsageError(f"{what} takes one number, got {text!r}")
    return None if values is None else values[0]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="imbench", description="Class-imbalance benchmark suite for computer vision.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="run a track, a suite file, or all (default: the quick suite)")
    run.add_argument("target", nargs="?", help="a track (classification, detection, segmentation) | all | SUITE.yaml | bundled suite name")
    run.add_argument("--dataset", help="dataset name(s), comma-separated (overrides the suite)")
    run.add_argument("--data-root", help="folder holding real datasets in torchvision's layout")
    run.add_argument("--data-path", help="a dataset file (e.g. a MedMNIST .npz)")
    run.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    run.add_argument("--split-seed", type=int, help="seed of the stratified test split of single-split sources (default 0)")
    run.add_argument("--image-size", type=int, help="detection/segmentation: resize images (digit-scenes: the "
                                                    "canvas side; real sets: the longer side) for a CPU")
    run.add_argument("--validation", help="a fraction F of the recipe's training set to carve out (seeded, "
                                          "stratified): the cells train on the rest and are evaluated on it "
                                          "instead of the test split (choosing defaults; `imbench run select`)")
    run.add_argument("--recipe", help="recipe spec(s) name[:key=value...], comma-separated")
    run.add_argument("--ir", help="imbalance ratio(s), e.g. 10,50 (sets the recipes' ir)")
    run.add_argument("--methods", help="method spec(s) name[:key=value...], hybrids a+b, or all|baseline|gan")
    run.add_argument("--model", help="model name(s), comma-separated")
    run.add_argument("--seeds", help="training seeds (initialisation, batch order, augmentation, generators), "
                                     "e.g. 0,1,2 or 0-4")
    run.add_argument("--subset-seed", help="seed(s) of which images the recipe keeps (default 0: one fixed "
                                           "subset, paired across methods and training seeds)")
    run.add_argument("--profile", help="smoke | quick | standard | paper | curves | PROFILE.yaml")
    run.add_argument("--budget-unit", help="steps (every method makes erm's optimizer steps) | epochs "
                                           "(epochs over each method's own set); overrides the profile")
    run.add_argument("--precision", help="auto (bf16 where the device computes it natively, else fp32) | bf16 | "
                                         "fp32; overrides the profile (a budget without one is fp32)")
    run.add_argument("--budget-scale", help="multiply the profile's training budget (epoch length: steps, "
                                            "lr milestones and warm-up with it), e.g. 0.5,1,2 (a grid axis)")
    run.add_argument("--gan-steps", help="generative methods: generator updates of the profile's gan budget, "
                                         "e.g. 400,1600 (a grid axis; per class for per-class GANs)")
    run.add_argument("--blend", help="generative methods: 'full' (every class up to the largest) or a fraction of each deficit")
    run.add_argument("--out", help="output folder (default ./runs/<suite>)")
    run.add_argument("--cache-dir", help="generator / feature-extractor cache (default <out>/../cache)")
    run.add_argument("--no-cache", action="store_true", help="train every generator afresh and store nothing")
    run.add_argument("--resume", action="store_true", help="skip cells already recorded in --out; retry failed ones")
    run.add_argument("--no-retry", action="store_true", help="with --resume: skip failed cells too")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    run.add_argument("--jobs", help="worker processes, or auto (default; $IMBENCH_JOBS overrides): one 1-thread "
                                    "worker per CPU core on a CPU, 1 on CUDA; 1 runs in this process")
    run.add_argument("--threads", type=int, default=1,
                     help="torch threads of each cell on a CPU (default 1, whatever --jobs says: the thread count "
                          "changes a cell's floats, and the record says how many)")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="local (this process or a local pool, --jobs) | ray (each cell a Ray task; "
                          "pip install 'imbench[ray]')")
    run.add_argument("--ray-address", help="with --executor ray: a running cluster (auto, or HOST:PORT); "
                                           "default: start Ray on this machine")
    run.add_argument("--cpus-per-cell", type=float, default=1.0,
                     help="with --executor ray: CPUs of each cell's task (its torch threads; default 1)")
    run.add_argument("--gpus-per-cell", type=float, default=0.0,
                     help="with --executor ray: GPUs of each cell's task, e.g. 0.25 (then the cells run on CUDA)")
    run.add_argument("--plugin", action="append", default=[],
                     help="a method plugin: module:Class (a module in this folder or installed) or "
                          "path/to/file.py:Class (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    run.add_argument("--report", action=argparse.BooleanOptionalAction, default=None,
                     help="write <out>/report (tables, statistics, plots, report.html) at the end "
                          "(default on; $IMBENCH_REPORT=0 turns the default off)")
    rep = sub.add_parser("report", help="tables, statistics, plots and report.html from run directories")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (each holds records/)")
    rep.add_argument("--out", help="output folder (default <first RUN_DIR>/report)")
    rep.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    perf = sub.add_parser("perf", help="training and evaluation img/s per track, beside a bare loop of the same model")
    perf.add_argument("tracks", nargs="*", metavar="TRACK", help="classification | detection | segmentation (default: all)")
    perf.add_argument("--precision", default="fp32,auto", help="precisions to measure, comma-separated (default fp32,auto)")
    perf.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a pool worker)")
    perf.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    perf.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    ls = sub.add_parser("ls", help="list methods, datasets, recipes, models, profiles, suites or tracks")
    ls.add_argument("kind", help=" | ".join(LS_KINDS))
    ls.add_argument("--track", help="only what supports this track")
    ls.add_argument("--plugin", action="append", default=[], help="module:Class or file.py:Class of a method plugin")
    ls.add_argument("--long", action="store_true", help="whole rows (default: cut to the terminal's width)")
    ls.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def check_run_args(args) -> None:
    """The checks of ``imbench run``'s flags that need no registry (and so no torch)."""
    if args.ir is not None and any(v < 1 for v in _floats(args.ir, "--ir")):
        raise UsageError(f"--ir must be at least 1, got {args.ir}")
    if args.budget_scale is not None and any(not v > 0 for v in _floats(args.budget_scale, "--budget-scale")):
        raise UsageError(f"--budget-scale must be > 0, got {args.budget_scale}")
    if args.no_retry and not args.resume:
        raise UsageError("--no-retry only makes sense with --resume")
    if not DEVICE.match(str(args.device).strip().lower()):
        raise UsageError(f"unknown device {args.device!r}; use auto, cpu, cuda, cuda:N or mps")
    if args.executor != "ray" and (args.ray_address or args.gpus_per_cell or args.cpus_per_cell != 1.0):
        raise UsageError("--ray-address, --cpus-per-cell and --gpus-per-cell need --executor ray")
    if args.executor == "ray" and args.jobs is not None:
        raise UsageError("--jobs sets the local pool; with --executor ray each cell is a task "
                         "(--cpus-per-cell, --gpus-per-cell)")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.executor == "ray" and args.threads != 1:
        raise UsageError("--threads sets the local executor's threads; with --executor ray a task's threads are "
                         "its --cpus-per-cell")
    if args.cpus_per_cell <= 0 or args.gpus_per_cell < 0:
        raise UsageError("--cpus-per-cell must be > 0 and --gpus-per-cell >= 0")
    if args.data_path and not Path(args.data_path).exists():
        raise UsageError(f"--data-path {args.data_path} does not exist")
    resolve_jobs(args.jobs, device="cpu", cells=1)  # its syntax (the count needs the cells)


def default_out(suite: dict, profile: str | None) -> Path:
    """``runs/<suite>``, with the profile appended when ``--profile`` is not the suite's own."""
    own = {g.get("profile", "quick") for g in suite["grids"]}
    name = suite["name"]
    if profile is not None and Path(profile).stem not in own:
        name = f"{name}-{Path(profile).stem}"
    return Path("runs") / name


def cmd_run(args) -> int:
    check_run_args(args)
    from ..results.aggregate import tidy
    from ..results.leaderboard import format_table, leaderboard, write_leaderboard
    from .contract.records import read_records
    from .labels import labels
    from .plugins import load_methods, resolve_plugin_spec
    from .runlock import RunLock, note_command
    from .runner import check_existing, resolve_device, run_cells, validate
    from .suite import Overrides, dedupe, expand, load_suite, parse_ints

    plugins = [resolve_plugin_spec(spec) for spec in args.plugin]
    load_methods(tuple(plugins))
    suite = load_suite(args.target)
    overrides = Overrides(
        datasets=_csv(args.dataset), recipes=_csv(args.recipe), ir=_floats(args.ir, "--ir"),
        methods=_csv(args.methods), models=_csv(args.model),
        seeds=None if args.seeds is None else parse_ints(args.seeds, "--seeds"),
        subset_seeds=None if args.subset_seed is None else parse_ints(args.subset_seed, "--subset-seed"),
        profile=args.profile, split_seed=args.split_seed, blend=args.blend, budget_unit=args.budget_unit,
        image_size=args.image_size, budget_scale=_floats(args.budget_scale, "--budget-scale"),
        precision=args.precision, gan_steps=_csv(args.gan_steps),
        validation=_one_float(args.validation, "--validation"),
    )
    notes: list[str] = []
    planned = expand(suite, overrides, notes)
    out = Path(args.out) if args.out else default_out(suite, args.profile)
    device = resolve_device(args.device, executor=args.executor, gpus_per_cell=args.gpus_per_cell)
    from ..tasks.precision import resolve_cells

    # precision auto becomes bf16 or fp32 here, for this device, before the cells get their identity
    cells, repeats = dedupe(resolve_cells(planned, device))
    runtime = {
        "out": str(out.resolve()), "data_root": args.data_root,
        "data_path": args.data_path, "download": args.download, "device": device,
        "plugins": plugins, "cwd": os.getcwd(),
        "cache_dir": None if args.no_cache else str(Path(args.cache_dir or out.resolve().parent / "cache").resolve()),
    }
    if args.executor == "ray":
        from .ray_executor import RayExecutor

        executor = RayExecutor(address=args.ray_address, cpus_per_cell=args.cpus_per_cell,
                               gpus_per_cell=args.gpus_per_cell)
        workers = f"Ray ({args.ray_address or 'started on this machine'})"
    else:
        from .executors import make_executor

        jobs = resolve_jobs(args.jobs, device=device, cells=len(cells))
        executor = make_executor(jobs, device, threads=args.threads)
        workers = "in this process" if jobs == 1 else f"{jobs} worker processes"
    cells = validate(cells, runtime)
    check_existing(cells, out.resolve(), args.resume)
    for note in notes:  # after the checks: a run refused says one line only
        print(f"imbench: {note}", file=sys.stderr)
    _make_dir(out, "--out")
    if runtime["cache_dir"]:
        _make_dir(Path(runtime["cache_dir"]), "--cache-dir")
    command = " ".join(["imbench", *getattr(args, "argv", [])])
    with RunLock(out, command):
        note_command(out, cells, command)
        if repeats:
            names = sorted({labels(c)["cell"] for c in repeats})
            print(f"imbench: {len(repeats)} duplicate cell(s) listed more than once run once: {', '.join(names[:3])}"
                  f"{', ...' if len(names) > 3 else ''}", file=sys.stderr)
        if not args.quiet:
            print(f"imbench: suite {suite['name']}: {len(cells)} cells on {device}, {workers} -> {out}",
                  file=sys.stderr)
        result = run_cells(cells, runtime, executor, resume=args.resume, quiet=args.quiet,
                           retry=not args.no_retry)
        # the leaderboard covers every record in --out, as the report does (one meaning per file)
        everything = read_records(out)
        table = tidy(everything)
        written = write_leaderboard(everything, out, table)
        report, report_error = None, None
        if _want_report(args.report):
            from ..results.report import build_report

            try:  # the cells are recorded: a report that fails must not hide how they went
                report = build_report([out], out / "report")
            except Exception as exc:  # noqa: BLE001
                report_error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    print(format_table(leaderboard(everything, table)))
    print()
    retried = f" ({result['retried']} retried)" if result["retried"] else ""
    changed = f", {result['code_changed']} left for changed code" if result["code_changed"] else ""
    print(f"records:     {out / 'records'} ({len(result['records'])} cells, {result['ran']} run now{retried}, "
          f"{result['skipped']} resumed{changed}; {len(everything)} records in all)")
    for path in written:
        print(f"leaderboard: {path} (every record in {out})")
    if report is not None:
        print(f"report:      {report['out'] / 'report.html'} (every record in {out})")
    if report_error is not None:
        print(f"imbench: the report could not be written ({report_error}); rerun `imbench report {out}`",
              file=sys.stderr)
    if result["failed"]:
        print(f"imbench: {len(result['failed'])} cell(s) failed:", file=sys.stderr)
        for r in result["failed"]:
            print(f"  {r['label']}: {r['error']}", file=sys.stderr)
        return 1
    return 0


def _want_report(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("IMBENCH_REPORT", "1").strip().lower() not in ("0", "false", "no", "off")


def _make_dir(path: Path, flag: str) -> None:
    """Create ``path`` (and parents) or fail with a one-line usage error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {flag} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into {flag} {path}: permission denied")


def cmd_report(args) -> int:
    from ..results.report import build_report

    report = build_report([Path(d) for d in args.run_dirs], Path(args.out) if args.out else None)
    older = f", {len(report['superseded'])} superseded by newer code" if report.get("superseded") else ""
    print(f"report: {report['out']} ({len(report['records'])} records{older}, {len(report['missing'])} missing cells)")
    plots = [p for p in report["files"] if p.parent.name == "plots"]
    for path in report["files"]:
        if path.suffix in (".html", ".csv", ".md", ".json"):
            print(f"  {path}")
    if plots:
        print(f"  {plots[0].parent}/ ({len(plots)} plot files: PNG and SVG)")
    return 0


SUITES_DIR = Path(__file__).with_name("suites")
LS_TEXT_COLUMNS = ("summary", "reference", "parameters", "description", "needs")


def cmd_perf(args) -> int:
    precisions = list(dict.fromkeys(_csv(args.precision) or []))
    if not precisions or any(p not in ("auto", "bf16", "fp32") for p in precisions):
        raise UsageError(f"--precision takes auto, bf16, fp32 (comma-separated), got {args.precision!r}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if not DEVICE.match(str(args.device).strip().lower()):
        raise UsageError(f"unknown device {args.device!r}; use auto, cpu, cuda, cuda:N or mps")
    from .perf import TRACK_NAMES, measure
    from .runner import resolve_device

    tracks = args.tracks or list(TRACK_NAMES)
    device = resolve_device(args.device)
    table = measure(tracks, precisions, device=device, threads=args.threads)
    print(f"imbench perf on {device}, {args.threads} thread(s): img/s (ratio = imbench / bare loop)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"))
    return 0


def cmd_ls(args) -> int:
    """List what imbench has. The built-ins come from the catalogue (no torch); with a plugin
    (``--plugin`` or an installed entry point) the registries are loaded for real."""
    from importlib.metadata import entry_points

    from . import catalog
    from .catalog import ENTRY_POINT_GROUP

    if args.kind not in LS_KINDS:
        raise unknown("list", args.kind, LS_KINDS)
    table = catalog.load()
    tracks = [row[0] for row in table["tracks"]]
    if args.track and args.track not in tracks:
        raise unknown("track", args.track, tracks)
    if args.plugin or list(entry_points(group=ENTRY_POINT_GROUP)):
        from .plugins import load_methods

        load_methods(tuple(args.plugin))
        table = {**table, "methods": catalog.method_rows(),
                 **{k: catalog.registry_rows(k) for k in ("datasets", "recipes", "models")}}
    if args.kind in catalog.KINDS:
        header = catalog.HEADERS[args.kind]
        if args.kind == "tracks":
            rows = [r for r in table["tracks"] if not args.track or r[0] == args.track]
        else:
            where = header.index("tracks")
            rows = [r for r in table[args.kind] if not args.track or args.track in r[where].split(",")]
    elif args.kind == "profiles":
        from .profiles import profiles

        rows = [(name, ",".join(t for t in block if t != "description"), block.get("description", ""))
                for name, block in profiles().items()
                if not args.track or args.track in block]
        header = ("name", "tracks", "description")
    else:
        import yaml

        rows = [(p.stem, (yaml.safe_load(p.read_text()) or {}).get("description", ""))
                for p in sorted(SUITES_DIR.glob("*.yaml"))]
        header = ("name", "description")
    _print_table(header, rows, None if args.long else shutil.get_terminal_size((120, 24)).columns)
    return 0


def _print_table(header, rows, width: int | None = None) -> None:
    """Rows in aligned columns; with ``width``, the text columns (summary, reference, ...) are
    cut (ending in an ellipsis) so that each line fits it."""
    rows = [[str(x) for x in r] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    if width is not None:
        text = [i for i, h in enumerate(header) if h in LS_TEXT_COLUMNS]
        fixed = sum(w for i, w in enumerate(widths) if i not in text) + 2 * (len(header) - 1)
        room = max(width - fixed, 12 * len(text))
        if text and sum(widths[i] for i in text) > room:
            share = room // len(text)  # the narrow text columns keep their width, the rest share
            narrow = [i for i in text if widths[i] <= share]
            rest = [i for i in text if i not in narrow]
            left = room - sum(widths[i] for i in narrow)
            for i in rest:
                widths[i] = max(left // len(rest), 8)
            rows = [[_cut(x, widths[i]) if i in rest else x for i, x in enumerate(r)] for r in rows]
    for row in [list(header), *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 all cells ok; 1 some cells failed (recorded); 2 bad input (one line, nothing
    written); 3 internal error (one line and the path of a log with the traceback; ``--debug``
    prints the traceback instead); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): finished
    cells are recorded and worker processes ended."""
    parser = build_parser()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    previous = _on_sigterm()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            args = parser.parse_args(["run", *(argv or [])])
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return {"run": cmd_run, "report": cmd_report, "perf": cmd_perf}.get(args.command, cmd_ls)(args)
    except UsageError as exc:
        print(f"imbench: error: {str(exc).splitlines()[0] if str(exc) else 'bad input'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"imbench: {what}; finished cells are recorded, rerun with --resume to go on", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # noqa: BLE001 - an internal error: one line and a log
        if debug:
            traceback.print_exc()
            return 3
        log = _error_log(exc)
        first = (str(exc).splitlines() or [""])[0]
        print(f"imbench: internal error: {type(exc).__name__}: {first} (traceback in {log}; "
              "--debug shows it)", file=sys.stderr)
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``kill``): handled as Ctrl-C is, with exit code 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _on_sigterm():
    """Turn SIGTERM into :class:`Terminated` while ``main`` runs (main thread only); the handler
    it replaced, or None."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        return None


def _error_log(exc: BaseException) -> str:
    """Write the traceback (with a pool worker's remote traceback) to a log file; its path."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"imbench-error-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(" ".join(["imbench", *sys.argv[1:]]) + "\n\n")
        fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()

"""The ``imbench`` command line: ``imbench run ...`` and ``imbench ls ...``."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path

from .contract.errors import UsageError, unknown
from .executors import make_executor, resolve_jobs
from .plugins import METHODS, load_methods
from .profiles import profiles
from .runner import check_existing, resolve_device, run_cells, validate
from .labels import labels
from .runlock import RunLock, note_command
from .suite import Overrides, dedupe, expand, load_suite, parse_ints, suite_names

LS_KINDS = ("methods", "datasets", "recipes", "models", "profiles", "suites", "tracks")


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
    run.add_argument("--recipe", help="recipe spec(s) name[:key=value...], comma-separated")
    run.add_argument("--ir", help="imbalance ratio(s), e.g. 10,50 (sets the recipes' ir)")
    run.add_argument("--methods", help="method spec(s) name[:key=value...], hybrids a+b, or all|baseline|gan")
    run.add_argument("--model", help="model name(s), comma-separated")
    run.add_argument("--seeds", help="training seeds (initialisation, batch order, augmentation, generators), "
                                     "e.g. 0,1,2 or 0-4")
    run.add_argument("--subset-seed", help="seed(s) of which images the recipe keeps (default 0: one fixed "
                                           "subset, paired across methods and training seeds)")
    run.add_argument("--profile", help="smoke | quick | paper | PROFILE.yaml")
    run.add_argument("--budget-unit", help="steps (every method makes erm's optimizer steps) | epochs "
                                           "(epochs over each method's own set); overrides the profile")
    run.add_argument("--blend", help="generative methods: 'full' (every class up to the largest) or a fraction of each deficit")
    run.add_argument("--out", help="output folder (default ./runs/<suite>)")
    run.add_argument("--cache-dir", help="generator / feature-extractor cache (default <out>/../cache)")
    run.add_argument("--no-cache", action="store_true", help="train every generator afresh and store nothing")
    run.add_argument("--resume", action="store_true", help="skip cells already recorded in --out; retry failed ones")
    run.add_argument("--no-retry", action="store_true", help="with --resume: skip failed cells too")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    run.add_argument("--jobs", help="worker processes, or auto (default; $IMBENCH_JOBS overrides): one 1-thread "
                                    "worker per CPU core on a CPU, 1 on CUDA; 1 runs in this process")
    run.add_argument("--plugin", action="append", default=[], help="module:attr of a method plugin (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    run.add_argument("--report", action=argparse.BooleanOptionalAction, default=None,
                     help="write <out>/report (tables, statistics, plots, report.html) at the end "
                          "(default on; $IMBENCH_REPORT=0 turns the default off)")
    rep = sub.add_parser("report", help="tables, statistics, plots and report.html from run directories")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (each holds records/)")
    rep.add_argument("--out", help="output folder (default <first RUN_DIR>/report)")
    rep.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    ls = sub.add_parser("ls", help="list methods, datasets, recipes, models, profiles, suites or tracks")
    ls.add_argument("kind", help=" | ".join(LS_KINDS))
    ls.add_argument("--track", help="only what supports this track")
    ls.add_argument("--plugin", action="append", default=[], help="module:attr of a method plugin")
    ls.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def cmd_run(args) -> int:
    from ..results.aggregate import tidy
    from ..results.leaderboard import format_table, leaderboard, write_leaderboard

    load_methods(tuple(args.plugin))
    suite = load_suite(args.target)
    overrides = Overrides(
        datasets=_csv(args.dataset), recipes=_csv(args.recipe), ir=_floats(args.ir, "--ir"),
        methods=_csv(args.methods), models=_csv(args.model),
        seeds=None if args.seeds is None else parse_ints(args.seeds, "--seeds"),
        subset_seeds=None if args.subset_seed is None else parse_ints(args.subset_seed, "--subset-seed"),
        profile=args.profile, split_seed=args.split_seed, blend=args.blend, budget_unit=args.budget_unit,
        image_size=args.image_size,
    )
    if overrides.ir is not None and any(v < 1 for v in overrides.ir):
        raise UsageError(f"--ir must be at least 1, got {args.ir}")
    if args.no_retry and not args.resume:
        raise UsageError("--no-retry only makes sense with --resume")
    cells, repeats = dedupe(expand(suite, overrides))
    out = Path(args.out or Path("runs") / suite["name"])
    runtime = {
        "out": str(out.resolve()), "data_root": args.data_root,
        "data_path": args.data_path, "download": args.download, "device": resolve_device(args.device),
        "plugins": list(args.plugin),
        "cache_dir": None if args.no_cache else str(Path(args.cache_dir or out.resolve().parent / "cache").resolve()),
    }
    if args.data_path and not Path(args.data_path).exists():
        raise UsageError(f"--data-path {args.data_path} does not exist")
    jobs = resolve_jobs(args.jobs, device=runtime["device"], cells=len(cells))
    cells = validate(cells, runtime)
    check_existing(cells, out.resolve(), args.resume)
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
            workers = "in this process" if jobs == 1 else f"{jobs} worker processes"
            print(f"imbench: suite {suite['name']}: {len(cells)} cells on {runtime['device']}, {workers} -> {out}",
                  file=sys.stderr)
        result = run_cells(cells, runtime, make_executor(jobs, args.jobs, runtime["device"]), resume=args.resume,
                           quiet=args.quiet, retry=not args.no_retry)
        table = tidy(result["records"])  # the statistics of this invocation's cells, once
        written = write_leaderboard(result["records"], out, table)
        report, report_error = None, None
        if _want_report(args.report):
            from ..results.report import build_report

            try:  # the cells are recorded: a report that fails must not hide how they went
                report = build_report([out], out / "report")
            except Exception as exc:  # noqa: BLE001
                report_error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    print(format_table(leaderboard(result["records"], table)))
    print()
    retried = f" ({result['retried']} retried)" if result["retried"] else ""
    print(f"records:     {out / 'records'} ({len(result['records'])} cells, {result['ran']} run now{retried}, "
          f"{result['skipped']} resumed)")
    for path in written:
        print(f"leaderboard: {path}")
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
    print(f"report: {report['out']} ({len(report['records'])} records, {len(report['missing'])} missing cells)")
    for path in report["files"]:
        if path.suffix in (".html", ".csv", ".md"):
            print(f"  {path}")
    return 0


def cmd_ls(args) -> int:
    from ..tasks import TRACKS

    load_methods(tuple(args.plugin))
    if args.kind not in LS_KINDS:
        raise unknown("list", args.kind, LS_KINDS)
    if args.track and args.track not in TRACKS:
        raise unknown("track", args.track, TRACKS)
    rows: list[tuple] = []
    if args.kind == "methods":
        for name in sorted(METHODS):
            cls = METHODS.get(name)
            if args.track and not cls.supports(args.track):
                continue
            params = " ".join(f"{k}={v}" for k, v in cls.defaults.items())
            rows.append((name, cls.family, ",".join(cls.tracks), cls.summary, cls.reference, params))
        header = ("name", "family", "tracks", "summary", "reference", "parameters")
    elif args.kind in ("datasets", "recipes", "models"):
        seen: dict[tuple, tuple] = {}  # one row per registered spec: a name two tracks define differently shows twice
        for track_name in TRACKS:
            track = TRACKS.get(track_name)
            reg = {"datasets": track.datasets, "recipes": track.recipes, "models": track.models}[args.kind]()
            for name in reg:
                spec = reg.get(name)
                tracks = tuple(getattr(spec, "tracks", (track_name,)))
                if (name, id(spec)) in seen or (args.track and args.track not in tracks):
                    continue
                extra = getattr(spec, "needs", None) or " ".join(
                    f"{k}={v}" for k, v in getattr(spec, "defaults", {}).items())
                seen[(name, id(spec))] = (name, ",".join(tracks), spec.summary, spec.reference, extra)
        rows = sorted(seen.values(), key=lambda r: (r[0], r[1]))
        header = ("name", "tracks", "summary", "reference",
                  {"datasets": "needs", "recipes": "parameters", "models": ""}[args.kind])
    elif args.kind == "profiles":
        for name, block in profiles().items():
            tracks = [t for t in block if t != "description"]
            rows.append((name, ",".join(tracks), block.get("description", "")))
        header = ("name", "tracks", "description")
    elif args.kind == "suites":
        rows = [(n, load_suite(n).get("description", "")) for n in suite_names()]
        header = ("name", "description")
    else:
        rows = [(n, TRACKS.get(n).summary) for n in TRACKS]
        header = ("name", "summary")
    _print_table(header, rows)
    return 0


def _print_table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 all cells ok; 1 some cells failed (recorded); 2 bad input (one line, nothing
    written); 3 internal error (one line and the path of a log with the traceback; ``--debug``
    prints the traceback instead); 130 interrupted."""
    parser = build_parser()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            args = parser.parse_args(["run", *(argv or [])])
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return {"run": cmd_run, "report": cmd_report}.get(args.command, cmd_ls)(args)
    except UsageError as exc:
        print(f"imbench: error: {str(exc).splitlines()[0] if str(exc) else 'bad input'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imbench: interrupted; finished cells are recorded, rerun with --resume to go on", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - an internal error: one line and a log
        if debug:
            traceback.print_exc()
            return 3
        log = _error_log(exc)
        first = (str(exc).splitlines() or [""])[0]
        print(f"imbench: internal error: {type(exc).__name__}: {first} (traceback in {log}; "
              "--debug shows it)", file=sys.stderr)
        return 3


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

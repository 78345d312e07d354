"""The `idattn` command: parse, compose the config, dispatch to a recipe, print the summary.

Heavy packages (torch, lightning, hydra) are imported inside the commands, so `idattn --help` is fast.
"""

import json
import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from .provenance import global_rank
from .runtime import tune_cpu_allocator

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train and evaluate Interdomain Attention language models; results go to results/*.csv.",
)
OVERRIDES = typer.Argument(
    None, show_default=False,
    help="Hydra overrides, e.g. model=tiny mixer=interdomain trainer.max_steps=200 recipe=smoke",
)
DEBUG = typer.Option(False, "--debug", help="Show the full traceback of an input error.")
MULTIRUN = typer.Option(False, "--multirun", "-m", help="Hydra multirun: one job per training, through "
                        "hydra/launcher=basic|submitit_local|submitit_slurm; a=x,y sweeps a value.")
console = Console()


def _setup_logging() -> None:
    # a log written to a file is not wrapped at 80 columns, so each metric line stays one greppable line
    log_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=200)
    handler = RichHandler(console=log_console, show_path=False, show_time=True)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler], force=True)
    # the other ranks of a distributed run repeat rank 0's work, so only their warnings are shown
    logging.getLogger("idattn").setLevel(logging.INFO if global_rank() == 0 else logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # raised inside Lightning's own all_gather, so idattn cannot avoid it
    warnings.filterwarnings("ignore", message=r"torch.distributed.nn.functional.all_gather is deprecated")
    # a batch with a non-finite loss is skipped on purpose (trainer.skip_nonfinite), and logged by idattn
    warnings.filterwarnings("ignore", message=r"`training_step` returned `None`")


@contextmanager
def _user_errors(debug: bool):
    """Turn a UserError into one line on stderr and its exit status, 2 for bad input and 1 for a failed
    run (a traceback with --debug)."""
    from .errors import RunError, UserError

    try:
        yield
    except UserError as error:
        if debug:
            raise
        # a failed run (RunError) fails on every rank alike, so the other ranks need not repeat the line
        if global_rank() == 0 or not isinstance(error, RunError):
            Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=error.exit_code) from None


def _compose(overrides: list[str], command: str = "train"):
    """Compose and validate the config, then check that its data and tokenizer can be reached.

    The data check imports none of torch, Lightning, datasets or transformers, so an unreachable hub
    or a missing file is reported within a second or two.
    """
    from .config import compose_config
    from .data.preflight import check_data_access
    from .errors import UserError

    cfg = compose_config(overrides)
    resume = cfg.get("resume")
    if command != "train" and resume is not None and str(resume) != "last":
        raise UserError(f"resume={resume} names one run, which only `idattn train` continues; "
                        f"use `idattn train resume={resume}`, or resume=last here to continue each "
                        "unfinished run of this command's configs")
    check_data_access(cfg.data, cfg.tokenizer, cfg.paths.data_dir)
    return cfg


@app.callback()
def _root() -> None:
    """Train and evaluate Interdomain Attention language models; results go to results/*.csv."""
    try:
        tune_cpu_allocator()   # before any command imports torch
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def train(overrides: list[str] = OVERRIDES, multirun: bool = MULTIRUN, debug: bool = DEBUG) -> None:
    """Train a model (default: tiny interdomain LM on the embedded text) and append a row to results/runs.csv."""
    _setup_logging()
    if multirun:
        return _train_multirun(overrides or [], debug)
    with _user_errors(debug):
        _reject_hydra_overrides(overrides or [])
        cfg = _compose(overrides)
        from .recipes.train import train as run_train

        row = run_train(cfg, overrides)
    if global_rank() != 0:
        return
    console.print(run_summary(row))
    console.print(f"checkpoint: {row['checkpoint']}", soft_wrap=True, highlight=False)
    console.print(f"results row appended to: {Path(cfg.paths.results_dir) / 'runs.csv'}", soft_wrap=True, highlight=False)


@app.command()
def ablate(
    overrides: list[str] = OVERRIDES,
    force: bool = typer.Option(False, "--force", help="Train every cell again, even those with rows already."),
    multirun: bool = MULTIRUN,
    debug: bool = DEBUG,
) -> None:
    """Train the full layer and each variant of one component (component=<name>); rows to results/ablations.csv.

    Components: query_projection, dual_kv_input, rope, feature_map, readout_matrix, state_split, cube.
    """
    _setup_logging()
    overrides = [_prefix_override(o, "component", "ablate.component") for o in overrides or []]
    if force:
        overrides.append("ablate.force=true")
    with _user_errors(debug):
        from .recipes.sweep import is_hydra_override

        hydra_overrides = [o for o in overrides if is_hydra_override(o)]
        if not multirun:
            _reject_hydra_overrides(overrides)
        overrides = [o for o in overrides if not is_hydra_override(o)]
        cfg = _compose(overrides, "ablate")
        from .recipes.ablate import ablate as run_ablate
        from .recipes.ablate import ablate_multirun

        user_overrides = [o for o in overrides if not o.startswith("ablate.")]
        if multirun:
            rows = ablate_multirun(cfg, user_overrides, hydra_overrides, on_cell=_announce_cell)
        else:
            rows = run_ablate(cfg, user_overrides, on_cell=_announce_cell)
    if global_rank() != 0:
        return
    console.print(ablation_table(rows))
    console.print(f"results: {Path(cfg.paths.results_dir) / 'ablations.csv'}", soft_wrap=True, highlight=False)


def _reject_hydra_overrides(overrides: list[str]) -> None:
    from .errors import UserError
    from .recipes.sweep import is_hydra_override

    chosen = [o for o in overrides if is_hydra_override(o)]
    if chosen:
        raise UserError(f"{chosen[0]} sets how multirun jobs are launched; add -m to run as Hydra jobs")


def _train_multirun(overrides: list[str], debug: bool) -> None:
    """`idattn train -m`: one job per combination of the comma-separated values."""
    with _user_errors(debug):
        from .recipes.runs import read_rows
        from .recipes.sweep import expand_sweep, is_hydra_override, launch

        hydra_overrides = [o for o in overrides if is_hydra_override(o)]
        jobs = expand_sweep([o for o in overrides if not is_hydra_override(o)])
        cfg = [_compose(job) for job in jobs][0]   # every job's config and data checked before any starts
        run_ids = launch(jobs, hydra_overrides)
    rows = {row["run_id"]: row for row in read_rows(Path(cfg.paths.results_dir) / "runs.csv")}
    swept = [i for i in range(len(jobs[0])) if len({job[i] for job in jobs}) > 1]   # the overrides that vary
    table = Table(title=f"{len(run_ids)} runs", title_justify="left")
    for name in ("run", "swept", "val loss", "val ppl"):
        table.add_column(name, overflow="fold")
    for run_id, job in zip(run_ids, jobs):
        row = rows.get(run_id, {})
        table.add_row(run_id, " ".join(job[i] for i in swept), f"{float(row.get('val_loss') or 'nan'):.4f}",
                      f"{float(row.get('val_ppl') or 'nan'):.3f}")
    console.print(table)
    console.print(f"results rows appended to: {Path(cfg.paths.results_dir) / 'runs.csv'}", soft_wrap=True, highlight=False)


def _prefix_override(override: str, short: str, full: str) -> str:
    """Rewrite a short override such as `component=rope` to its config path `ablate.component=rope`."""
    return full + override[len(short):] if override.startswith(short + "=") else override


def _announce_cell(index: int, total: int, cell, status: str) -> None:
    action = {"skip": "already in ablations.csv, skipped", "job": "to train in a Hydra job",
              "reuse": "reusing a run of the same training config"}.get(status, "training (or reusing a matching run)")
    logging.getLogger("idattn").info("cell %d/%d %s: %s", index + 1, total, cell.name, action)


def ablation_table(rows: list[dict]) -> Table:
    """Build the summary table of one ablation: each cell's validation numbers and change against the full layer."""
    show_mixer = len({row["mixer"] for row in rows}) > 1
    table = Table(title=f"ablation: {rows[0]['component']} (reference: {rows[0]['cell']}, run {rows[0]['run_id']})",
                  title_justify="left")
    table.add_column("cell", overflow="fold")
    if show_mixer:
        table.add_column("mixer")
    for name in ("val loss", "ppl", "Δ loss", "Δ ppl"):
        table.add_column(name, justify="right")
    table.add_column("status")
    for row in rows:
        mixer = [row["mixer"]] if show_mixer else []
        table.add_row(row["cell"], *mixer, f"{float(row['val_loss']):.4f}", f"{float(row['val_ppl']):.3f}",
                      f"{float(row['delta_loss']):+.4f}", f"{float(row['delta_ppl']):+.3f}", row["status"])
    return table


@app.command()
def extrapolate(
    overrides: list[str] = OVERRIDES,
    factor: float = typer.Option(None, "--factor", help="Evaluate at 1x and at this multiple of the training context."),
    factors: str = typer.Option(None, "--factors", help="Comma-separated multiples of the training context, e.g. 1,2,3.5."),
    run: str = typer.Option(None, "--run", help="Run id to evaluate (default: the newest run of this config, trained first if none)."),
    debug: bool = DEBUG,
) -> None:
    """Score a trained run at multiples of its training context, per position bucket; rows to results/extrapolation.csv."""
    _setup_logging()
    overrides = list(overrides or [])
    with _user_errors(debug):
        overrides += _extrapolate_options(factor, factors, run)
        cfg = _compose(overrides, "extrapolate")
        from .recipes.extrapolate import extrapolate as run_extrapolate

        user_overrides = [o for o in overrides if not o.startswith("extrapolate.")]
        rows = run_extrapolate(cfg, user_overrides)
    if global_rank() != 0:
        return
    console.print(extrapolation_table(rows))
    console.print(f"results: {Path(cfg.paths.results_dir) / 'extrapolation.csv'}", soft_wrap=True, highlight=False)


def _extrapolate_options(factor: float | None, factors: str | None, run: str | None) -> list[str]:
    """Translate the extrapolate command's options into config overrides."""
    from .errors import UserError

    if factor is not None and factors is not None:
        raise UserError("give either --factor or --factors, not both")
    chosen = []
    if factor is not None:
        chosen = ["1", repr(factor)]
    elif factors is not None:
        chosen = [part.strip() for part in factors.split(",") if part.strip()]
        if not chosen:
            raise UserError(f"invalid --factors {factors!r}; give comma-separated numbers, e.g. --factors 1,2,3.5")
    options = [f"extrapolate.factors=[{','.join(chosen)}]"] if chosen else []
    if chosen:
        from .recipes.extrapolate import parse_factors

        parse_factors(chosen)
    return options + ([f"extrapolate.run={run}"] if run else [])


def extrapolation_table(rows: list[dict]) -> Table:
    """Build the summary table: perplexity per factor, and in the first and last position buckets."""
    first = rows[0]
    table = Table(title=f"run {first['run_id']}: {first['model']} / {first['mixer']}, trained at "
                        f"{first['train_context']:,} tokens", title_justify="left")
    for name, justify in [("data", "left"), ("factor", "right"), ("length", "right"), ("ppl", "right"),
                          ("first bucket", "right"), ("last bucket", "right")]:
        table.add_column(name, justify=justify)
    for row in rows:
        buckets = json.loads(row["bucket_ppl"])
        table.add_row(row["data"], f"{row['factor']:g}x", f"{row['eval_length']:,}", f"{row['ppl']:.3f}",
                      f"{buckets[0]:.3f}", f"{buckets[-1]:.3f}")
    return table


@app.command("eval")
def evaluate(
    overrides: list[str] = OVERRIDES,
    run: str = typer.Option(None, "--run", help="Run id to evaluate (default: the newest run of this config, trained first if none)."),
    debug: bool = DEBUG,
) -> None:
    """Validation perplexity and lm-evaluation-harness tasks of a trained run; rows to results/eval.csv."""
    _setup_logging()
    overrides = list(overrides or []) + ([f"eval.run={run}"] if run else [])
    with _user_errors(debug):
        cfg = _compose(overrides, "eval")
        from .recipes.evaluate import eval_table
        from .recipes.evaluate import evaluate as run_evaluate

        user_overrides = [o for o in overrides if not o.startswith("eval.")]
        rows = run_evaluate(cfg, user_overrides)
    if global_rank() != 0:
        return
    console.print(eval_table(rows))
    console.print(f"results: {Path(cfg.paths.results_dir) / 'eval.csv'}", soft_wrap=True, highlight=False)


@app.command()
def prefetch(overrides: list[str] = OVERRIDES, debug: bool = DEBUG) -> None:
    """Download the configured hub dataset and tokenizer into paths.data_dir for later offline runs."""
    _setup_logging()
    with _user_errors(debug):
        cfg = _compose(overrides, "prefetch")
        from .recipes.prefetch import prefetch as run_prefetch

        downloads = run_prefetch(cfg)
    if not downloads:
        console.print("nothing to download: the configured data and tokenizer need no hub", highlight=False)
    for choice, folder in downloads:
        console.print(f"{choice}: {folder}", soft_wrap=True, highlight=False)


@app.command()
def results(
    table: str = typer.Argument("runs", help="runs, ablations, extrapolation, eval or recall."),
    where: list[str] = typer.Option(None, "--where", help="Keep rows where column=value; repeat for several."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, latex or csv."),
    out: Path = typer.Option(None, "--out", help="Write the rendered table to this file instead of the terminal."),
    plot: bool = typer.Option(False, "--plot", help="Also save PNG and SVG figures (into --plot-dir)."),
    plot_dir: Path = typer.Option(Path("results/plots"), "--plot-dir", help="Folder for the figures."),
    paper: bool = typer.Option(False, "--paper", help="Show the paper's reported numbers beside yours."),
    metric: str = typer.Option("val_ppl", "--metric", help="runs table only: val_ppl, val_loss or val_bpb."),
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="Folder of the results CSVs."),
    debug: bool = DEBUG,
) -> None:
    """Render a results CSV as the paper lays it out: terminal table, Markdown, LaTeX or CSV, and figures."""
    with _user_errors(debug):
        from .errors import UserError
        from .results.render import FORMATS, render_text, rich_table
        from .results.report import summary, write_plots

        if fmt not in FORMATS:
            raise UserError(f"invalid format {fmt!r}; valid formats: {', '.join(FORMATS)}")
        title, frame, rows = summary(table, results_dir, where or [], paper=paper, metric=metric)
        try:
            figures = write_plots(table, rows, plot_dir) if plot else []
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(render_text(frame, title, fmt, width=console.width))
        except OSError as error:
            raise UserError(f"cannot write {error.filename}: {error.strerror}; choose another --out or --plot-dir") from error
    if out is not None:
        console.print(f"table written to {out}", highlight=False, soft_wrap=True)
    elif fmt == "table":
        console.print(rich_table(frame, title))
    else:
        console.print(render_text(frame, title, fmt), markup=False, highlight=False, soft_wrap=True)
    for figure in figures:
        console.print(f"figure: {figure}", highlight=False, soft_wrap=True)


@app.command()
def bench(
    name: str = typer.Argument(..., help="Benchmark to run: op, decode, prefill or train."),
    lengths: str = typer.Option(None, "--lengths", help="op, decode, prefill: comma-separated lengths in tokens "
                                "(defaults: op 1K-16K, decode 512-16K, prefill 16K)."),
    backends: str = typer.Option(None, "--backends", help="op: backends to time beside SDPA (default chunk,fft,scan)."),
    models: str = typer.Option(None, "--models", help="decode, prefill, train: model presets (default tiny,125m; "
                               "train tiny,small)."),
    reps: int = typer.Option(None, "--reps", help="op, decode, train: timed repetitions per point, median kept "
                             "(defaults 3, 20, 10)."),
    slow_max_length: int = typer.Option(None, "--slow-max-length", help="op: maximum length for scan and fft, "
                                        "which take minutes and gigabytes at 16K (default 4096)."),
    heads: int = typer.Option(None, "--heads", help="op: number of heads, each of dimension 64 (default 8; 32 is "
                              "the 1.3b model's)."),
    prefill_chunk_size: int = typer.Option(None, "--prefill-chunk-size", help="prefill: tokens per piece of the "
                                           "chunked prefill (default 2048)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16 (weights and inputs)."),
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="Folder of bench_<name>.csv."),
    debug: bool = DEBUG,
) -> None:
    """Measure speed and memory (docs/benchmarks.md); rows to results/bench_<name>.csv."""
    _setup_logging()
    with _user_errors(debug):
        from .recipes.bench import run_bench

        rows, columns = run_bench(name, results_dir=results_dir, device=device, dtype=dtype, lengths=lengths,
                                  backends=backends, models=models, reps=reps, slow_max_length=slow_max_length,
                                  heads=heads, prefill_chunk_size=prefill_chunk_size)
    table_rows = []
    for row in rows:
        cells = [fmt.format(row[key]) if key in row else "" for key, _, fmt in columns]
        if "error" in row:   # a point that failed, e.g. out of memory: its reason in the first empty cell
            cells[cells.index("")] = "failed: " + row["error"]
        table_rows.append(cells)
    table = Table(title=f"bench {name}, {dtype}, {rows[0]['device_name']}", title_justify="left")
    for _, header, fmt in columns:
        # in a narrow terminal names such as "interdomain" stay whole and the numbers' headers wrap
        table.add_column(header, justify="right", no_wrap=fmt == "{}")
    for cells in table_rows:
        table.add_row(*cells)
    console.print(table)
    if "matmul_gflops" in rows[0]:
        console.print(f"{dtype} matmul (2048^3): {rows[0]['matmul_gflops']:.0f} GFLOP/s", highlight=False)
    console.print(f"results: {results_dir / f'bench_{name}.csv'}", soft_wrap=True, highlight=False)


@app.command()
def info(overrides: list[str] = OVERRIDES, debug: bool = DEBUG) -> None:
    """Print parameter count, state size and FLOPs per token of a configured model, without training."""
    _setup_logging()
    with _user_errors(debug):
        from .config import compose_config

        cfg = compose_config(overrides)   # info needs neither data nor tokenizer
        from .recipes.info import info as model_info

        row = model_info(cfg)
    console.print(info_table(row))


def info_table(row: dict) -> Table:
    """Build a two-column table from `idattn info`'s numbers."""
    table = Table(title=f"{row['model']} / {row['mixer']}", show_header=False, title_justify="left")
    table.add_column("quantity", style="bold")
    table.add_column("value", justify="right")
    context = f"{row['context_length']:,}"
    table.add_row("parameters", f"{row['n_params']:,}")
    table.add_row(f"state per layer (reals, {context}-token context)", f"{row['state_size_per_layer']:,}")
    table.add_row("state, all layers (reals)", f"{row['state_size']:,}")
    table.add_row("state, all layers, per context token (reals)", f"{row['state_size_per_token']:,.1f}")
    table.add_row(f"forward FLOPs per token ({context}-token context)", f"{row['flops_per_token_forward']:,}")
    table.add_row(f"decode FLOPs per token (at {context})", f"{row['flops_per_token_decode']:,}")
    if "flops_per_token_decode_forming_y" in row:
        table.add_row("decode FLOPs per token, forming Re(C X) first", f"{row['flops_per_token_decode_forming_y']:,}")
    return table


def run_summary(row: dict) -> Table:
    """Build a two-column table from a training run's results row."""
    table = Table(title=f"run {row['run_id']}", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right", overflow="fold")
    entries = [
        ("model / mixer", f"{row['model']} / {row['mixer']}"),
        ("recipe", row["recipe"] or "-"),
        ("parameters", f"{row['n_params']:,}"),
        ("state per layer (reals)", f"{row['state_size_per_layer']:,}"),
        ("steps", f"{row['steps']:,}"),
        ("train loss (nats/token)", f"{row['train_loss']:.4f}"),
        ("validation loss (nats/token)", f"{row['val_loss']:.4f}"),
        ("validation perplexity", f"{row['val_ppl']:.3f}"),
        ("validation bits per byte", f"{row['val_bpb']:.4f}"),
        ("validation unigram entropy (bits/byte)", f"{row['val_unigram_bpb']:.4f}"),
        ("training tokens / s", f"{row['tokens_per_sec']:,.0f}"),
        ("training time (s)", f"{row['train_seconds']:.1f}"),
    ]
    for name, value in entries:
        table.add_row(name, value)
    return table


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())

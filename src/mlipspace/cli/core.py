"""Commands on structures, the store, and the demo: ``structures``, ``store info``, ``demo``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..structures import read_structures
from .app import app, console, out

store_app = typer.Typer(help="Inspect and maintain a feature store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@app.command("structures")
def structures_command(
    paths: Annotated[list[str], typer.Argument(help="Files, globs, folders or ASE databases.")],
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad/--strict", help="Report bad structures instead of stopping.")
    ] = True,
) -> None:
    """Summarise structures: count, atoms, elements, subsets, problems."""
    result = read_structures(*paths, on_error="skip" if skip_bad else "raise")
    report = result.report
    elements = Counter(sym for atoms in result for sym in atoms.get_chemical_symbols())
    subsets = Counter(atoms.info["subset"] for atoms in result)
    table = Table(title="structures", show_header=False)
    table.add_row("structures", str(len(result)))
    table.add_row("atoms", str(sum(len(a) for a in result)))
    table.add_row("elements", f"{len(elements)}: " + " ".join(sorted(elements)))
    table.add_row("subsets", ", ".join(f"{k} ({v})" for k, v in sorted(subsets.items())))
    table.add_row("duplicates dropped", str(len(report.duplicates)))
    table.add_row("problems", str(len(report.errors)))
    out.print(table)
    for error in report.errors:
        console.print(f"[yellow]problem:[/] {error}")
    if report.errors and not result:
        raise typer.Exit(1)


@store_app.command("info")
def store_info_command(
    store: Annotated[str, typer.Argument(help="Feature store (path or URL).")],
) -> None:
    """List what a feature store holds: models, layers, structures, atoms, dimensions."""
    from ..store import FeatureStore

    fs = FeatureStore(store, mode="r")
    summary = fs.info()
    table = Table(title=str(store))
    for column in summary.columns:
        table.add_column(column, justify="right" if summary[column].dtype.kind in "iu" else "left")
    for row in summary.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    out.print(table)
    out.print(f"{len(fs.structures())} distinct structures")


@store_app.command("clean")
def store_clean_command(
    store: Annotated[str, typer.Argument(help="Feature store (path or URL).")],
) -> None:
    """Remove the half-written segments of writers that were killed."""
    from ..store import FeatureStore

    removed = FeatureStore(store).clean_staging()
    console.print(f"removed {removed} orphaned staging folders or unmarked segments")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo-results"),
    size: Annotated[str, typer.Option(help="Demo set size: small or default.")] = "default",
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models (default: every offline model).")
    ] = None,
    force: Annotated[
        list[str] | None, typer.Option(help="Redo this stage and the ones after it (repeatable).")
    ] = None,
) -> None:
    """Run the main job (examples/demo.toml) on the embedded demo data; say where the results are."""
    from ..demo import run_demo

    results = run_demo(
        out=out,
        size=size,
        models=models.split(",") if models else None,
        force=force or (),
        progress=lambda text: console.print(f"[cyan]{text}[/]"),
    )
    _print_results(results)


def _print_results(results: Path) -> None:
    console.print(f"[bold green]done.[/] results in {results}/")
    from ..results import ResultsFolder

    for path in ResultsFolder(results).main_paths():
        console.print(f"  {path}")


@app.command("run")
def run_command(
    study: Annotated[Path, typer.Argument(help="Study file (TOML); `mlipspace init` writes one.")],
    force: Annotated[
        list[str] | None, typer.Option(help="Redo this stage and the ones after it (repeatable).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Featurize, compare and cumulants on Dask: local:N or a scheduler address.",
        ),
    ] = None,
) -> None:
    """Run a study: structures, featurize, compare, cumulants, platonic, report (cached stages)."""
    from ..study import load_study, run_study

    results = run_study(
        load_study(study),
        force=force or (),
        progress=lambda text: console.print(f"[cyan]{text}[/]"),
        scheduler=scheduler,
    )
    _print_results(results)


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the example study.")] = Path(
        "study.toml"
    ),
) -> None:
    """Write a commented example study file."""
    from ..study import demo_study_text

    if path.exists():
        raise typer.BadParameter(f"{path} exists; not overwriting it")
    path.write_text(demo_study_text(), encoding="utf-8")
    console.print(f"wrote {path}; edit it, then `mlipspace run {path}`")

"""Commands on structures, the store, and the demo: ``structures``, ``store info``, ``demo``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import app, console, out
from .inputs import SkipBadOption, read_input

store_app = typer.Typer(help="Inspect and maintain a feature store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


STRUCTURES_HELP = (
    "Files, globs, folders or ASE databases; demo:small or demo:default for the demo set."
)


@app.command("structures")
def structures_command(
    paths: Annotated[list[str], typer.Argument(help=STRUCTURES_HELP)],
    skip_bad: SkipBadOption = True,
) -> None:
    """Summarise structures: count, atoms, elements, subsets, cells, problems."""
    from ..structures import has_no_cell, is_slab

    result = read_input(paths, skip_bad)
    report = result.report
    elements = Counter(sym for atoms in result for sym in atoms.get_chemical_symbols())
    subsets = Counter(atoms.info["subset"] for atoms in result)
    no_cell = [a for a in result if has_no_cell(a)]
    slabs = [a for a in result if is_slab(a)]
    table = Table(title="structures", show_header=False)
    table.add_row("structures", str(len(result)))
    table.add_row("atoms", str(sum(len(a) for a in result)))
    table.add_row("elements", f"{len(elements)}: " + " ".join(sorted(elements)))
    table.add_row("subsets", ", ".join(f"{k} ({v})" for k, v in sorted(subsets.items())))
    table.add_row("without a cell", str(len(no_cell)))
    table.add_row("partly periodic (slabs)", str(len(slabs)))
    table.add_row("duplicates dropped", str(len(report.duplicates)))
    table.add_row("files ignored (not structures)", str(len(report.ignored)))
    table.add_row("problems", str(len(report.errors)))
    out.print(table)
    for atoms in no_cell:
        console.print(
            f"[yellow]no cell:[/] {atoms.info['source']} ({atoms.get_chemical_formula()}): "
            "models that need a cell featurize it in a 20 Å vacuum box (said in the log)"
        )
    for atoms in slabs:
        console.print(
            f"[yellow]slab:[/] {atoms.info['source']} ({atoms.get_chemical_formula()}) is "
            f"periodic along {atoms.pbc.tolist()}; SOAP treats its open axes as periodic "
            "with vacuum wider than its cutoff (said in the log)"
        )


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
    from rich.markup import escape

    from ..study import load_study, run_study

    results = run_study(
        load_study(study),
        force=force or (),
        progress=lambda text: console.print(f"[cyan]{escape(text)}[/]"),
        scheduler=scheduler,
    )
    _print_results(results)


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the study file.")] = Path(
        "study.toml"
    ),
    structures: Annotated[
        list[str] | None,
        typer.Option("--structures", help="Structure sources to write in (repeatable)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated models to write in (default: soap, chgnet-0.3.0, sevennet-0)."
        ),
    ] = None,
    diagnostics: Annotated[
        bool, typer.Option(help="Turn the failure diagnostics on (they run the models again).")
    ] = False,
    demo: Annotated[
        bool, typer.Option(help="Write the demo's full study (every model, demo data) instead.")
    ] = False,
) -> None:
    """Write a commented study file for your own structures (diagnostics off unless asked)."""
    from ..study import demo_study_text, parse_study
    from ..studyfile import TEMPLATE_MODELS, own_data_study_text
    from .inputs import check_names, split_names

    if path.exists():
        raise typer.BadParameter(f"{path} exists; not overwriting it")
    if demo:
        text = demo_study_text()
    else:
        names = split_names(models) or list(TEMPLATE_MODELS)
        check_names(names)
        text = own_data_study_text(
            structures or ["structures/"], names, diagnostics=diagnostics, path=str(path)
        )
        parse_study(text, path)  # the template must load as written
    path.write_text(text, encoding="utf-8")
    hint = "" if demo or structures else " (set [structures] sources to your files)"
    console.print(f"wrote {path}{hint}; edit it, then `mlipspace run {path}`")

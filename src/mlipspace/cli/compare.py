"""``mlipspace compare``: the all-pairs matrix of measures between models in a feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from .app import SchedulerOption, app, console, random_state_option


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command("compare")
def compare_command(
    store: Annotated[str, typer.Option("--store", help="Feature store (path or URL).")],
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("compare"),
    layer: Annotated[str, typer.Option("--layer", help="Feature layer to compare.")] = "ll",
    measures: Annotated[
        str, typer.Option("--measures", help="Comma-separated: gfre,gfrd,lfre,cka,mknn,cknna,...")
    ] = "gfre,lfre,cka,mknn",
    common_dim: Annotated[
        int | None, typer.Option("--common-dim", help="PCA every model to N dims first (control).")
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", help="Bootstrap resamples of the test structures (CI columns)."
        ),
    ] = 0,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Level of the bootstrap interval.")
    ] = 0.95,
    permutations: Annotated[
        int,
        typer.Option(
            "--permutations", help="Permutation null (structures permuted): p-value columns."
        ),
    ] = 0,
    width_control: Annotated[
        bool,
        typer.Option(
            "--width-control",
            help="Add a random-source baseline of the same width and the value at a common "
            "PCA width.",
        ),
    ] = False,
    common_width: Annotated[
        int | None,
        typer.Option(
            "--common-width",
            help="PCA width of the width control (default: the smallest width; implies "
            "--width-control).",
        ),
    ] = None,
    n_test: Annotated[int, typer.Option("--n-test", help="Test atoms (stratified).")] = 1000,
    random_state: random_state_option("the split and bootstrap") = 0,
    n_local_points: Annotated[
        int | None, typer.Option("--n-local-points", help="LFRE neighbours (default min(dA, dB)).")
    ] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Compare models pairwise: table (parquet, CSV) and heatmaps (PNG, SVG, HTML)."""
    import numpy as np

    from ..errors import MetricInputError
    from ..metrics.calibration import beats_null
    from ..metrics.compare import compare
    from ..metrics.compare_calibration import below_random_baseline
    from ..metrics.registry import describe_measure
    from ..report import write_heatmaps
    from ..results import write_table
    from ..store import FeatureStore
    from ..study import thin_data_notes
    from .inputs import check_stored

    names = _split_list(models)
    fs = FeatureStore(store, mode="r")
    check_stored(fs, names, layer, store)
    engine = None
    if scheduler is not None:
        from ..distributed import DaskEngine

        engine = DaskEngine(scheduler)
        console.print(f"Dask: {engine.client}")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("comparing", total=len(names) ** 2)

        def tick(message: str) -> None:
            progress.update(task, advance=1, description=message)

        try:
            df = compare(
                fs,
                names,
                layer=layer,
                measures=_split_list(measures),
                n_test=n_test,
                random_state=random_state,
                common_dim=common_dim,
                n_bootstrap=bootstrap,
                confidence=confidence,
                n_permutations=permutations,
                width_control=width_control,
                common_width=common_width,
                n_local_points=n_local_points,
                progress=tick,
                engine=engine,
            )
        except MetricInputError as exc:
            raise MetricInputError(
                f"{exc}\n(with few atoms some measures cannot be computed: `mlipspace store "
                f"info {store}` shows what the store holds; add structures, or choose fewer "
                "measures, e.g. --measures gfre,cka)"
            ) from exc
    notes = thin_data_notes(df)
    written = write_table(df, out, "compare") + write_heatmaps(df, out, "compare")
    for measure, sub in df.groupby("measure", sort=False):
        M = sub.pivot(index="source", columns="target", values="value").reindex(
            index=names, columns=names
        )
        P = None
        if "p_value" in sub:
            P = sub.pivot(index="source", columns="target", values="p_value").reindex(
                index=names, columns=names
            )
        table = Table(
            title=f"{sub['measure_label'].iloc[0]} (row: source, column: target)",
            caption=describe_measure(sub, measure)
            + ("; ns: does not beat its permutation null" if P is not None else ""),
        )
        table.add_column("")
        for name in names:
            table.add_column(name, justify="right")
        for name in names:
            cells = [f"{v:.4g}" for v in M.loc[name]]
            if P is not None:
                cells = [
                    c if beats_null(p) or not np.isfinite(p) else f"{c} ns"
                    for c, p in zip(cells, P.loc[name], strict=True)
                ]
            table.add_row(name, *cells)
        console.print(table)
    dims = df.drop_duplicates("source").set_index("source")
    for name in names:
        console.print(
            f"{name}: dimension {dims.loc[name, 'dim_source']}, "
            f"effective rank {dims.loc[name, 'effective_rank_source']:.1f}"
        )
    console.print(
        f"fitted on {int(df['n_train'].iloc[0])} training atoms, "
        f"scored on {int(df['n_test'].iloc[0])} test atoms"
    )
    for note in notes:
        console.print(f"[bold yellow]warning:[/] {note}")
    unremarkable = below_random_baseline(df)
    if unremarkable:
        console.print(
            f"[bold yellow]width control:[/] {len(unremarkable)} cell(s) do no better than a "
            "random source of the same width: " + "; ".join(unremarkable[:10])
        )
    console.print(f"wrote {len(written)} files to {out}")

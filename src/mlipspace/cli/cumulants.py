"""``mlipspace cumulants``: structure-level features and the information each order adds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import SchedulerOption, app, console, out, random_state_option


@app.command("cumulants")
def cumulants_command(
    store: Annotated[str, typer.Option(help="Feature store (path or URL).")],
    model: Annotated[str | None, typer.Option(help="Model for the order-by-order table.")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models for the cross-model table (structure level)."),
    ] = None,
    layer: Annotated[str, typer.Option(help="Layer.")] = "ll",
    max_order: Annotated[int, typer.Option(help="Highest cumulant order.")] = 8,
    measures: Annotated[str, typer.Option(help="gfre and/or lfre, comma-separated.")] = "gfre,lfre",
    n_test: Annotated[int, typer.Option(help="Test structures (capped at a quarter).")] = 1000,
    random_state: random_state_option("the split") = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("cumulants"),
    scheduler: SchedulerOption = None,
) -> None:
    """Order-by-order GFRE/LFRE of Φ(m) → Φ(n) for one model, or Φ(order) across models."""
    from ..pooling.information import cumulant_model_table, cumulant_order_table
    from ..report import write_heatmaps
    from ..results import CumulantFiles
    from ..store import FeatureStore
    from ..study import thin_data_notes
    from .inputs import check_stored, split_names

    files = CumulantFiles(out_dir)
    if not model and not models:
        raise typer.BadParameter("give --model (order table) and/or --models (cross-model table)")
    fs = FeatureStore(store, mode="r")
    check_stored(fs, [*([model] if model else []), *split_names(models)], layer, store)
    measure_list = [m.strip() for m in measures.split(",") if m.strip()]
    if model:
        with console.status(f"{model}/{layer}: cumulant orders") as status:
            df = cumulant_order_table(
                _atom_or_pooled(fs, [(model, layer)], max_order, scheduler)[model],
                max_order,
                measure_list,
                n_test,
                random_state,
                progress=lambda text: status.update(f"{model}/{layer}: {text}"),
            )
        width = _width(fs, model, layer)
        notes = thin_data_notes(
            df, widths=df[["source_order", "target_order"]].max(axis=1) * width, unit="structures"
        )
        table = files.write_orders(df, model, layer)[0]
        write_heatmaps(df, table.parent, table.stem)
        _print_matrix(df, f"{model}/{layer}: GFRE Φ(row) → Φ(column)", "gfre")
        _say_split(df, notes)
        console.print(f"order table written to {table.parent}")
    if models:
        names = [m.strip() for m in models.split(",") if m.strip()]
        tables = _atom_or_pooled(fs, [(m, layer) for m in names], max_order, scheduler)
        with console.status("cross-model cumulants") as status:
            df = cumulant_model_table(
                tables,
                max_order,
                measure_list,
                n_test,
                random_state,
                progress=lambda text: status.update(f"Φ({max_order}): {text}"),
            )
        widths = {name: max_order * _width(fs, name, layer) for name in names}
        notes = thin_data_notes(
            df,
            widths=[
                max(widths.get(a, 0), widths.get(b, 0))
                for a, b in zip(df.source, df.target, strict=True)
            ],
            unit="structures",
        )
        table = files.write_models(df, layer)[0]
        write_heatmaps(df, table.parent, table.stem)
        _print_matrix(df, f"Φ({max_order}) across models: GFRE row → column", "gfre")
        _say_split(df, notes)
        console.print(f"cross-model table written to {table.parent}")


def _width(fs, model: str, layer: str) -> int:
    """Feature dimension of (model, layer) in the store (0 when unknown)."""
    info = fs.info()
    rows = info[(info["model"] == model) & (info["layer"] == layer)]
    return int(rows["dim"].iloc[0]) if len(rows) and "dim" in rows else 0


def _say_split(df, notes: list[str]) -> None:
    console.print(
        f"fitted on {int(df['n_train'].iloc[0])} training structures, "
        f"scored on {int(df['n_test'].iloc[0])} test structures"
    )
    for note in notes:
        console.print(f"[bold yellow]warning:[/] {note}")


def _atom_or_pooled(fs, pairs, max_order: int, scheduler: str | None) -> dict:
    """``{model: table}``: aligned atom features, or with ``--scheduler`` their cumulant
    features reduced on Dask from the store chunks (outliers left out the same way)."""
    if scheduler is None:
        return {m: t for (m, _), t in fs.aligned(pairs).items()}
    from ..distributed import get_client, store_cumulants

    client = get_client(scheduler)
    console.print(f"Dask: {client}")
    tables, excluded = store_cumulants(fs, pairs, max_order, scheduler=client)
    if len(excluded):
        console.print(
            f"[yellow]left out {excluded['structure_hash'].nunique()} feature-outlier "
            "structure(s)[/]"
        )
    return {m: t for (m, _), t in tables.items()}


def _print_matrix(df, title: str, measure: str) -> None:
    sub = df[df["measure"] == measure]
    if sub.empty:
        return
    names = list(dict.fromkeys([*sub["source"], *sub["target"]]))
    matrix = sub.pivot(index="source", columns="target", values="value").reindex(
        index=names, columns=names
    )
    from ..metrics.registry import describe_measure

    table = Table(title=title, caption=describe_measure(sub, measure, "structures"))
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for name in names:
        table.add_row(name, *("" if v != v else f"{v:.3f}" for v in matrix.loc[name]))
    out.print(table)

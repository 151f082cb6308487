"""``mlipspace models`` (the model zoo) and ``mlipspace featurize`` (fill a feature store)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .app import SchedulerOption, app, console, out, progress_bars
from .inputs import SkipBadOption, check_names, read_input


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _env_state(family: str) -> str:
    from ..featurization import envs

    if family == envs.MAIN_FAMILY:
        return "yes (main)"
    if envs.runs_here(family):
        return "yes (this env)"
    try:
        status = envs.env_status(family)
    except Exception as exc:
        return f"no ({exc})"
    return "yes" if status.ready else f"no ({status.detail})"


def _weights_state(spec) -> str:
    if spec.weights_available is None:
        return "n/a" if spec.parametrised else "?"
    try:
        return "yes" if spec.weights_available() else "no"
    except Exception as exc:
        return f"no ({exc})"


def _format_layers(layers: dict[str, int]) -> str:
    standard = [f"{k} {v}" for k, v in layers.items() if not k.startswith("layer:")]
    indices = [k.split(":", 1)[1] for k in layers if k.startswith("layer:")]
    if indices:
        standard.append(f"layer:{indices[0]}..{indices[-1]}")
    return ", ".join(standard)


def _data(card) -> str:
    return " / ".join(part for part in (card.training_data, card.level_of_theory) if part) or "-"


def _elements(name: str, spec) -> str:
    """The elements a model supports, from the loaded model (main environment only)."""
    from ase.data import chemical_symbols

    from ..featurization import envs

    if spec.parametrised:
        return "depends on <arg>"
    if spec.card.environment != envs.MAIN_FAMILY and not envs.runs_here(spec.card.environment):
        return f"load it in the {spec.card.environment} env"
    try:
        supported = supported_elements(name)
    except Exception as exc:
        return f"? ({type(exc).__name__})"
    if supported is None:
        return "any"
    return f"{len(supported)}: " + _ranges([chemical_symbols[z] for z in sorted(supported)])


def supported_elements(name: str) -> set[int] | None:
    """Atomic numbers model ``name`` supports (``None``: any); loads the model."""
    from ..models import get_model

    return get_model(name).supported_elements()


def _ranges(symbols: list[str]) -> str:
    from ase.data import atomic_numbers

    numbers = [atomic_numbers[s] for s in symbols]
    parts, start = [], 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            first, last = symbols[start], symbols[i - 1]
            parts.append(first if start == i - 1 else f"{first}–{last}")
            start = i
    return " ".join(parts)


@app.command("models")
def models_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Only these models (default: every model).")
    ] = None,
    elements: Annotated[
        bool,
        typer.Option(
            "--elements", help="Also list the elements each model supports (loads every model)."
        ),
    ] = False,
) -> None:
    """List the registered models: their card (architecture, data, kind, symmetry), layers
    and dimensions, weights and environment (with --elements: the elements supported)."""
    from ..models.registry import model_specs

    table = Table(title="models")
    table.add_column("name", no_wrap=True)
    for column in ("architecture", "data / theory", "kind", "symmetry", "layers (dim)"):
        table.add_column(column)
    for column in ("weights", "env", "description"):
        table.add_column(column)
    if elements:
        table.add_column("elements")
    specs = model_specs()
    if names:
        from .inputs import check_names

        check_names(names)
        from ..models.registry import resolve

        specs = {name: resolve(name)[0] for name in names}
    for name, spec in sorted(specs.items()):
        card = spec.card
        shown = name + "<arg>" if spec.parametrised else name
        extra = [_elements(name, spec)] if elements else []
        table.add_row(
            shown,
            card.architecture or "-",
            _data(card),
            card.kind,
            card.symmetry,
            _format_layers(spec.layers),
            _weights_state(spec),
            f"{card.environment}: {_env_state(card.environment)}",
            spec.description,
            *extra,
        )
    out.print(table)
    if not elements:
        console.print("`mlipspace models --elements` also lists the elements each model supports")


@app.command("featurize")
def featurize_command(
    structures: Annotated[
        list[str],
        typer.Argument(help="Files, globs, folders or ASE databases; demo:small or demo:default."),
    ],
    models: Annotated[str, typer.Option("--models", "-m", help="Comma-separated model names.")],
    store: Annotated[
        str, typer.Option("--store", "-s", help="Feature store to write into (path or URL).")
    ],
    layers: Annotated[
        str,
        typer.Option(
            "--layers",
            "-l",
            help="Comma-separated layers (default: ll, read by compare and cumulants, and "
            "node, read by platonic).",
        ),
    ] = "ll,node",
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Structures per forward pass.")
    ] = None,
    on_unsupported: Annotated[
        str,
        typer.Option(
            "--on-unsupported",
            help="error | skip: what to do with a structure a model cannot take (an element it "
            "does not know, or a graph it cannot build); skipped ones are listed with the reason.",
        ),
    ] = "error",
    skip_bad: SkipBadOption = False,
    dtype: Annotated[str, typer.Option("--dtype", help="float32 | float64")] = "float32",
    device: Annotated[
        str, typer.Option("--device", help="Torch device: cpu, cuda or cuda:<index>.")
    ] = "cpu",
    max_atoms_per_batch: Annotated[
        int | None,
        typer.Option(
            "--max-atoms-per-batch",
            help="Atoms per forward pass instead of --batch-size structures "
            "(default on CUDA: 4096; on the CPU: structures, as before).",
        ),
    ] = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Featurize STRUCTURES with every model into a store, resuming what is already there."""
    from ..devices import check_device
    from ..errors import ModelError
    from ..featurization.core import check_on_unsupported
    from ..store import FeatureStore

    model_names = _split(models)
    layer_names = _split(layers)
    if not model_names or not layer_names:
        raise typer.BadParameter("give at least one model and one layer")
    check_names(model_names, layer_names)
    check_on_unsupported(on_unsupported)
    if scheduler is None:
        # checked before any structure is read; on Dask the workers' GPUs count, not ours
        device = check_device(device)
    atoms = read_input(structures, skip_bad)
    console.print(f"{len(atoms)} structures, {sum(len(a) for a in atoms)} atoms")
    fs = FeatureStore(store)
    _report_stored(fs, model_names, layer_names, atoms)
    if scheduler is not None:
        _featurize_on_dask(atoms, model_names, layer_names, fs, scheduler, batch_size,
                           device, dtype, on_unsupported)  # fmt: skip
        _report_skipped(fs, model_names, layer_names, store)
        return
    try:
        _featurize_here(atoms, model_names, layer_names, fs, batch_size, device, dtype,
                        on_unsupported, max_atoms_per_batch)  # fmt: skip
    except ModelError as exc:
        if on_unsupported == "error":
            raise ModelError(
                f"{exc}\n(--on-unsupported skip skips the structures a model cannot take and "
                "lists them with the reason)"
            ) from exc
        raise
    _report_skipped(fs, model_names, layer_names, store)


def _featurize_here(
    atoms, model_names, layer_names, fs, batch_size, device, dtype, on_unsupported,
    max_atoms_per_batch,
) -> None:  # fmt: skip
    """``featurize`` in this process (and the models' worker environments), one bar each."""
    from ..featurization import featurize

    with progress_bars() as bar:
        tasks = {name: bar.add_task(name, total=len(atoms)) for name in model_names}
        for name in model_names:
            task = tasks[name]
            featurize(
                atoms,
                name,
                layer=layer_names,
                store=fs,
                batch_size=batch_size,
                device=device,
                dtype=dtype,
                on_unsupported=on_unsupported,
                max_atoms_per_batch=max_atoms_per_batch,
                progress=lambda done, total, task=task: bar.update(
                    task, completed=done, total=total
                ),
            )


def _report_stored(fs, model_names: list[str], layer_names: list[str], atoms) -> None:
    """Say how much of the work a store holds already (a re-run resumes from there)."""
    hashes = [a.info["structure_hash"] for a in atoms]
    for name in model_names:
        left = len(fs.missing(name, layer_names, hashes))
        if left < len(hashes):
            console.print(
                f"{name}: {len(hashes) - left} of {len(hashes)} structures already stored; "
                f"{left} left to compute"
            )


#: skipped structures listed one by one on screen (the store keeps them all)
SHOW_SKIPPED = 20


def _report_skipped(fs, model_names: list[str], layer_names: list[str], store: str) -> None:
    """Every structure a model skipped, with its reason (once per model: the layers of one
    model are computed together, so they skip the same structures)."""
    for name in model_names:
        for layer in layer_names:
            skipped = fs.skipped(name, layer)
            if not len(skipped):
                continue
            console.print(f"[yellow]{name}/{layer}: {len(skipped)} structures skipped[/]")
            if layer != layer_names[0]:
                continue  # the same structures and reasons for every layer
            for reason in skipped["reason"][:SHOW_SKIPPED]:
                console.print(f"  {reason}", markup=False, highlight=False)
            if len(skipped) > SHOW_SKIPPED:
                console.print(
                    f"  ... and {len(skipped) - SHOW_SKIPPED} more: "
                    f"FeatureStore({str(store)!r}).skipped({name!r}, {layer!r})",
                    markup=False,
                    highlight=False,
                )
    console.print(f"store: {store}")


def _featurize_on_dask(
    atoms, model_names, layer_names, fs, scheduler, batch_size, device, dtype, on_unsupported
) -> None:
    """``featurize --scheduler``: Dask tasks over chunks of structures, one bar per model."""
    from ..distributed import close_clients, featurize_distributed, get_client

    client = get_client(scheduler)
    console.print(f"Dask: {client}")
    try:
        with progress_bars() as bar:
            tasks = {name: bar.add_task(name, total=len(atoms)) for name in model_names}
            featurize_distributed(
                atoms, model_names, layer=layer_names, store=fs, scheduler=client,
                batch_size=batch_size, device=device, dtype=dtype,
                on_unsupported=on_unsupported,
                progress=lambda name, done, total: bar.update(
                    tasks[name], completed=done, total=total
                ),
            )  # fmt: skip
    finally:
        close_clients()

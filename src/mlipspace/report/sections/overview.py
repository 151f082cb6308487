"""Sections about the inputs: the structures, the models and their features, the provenance."""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from html import escape
from importlib import metadata as importlib_metadata

import pandas as pd

from ...version import __version__
from ..context import ReportContext, absent_note, missing
from ..template import Section, details, table

VERSION_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "skmatter",
    "torch",
    "ase",
    "zarr",
    "pot",
    "plotly",
    "matplotlib",
    "chemiscope",
)
#: examples of skipped structures listed per (model, reason)
N_EXAMPLES = 3


def overview(ctx: ReportContext) -> Section:
    sec = Section("overview", "Overview")
    results = ctx.results
    structures = results.structures()
    if structures is None:
        absent_note(sec, results.STRUCTURES, "structures", "structure counts and 3D views")
    else:
        frames = list(structures.values())
        subsets = pd.Series([str(a.info.get("subset", "")) for a in frames]).value_counts()
        elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
        sec.lead(
            f"{len(frames)} structures, {sum(len(a) for a in frames)} atoms, "
            f"{len(elements)} elements ({escape(' '.join(elements))})."
        )
        sec.add(table(subsets.rename_axis("subset").rename("structures").reset_index()))
    text = results.summary_text()
    if text is not None:
        sec.add(details(results.SUMMARY, f"<pre>{escape(text)}</pre>"))
    else:
        absent_note(sec, results.SUMMARY, "summary", "stage times and headline numbers")
    return sec


def skipped_table(skipped: pd.DataFrame, n_examples: int = N_EXAMPLES) -> pd.DataFrame:
    """Skipped structures grouped by model and reason: layers, count, a few examples.

    ``skipped`` has one row per (model, layer, structure) with ``reason``, ``source`` and
    ``structure_hash``. The structure named in a reason is cut out of it, so that every
    structure a model rejects for the same cause falls in one row.
    """
    columns = ["model", "reason", "layers", "structures", "examples"]
    if skipped.empty:
        return pd.DataFrame(columns=columns)
    label = skipped["source"].where(skipped["source"].astype(str) != "", skipped["structure_hash"])
    frame = skipped.assign(
        cause=[_cause(r) for r in skipped["reason"]],
        label=label.astype(str),
    )
    rows = []
    for (model, cause), group in frame.groupby(["model", "cause"], sort=False):
        names = list(dict.fromkeys(group["label"]))
        more = len(names) - n_examples
        rows.append(
            {
                "model": model,
                "reason": cause,
                "layers": ", ".join(dict.fromkeys(group["layer"])),
                "structures": group["structure_hash"].nunique(),
                "examples": ", ".join(names[:n_examples]) + (f", … (+{more})" if more > 0 else ""),
            }
        )
    return pd.DataFrame(rows, columns=columns).sort_values(
        ["model", "structures"], ascending=[True, False], kind="stable"
    )


def _cause(reason: str) -> str:
    """A skip reason without what is particular to one structure: the structure it names
    ("structure 12 (label, formula)") and counts ("has 3 isolated atoms" → "has N")."""
    text = re.sub(r"structure \d+ \([^)]*\)", "a structure", str(reason))
    return re.sub(r"(?<=\s)\d+(?=\s)", "N", text).strip()


def models(ctx: ReportContext) -> Section:
    sec = Section("models", "Models and extracted features")
    store = ctx.results.store()
    if store is None:
        return missing(sec, ctx.results.STORE, "store", "no feature store to describe")
    info = store.info()
    if info.empty:
        sec.note("The feature store holds no features.")
        return sec
    rows = []
    for _, row in info.iterrows():
        meta = store.metadata(row["model"], row["layer"])
        package = " ".join(str(meta.get(k, "")) for k in ("package", "package_version"))
        rows.append(
            {
                **row.drop(labels=["segments"], errors="ignore").to_dict(),
                "package": package.strip(),
                "checkpoint": meta.get("checkpoint", ""),
                "sha256": str(meta.get("checkpoint_sha256", ""))[:12],
                "torch": meta.get("torch_version", ""),
                "extracted": str(meta.get("time", ""))[:16].replace("T", " "),
            }
        )
    sec.lead(
        "One row per (model, layer) in <code>store.zarr</code>: structures and atoms held, "
        "feature dimension and dtype, structures the model could not featurize (skipped), and "
        "the provenance recorded at extraction time."
    )
    sec.add(table(pd.DataFrame(rows)))
    frames = [
        store.skipped(model, layer).assign(model=model, layer=layer)
        for model, layer in store.entries()
    ]
    skipped = skipped_table(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
    if len(skipped):
        sec.heading("Skipped structures")
        sec.lead(
            "Structures a model could not featurize, by model and reason: the layers concerned, "
            f"how many structures, and up to {N_EXAMPLES} of them."
        )
        sec.add(table(skipped))
    return sec


def package_versions(packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``"not installed"`` when absent)."""
    out = {"mlipspace": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(ctx: ReportContext) -> Section:
    sec = Section("provenance", "Versions and seeds")
    sec.lead("Packages of the environment that built this report:")
    versions = package_versions()
    sec.add(table(pd.DataFrame({"package": list(versions), "version": list(versions.values())})))
    store = ctx.results.store()
    if store is not None:
        rows = []
        for model, layer in store.entries():
            meta = store.metadata(model, layer)
            rows.append(
                {
                    "model": model,
                    "package": meta.get("package", ""),
                    "package version": meta.get("package_version", ""),
                    "torch": meta.get("torch_version", ""),
                    "checkpoint": meta.get("checkpoint", ""),
                    "checkpoint sha256": meta.get("checkpoint_sha256", ""),
                    "mlipspace": meta.get("mlipspace_version", ""),
                }
            )
        if rows:
            sec.heading("Model packages recorded at extraction time")
            sec.add(table(pd.DataFrame(rows).drop_duplicates("model")))
    else:
        absent_note(sec, ctx.results.STORE, "store", "model package versions")
    sec.heading("Seeds")
    seeds = [{"stage": k, "seed(s)": ", ".join(map(str, sorted(v)))} for k, v in ctx.seeds.items()]
    if seeds:
        sec.add(table(pd.DataFrame(seeds)))
    else:
        sec.note("No seed recorded in the results found.")
    return sec

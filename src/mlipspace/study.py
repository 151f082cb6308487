"""One-command studies: ``mlipspace run STUDY.toml``.

A study file (TOML; ``mlipspace init`` writes a commented example, the bundled demo is
``examples/demo.toml``) names the structure sources, models, layers, measures, anchors and
output folder. The stages run in order::

    structures -> featurize -> compare -> cumulants -> diagnostics -> platonic -> report

Each stage records a key (a hash of its own settings and of the keys of the stages before
it) in ``<out>/stages.json`` and is skipped when the key has not changed. ``force`` redoes
a stage and every stage after it. Featurization resumes inside the store anyway. Every
stage writes through :class:`mlipspace.results.ResultsFolder`; ``summary.md`` is written
before the report (which shows it) and again after it.

The diagnostics (``[diagnostics]``, or ``[platonic.diagnostics]``) run the models again on
the common space of the Platonic settings; they come before the Platonic analyses, whose
claims check their summary.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import tomllib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import MlipspaceError, StudyError
from .models import find_card
from .results import ResultsFolder, write_table
from .studyfile import (
    DEFAULT_LAYERS,
    check_model_names,
    featurize_layers,
    missing_layers,
    own_data_study_text,
    unknown_keys,
)

STAGES = ("structures", "featurize", "compare", "cumulants", "diagnostics", "platonic", "report")
SECTIONS = ("study", *STAGES)

__all__ = [
    "STAGES",
    "Study",
    "StudyError",
    "check_model_names",
    "demo_study_text",
    "featurize_layers",
    "load_study",
    "own_data_study_text",
    "parse_study",
    "run_study",
    "write_summary",
]


@dataclass
class Study:
    """A parsed study: the TOML sections and where results go."""

    config: dict[str, dict[str, Any]]
    path: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.config["study"].get("out", "results"))

    @property
    def random_state(self) -> int:
        """``[study] random_state``; the key was ``seed`` before (still read, with a warning)."""
        study = self.config["study"]
        if "seed" in study and "random_state" not in study:
            warnings.warn(
                f"{self.path or 'study file'}: [study] seed is deprecated; write random_state",
                DeprecationWarning,
                stacklevel=2,
            )
            return int(study["seed"])
        return int(study.get("random_state", 0))

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.config.get(name, {}))


def demo_study_text() -> str:
    """The bundled, commented demo study (``examples/demo.toml``)."""
    return files("mlipspace").joinpath("data/demo.toml").read_text(encoding="utf-8")


def parse_study(text: str, path: Path | None = None) -> Study:
    """Parse and check a study file's text."""
    where = str(path) if path else "study"
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{where}: not valid TOML ({exc})") from exc
    problems = unknown_keys(config)
    if problems:
        raise StudyError(f"{where}: " + "; ".join(problems))
    config.setdefault("study", {})
    if not config.get("structures", {}).get("sources"):
        raise StudyError(f"{where}: [structures] needs sources = [...]")
    if not config.get("featurize", {}).get("models"):
        raise StudyError(f"{where}: [featurize] needs models = [...]")
    missing = missing_layers(config)
    if missing:
        raise StudyError(f"{where}: " + "; ".join(missing))
    names = {
        *config["featurize"]["models"],
        *(m for s in ("compare", "cumulants", "platonic") for m in config.get(s, {}).get("models", [])),
    }  # fmt: skip
    problems = check_model_names(sorted(names), featurize_layers(config))
    if problems:
        raise StudyError(f"{where}: " + "; ".join(problems))
    return Study(config=config, path=path)


def load_study(path: str | Path) -> Study:
    """Read a study file."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no such study file (`mlipspace init {path}` writes an example)")
    return parse_study(path.read_text(encoding="utf-8"), path)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Runner:
    def __init__(self, study: Study, force: Iterable[str], say: Callable[[str], None]):
        self.study = study
        self.out = study.out
        self.say = say
        force = list(force)
        for name in force:
            if name not in STAGES:
                raise StudyError(f"--force {name}: unknown stage; stages are {list(STAGES)}")
        first_forced = min((STAGES.index(n) for n in force), default=len(STAGES))
        self.forced = set(STAGES[first_forced:])
        self.results = ResultsFolder(self.out)
        self.record = self.results.stages()
        self.keys: dict[str, str] = {}
        self.structures = None
        self.store = None

    def stage(self, name: str, key: str, work: Callable[[], dict[str, Any] | None]) -> None:
        self.keys[name] = key
        previous = self.record.get(name, {})
        if name not in self.forced and previous.get("key") == key:
            self.say(f"{name}: unchanged, skipped")
            return
        self.say(f"{name}: running")
        start = time.perf_counter()
        info = work() or {}
        elapsed = time.perf_counter() - start
        self.study.timings[name] = elapsed
        self.record[name] = {"key": key, "seconds": round(elapsed, 1), **info}
        self.results.write_stages(self.record)


def _read_sources(sources: list[str], on_error: str, random_state: int):
    from .structures import StructureList, read_structures

    # one source at a time: the same structure named by two sources is kept twice, as before
    out = StructureList()
    for source in sources:
        part = read_structures(source, on_error=on_error, random_state=random_state)
        out.extend(part)
        out.report.extend(part.report)
    return out


def _on_error(cfg: dict[str, Any]) -> str:
    """``[structures] on_error``, or ``skip_bad = true`` (the CLI's ``--skip-bad``)."""
    if "skip_bad" in cfg:
        return "skip" if cfg["skip_bad"] else "raise"
    value = cfg.get("on_error", "raise")
    if value not in ("raise", "skip"):
        raise StudyError(f"[structures] on_error must be 'raise' or 'skip', not {value!r}")
    return value


def run_study(
    study: Study,
    force: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
    scheduler: str | None = None,
) -> Path:
    """Run every stage of ``study`` (skipping cached ones) and return the output folder.

    ``scheduler`` (``"local:N"`` or a Dask scheduler address) runs featurization, the
    comparison measures and the cumulants on Dask (:mod:`mlipspace.distributed`).
    """
    from .store import FeatureStore

    say = progress or (lambda text: None)
    runner = _Runner(study, force, say)
    out, random_state = study.out, study.random_state
    results = runner.results
    out.mkdir(parents=True, exist_ok=True)

    # structures are always read (cheap), so the key reflects the actual content
    cfg = study.section("structures")
    from .errors import StructureError

    try:
        structures = _read_sources(list(cfg["sources"]), _on_error(cfg), random_state)
    except StructureError as exc:
        raise StudyError(
            f"{exc}\n(set skip_bad = true in [structures] to skip and list bad files instead)"
        ) from exc
    for path, reason in structures.report.ignored:
        say(f"structures: ignored {path} ({reason})")
    for error in structures.report.errors:
        say(f"structures: skipped {error}")
    if not structures:
        raise StudyError("the structure sources gave no structure")
    runner.structures = structures
    structure_key = _key([a.info["structure_hash"] for a in structures])

    def write_structures():
        results.write_structures(structures)
        report = structures.report
        return {"structures": len(structures), "problems": [str(e) for e in report.errors]}

    runner.stage("structures", structure_key, write_structures)
    store = FeatureStore(results.store_path)
    store.clean_staging()

    fcfg = study.section("featurize")
    models = list(fcfg["models"])
    layers = featurize_layers(study.config)

    def featurize_all():
        on_unsupported = fcfg.get("on_unsupported", "error")
        if scheduler is not None:
            from .distributed import featurize_distributed

            featurize_distributed(
                structures, models, layers, store, scheduler, on_unsupported=on_unsupported,
                device=fcfg.get("device", "cpu"),
            )  # fmt: skip
        else:
            from .featurization import featurize_models

            featurize_models(
                structures,
                models,
                layers,
                store,
                n_workers=fcfg.get("workers"),
                on_unsupported=on_unsupported,
                progress=lambda text: say(f"featurize: {text}"),
                device=fcfg.get("device", "cpu"),
            )
        return {"store": str(store.path)}

    runner.stage("featurize", _key(structure_key, fcfg), featurize_all)
    featurize_key = runner.keys["featurize"]
    # descriptors (model card kind) are not compared with the models
    trained_models = [m for m in models if getattr(find_card(m), "kind", "") != "descriptor"]

    if "compare" in study.config:
        ccfg = study.section("compare")

        def compare_stage():
            from .distributed.measures import engine_for
            from .metrics.compare import compare

            layer = ccfg.get("layer", "ll")
            df = compare(
                store,
                ccfg.get("models", trained_models),
                layer=layer,
                measures=tuple(ccfg.get("measures", ("gfre", "lfre", "cka", "mknn"))),
                n_test=int(ccfg.get("n_test", 1000)),
                random_state=random_state,
                common_dim=ccfg.get("common_dim"),
                n_bootstrap=int(ccfg.get("bootstrap", 0)),
                confidence=float(ccfg.get("confidence", 0.95)),
                n_permutations=int(ccfg.get("permutations", 0)),
                width_control=bool(ccfg.get("width_control", False)),
                common_width=ccfg.get("common_width"),
                structures=structures,
                engine=engine_for(scheduler),
            )
            for note in thin_data_notes(df, len(structures)):
                say(f"compare: warning: {note}")
            _write_pairs(df, results.compare.folder, results.compare.stem(layer))
            n_train, n_test = int(df["n_train"].iloc[0]), int(df["n_test"].iloc[0])
            say(f"compare: {n_train} training atoms, {n_test} test atoms")
            return {"rows": len(df), "n_train": n_train, "n_test": n_test}

        runner.stage("compare", _key(featurize_key, ccfg, random_state), compare_stage)

    if "cumulants" in study.config:
        kcfg = study.section("cumulants")

        def cumulant_stage():
            from .distributed.pooled import cumulant_input
            from .pooling.information import cumulant_model_table, cumulant_order_table

            layer, order = kcfg.get("layer", "ll"), int(kcfg.get("max_order", 8))
            names = [m for m in kcfg.get("models", []) if m in models]
            order_measures = tuple(kcfg.get("order_measures", ("gfre", "lfre")))
            model_measures = tuple(kcfg.get("model_measures", ("gfre", "lfre")))
            rising = {}
            for model in names:
                atoms = cumulant_input(store, [(model, layer)], structures, order, scheduler)[0]
                table = cumulant_order_table(
                    atoms, max_order=order, measures=order_measures, random_state=random_state
                )
                width = atoms.n_features if hasattr(atoms, "n_features") else 0
                orders = table[["source_order", "target_order"]].max(axis=1)
                for note in thin_data_notes(table, widths=orders * width, unit="structures"):
                    say(f"cumulants: {model}: warning: {note}")
                paths = results.cumulants.write_orders(table, model, layer)
                _write_heatmaps(table, paths[0].parent, paths[0].stem)
                first = table[(table.measure == "gfre") & (table.source_order == 1)]
                rising[model] = first.sort_values("target_order")["value"].round(4).tolist()
            if len(names) >= 2:
                pairs = [(m, layer) for m in names]
                aligned = cumulant_input(store, pairs, structures, order, scheduler)
                table = cumulant_model_table(
                    dict(zip(names, aligned, strict=True)),
                    order=order,
                    measures=model_measures,
                    random_state=random_state,
                )
                paths = results.cumulants.write_models(table, layer)
                _write_heatmaps(table, paths[0].parent, paths[0].stem)
            return {"gfre_phi1_to_phin": rising}

        runner.stage("cumulants", _key(featurize_key, kcfg, random_state), cumulant_stage)

    pcfg = study.section("platonic")
    options = pcfg.pop("diagnostics", False)  # the older place of the diagnostics' settings
    if "diagnostics" in study.config:
        dcfg = study.section("diagnostics")
        diagnose = bool(dcfg.pop("enabled", True))
    else:
        diagnose, dcfg = bool(options), options if isinstance(options, dict) else {}
    anchor_model = pcfg.get("anchor_model", "soap")
    space_models = pcfg.get("models", [m for m in models if m != anchor_model])
    space = {
        "layer": pcfg.get("layer", DEFAULT_LAYERS["platonic"]),
        "n_anchors": int(pcfg.get("anchors", 256)),
        "anchor_model": anchor_model,
        "method": pcfg.get("method", "direct"),
        "center": pcfg.get("center", "data"),
        "standardize": bool(pcfg.get("standardize", True)),
        "anchor_input": pcfg.get("anchor_input", "features"),
    }
    if diagnose or "platonic" in study.config:
        space["n_anchors"] = capped_anchors(
            space["n_anchors"], store, anchor_model, space["layer"], structures, say
        )
    if not diagnose:
        # diagnostics of an earlier run would be read by the report as this run's
        for folder in (results.diagnostics.folder, results.platonic.diagnostics.folder):
            stale = remove_stale_diagnostics(folder, diagnose)
            if stale:
                say(f"diagnostics: {stale}")

    if diagnose:

        def diagnostics_stage():
            from .diagnostics.run import diagnose_store

            summary = diagnose_store(
                store,
                space_models,
                structures,
                results.diagnostics.folder,
                space=space,
                random_state=random_state,
                progress=say,
                **dcfg,
            )
            return {"auroc": summary.get("auroc", [])}

        key = _key(featurize_key, space_models, space, dcfg, random_state)
        runner.stage("diagnostics", key, diagnostics_stage)

    if "platonic" in study.config:

        def platonic_stage():
            from .platonic import run_platonic
            from .report.plots import write_platonic_figures

            summary = run_platonic(
                store,
                space_models,
                results.platonic.folder,
                structures=structures,
                layer=space["layer"],
                n_anchors=space["n_anchors"],
                anchor_model=anchor_model,
                method=space["method"],
                center=space["center"],
                standardize=space["standardize"],
                anchor_input=space["anchor_input"],
                n_atoms=int(pcfg.get("atoms", 2000)),
                random_state=random_state,
                progress=say,
                diagnostics_summary=results.diagnostics.summary() if diagnose else None,
                pca_models=pcfg.get("pca_models"),
                pca_atoms=int(pcfg.get("pca_atoms", 3000)),
            )
            # the figures beside the tables, as beside the compare and cumulants tables
            write_platonic_figures(results.platonic)
            return {"trained_pairs": summary["trained_pairs"]}

        key = _key(featurize_key, pcfg, random_state, runner.keys.get("diagnostics", ""))
        runner.stage("platonic", key, platonic_stage)

    # the report shows summary.md: write it first (and again after, with the report's time)
    write_summary(results, store, runner.record)
    if study.section("report").get("enabled", True) and "report" in study.config:

        def report_stage():
            from .report import build_report

            return {"report": str(build_report(out))}

        upstream = [runner.keys.get(s, "") for s in STAGES[:-1]]
        runner.stage("report", _key(upstream, study.section("report")), report_stage)
        write_summary(results, store, runner.record)
    return out


def _write_heatmaps(df: Any, folder: Path, stem: str) -> None:
    from .report.figures import write_heatmaps

    write_heatmaps(df, folder, stem)


def _write_pairs(df: Any, folder: Path, stem: str) -> None:
    write_table(df, folder, stem)
    _write_heatmaps(df, folder, stem)


def write_summary(results: ResultsFolder, store: Any, record: dict[str, Any]) -> Path:
    """``summary.md``: the store's contents, each stage's time and headline numbers."""
    from .metrics.registry import describe_measure

    lines = [
        "# mlipspace results",
        "",
        "## Feature store",
        "",
        store.info().to_markdown(index=False),
        "",
    ]
    for stem, df in results.compare.tables():
        gfre = df[df.measure == "gfre"].pivot(index="source", columns="target", values="value")
        lines += [
            f"## GFRE, row reconstructs column ({stem}.csv)",
            "",
            describe_measure(df, "gfre"),
            "",
            gfre.round(3).to_markdown(),
            "",
        ]
    lines += ["## Stages", ""]
    for name, info in record.items():
        extras = {k: v for k, v in info.items() if k not in ("key", "seconds")}
        lines.append(
            f"- **{name}** ({info.get('seconds', 0)} s): {json.dumps(extras, default=str)}"
        )
    return results.write_summary("\n".join(lines) + "\n")


def thin_data_notes(
    df: Any, n_structures: int | None = None, widths: Any = None, unit: str = "atoms"
) -> list[str]:
    """Warnings for a comparison table fitted on fewer training rows than features.

    With fewer training rows (atoms, or structures for cumulant features) than feature
    dimensions a regression fits its training set exactly, so GFRE/GFRD and LFRE say more
    about the data size than about the models. Adds a boolean ``thin_data`` column to ``df``
    (in place) so the written tables say it too.

    Parameters
    ----------
    df : DataFrame
        A comparison table with ``n_train`` (and ``dim_source``, ``dim_target`` unless
        ``widths`` is given).
    n_structures : int, optional
        Structures behind the atoms, for the message.
    widths : array-like, optional
        The widest feature dimension of each row (default: from ``dim_source``/``dim_target``).
    unit : str
        What a training row is.
    """
    import numpy as np

    n_train = df["n_train"].to_numpy()
    if widths is None:
        widths = df[["dim_source", "dim_target"]].max(axis=1).to_numpy()
    widths = np.asarray(widths)
    df["thin_data"] = n_train < widths
    if not df["thin_data"].any():
        return []
    where = f" from {n_structures} structures" if n_structures else ""
    fewest = int(n_train.min())
    return [
        f"only {fewest} training {unit}{where} for features of up to {int(widths.max())} "
        f"dimensions: the regression measures of {int(df['thin_data'].sum())} rows (column "
        f"thin_data) fit noise; add structures"
        + (f" or compare at --common-dim below {fewest}" if unit == "atoms" else "")
    ]


def capped_anchors(
    n_anchors: int,
    store: Any,
    anchor_model: str,
    layer: str,
    structures: Any,
    say: Callable[[str], None],
) -> int:
    """``n_anchors`` capped at what the data allow (with a note when capped): half the atoms
    (the common space needs as many atoms besides the anchors) and the distinct atoms of the
    anchor model's features (the most any selection can return)."""
    import numpy as np

    try:
        table = store.aligned([(anchor_model, layer)], structures)[(anchor_model, layer)]
    except MlipspaceError:
        return n_anchors  # the analysis itself says what is missing
    n_distinct = len(np.unique(np.round(np.asarray(table.X, dtype=np.float64), 8), axis=0))
    cap = max(1, min(n_distinct, len(table) // 2))
    if n_anchors > cap:
        say(
            f"anchors: {n_anchors} asked for, but the data hold {len(table)} atoms "
            f"({n_distinct} distinct): using {cap}"
        )
        return cap
    return n_anchors


def remove_stale_diagnostics(folder: Path, diagnostics: Any) -> str | None:
    """Remove the diagnostics ``folder`` an earlier run left when this run does not compute
    them (a report would read them as this run's results); say so."""
    folder = Path(folder)
    if diagnostics or not folder.is_dir():
        return None
    shutil.rmtree(folder)
    return f"removed {folder} of an earlier run (diagnostics are off in this run)"

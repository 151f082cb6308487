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
import time
import tomllib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import StudyError
from .models import find_card
from .results import ResultsFolder, write_table

STAGES = ("structures", "featurize", "compare", "cumulants", "diagnostics", "platonic", "report")
SECTIONS = ("study", *STAGES)

__all__ = [
    "STAGES",
    "Study",
    "StudyError",
    "demo_study_text",
    "load_study",
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

    @property
    def seed(self) -> int:
        return self.random_state

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
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise StudyError(f"{where}: unknown sections {unknown}; known: {list(SECTIONS)}")
    config.setdefault("study", {})
    if not config.get("structures", {}).get("sources"):
        raise StudyError(f"{where}: [structures] needs sources = [...]")
    if not config.get("featurize", {}).get("models"):
        raise StudyError(f"{where}: [featurize] needs models = [...]")
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


def _read_sources(sources: list[str], on_error: str, seed: int):
    from .structures import StructureList, demo_structures, read_structures

    out = StructureList()
    for source in sources:
        if isinstance(source, str) and source.startswith("demo:"):
            out.extend(demo_structures(source.split(":", 1)[1] or "default", random_state=seed))
        else:
            part = read_structures(source, on_error=on_error)
            out.extend(part)
            out.report.errors.extend(part.report.errors)
            out.report.duplicates.extend(part.report.duplicates)
    return out


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
    out, seed = study.out, study.seed
    results = runner.results
    out.mkdir(parents=True, exist_ok=True)

    # structures are always read (cheap), so the key reflects the actual content
    cfg = study.section("structures")
    structures = _read_sources(list(cfg["sources"]), cfg.get("on_error", "raise"), seed)
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
    layers = list(fcfg.get("layers", ["ll"]))

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
                seed=seed,
                common_dim=ccfg.get("common_dim"),
                n_bootstrap=int(ccfg.get("bootstrap", 0)),
                confidence=float(ccfg.get("confidence", 0.95)),
                n_permutations=int(ccfg.get("permutations", 0)),
                width_control=bool(ccfg.get("width_control", False)),
                common_width=ccfg.get("common_width"),
                structures=structures,
                engine=engine_for(scheduler),
            )
            _write_pairs(df, results.compare.folder, results.compare.stem(layer))
            return {"rows": len(df)}

        runner.stage("compare", _key(featurize_key, ccfg, seed), compare_stage)

    if "cumulants" in study.config:
        kcfg = study.section("cumulants")

        def cumulant_stage():
            from .distributed.measures import cumulant_input
            from .pooling.information import cumulant_model_table, cumulant_order_table

            layer, order = kcfg.get("layer", "ll"), int(kcfg.get("max_order", 8))
            names = [m for m in kcfg.get("models", []) if m in models]
            order_measures = tuple(kcfg.get("order_measures", ("gfre", "lfre")))
            model_measures = tuple(kcfg.get("model_measures", ("gfre", "lfre")))
            rising = {}
            for model in names:
                atoms = cumulant_input(store, [(model, layer)], structures, order, scheduler)[0]
                table = cumulant_order_table(
                    atoms, max_order=order, measures=order_measures, seed=seed
                )
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
                    seed=seed,
                )
                paths = results.cumulants.write_models(table, layer)
                _write_heatmaps(table, paths[0].parent, paths[0].stem)
            return {"gfre_phi1_to_phin": rising}

        runner.stage("cumulants", _key(featurize_key, kcfg, seed), cumulant_stage)

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
        "layer": pcfg.get("layer", "node"),
        "n_anchors": int(pcfg.get("anchors", 256)),
        "anchor_model": anchor_model,
        "method": pcfg.get("method", "direct"),
        "center": pcfg.get("center", "data"),
        "standardize": bool(pcfg.get("standardize", True)),
        "anchor_input": pcfg.get("anchor_input", "features"),
    }

    if diagnose:

        def diagnostics_stage():
            from .diagnostics.run import diagnose_store

            summary = diagnose_store(
                store,
                space_models,
                structures,
                results.diagnostics.folder,
                space=space,
                random_state=seed,
                progress=say,
                **dcfg,
            )
            return {"auroc": summary.get("auroc", [])}

        key = _key(featurize_key, space_models, space, dcfg, seed)
        runner.stage("diagnostics", key, diagnostics_stage)

    if "platonic" in study.config:

        def platonic_stage():
            from .platonic import run_platonic

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
                random_state=seed,
                progress=say,
                diagnostics_summary=results.diagnostics.summary() if diagnose else None,
                pca_models=pcfg.get("pca_models"),
                pca_atoms=int(pcfg.get("pca_atoms", 3000)),
            )
            return {"trained_pairs": summary["trained_pairs"]}

        key = _key(featurize_key, pcfg, seed, runner.keys.get("diagnostics", ""))
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

"""Test instances of the registered model specs, for tests/test_model_contract.py.

A plain (non-parametrised) spec is tested under its own name and needs nothing here. A
parametrised spec (a name ending in ``":"``, such as ``"mace:"``) needs a provider: a
function ``provider(tmp_dir) -> model name`` that builds whatever the name needs (a small
random-init checkpoint written with the package's own code, saved into ``tmp_dir``) and
returns the name to load, e.g. ``"mace:/tmp/.../small.model"``.

Providers run where the model runs: inside the spec's worker environment (the card's
``environment``) for families outside the main one, so they may import the family's
package. This module is imported by ``tests/model_contract_probe.py`` in that
environment; keep it free of pytest.

To add a family: register its specs, then add one line per parametrised spec to
:data:`PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _small_mace_file(tmp_dir: Path) -> str:
    """A small plain MACE saved whole with ``torch.save``, as mace's own scripts do."""
    import torch

    from mace_probe import small_model

    path = Path(tmp_dir) / "contract-small.model"
    torch.save(small_model(), path)
    return f"mace:{path}"


def _random_orb(tmp_dir: Path) -> str:
    """A released-size Orb-v3 conservative state dict (random weights), orb-models' own code."""
    from families_probe import build_orb

    return f"orb:{build_orb(Path(tmp_dir))['conservative']}"


def _random_pet(tmp_dir: Path) -> str:
    """metatrain's default PET (random weights) knowing the contract's elements (with Cu)."""
    from families_probe import ELEMENTS, build_pet

    return f"pet:{build_pet(Path(tmp_dir), [*ELEMENTS, 29])['ckpt']}"


def _random_mattersim(tmp_dir: Path) -> str:
    """mattersim's default M3Gnet (random weights) saved by ``Potential.save``."""
    from families_probe import build_mattersim

    return f"mattersim:{build_mattersim(Path(tmp_dir))['ckpt']}"


def _sevennet_resaved(tmp_dir: Path) -> str:
    """The shipped SevenNet-0 checkpoint saved again as a user's file."""
    import torch

    from mlipspace.models.sevennet import _checkpoint_path

    path = Path(tmp_dir) / "contract-sevennet.pth"
    raw = torch.load(_checkpoint_path("sevennet-0"), map_location="cpu", weights_only=False)
    torch.save(raw, path)
    return f"sevennet:{path}"


def _chgnet_resaved(tmp_dir: Path) -> str:
    """CHGNet 0.3.0 saved as chgnet's Trainer saves a fine-tuned model."""
    import contextlib
    import io

    import torch
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    path = Path(tmp_dir) / "contract-chgnet.pth.tar"
    torch.save({"model": model.as_dict()}, path)
    return f"chgnet:{path}"


def _small_uma(tmp_dir: Path) -> str:
    """A random-init UMA-style inference checkpoint built with fairchem's own code."""
    from uma_probe import build_checkpoint

    return f"uma:{build_checkpoint(Path(tmp_dir) / 'contract-uma.pt')}"


def _small_dpa(tmp_dir: Path) -> str:
    """A random-init DPA-3 checkpoint built with deepmd-kit's own code."""
    from dpa_probe import build_checkpoint

    return f"dpa:{build_checkpoint(Path(tmp_dir) / 'contract-dpa.pt')}"


#: spec name -> provider(tmp_dir) -> model name to load
PROVIDERS: dict[str, Callable[[Path], str]] = {
    "mace:": _small_mace_file,
    "mace-random:": lambda tmp_dir: "mace-random:0",
    "orb:": _random_orb,
    "pet:": _random_pet,
    "mattersim:": _random_mattersim,
    "sevennet:": _sevennet_resaved,
    "chgnet:": _chgnet_resaved,
    "uma:": _small_uma,
    "dpa:": _small_dpa,
}


def instance_name(spec_name: str, tmp_dir: Path) -> str:
    """The model name to load for ``spec_name`` (building its checkpoint if needed)."""
    if spec_name in PROVIDERS:
        return PROVIDERS[spec_name](Path(tmp_dir))
    if spec_name.endswith(":"):
        raise LookupError(
            f"no test instance for the parametrised spec {spec_name!r}: add a provider to "
            "PROVIDERS in tests/model_instances.py"
        )
    return spec_name

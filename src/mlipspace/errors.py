"""Exceptions raised by mlipspace.

Every error a user can cause derives from :class:`MlipspaceError`, so a caller can
catch one type. Messages name the file, frame, structure, element or model at fault.
:func:`random_state_or_seed` is the one place an old ``seed=`` keyword is still accepted.
"""

from __future__ import annotations

import warnings


class MlipspaceError(Exception):
    """Base class of every error raised deliberately by mlipspace."""


class StructureError(MlipspaceError, ValueError):
    """A structure (or the file it came from) cannot be used.

    Parameters
    ----------
    problem : str
        What is wrong, in words.
    source : str, optional
        The file (or in-memory origin) of the structure.
    frame : int, optional
        Index of the frame within ``source``.
    """

    def __init__(self, problem: str, source: str | None = None, frame: int | None = None):
        self.problem = problem
        self.source = source
        self.frame = frame
        where = ""
        if source is not None:
            where = f"{source}"
            if frame is not None:
                where += f" (frame {frame})"
            where += ": "
        super().__init__(f"{where}{problem}")

    def __reduce__(self):
        # rebuilt from its parts where unpickled (a worker's error raised in the parent):
        # the default would pass the whole message as ``problem`` and lose ``source``
        return (type(self), (self.problem, self.source, self.frame))


class ReadError(StructureError):
    """A file is unreadable, empty, or in a format ASE cannot parse."""


class EmptyStructureError(StructureError):
    """A structure has no atoms."""


class NonFiniteError(StructureError):
    """A structure has NaN or infinite positions or cell."""


class OverlappingAtomsError(StructureError):
    """Two atoms are closer than the allowed minimum distance."""


class DegenerateCellError(StructureError):
    """A periodic structure has a cell of (near) zero volume."""


class UnknownElementError(StructureError):
    """A structure holds an atomic number that is not a chemical element."""


class StoreError(MlipspaceError):
    """The feature store is missing, malformed, or asked for something it lacks."""


class ModelError(MlipspaceError):
    """A model cannot be found, loaded, or run."""


class UnsupportedElementError(ModelError):
    """A model was asked to featurize an element it was not trained on."""


class CheckpointError(ModelError):
    """A user's checkpoint file is missing, of another family, lacks the asked task or head,
    or holds weights that do not fit its architecture (the message names the file)."""


class EnvironmentSetupError(MlipspaceError):
    """A per-family worker environment is missing or broken."""


class MetricInputError(MlipspaceError, ValueError):
    """Arrays passed to a measure are inconsistent or ill-posed."""


class ParameterError(MlipspaceError, ValueError):
    """A parameter of a call is invalid (wrong value or combination)."""


class InputTypeError(MlipspaceError, TypeError):
    """An argument is of a type mlipspace cannot use (e.g. structures given as a number)."""


class SchedulerError(MlipspaceError, ValueError):
    """A ``--scheduler`` value is malformed, or its scheduler cannot be reached."""


class StudyError(MlipspaceError, ValueError):
    """A study file is missing, malformed, or asks for something unknown."""


class ResultsError(MlipspaceError):
    """A file of a results folder is unreadable or lacks what its readers need."""


class ReportError(ResultsError):
    """The results folder cannot be reported on (absent, or a file in it is unreadable)."""


def random_state_or_seed(random_state: int | None, seed: int | None, where: str) -> int | None:
    """``random_state``, or ``seed`` where a caller still passes that old keyword.

    ``seed`` was the name of ``random_state`` in ``where`` (a function name); passing it warns
    with a :class:`DeprecationWarning` pointing at the caller's caller.
    """
    if seed is None:
        return random_state
    warnings.warn(
        f"{where}(seed=...) is deprecated; use random_state=", DeprecationWarning, stacklevel=3
    )
    return seed

"""One error hierarchy for the whole SDK.

Every error raised on purpose by segzero-edge is a ``SegZeroError``. Each carries a ``hint`` that says
what to do; ``str(err)`` shows the message and the hint together. Errors about user input also derive
from ``ValueError`` (and missing components from ``ImportError``) so generic handlers keep working.

    SegZeroError
    ├── InputError (ValueError)            bad argument: image, text, box, option
    ├── ConfigError (ValueError)           invalid configuration dataclass / YAML / override
    ├── ManifestError                      manifest.json missing, unreadable or of another format
    │   └── EngineFileError                a listed file is missing, truncated or tampered with
    ├── EngineIncompatibleError            engine built for another device, version or prompt
    ├── BackendUnavailableError (ImportError)  an optional extra or a device is missing
    ├── CheckpointError                    a checkpoint is not what the command expects
    ├── DatasetError (ValueError)          a dataset folder or record cannot be read (eval, prepare-data)
    ├── ExportError                        an export step failed (nothing was written)
    │   └── ExportValidationError          exported graph disagrees with the reference; has .numbers
    └── TrainingError                      the training loop cannot continue
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SegZeroError(Exception):
    """Base class of every error segzero-edge raises on purpose.

    Args:
        message: what went wrong, naming the file, value or option at fault.
        hint: what the user should do about it (shown on a second line).
    """

    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class InputError(SegZeroError, ValueError):
    """A bad argument: an image of the wrong type or shape, empty text, a malformed box."""


class ConfigError(SegZeroError, ValueError):
    """An invalid configuration value (dataclass field, YAML key or command-line override)."""


class ManifestError(SegZeroError):
    """``manifest.json`` is missing, unreadable, or describes another format."""

    default_hint = "re-export the engine directory with `segzero-edge export`"


class EngineFileError(ManifestError):
    """A file listed in the manifest is missing, has another size, or another sha256."""

    default_hint = "the engine directory was modified or copied incompletely: copy it again or re-export it"


class EngineIncompatibleError(SegZeroError):
    """The engine directory was made for another device, runtime version or prompt version."""


class BackendUnavailableError(SegZeroError, ImportError):
    """An optional dependency (extra) or a device is not available here."""


class CheckpointError(SegZeroError):
    """A checkpoint is missing, corrupt, or not of the kind the command expects."""


class DatasetError(SegZeroError, ValueError):
    """A dataset folder has an unknown layout, or one of its records (image, mask, text) cannot be read."""

    default_hint = "check the dataset folder against the layouts `segzero-edge eval --help` lists"


class ExportError(SegZeroError):
    """An export step failed. Nothing was written to the output directory."""


class ExportValidationError(ExportError):
    """An exported graph does not match the reference implementation within tolerance.

    Attributes:
        numbers: the measured values (e.g. ``{"image_embed.max_abs_diff": 3e-3, "mask_iou": 0.97}``).
    """

    def __init__(self, message: str, *, numbers: Mapping[str, Any] | None = None, hint: str | None = None):
        self.numbers = dict(numbers or {})
        if self.numbers:
            message = message + " (" + ", ".join(f"{k}={v}" for k, v in self.numbers.items()) + ")"
        super().__init__(message, hint=hint)


class TrainingError(SegZeroError):
    """The training loop cannot start or continue (bad data, incompatible checkpoint to resume)."""


def missing_extra(what: str, extra: str, *, cause: BaseException | None = None) -> BackendUnavailableError:
    """A ``BackendUnavailableError`` telling the user which extra to install for ``what``."""
    detail = f" ({cause})" if cause else ""
    return BackendUnavailableError(
        f"{what} needs packages that are not installed{detail}",
        hint=f"pip install 'segzero-edge[{extra}]'",
    )

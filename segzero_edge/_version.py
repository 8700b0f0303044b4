"""The package version, read from the installed metadata (pyproject.toml is the only source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segzero-edge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

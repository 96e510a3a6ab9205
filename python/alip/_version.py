"""The package version (a leaf: imported by the package root, the CLI and saved committees)."""

__version__ = "0.1.0"

"""The package version, kept in a module of its own so packaging can read it statically."""

__version__ = "0.2.0"

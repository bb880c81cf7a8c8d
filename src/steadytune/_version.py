"""The version of steadytune, in one place (the package root and every record read it from here)."""

__version__ = "0.17.0"

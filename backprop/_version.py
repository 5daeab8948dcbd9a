"""The library's version, on the bottom floor: io writes it without importing the package."""

__version__ = "0.1.0"

"""The package's version, read by the build and by the tracer and meter."""

__version__ = "0.1.0"

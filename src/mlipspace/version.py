"""The version of mlipspace (one place; ``mlipspace.__version__`` re-exports it)."""

__version__ = "0.1.0"

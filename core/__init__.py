"""The ground floor every app stands on: it imports Django and libraries, nothing else of ours."""

__version__ = "0.1.0"

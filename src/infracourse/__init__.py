"""Helper package of the course: service endpoints, launcher, readiness, namespaces, checks and lab tools."""

__version__ = "0.1.0"

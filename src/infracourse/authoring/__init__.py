"""Authoring the course: the lab generator, the course catalog, the stored notebook format, notebook
execution, the rendered site and the per-notebook timing report."""

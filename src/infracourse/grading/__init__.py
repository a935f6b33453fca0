"""Grading a class: find submissions, restore their check cells, run each in a fresh kernel, collect the
verdicts, write the gradebook and the feedback."""

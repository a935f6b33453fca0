"""Grading a class, one step a module: submissions (find them and their labs) -> restore (put check cells
back) -> run (grade one submission: kernel.py runs it, hidden.py adds the instructor's checks) -> results (collect
the verdicts into outcomes.py's Outcomes) -> gradebook (CSV, Markdown, feedback, executed notebooks); command.py
is `course grade`, namespaces.py isolates and cleans up each submission's data."""

"""The human side of SciCoT Studio: the SQLite store of questions, rationales, ratings, edits
and curation decisions, agreement statistics, and export back into the distillation set."""

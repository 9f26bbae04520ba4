"""The Sci-CoT method: questions, text formats, teachers, the two-stage student, training and
evaluation. Knows nothing of Gradio or SQLite."""

__version__ = "0.1.0"

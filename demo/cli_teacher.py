"""The `--teacher` option of `scicot ask` and `scicot teach`: its help names the teachers
registered in `scicot_core.teachers` when it is shown, so a new backend needs no edit here."""

from __future__ import annotations

import click


class TeacherOption(click.Option):
    """A click option whose help is `help` with `{names}` filled in from the teacher registry."""

    def get_help_record(self, ctx: click.Context):
        from scicot_core.teachers import teacher_names

        template, self.help = self.help, self.help.format(names=teacher_names())
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = template


def teacher_option(default: str | None, help: str):
    """`--teacher NAME`, with `{names}` in `help` standing for the registered teachers."""
    return click.option("--teacher", cls=TeacherOption, default=default, show_default=default is not None, help=help)

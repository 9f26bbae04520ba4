"""Domain errors of SciCoT Studio, raised by the core and translated only at the edges.

Every message says what went wrong and what to do next; the CLI prints it as one line and
the app shows it as a `gr.Error`.
"""


class ScicotError(Exception):
    """Base class: a problem the user can fix, with a message saying how."""


class DataError(ScicotError):
    """A question or rationale file (or record) is malformed."""


class ModelError(ScicotError):
    """A model could not be found, loaded or run."""


class TeacherError(ScicotError):
    """A teacher backend failed (network, HTTP status, malformed reply, missing rationale)."""


class ConfigError(ScicotError):
    """A setting, option or training configuration is invalid."""


class PermissionDenied(ScicotError):
    """The caller lacks the role, or does not own the record, that an action needs."""

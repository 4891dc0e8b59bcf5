"""The one exception type users see for bad input.

Every user-facing check raises :class:`WavefastError` with a message that says
what was wrong and what is allowed. The CLI prints it as one line on stderr.
"""


class WavefastError(ValueError):
    """Bad input or an unsupported request, explained in the message."""


def check_choice(name: str, value, choices) -> None:
    """Raise a WavefastError unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise WavefastError(f"unknown {name} {value!r}; allowed: {allowed}")

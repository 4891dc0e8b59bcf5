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


def run_command(func, args) -> int:
    """Run a CLI command function; bad input becomes one stderr line and a non-zero status.

    WavefastError -> 2, KeyboardInterrupt -> 130, OSError/RuntimeError -> 1 (with the type name).
    """
    import sys

    try:
        return int(func(args) or 0)
    except WavefastError as exc:
        print(f"wavefast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavefast: interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as exc:
        print(f"wavefast: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

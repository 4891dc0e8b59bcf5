"""The one exception type users see for bad input, and the CLI's error runner.

Every user-facing check raises :class:`WavefastError` with a message that says what was
wrong and what is allowed. The CLI prints it as one line on stderr (capped in length); any
other exception is a bug or an environment problem and also becomes one line, with the
traceback only under ``--debug`` or ``WAVEFAST_DEBUG=1``.
"""

import os

MAX_MESSAGE = 600


class WavefastError(ValueError):
    """Bad input or an unsupported request, explained in the message."""


def check_choice(name: str, value, choices) -> None:
    """Raise a WavefastError unless ``value`` is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # unhashable values
        ok = False
    if not ok:
        allowed = ", ".join(repr(c) for c in choices)
        raise WavefastError(f"unknown {name} {short(repr(value), 80)}; allowed: {allowed}")


def short(text: str, limit: int = MAX_MESSAGE) -> str:
    """One line of at most ``limit`` characters (whitespace runs collapsed)."""
    raw = str(text)
    line = " ".join(raw[: 4 * limit].split())
    if len(raw) <= 4 * limit and len(line) <= limit:
        return line
    tail = f" ... [{len(raw)} characters in all]"
    return line[: limit - len(tail)] + tail


def debug_enabled(args=None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("WAVEFAST_DEBUG", "") not in ("", "0")


def run_command(func, args) -> int:
    """Run a CLI command function; every failure becomes one stderr line and a non-zero status.

    WavefastError -> 2; KeyboardInterrupt -> 130; a closed output pipe -> 0 quietly; OSError and
    memory errors -> 1 with what failed; anything else -> 1 as an internal error (traceback
    with ``--debug`` / ``WAVEFAST_DEBUG=1``).
    """
    import sys

    def say(message: str) -> None:
        try:
            print(f"wavefast: error: {short(message)}", file=sys.stderr)
        except (BrokenPipeError, OSError):
            pass

    try:
        return int(func(args) or 0)
    except WavefastError as exc:
        say(str(exc))
        return 2
    except KeyboardInterrupt:
        print("wavefast: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `wavefast schedule --json | head`: the reader is gone; not an error
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    except MemoryError:
        say("out of memory; use a smaller batch (--batch-size), shorter inputs or chunked vocoding")
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        say(f"{type(exc).__name__}: {exc.strerror or exc}{where}")
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, traceback on request
        if debug_enabled(args):
            import traceback

            traceback.print_exc()
        text = str(exc)
        if "DefaultCPUAllocator" in text or "not enough memory" in text or "out of memory" in text.lower():
            say("out of memory (the allocator refused); use a smaller batch, shorter inputs or chunked vocoding")
            return 1
        say(f"internal error ({type(exc).__name__}: {text}); rerun with --debug or WAVEFAST_DEBUG=1 for the "
            "traceback and report it")
        return 1

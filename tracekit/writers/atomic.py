"""Write outputs so that a failure leaves nothing half-written and a folder holds exactly one run.

An output folder is built in a temporary folder beside it and swapped in whole: the earlier run's
files never stay beside the new ones, and of concurrent runs into one folder the last to finish
wins, complete. A folder that is not an earlier tracekit output is not replaced unless forced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tracekit.errors import TraceError
from tracekit.signals import raise_if_terminated

# Written into every output folder: what tells an earlier tracekit output from a user's folder.
MARKER = ".tracekit-output"
_FORCE: list[bool] = [False]


def allow_replacing_any_folder(force: bool) -> None:
    """--force: an existing non-empty folder that is not a tracekit output may be replaced."""
    _FORCE[0] = bool(force)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _honour_umask(path: Path, directory: bool) -> None:
    """mkdtemp/mkstemp create 0700/0600; give the output the mode a plain open/mkdir would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def check_output_folder(outdir: str | Path) -> Path:
    """The output folder as a Path, or a TraceError when it cannot or must not be (re)placed."""
    text = str(outdir)
    if not text.strip():
        raise TraceError("''", "output folder is empty: name a new or earlier output folder with -o")
    outdir = Path(outdir)
    resolved = outdir.resolve() if not outdir.is_symlink() else outdir.absolute()
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):  # no HOME / no passwd entry
        home = None
    if resolved == Path(resolved.anchor) or resolved == home:
        raise TraceError(outdir, "refusing to write the output over the root or home folder; name a new folder")
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
        raise TraceError(outdir, "refusing to replace the current folder (or one above it); name a new folder")
    if outdir.is_symlink():
        raise TraceError(outdir, "output path is a symbolic link" + (
            " to nothing (dangling)" if not outdir.exists() else "") + "; name a folder")
    if outdir.exists() and not outdir.is_dir():
        raise TraceError(outdir, "output path exists and is a file, not a folder")
    _check_parents(outdir)
    if outdir.is_dir():
        try:
            entries = [p.name for p in outdir.iterdir()]
        except OSError as exc:
            raise TraceError(outdir, f"cannot read the output folder: {exc.strerror}") from None
        if entries and not _earlier_output(entries) and not _FORCE[0]:
            shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
            raise TraceError(outdir, f"output folder is not empty and is not an earlier tracekit output "
                                     f"(it holds {shown}); its files would be replaced: pass --force to "
                                     "replace it, or name a new folder")
    return outdir


def _earlier_output(entries: list[str]) -> bool:
    """A folder written by tracekit: its marker, or (runs from before the marker) its summary.json."""
    return MARKER in entries or "summary.json" in entries


def _check_parents(path: Path) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise TraceError(path, f"cannot create the output: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise TraceError(path, f"cannot create the output: folder {parent} is not writable")
            return


@contextlib.contextmanager
def staged_dir(outdir: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `outdir`; on success it replaces `outdir` whole.

    On any exception (or SIGINT/SIGTERM/SIGHUP, which the CLI turns into exceptions) the temporary
    folder is removed and `outdir` is left as it was.
    """
    outdir = check_output_folder(outdir)
    try:
        outdir.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.tmp-", dir=outdir.parent))
    except OSError as exc:
        raise TraceError(outdir, f"cannot create the output folder: {exc.strerror}") from None
    try:
        _honour_umask(stage, directory=True)
        yield stage
        (stage / MARKER).write_text("tracekit output folder: replaced whole by each run\n")
        raise_if_terminated()  # a SIGTERM Python swallowed: the output is not put in place
        _swap_in(stage, outdir)
    except OSError as exc:
        raise TraceError(exc.filename or outdir, f"cannot write the output: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, outdir: Path, tries: int = 20) -> None:
    """Rename `stage` to `outdir`; an existing `outdir` is moved aside first, then deleted."""
    for _ in range(tries):
        try:
            os.rename(stage, outdir)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
        old = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=outdir.parent))
        try:
            os.rename(outdir, old / "run")
        except FileNotFoundError:
            pass  # a concurrent run moved it first
        finally:
            shutil.rmtree(old, ignore_errors=True)
    raise TraceError(outdir, "output folder keeps being replaced by other runs; try again")


def check_output_file(path: str | Path) -> Path:
    """The output file as a Path, or a TraceError when it cannot be written (called again by staged_file; a
    command calls it first so that a bad -o is refused before any input is read)."""
    if not str(path).strip():
        raise TraceError("''", "output file name is empty")
    path = Path(path)
    if path.is_dir():
        raise TraceError(path, "output path is a folder, not a file")
    _check_parents(path)
    return path


@contextlib.contextmanager
def staged_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` on success, delete it on failure."""
    path = check_output_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise TraceError(path, f"cannot create the output file: {exc.strerror}") from None
    try:
        _honour_umask(Path(tmp), directory=False)
        yield Path(tmp)
        raise_if_terminated()
        os.replace(tmp, path)
    except OSError as exc:
        raise TraceError(exc.filename or path, f"cannot write the output: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

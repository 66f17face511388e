"""A table uploaded as a zip archive, e.g. the UCI ``smsspamcollection.zip`` exactly as the book downloads it.

One member is read: the one named ``SMSSpamCollection`` (the UCI archive also holds a ``readme``), else the
archive's only data file. Its size is checked on the size the archive declares *and* while it is read, so a zip
bomb stops at the cap; member names are only compared, never used as paths.

Example:
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as z:
    ...     z.writestr("readme", "about"); z.writestr("SMSSpamCollection", "ham\\tHi\\nspam\\tWin\\n")
    >>> unzip_upload(buf.getvalue(), "smsspamcollection.zip", 1_000)
    (b'ham\\tHi\\nspam\\tWin\\n', 'SMSSpamCollection')
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import PurePosixPath

from core.errors import LabError, shown

ZIP_MAGIC = b"PK\x03\x04"
PREFERRED = ("smsspamcollection",)
_SKIPPED = ("readme", "license", "licence", "__macosx", ".ds_store")
MAX_MEMBERS = 1_000


def is_zip(data: bytes) -> bool:
    return bytes(data[:4]) == ZIP_MAGIC


def _pick(infos: list[zipfile.ZipInfo], filename: str) -> zipfile.ZipInfo:
    files = [i for i in infos if not i.is_dir()]
    named = [i for i in files if PurePosixPath(i.filename).name.lower() in PREFERRED]
    data = [i for i in files if not any(part.lower().startswith(_SKIPPED)
                                        for part in PurePosixPath(i.filename).parts)]
    if named:
        return named[0]
    if len(data) == 1:
        return data[0]
    names = ", ".join(shown(i.filename, 40) for i in data[:5]) or "no data file"
    raise LabError(f"{filename} is a zip archive with {len(data)} data files ({names}); upload the table itself, "
                   "or a zip that holds only it.")


def unzip_upload(data: bytes, filename: str, max_bytes: int | None) -> tuple[bytes, str]:
    """The bytes and name of the table inside an uploaded zip archive.

    Raises:
        LabError: not a readable zip, encrypted, no single data file, or a member over ``max_bytes``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise LabError(f"{filename} holds {len(infos):,} files; upload the table itself.")
            info = _pick(infos, filename)
            limit = max_bytes if max_bytes is not None else info.file_size
            if info.file_size > limit:
                raise _too_big(filename, info.filename, limit)
            with archive.open(info) as member:
                out = member.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise LabError(f"{filename} is a damaged or unsupported zip archive ({type(err).__name__}); unpack it and "
                       "upload the table inside.") from None
    except RuntimeError as err:  # encrypted members
        raise LabError(f"{filename} is password-protected ({err}); unpack it and upload the table inside.") from None
    if len(out) > limit:
        raise _too_big(filename, info.filename, limit)
    return out, PurePosixPath(info.filename).name


def _too_big(filename: str, member: str, limit: int) -> LabError:
    return LabError(f"{shown(member, 40)} in {filename} unpacks to more than {limit / 1e6:,.0f} MB, the limit for "
                    "a table; upload a smaller one.")

"""Release packages for the update tests: a real wheel of ``balans`` at a given version, made with zipfile in
milliseconds (a RECORD with every file's hash, as pip checks), holding whatever modules a test wants in it."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def release_wheel(directory: Path, version: str, files: dict[str, str] | None = None) -> Path:
    dist = f"balans-{version}.dist-info"
    entries = {**(files or {}),
               f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: balans\nVersion: {version}\n",
               f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: balans-tests\nRoot-Is-Purelib: true\n"
                                "Tag: py3-none-any\n"}
    record = [f"{name},{_record_hash(text.encode())},{len(text.encode())}" for name, text in entries.items()]
    entries[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = Path(directory) / f"balans-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return path

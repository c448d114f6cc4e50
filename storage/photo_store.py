"""Content-addressed photo files under DATA_DIR/photos: the name is the SHA-256, so a copy is never stored twice."""

from __future__ import annotations

import os
from pathlib import Path


class PhotoStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str, suffix: str = ".jpg") -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, data: bytes, sha256: str, suffix: str = ".jpg") -> Path:
        path = self.path_for(sha256, suffix)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def resolve(self, stored: str) -> Path:
        return self.root / stored

    def read(self, stored: str) -> bytes:
        return self.resolve(stored).read_bytes()

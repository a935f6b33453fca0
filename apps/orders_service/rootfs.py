"""Copy into DEST what the venv at VENV needs to run with no operating system around it: the interpreter, its
standard library, the venv, and the shared libraries they load as `ldd` lists them, plus libgcc_s, which glibc
opens at run time when a thread exits (ldd cannot see that). Used by the Containerfile's distroless stage:
    python3 rootfs.py DEST VENV
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

UNUSED_STDLIB = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "venv")


def shared_libraries(binaries: list[Path]) -> set[str]:
    found = set()
    for binary in binaries:
        for line in subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
                found.add(parts[2])
            elif parts and parts[0].startswith("/"):  # the dynamic loader itself
                found.add(parts[0])
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines()
    found.update(line.split("=>")[1].strip() for line in cache if line.strip().startswith("libgcc_s.so.1 "))
    return found


def main(dest: Path, venv: Path) -> None:
    python = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(stdlib, dest / stdlib.relative_to("/"), symlinks=True,
                    ignore=lambda folder, names: [n for n in names if Path(folder) == stdlib and n in UNUSED_STDLIB])
    shutil.copytree(venv, dest / venv.relative_to("/"), symlinks=True)
    for link in (venv / "bin").iterdir():  # python -> python3 -> /usr/bin/python3 -> python3.11: point at the end
        if link.is_symlink():
            (dest / link.relative_to("/")).unlink()
            (dest / link.relative_to("/")).symlink_to(python)
    binaries = [python, *venv.rglob("*.so*"), *stdlib.rglob("*.so")]
    for library in sorted(shared_libraries(binaries)) + [str(python)]:
        target = dest / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target)  # follows symlinks: the file under the name the loader asks for
    (dest / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (dest / "tmp").chmod(0o1777)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""Builds lunatic_mp's C core (lunatic_mp.vm._core); everything else is in pyproject.toml.

The core is compiled with the system C compiler and Python's headers, warnings as errors. It does
not link against wasmtime: it resolves wasmtime's C functions at import from the library that
wasmtime-py loaded (lunatic_mp/vm/core.py). ``LUNATIC_MP_SANITIZE=1`` builds it with AddressSanitizer
and UBSan (docs/development.md says how to run the tests that way).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE_DIR = Path("lunatic_mp") / "vm"
SOURCES = [
    "_core.c",
    "ticker.c",
    "message.c",
    "receive.c",
    "mailbox.c",
    "message_type.c",
    "runner.c",
    "calls.c",
    "store.c",
    "inbox.c",
    "arena.c",
    "slots.c",
    "net.c",
    "pyhost.c",
    "hibernate.c",
]
HEADERS = ["core.h", "message.h", "wasmtime_api.h"]
# initial-exec: the core's few thread-locals (the GIL a poll holds) are read by every host call,
# and the model a shared object gets by default calls __tls_get_addr for each (2% of a ring hop)
FLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-ftls-model=initial-exec"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


class NoCompiler(SystemExit):
    """A build that cannot start: said once, plainly, instead of a compiler's traceback."""


class BuildCore(build_ext):
    def build_extensions(self) -> None:
        compiler = getattr(self.compiler, "compiler_so", None) or ["cc"]
        if shutil.which(compiler[0]) is None:
            raise NoCompiler(
                f"lunatic-mp: no C compiler found ({compiler[0]!r}): its C core (lunatic_mp.vm._core) "
                "must be compiled. Install one (Debian/Ubuntu: apt-get install gcc python3-dev) or set CC."
            )
        include = sysconfig.get_paths()["include"]
        if not (Path(include) / "Python.h").is_file():
            raise NoCompiler(
                f"lunatic-mp: Python's C headers are missing ({include}/Python.h): install them "
                "(Debian/Ubuntu: apt-get install python3-dev) to compile lunatic_mp.vm._core."
            )
        super().build_extensions()


def _extension() -> Extension:
    sanitize = os.environ.get("LUNATIC_MP_SANITIZE") == "1"
    return Extension(
        "lunatic_mp.vm._core",
        sources=[str(CORE_DIR / name) for name in SOURCES],
        depends=[str(CORE_DIR / name) for name in HEADERS],
        extra_compile_args=FLAGS + (SANITIZE if sanitize else []),
        extra_link_args=SANITIZE if sanitize else [],
        libraries=["dl", "pthread"],
    )


setup(ext_modules=[_extension()], cmdclass={"build_ext": BuildCore})

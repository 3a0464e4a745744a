"""Build of the mcring Python binding.

libmcring is found, in this order:
  1. MCRING_BUILD_DIR=<an out-of-tree build of the C library> (headers from
     the source tree two levels up, or MCRING_SRC_DIR; the library from
     BUILD/lib/.libs, linked with an rpath to it), for tests and
     development;
  2. pkg-config mcring (an installed libmcring: `make install`).
MCRING_RPATH=0 leaves the rpath to the build tree out: a distribution
package (debian/rules) links against a build but installs the extension
beside a libmcring the dynamic linker finds by itself.
"""
import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def libmcring():
    build = os.environ.get("MCRING_BUILD_DIR")
    if build:
        build = os.path.abspath(build)
        src = os.environ.get("MCRING_SRC_DIR",
                             os.path.normpath(os.path.join(HERE, "..", "..")))
        libdir = os.path.join(build, "lib", ".libs")
        if not os.path.exists(os.path.join(libdir, "libmcring.so")):
            raise SystemExit("no libmcring.so in %s: build the C library "
                             "first (make)" % libdir)
        rpath = [] if os.environ.get("MCRING_RPATH") == "0" else [libdir]
        return dict(include_dirs=[os.path.join(src, "include")],
                    library_dirs=[libdir], libraries=["mcring"],
                    runtime_library_dirs=rpath)
    try:
        cflags = subprocess.check_output(
            ["pkg-config", "--cflags", "mcring"], text=True)
        libs = subprocess.check_output(
            ["pkg-config", "--libs", "mcring"], text=True)
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("libmcring not found: set MCRING_BUILD_DIR to a "
                         "build of the C library, or install it so that "
                         "`pkg-config mcring` works")
    out = dict(include_dirs=[], library_dirs=[], libraries=[],
               runtime_library_dirs=[])
    for tok in shlex.split(cflags):
        if tok.startswith("-I"):
            out["include_dirs"].append(tok[2:])
    for tok in shlex.split(libs):
        if tok.startswith("-L"):
            out["library_dirs"].append(tok[2:])
            out["runtime_library_dirs"].append(tok[2:])
        elif tok.startswith("-l"):
            out["libraries"].append(tok[2:])
    return out


setup(
    packages=["mcring"],
    package_data={"mcring": ["*.pyi", "py.typed"]},
    ext_modules=[
        Extension("mcring._mcring", ["src/_mcring.c"],
                  extra_compile_args=["-std=gnu11", "-Wall", "-Wextra",
                                      "-Wno-unused-parameter",
                                      "-Wno-missing-field-initializers",
                                      "-Wno-cast-function-type"],
                  **libmcring())
    ],
)

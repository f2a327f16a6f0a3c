"""The artifact users get, tested as they would use it.

1. `python -m build`: the sdist, then the wheel built *from that sdist* (so a file missing
   from the sdist fails here).
2. For each non-editable `pip install ".[EXTRAS]" && ...` line of README's install section:
   a fresh venv, `pip install "<wheel>[EXTRAS]"`, then, from a folder outside the checkout
   with a fresh KERAS_HOME: an import smoke (the package comes from the venv, with the
   wheel's version), `keras-initkit --version`, a small `keras-initkit study`, the line's
   own commands (`keras-initkit demo`), and `PROGRAM --help` for every other program the
   README tells users to run (`tensorboard --logdir ...` needs `tensorboard`).

Run from the checkout's root in a venv that has `build`: `python .ci/wheel_smoke.py`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readme_promises  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, args)), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def check_wheel_contents(wheel: Path, version: str) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    required = ["keras_initkit/__init__.py", "keras_initkit/py.typed", "keras_initkit_cli.py"]
    missing = [name for name in required if name not in names]
    stray = sorted({n.split("/")[0] for n in names} - {"keras_initkit", "keras_initkit_cli.py",
                                                       f"keras_initkit-{version}.dist-info"})
    if missing or stray:
        sys.exit(f"{wheel.name}: missing {missing}, unexpected top-level entries {stray}")
    metadata = zipfile.ZipFile(wheel).read(f"keras_initkit-{version}.dist-info/METADATA")
    headers = metadata.decode().split("\n\n", 1)[0].splitlines()
    pinned = [h for h in headers
              if re.match(r"Requires-Dist: [\w.-]+(\[[^\]]*\])? *\(?==", h)]
    if pinned:
        sys.exit(f"{wheel.name}: users cannot install pinned requirements: {pinned}")


def smoke(line: readme_promises.InstallLine, wheel: Path, version: str, promised: list[str],
          work: Path) -> None:
    env_dir = work / ("venv-" + "-".join(line.extras or ["plain"]))
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND", "PYTHONHOME")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", KERAS_HOME=str(work / "keras-home"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    outside = work / ("cwd-" + env_dir.name)
    outside.mkdir()
    target = f"{wheel}[{','.join(line.extras)}]" if line.extras else str(wheel)
    started = time.monotonic()
    # --no-compile: byte-compiling all of TensorFlow is most of the install time here.
    run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-compile", target],
        env=env, cwd=outside)
    print(f"installed {target} in {time.monotonic() - started:.0f} s", flush=True)

    found = run([bin_dir / "python", "-c",
                 "import keras_initkit, keras; print(keras_initkit.__version__, "
                 "keras_initkit.__file__, keras.backend.backend())"],
                env=env, cwd=outside, capture_output=True, text=True).stdout.split()
    print("import:", *found)
    if found[0] != version or not Path(found[1]).is_relative_to(env_dir):
        sys.exit(f"import keras_initkit gave version {found[0]} from {found[1]}; "
                 f"expected {version} from {env_dir}")
    reported = run(["keras-initkit", "--version"], env=env, cwd=outside,
                   capture_output=True, text=True).stdout
    if version not in reported:
        sys.exit(f"keras-initkit --version printed {reported!r}; expected {version}")
    run(["keras-initkit", "study", "--activation", "tanh,relu", "--init", "glorot_normal",
         "--depth", "2", "--width", "16", "--batch", "32"], env=env, cwd=outside)
    for command in line.then:
        started = time.monotonic()
        run(["bash", "-c", command], env=env, cwd=outside)
        print(f"README: `{command}` ran in {time.monotonic() - started:.0f} s", flush=True)
    checked = set()
    for command in promised:
        program = readme_promises.program(command)
        if program in ("python", "python3") or program in checked or command in line.then:
            continue
        checked.add(program)
        if shutil.which(program, path=str(bin_dir)) is None:
            sys.exit(f"README promises `{command}`, but `{line.line}` installs no "
                     f"`{program}` (installed: {sorted(p.name for p in bin_dir.iterdir())})")
        run([program, "--help"], env=env, cwd=outside, stdout=subprocess.DEVNULL)
        print(f"README: `{command}`: {program} is installed and starts")


def main() -> None:
    readme = (ROOT / "README.md").read_text()
    version = re.search(r'__version__ = "([^"]+)"',
                        (ROOT / "keras_initkit" / "version.py").read_text())[1]
    lines = [line for line in readme_promises.install_lines(readme)
             if not line.editable and line.target == "."]
    if not lines:
        sys.exit("README's install section has no `pip install \".[...]\"` line to test")
    promised = readme_promises.promised_commands(readme)
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        run([sys.executable, "-m", "build", "--outdir", work / "dist", ROOT],
            stdout=subprocess.DEVNULL)
        print(f"built sdist and wheel in {time.monotonic() - started:.0f} s", flush=True)
        (wheel,) = (work / "dist").glob("*.whl")
        (sdist,) = (work / "dist").glob("*.tar.gz")
        print("built", wheel.name, sdist.name)
        check_wheel_contents(wheel, version)
        for line in lines:
            smoke(line, wheel, version, promised, work)
    print("wheel smoke: passed")


if __name__ == "__main__":
    main()

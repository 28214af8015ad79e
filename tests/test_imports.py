"""Architecture: the engine never imports the UI and nothing heavy happens at import."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_srum_core_imports_without_gradio():
    code = (
        "import sys, importlib, pkgutil\n"
        "sys.modules['gradio'] = None  # any import of gradio now fails\n"
        "import srum_core, srum_core.cli\n"
        "for m in pkgutil.walk_packages(srum_core.__path__, 'srum_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_the_engine_loads_no_heavy_model_libraries():
    code = (
        "import sys\n"
        "import srum_core, srum_core.cli, srum_core.rewards, srum_core.records\n"
        "heavy = [m for m in ('gradio', 'transformers', 'peft', 'accelerate', 'plotly') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_only_the_sandbox_knows_its_world():
    """The toy world sits behind the sandbox backend: no other engine or UI module imports it or asks for the
    sandbox by name (the embedded model under srum_core/tinyumm is trained on the world, so it may)."""
    import re

    allowed = {ROOT / "srum_core" / "backends" / "sandbox.py"}
    inside = (ROOT / "srum_core" / "world", ROOT / "srum_core" / "tinyumm")
    imports_world = re.compile(r"^\s*(from|import)\s+(srum_core|\.\.?)?\.?world\b", re.MULTILINE)
    asks_by_name = re.compile(r"""name\s*[!=]=\s*["']sandbox["']""")
    files = [ROOT / "app.py", *(ROOT / "srum_core").rglob("*.py"), *(ROOT / "workbench").rglob("*.py")]
    offenders = []
    for path in files:
        if path in allowed or any(folder in path.parents for folder in inside):
            continue
        text = path.read_text(encoding="utf-8")
        if imports_world.search(text) or "srum_core.world." in text or asks_by_name.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_benchmarks_and_experiments_are_packages_run_with_python_m():
    """``python -m bench.NAME`` / ``python -m experiments.NAME``: importable from the repository root with no
    ``sys.path`` edits, nothing run at import, and no benchmark importing another one (only the shared helpers)."""
    import re

    modules = []
    for package in ("bench", "experiments"):
        for path in sorted((ROOT / package).glob("*.py")):
            text = path.read_text(encoding="utf-8")
            assert "sys.path" not in text, path
            imported = set(re.findall(r"^\s*from (bench|experiments)\.(\w+) import", text, re.MULTILINE))
            # Benchmarks share bench.common; experiments share experiments.common and may reuse a speed measure.
            allowed = {("bench", "common")} if package == "bench" else {
                ("experiments", "common"), ("bench", "common"), ("bench", "bench_sandbox")
            }
            assert imported <= allowed, path
            modules.append(f"{package}.{path.stem}")
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + "print('ok')\n"
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

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

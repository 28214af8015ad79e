"""The one backend registry the CLI and the app share, and the app's refusal to hang on a full-size CPU model."""

import subprocess
import sys
from pathlib import Path

import pytest

from srum_core.backends import cpu_warning, load_backend, split_backend_name

ROOT = Path(__file__).resolve().parents[1]


def test_split_backend_name():
    assert split_backend_name("janus:/models/tiny") == ("janus", "/models/tiny")
    assert split_backend_name("Sandbox") == ("sandbox", None)
    assert split_backend_name("janus", "some/id") == ("janus", "some/id")


@pytest.mark.parametrize("name, message", [("nope", "unknown; choose one of sandbox"), ("janus", "needs a model")])
def test_bad_backend_names_say_how_to_fix(name, message):
    with pytest.raises(ValueError, match=message):
        load_backend(name, device="cpu")


def test_full_size_janus_on_cpu_is_estimated_and_sandbox_is_not():
    warning = cpu_warning("janus-pro-7b", device="cpu")
    assert warning is not None and "minutes per image" in warning and "GPU" in warning
    assert cpu_warning("sandbox", device="cpu") is None


def test_app_refuses_a_full_size_model_on_cpu_with_the_estimate():
    result = subprocess.run(
        [sys.executable, "app.py", "--backend", "janus-pro-1b", "--device", "cpu"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "minutes per image" in result.stderr and "--allow-slow-cpu" in result.stderr

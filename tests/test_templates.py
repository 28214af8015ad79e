"""Judge templates are filled without str.format: only the documented fields, nothing else in braces."""

from __future__ import annotations

import pytest

from srum_core.config import DEFAULT_GLOBAL_TEMPLATE, DEFAULT_REGION_TEMPLATE, GenerationConfig, JudgeConfig
from srum_core.limits import MAX_TEMPLATE_CHARS, MAX_TEMPLATE_FIELDS
from srum_core.templates import GLOBAL_FIELDS, REGION_FIELDS, fill_template, template_fields


def test_fields_are_filled_and_escaped_braces_stay_braces():
    text = fill_template("{{literal}} {prompt} in {region} ({object}) }}", prompt="a", region="b", object="c")
    assert text == "{literal} a in b (c) }"


def test_values_are_inserted_as_they_are():
    # A prompt with braces is data, never a template: nothing in it is interpreted.
    assert fill_template('"{prompt}"', prompt="{prompt.__class__} {0}") == '"{prompt.__class__} {0}"'


def test_the_default_templates_match_what_str_format_gave():
    prompt = "a red circle"
    assert fill_template(DEFAULT_GLOBAL_TEMPLATE, prompt=prompt) == DEFAULT_GLOBAL_TEMPLATE.format(prompt=prompt)
    fields = {"prompt": prompt, "region": "region [1, 2, 3, 4]", "object": "circle"}
    assert fill_template(DEFAULT_REGION_TEMPLATE, **fields) == DEFAULT_REGION_TEMPLATE.format(**fields)


@pytest.mark.parametrize(
    "template",
    [
        "{prompt:>20000000}",
        "{prompt.__class__.__mro__}",
        "{prompt[0]}",
        "{0}",
        "{}",
        "{foo}",
        "{ prompt }",
        "{prompt!r}",
    ],
)
def test_anything_but_a_plain_field_is_refused_naming_the_allowed_fields(template):
    with pytest.raises(ValueError, match=r"is not a field; use only \{prompt\}"):
        fill_template(template, prompt="x")


@pytest.mark.parametrize("template", ["{prompt", "prompt}", "a { b"])
def test_lone_braces_are_refused(template):
    with pytest.raises(ValueError, match="lone"):
        fill_template(template, prompt="x")


def test_length_and_field_count_are_bounded():
    with pytest.raises(ValueError, match=f"at most {MAX_TEMPLATE_CHARS}"):
        template_fields("x" * (MAX_TEMPLATE_CHARS + 1), GLOBAL_FIELDS)
    with pytest.raises(ValueError, match=f"at most {MAX_TEMPLATE_FIELDS}"):
        template_fields("{prompt}" * (MAX_TEMPLATE_FIELDS + 1), GLOBAL_FIELDS)


def test_judge_config_checks_its_templates():
    JudgeConfig(global_template="Is it {prompt}?", region_template="{object} at {region} for {prompt}?")
    with pytest.raises(ValueError, match=r"global_template: \{region\} is not a field; use only \{prompt\}"):
        JudgeConfig(global_template="{prompt} {region}")
    with pytest.raises(ValueError, match=r"use only \{prompt\}, \{region\}, \{object\}"):
        JudgeConfig(region_template="{prompt} {foo}")
    with pytest.raises(ValueError, match=r"must contain \{prompt\}"):
        JudgeConfig(region_template="{object}")
    assert REGION_FIELDS == ("prompt", "region", "object")


def test_backends_fill_templates_safely():
    from srum_core.backends.sandbox import SandboxBackend

    backend = SandboxBackend.from_random(seed=0, tiny=True)
    sample = backend.generate(["a red circle"], [0], GenerationConfig(steps=1))[0]
    judge = JudgeConfig(global_template="Q {{x}} {prompt}")
    verdict = backend.judge_global(sample.image, "a red circle", judge)
    assert verdict.question == "Q {x} a red circle"

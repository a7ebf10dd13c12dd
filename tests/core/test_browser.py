"""Browser workflow definitions: every action's arguments, problems named by step index and
argument, placeholders checked against the job's context and earlier extract steps."""

from __future__ import annotations

import pytest

from core.browser import (
    MAX_STEPS,
    InvalidSteps,
    Navigate,
    check_for_job,
    dump_steps,
    fill_in,
    parse_steps,
    with_values,
)


def problems_of(steps: object) -> dict[str, str]:
    with pytest.raises(InvalidSteps) as refused:
        parse_steps(steps)
    return refused.value.problems


def test_every_action_is_accepted_in_camel_or_snake_case():
    steps = parse_steps(
        [
            {"action": "navigate", "url": "https://example.com/a"},
            {"action": "click", "selector": "#go", "timeoutMs": 500},
            {"action": "fill", "selector": "#q", "value": ""},
            {"action": "select", "selector": "#plan", "value": "pro"},
            {"action": "wait_for", "text": "Done", "label": "results"},
            {"action": "extract", "selector": "a", "attribute": "href", "into": "link"},
            {"action": "screenshot", "full_page": True},
            {"action": "assert", "selector": ".ok"},
        ]
    )
    assert [s.action for s in steps] == [
        "navigate", "click", "fill", "select", "wait_for", "extract", "screenshot", "assert"
    ]  # fmt: skip
    assert steps[1].timeout_ms == 500 and steps[0].timeout_ms == 10_000
    assert dump_steps(steps)[6] == {"action": "screenshot", "full_page": True}


def test_each_problem_names_the_step_and_the_argument():
    problems = problems_of(
        [
            {"action": "click"},
            {"selector": "#x"},
            {"action": "jump"},
            {"action": "fill", "selector": "#q"},
            {"action": "assert"},
            {"action": "extract", "selector": "p", "into": "1st"},
            {"action": "navigate", "url": "javascript:alert(1)"},
            {"action": "click", "selector": "#a", "timeoutMs": 999_999},
            {"action": "click", "selector": "#a", "colour": "red"},
        ]
    )
    assert problems == {
        "steps[0].selector": "Field required",
        "steps[1]": "missing action; use one of navigate, click, fill, select, wait_for, "
        "extract, screenshot, assert",
        "steps[2]": "unknown action; use one of navigate, click, fill, select, wait_for, "
        "extract, screenshot, assert",
        "steps[3].value": "Field required",
        "steps[4]": "give exactly one of selector and text",
        "steps[5].into": "String should match pattern '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$'",
        "steps[6].url": "must be an http or https URL with a host",
        "steps[7].timeoutMs": "Input should be less than or equal to 120000",
        "steps[8].colour": "is not an argument of this action",
    }


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        ("navigate", "steps"),
        ([], "steps"),
        ([{"action": "click", "selector": "a"}] * (MAX_STEPS + 1), "steps"),
        (["click"], "steps[0]"),
    ],
)
def test_the_list_itself_is_checked(steps: object, where: str):
    assert where in problems_of(steps)


def test_placeholders_come_from_the_context_or_an_earlier_extract():
    steps = parse_steps(
        [
            {"action": "navigate", "url": "{{site}}/login"},
            {"action": "fill", "selector": "#name", "value": "{{ name }}"},
            {"action": "extract", "selector": "#id", "into": "account"},
            {"action": "navigate", "url": "https://x.test/accounts/{{account}}"},
            {"action": "fill", "selector": "#note", "value": "{{later}} {{missing}}"},
            {"action": "extract", "selector": "#l", "into": "later"},
        ]
    )
    with pytest.raises(InvalidSteps) as refused:
        check_for_job(steps, {"site": "https://x.test", "name": "Ada"})
    assert refused.value.problems == {
        "steps[4].value": "uses {{later}}, {{missing}}, which neither the job's context nor "
        "an earlier extract step gives"
    }
    with pytest.raises(InvalidSteps) as not_a_url:
        check_for_job(steps[:2], {"site": "x.test", "name": "Ada"})
    assert "steps[0].url" in not_a_url.value.problems
    check_for_job(steps[:4], {"site": "https://x.test", "name": "Ada"})


def test_values_are_filled_in_as_text():
    assert fill_in("{{a}}-{{ b }}-{{c}}-{{d}}", {"a": 1, "b": True, "c": "x"}) == "1-true-x-{{d}}"
    step = with_values(Navigate(action="navigate", url="{{site}}/p"), {"site": "http://h"})
    assert isinstance(step, Navigate) and step.url == "http://h/p"

"""Browser workflow definitions: the steps a WORKFLOW_EXECUTION job runs, and their rules.

A definition is a list of steps, each a JSON object with an ``action`` and its arguments
(camelCase or snake_case):

=============  =====================================================================
``navigate``   ``url`` (http or https)
``click``      ``selector``
``fill``       ``selector``, ``value``
``select``     ``selector``, ``value`` (an option's value or label)
``wait_for``   ``selector`` or ``text`` (exactly one)
``extract``    ``selector``, ``into`` (a variable name), ``attribute``? (text when absent)
``screenshot`` ``selector``? (the whole page when absent), ``fullPage``?
``assert``     ``selector`` or ``text`` (exactly one): present on the page
=============  =====================================================================

Every step may give ``timeoutMs`` (default 10 s, at most 2 minutes) and a ``label``.
String arguments may hold ``{{name}}`` placeholders, filled from the job's ``context`` or
from a variable an earlier ``extract`` step wrote. Definitions are checked when saved and
again, with the job's context, when a job is added; each problem names the step index and
the argument (``steps[2].selector``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_STEPS = 200
DEFAULT_STEP_TIMEOUT_MS = 10_000
MAX_STEP_TIMEOUT_MS = 120_000
MAX_NAME_LENGTH = 200

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"

Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
Selector = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000)]


class _Step(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="forbid",
        frozen=True,
    )  # fmt: skip

    timeout_ms: Annotated[int, Field(ge=1, le=MAX_STEP_TIMEOUT_MS)] = DEFAULT_STEP_TIMEOUT_MS
    label: Annotated[str, StringConstraints(max_length=200)] | None = None

    def texts(self) -> dict[str, str]:
        """The arguments that may hold placeholders."""
        return {
            name: value
            for name, value in self.model_dump(exclude={"action", "label"}).items()
            if isinstance(value, str)
        }


class Navigate(_Step):
    action: Literal["navigate"]
    url: Text

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        # A URL made of placeholders is checked once they are filled in (check_for_job).
        if not PLACEHOLDER.search(url):
            rule = _url_rule(url)
            if rule:
                raise ValueError(rule)
        return url


class Click(_Step):
    action: Literal["click"]
    selector: Selector


class Fill(_Step):
    action: Literal["fill"]
    selector: Selector
    value: Annotated[str, StringConstraints(max_length=10_000)]


class Select(_Step):
    action: Literal["select"]
    selector: Selector
    value: Text


class _SelectorOrText(_Step):
    selector: Selector | None = None
    text: Text | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _SelectorOrText:
        if (self.selector is None) == (self.text is None):
            raise ValueError("give exactly one of selector and text")
        return self


class WaitFor(_SelectorOrText):
    action: Literal["wait_for"]


class Assert(_SelectorOrText):
    action: Literal["assert"]


class Extract(_Step):
    action: Literal["extract"]
    selector: Selector
    into: Annotated[str, StringConstraints(pattern=VARIABLE_NAME)]
    attribute: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class Screenshot(_Step):
    action: Literal["screenshot"]
    selector: Selector | None = None
    full_page: bool = False


Step = Annotated[
    Navigate | Click | Fill | Select | WaitFor | Extract | Screenshot | Assert,
    Field(discriminator="action"),
]
ACTIONS = ("navigate", "click", "fill", "select", "wait_for", "extract", "screenshot", "assert")
_STEPS: TypeAdapter[list[Step]] = TypeAdapter(list[Step])


class InvalidSteps(ValueError):
    """A definition broke the rules; ``problems`` maps ``steps[i].argument`` to the rule."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {rule}" for where, rule in problems.items()))


def _where(location: Sequence[int | str]) -> str:
    # pydantic's location is (index, action tag, argument...); the tag says nothing here.
    index, *rest = location
    names = [str(part) for part in rest if part not in ACTIONS]
    return f"steps[{index}]" + "".join(f".{name}" for name in names)


def _rule(error: Mapping[str, Any]) -> str:
    if error["type"] == "union_tag_invalid":
        return f"unknown action; use one of {', '.join(ACTIONS)}"
    if error["type"] == "union_tag_not_found":
        return f"missing action; use one of {', '.join(ACTIONS)}"
    if error["type"] == "extra_forbidden":
        return "is not an argument of this action"
    return str(error["msg"]).removeprefix("Value error, ")


def parse_steps(steps: Any) -> list[Step]:
    """The steps of a definition, checked; InvalidSteps names each bad or missing argument."""
    if not isinstance(steps, list):
        raise InvalidSteps({"steps": "must be a list of steps"})
    if not steps:
        raise InvalidSteps({"steps": "must hold at least one step"})
    if len(steps) > MAX_STEPS:
        raise InvalidSteps({"steps": f"holds {len(steps)} steps; at most {MAX_STEPS}"})
    try:
        parsed = _STEPS.validate_python(steps)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            location = error["loc"]
            where = _where(location) if location and isinstance(location[0], int) else "steps"
            problems.setdefault(where, _rule(error))
        raise InvalidSteps(problems) from None
    return parsed


def check_for_job(steps: Sequence[Step], context: Mapping[str, Any]) -> None:
    """A saved definition against a job's context: every placeholder gets a value, and
    navigate URLs are valid once filled in."""
    problems = _placeholder_problems(steps, context=context)
    if not problems:
        for index, step in enumerate(steps):
            if isinstance(step, Navigate) and not _uses_variable(step.url, steps, index):
                rule = _url_rule(fill_in(step.url, context))
                if rule:
                    problems[f"steps[{index}].url"] = f"{rule} once filled in from the context"
    if problems:
        raise InvalidSteps(problems)


def _extracted_before(steps: Sequence[Step], index: int) -> set[str]:
    return {step.into for step in steps[:index] if isinstance(step, Extract)}


def _uses_variable(text: str, steps: Sequence[Step], index: int) -> bool:
    return bool(set(PLACEHOLDER.findall(text)) & _extracted_before(steps, index))


def _placeholder_problems(steps: Sequence[Step], *, context: Mapping[str, Any]) -> dict[str, str]:
    """Placeholders that neither the context nor an earlier extract step fills."""
    problems: dict[str, str] = {}
    for index, step in enumerate(steps):
        known = set(context) | _extracted_before(steps, index)
        for argument, text in step.texts().items():
            missing = sorted(set(PLACEHOLDER.findall(text)) - known)
            if missing:
                names = ", ".join("{{" + name + "}}" for name in missing)
                problems[f"steps[{index}].{to_camel(argument)}"] = (
                    f"uses {names}, which neither the job's context nor an earlier extract "
                    "step gives"
                )
    return problems


def _url_rule(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    return None


def fill_in(text: str, values: Mapping[str, Any]) -> str:
    """``text`` with each ``{{name}}`` replaced by its value (unknown names stay)."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        return value if isinstance(value, str) else _plain(value)

    return PLACEHOLDER.sub(value_of, text)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def with_values(step: Step, values: Mapping[str, Any]) -> Step:
    """The step with its placeholders filled in."""
    return step.model_copy(
        update={name: fill_in(text, values) for name, text in step.texts().items()}
    )


def dump_steps(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """The steps as stored: snake_case, defaults left out."""
    return [step.model_dump(mode="json", exclude_defaults=True) | {"action": step.action}
            for step in steps]  # fmt: skip

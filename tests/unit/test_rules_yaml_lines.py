"""rules.yaml_lines: values and key lines from PyYAML's node tree, and the fatal YAML problems."""

from __future__ import annotations

import string
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import ConfigError
from rules.yaml_lines import parse_yaml


def parse(text: str) -> Any:
    return parse_yaml(textwrap.dedent(text), "c.yaml")


def fatal(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return [str(issue) for issue in caught.value.errors]


def test_lines_of_block_and_flow_keys_and_list_items() -> None:
    doc = parse(
        """\
        a: 1
        b:
          c: [x, y]
          d: {e: 1,
              f: 2}
        items:
          - one
          - {k: v}
        """
    )
    assert doc.data == {
        "a": 1,
        "b": {"c": ["x", "y"], "d": {"e": 1, "f": 2}},
        "items": ["one", {"k": "v"}],
    }
    assert doc.lines[("a",)] == 1
    assert doc.lines[("b",)] == 2
    assert doc.lines[("b", "c", 1)] == 3
    assert doc.lines[("b", "d", "e")] == 4
    assert doc.lines[("b", "d", "f")] == 5
    assert doc.lines[("items", 0)] == 7
    assert doc.lines[("items", 1, "k")] == 8
    assert doc.issues == ()


def test_duplicate_keys_are_reported_at_the_second_and_the_last_value_wins() -> None:
    doc = parse(
        """\
        defaults:
          safety_buffer: 1
          cap: 3
          safety_buffer: 2
        """
    )
    assert doc.data == {"defaults": {"safety_buffer": 2, "cap": 3}}
    assert doc.lines[("defaults", "safety_buffer")] == 4
    [issue] = doc.issues
    assert (issue.file, issue.line, issue.path) == ("c.yaml", 4, "defaults.safety_buffer")
    assert "duplicate key 'safety_buffer' (first set at line 2)" in issue.message


def test_keys_keep_their_text_so_yaml_11_booleans_stay_names() -> None:
    doc = parse("channels: {on: 1, no: 2, 3: x}\n")
    assert doc.data == {"channels": {"on": 1, "no": 2, "3": "x"}}


def test_merge_keys_fill_in_and_point_at_the_anchor() -> None:
    doc = parse(
        """\
        base: &base
          safety_buffer: 1
          cap: 5
        rule:
          <<: *base
          cap: 9
        """
    )
    assert doc.data["rule"] == {"cap": 9, "safety_buffer": 1}
    assert doc.lines[("rule", "cap")] == 6
    assert doc.lines[("rule", "safety_buffer")] == 2
    assert doc.issues == ()


def test_recursive_alias_is_an_issue_not_a_crash() -> None:
    doc = parse("a: &x [1, *x]\n")
    assert [(i.line, i.path, i.message) for i in doc.issues] == [
        (1, "a[1]", "recursive YAML alias")
    ]


def test_unknown_tag_is_an_issue() -> None:
    doc = parse("a: !!python/name:os.system x\n")
    [issue] = doc.issues
    assert issue.line == 1 and issue.path == "a"
    assert issue.message.startswith("unsupported YAML tag")


def test_complex_key_is_an_issue() -> None:
    doc = parse("? [a, b]\n: 1\nc: 2\n")
    assert doc.data == {"c": 2}
    assert [i.line for i in doc.issues] == [1]


def test_invalid_yaml_reports_pyyaml_line() -> None:
    assert fatal("a: 1\nb: [1, 2\nc: 3\n") == [
        "c.yaml:3: invalid YAML: expected ',' or ']', but got ':'"
    ]


def test_bad_indentation_is_invalid_yaml_at_its_line() -> None:
    [message] = fatal("a:\n  b: 1\n c: 2\n")
    assert message.startswith("c.yaml:3: invalid YAML: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert fatal(text) == ["c.yaml:1: the file is empty (no settings)"]


@pytest.mark.parametrize(
    ("text", "line", "got"),
    [("\n- a\n- b\n", 2, "a list"), ("just words\n", 1, "the value 'just words'")],
)
def test_top_level_must_be_a_mapping(text: str, line: int, got: str) -> None:
    [message] = fatal(text)
    assert message.startswith(f"c.yaml:{line}: the top level must be a mapping")
    assert message.endswith(f"got {got}")


def test_several_documents_are_invalid() -> None:
    assert fatal("a: 1\n---\nb: 2\n") == [
        "c.yaml:2: invalid YAML: expected a single document in the stream, "
        "but found another document"
    ]


def test_restore_maps_keys_and_string_values() -> None:
    doc = parse_yaml("KEY: [VALUE, 1]\n", "c.yaml", restore=str.lower)
    assert doc.data == {"key": ["value", 1]}
    assert doc.lines[("key", 0)] == 1


_words = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)
_scalars = st.one_of(st.integers(-1000, 1000), st.booleans(), _words, st.none())
_trees = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_words, children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_words, _trees, min_size=1, max_size=4), st.booleans())
def test_values_match_safe_load_and_every_key_line_holds_that_key(
    data: dict[str, Any], flow: bool
) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, width=30)
    doc = parse_yaml(text, "c.yaml")
    assert doc.data == yaml.safe_load(text)
    source_lines = text.splitlines()
    for path, line in doc.lines.items():
        if path and isinstance(path[-1], str):
            assert path[-1] in source_lines[line - 1]

import pytest

from dfc.diagnostics import SpecError
from dfc.lang.yamlsrc import load_yaml


def load(text: str):
    return load_yaml("t.yaml", text.encode())


def test_core_schema_scalars():
    value, _ = load("on: worker\nyes: no\ntol: 1e-10\nn: 0x10\nflag: true\nnothing: null\nstr: '1'\n")
    assert value == {"on": "worker", "yes": "no", "tol": 1e-10, "n": 16, "flag": True, "nothing": None, "str": "1"}


def test_positions_of_keys_values_and_string_content():
    value, smap = load("a:\n  b: {c: [1, 'x y']}\n")
    assert value == {"a": {"b": {"c": [1, "x y"]}}}
    assert (smap.key(("a", "b")).line, smap.key(("a", "b")).col) == (2, 3)
    v = smap.value(("a", "b", "c", 1))
    assert (v.line, v.col) == (2, 14)
    c = smap.content_start(("a", "b", "c", 1))
    assert (c.col, c.end_col) == (15, 17)  # inside the quotes
    assert smap.value(("a", "missing", 3)) == smap.value(("a",))


@pytest.mark.parametrize(
    "text, code",
    [
        ("a: 1\na: 2\n", "duplicate-key"),
        ("a:\n\tb: 1\n", "yaml-tab"),
        ("a: [1, 2\n", "yaml-syntax"),
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("a: &x [*x]\n", "yaml-alias"),
        ("a: !!python/object:os.system 1\n", "yaml-tag"),
        ("a: !!binary aGVsbG8=\n", "yaml-tag"),
        ("? [1, 2]\n: 3\n", "yaml-key"),
        ("a: 1\n---\nb: 2\n", "yaml-syntax"),
        ("a: {b: 1  # note}\nc: 2\n", "yaml-comment"),
        ("a: [1, 2  # note]\n", "yaml-comment"),
        ("a: {b: '# no comment', c: 1\n", "yaml-syntax"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "yaml-depth"),
    ],
)
def test_rejections(text, code):
    with pytest.raises(SpecError) as info:
        load(text)
    assert info.value.diagnostics[0].code == code


def test_alias_bomb_is_refused_without_expanding():
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 12)]
    with pytest.raises(SpecError) as info:
        load("\n".join(lines) + "\n")
    assert info.value.diagnostics[0].code == "yaml-alias"


def test_every_duplicate_is_reported():
    with pytest.raises(SpecError) as info:
        load("a: 1\na: 2\nb: {c: 1, c: 2}\n")
    assert [d.pos.line for d in info.value.diagnostics] == [2, 3]


def test_bad_utf8_points_at_the_byte():
    with pytest.raises(SpecError) as info:
        load_yaml("t.yaml", b"a: 1\nb: \xff\n")
    d = info.value.diagnostics[0]
    assert (d.code, d.pos.line, d.pos.col) == ("encoding", 2, 4)


def test_a_comment_inside_a_one_line_flow_mapping_is_pointed_at():
    with pytest.raises(SpecError) as info:
        load("x: {a: 1, b: 2  # two keys}\ny: 3\n")
    (d,) = info.value.diagnostics
    assert (d.code, d.pos.line, d.pos.col) == ("yaml-comment", 1, 17)
    assert "not allowed inside {...} on one line" in d.hint

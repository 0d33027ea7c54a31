"""The one guard every untrusted JSON document goes through (:mod:`visdm.jsonsafe`): what it
refuses, that it refuses it in one line naming the input, and that it refuses nesting before
the parser recurses — the crash it exists for is shown with the guard off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from visdm.errors import ChainError, InvalidInputError, KeystoreError
from visdm.jsonsafe import (
    load_untrusted_json,
    load_untrusted_object,
    nesting_depth,
    one_line,
    read_untrusted_file,
)

from ._strategies import nested

pytestmark = pytest.mark.unit

NESTED = nested(100_000)


def load(data: bytes | str, **kwargs: object) -> object:
    return load_untrusted_json(data, what="doc.json", max_bytes=1 << 20, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "value"),
    [
        (b'{"a": [1, 2.5, "x", null, true]}', {"a": [1, 2.5, "x", None, True]}),
        ('{"é": "\\ud83d\\ude00"}', {"é": "😀"}),  # a surrogate *pair* is one character
        (b'\xef\xbb\xbf{"bom": 1}', {"bom": 1}),  # RFC 8259 lets a parser ignore a BOM
        (b'["[[[{{{", "\\\\", "\\""]', ["[[[{{{", "\\", '"']),  # brackets in strings
        (nested(64).encode(), json.loads(nested(64))),  # exactly the limit
        (b"[" + b"9" * 78 + b"]", [10**78 - 1]),  # a uint256's worth of digits
        (b"1e308", 1e308),
    ],
)
def test_valid_documents_read_as_the_standard_parser_reads_them(
    document: bytes | str, value: object
) -> None:
    assert load(document) == value


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (NESTED, r"nests deeper than 64 levels \(100,000\)"),
        ("[" * 100_000, r"nests deeper than 64 levels \(100,000\)"),  # unbalanced: still deep
        ('{"a":' * 65 + "1" + "}" * 65, r"nests deeper than 64 levels \(65\)"),
        ('{"a": 1, "a": 2}', "repeats the key 'a': give each key once"),
        ('{"x": NaN}', "x must be finite, got nan"),
        ('{"x": [-Infinity]}', r"x\[0\] must be finite, got -inf"),
        ('{"x": 1e999}', "x must be finite, got inf"),
        ('{"n": ' + "9" * 5000 + "}", "n has 5,000 digits, more than the 78 of a uint256"),
        ('{"label": "cat\\u0000"}', r"NUL character \(\\u0000\) in label"),
        ('{"k\\u0000": 1}', "NUL character .* in a key of the top level"),
        ('["\\udc00"]', r"unpaired surrogate \(\\udc00\) in \[0\]"),
        (b"\xff\xfe{\x00}\x00", "not valid JSON: it must be UTF-8 text, and byte 0 is 0xff"),
        (b'{"a": 1', "is not valid JSON"),
        ("[\n1,\n]", "is not valid JSON"),
    ],
)
def test_hostile_documents_are_refused_in_one_line_that_names_them(
    document: bytes | str, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem) as caught:
        load(document)
    message = str(caught.value)
    assert message.startswith("doc.json ") and len(message.splitlines()) == 1
    assert message.endswith("; check that it is the document you meant, or fix it")


def test_the_caller_chooses_the_error_the_limits_and_the_advice() -> None:
    with pytest.raises(KeystoreError, match=r"^key nests deeper than 2 levels \(3\); restore it$"):
        load_untrusted_json(
            "[[[1]]]",
            what="key",
            max_bytes=100,
            max_depth=2,
            error=KeystoreError,
            hint="restore it",
        )
    with pytest.raises(ChainError, match="is 11 bytes, over the 10-byte limit"):
        load_untrusted_json(b'"123456789"', what="d", max_bytes=10, error=ChainError)
    with pytest.raises(InvalidInputError, match=r"is not a JSON object \(it holds an array\)"):
        load_untrusted_object(b"[]", what="d", max_bytes=10)
    with pytest.raises(InvalidInputError, match="must be bytes or text, got int"):
        load_untrusted_json(7, what="d", max_bytes=10)  # type: ignore[arg-type]


def test_a_file_is_read_at_most_one_byte_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 1000)
    assert read_untrusted_file(path, what="big", max_bytes=1000) == b" " * 1000
    with pytest.raises(InvalidInputError, match="big is over the 999-byte limit"):
        read_untrusted_file(path, what="big", max_bytes=999)
    with pytest.raises(InvalidInputError, match="cannot be read: Is a directory"):
        read_untrusted_file(tmp_path, what="folder", max_bytes=10)
    with pytest.raises(FileNotFoundError):  # left to the caller, who knows how to make one
        read_untrusted_file(tmp_path / "absent.json", what="absent", max_bytes=10)


def test_a_name_with_line_breaks_keeps_the_message_on_one_line() -> None:
    with pytest.raises(InvalidInputError) as caught:
        load_untrusted_json(b"{", what="file\nname\u2028", max_bytes=10)
    assert str(caught.value).startswith("file\\nname\\u2028 is not valid JSON")
    assert one_line("plain text, é") == "plain text, é"


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'[{"a": [1]}, [[]]]', 3),
        (b'["]]]]", ["\\"[["]]', 2),  # an escaped quote does not end the string
        (b'["\\\\", ["x"]]', 2),  # an escaped backslash does not escape the quote after it
        (b'"[[[[', 0),  # an unterminated string hides nothing the parser would reach
        (b"]]]][[", 0),  # the parser stops at the first stray closer
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(raw: bytes, depth: int) -> None:
    assert nesting_depth(raw) == depth


def test_a_large_document_is_measured_in_chunks() -> None:
    from visdm import jsonsafe

    raw = (b'{"s": "]]]", "a": [[1]]},' * 1000)[:-1]
    small_chunks = jsonsafe._CHUNK
    try:
        jsonsafe._CHUNK = 7  # chunk boundaries inside strings and between brackets
        assert nesting_depth(b"[" + raw + b"]") == 4
    finally:
        jsonsafe._CHUNK = small_chunks


_CRASH = """
import sys
import eth_account  # py_ecc raises the recursion limit to 100000
from pathlib import Path
data = Path(sys.argv[2]).read_bytes()
if sys.argv[1] == "off":
    import json
    json.loads(data)
else:
    from visdm.assets import load_licence
    from visdm.errors import VisdmError
    try:
        load_licence(Path(sys.argv[2]))
    except VisdmError as exc:
        print(exc)
"""


@pytest.mark.attack
def test_a_deeply_nested_licence_file_is_refused_where_the_bare_parser_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "licence.json"
    path.write_text(NESTED)
    run = [sys.executable, "-c", _CRASH]
    guarded = subprocess.run([*run, "on", str(path)], capture_output=True, check=False, timeout=300)
    assert guarded.returncode == 0, guarded.stderr[-800:]
    assert guarded.stdout.decode().strip() == (
        f"licence file {path} nests deeper than 64 levels (100,000); fix it: it holds one small "
        "JSON object"
    )
    bare = subprocess.run([*run, "off", str(path)], capture_output=True, check=False, timeout=300)
    assert bare.returncode < 0, bare.stderr[-800:]  # killed by a signal: the C stack overflowed


@pytest.mark.attack
def test_a_deeply_nested_keystore_is_named_by_the_cli_and_the_others_still_listed(
    tmp_path: Path,
) -> None:
    keystore = tmp_path / "keystore"
    keystore.mkdir()
    (keystore / "evil.json").write_text(NESTED)
    env = {"VISDM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    show = subprocess.run(
        [sys.executable, "-m", "visdm", "account", "show", "evil"],
        capture_output=True,
        check=False,
        timeout=300,
        env=env,
    )
    assert show.returncode == KeystoreError.exit_code, show.stderr[-800:]
    (line,) = show.stderr.decode().strip().splitlines()
    assert line.startswith(f"error: keystore {keystore / 'evil.json'} is unusable: it nests")
    listed = subprocess.run(
        [sys.executable, "-m", "visdm", "account", "list"],
        capture_output=True,
        check=False,
        timeout=300,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr[-800:]
    assert "nests deeper than 64 levels" in listed.stderr.decode()

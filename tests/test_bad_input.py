"""Bad input is one line naming file and problem (exit 2), never a traceback, and writes nothing;
wrong values are refused instead of accepted silently."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tracekd.data import get_dataset
from tracekd.errors import InputError

GOOD_COTEMPQA = {
    "index": 0,
    "triple_element": "S1_R1_O2",
    "question": "While A was a member of B, which party did A belong to?",
    "facts": ["A is a member of the C in May 23, 2019."],
    "answer": ["C"],
}
GOOD_MSMARCO = {
    "query_id": 1,
    "query": "what is x",
    "query_type": "DESCRIPTION",
    "answers": ["x is y"],
    "passages": {"is_selected": [0, 1], "passage_text": ["a", "x is y"]},
}


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True, **kw)


def _one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def _jsonl(path: Path, *records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _prepare(source, dataset, out, *extra):
    return _cli("prepare", "--dataset", dataset, "--source", source, "--out", out, *extra)


# -- invalid UTF-8, in every reader -----------------------------------------------------------
def test_invalid_utf8_names_file_and_line(tmp_path):
    cot = tmp_path / "equal.json"
    cot.write_bytes((json.dumps(GOOD_COTEMPQA) + "\n").encode() + b'{"question": "caf\xe9"}\n')
    r = _prepare(cot, "cotempqa", tmp_path / "o1")
    _one_line_error(r, f"{cot}:2: not valid UTF-8 (byte 0xe9")
    ms = tmp_path / "ms.json"
    ms.write_bytes(b"[\n" + json.dumps(GOOD_MSMARCO).encode() + b',\n{"query": "\xff"}\n]\n')
    r = _prepare(ms, "msmarco", tmp_path / "o2")
    _one_line_error(r, f"{ms}:3: not valid UTF-8 (byte 0xff")
    babi = tmp_path / "qa1_single-supporting-fact_train.txt"
    babi.write_bytes(b"1 Mary went to the kitchen.\n2 Where is Mary?\tkitchen\t1\n1 John w\xc3nt home.\n")
    r = _prepare(babi, "babi", tmp_path / "o3", "--subset", "qa1")
    _one_line_error(r, f"{babi}:3: not valid UTF-8 (byte 0xc3 at column 9)")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([cot.name, ms.name, babi.name])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("prep") / "data"
    r = _cli("prepare", "--dataset", "synthetic-babi", "--size", 30, "--template", "tagged", "--out", d)
    assert r.returncode == 0, r.stderr
    return d, [json.loads(x) for x in (d / "test.jsonl").open()]


def test_predictions_not_utf8_or_with_a_lone_surrogate(tmp_path, prepared):
    d, test = prepared
    p = tmp_path / "p.jsonl"
    p.write_bytes(b'{"id": "x", "output": "\x80"}\n')
    _one_line_error(
        _cli("evaluate", "--data", d, "--predictions", p, "--out", tmp_path / "s.json"), f"{p}:1: not valid UTF-8"
    )
    p.write_text(
        "".join(json.dumps({"id": t["id"], "output": "ok"}) + "\n" for t in test[:-1])
        + '{"id": "'
        + test[-1]["id"]
        + '", "output": "half \\ud800 a pair"}\n'
    )
    r = _cli("evaluate", "--data", d, "--predictions", p, "--out", tmp_path / "s.json")
    _one_line_error(r, f"{p}:{len(test)}: contains a lone surrogate escape (\\ud800)")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.jsonl"]


def test_prepared_test_set_with_wrong_types(tmp_path, prepared):
    _d, test = prepared
    bad = tmp_path / "data"
    bad.mkdir()
    rec = dict(test[0], context=[{"id": 1, "text": "x"}])
    _jsonl(bad / "test.jsonl", rec)
    p = _jsonl(tmp_path / "p.jsonl", {"id": rec["id"], "output": "x"})
    r = _cli("evaluate", "--data", bad, "--predictions", p, "--out", tmp_path / "s.json")
    _one_line_error(r, f"{bad / 'test.jsonl'}:1: prepared record: field 'context' must be a list")
    _jsonl(bad / "test.jsonl", dict(test[0], evidence=["99"]))
    r = _cli("evaluate", "--data", bad, "--predictions", p, "--out", tmp_path / "s.json")
    _one_line_error(r, "evidence id '99' is not a context id")


# -- MS MARCO and CoTempQA field types ----------------------------------------------------------
@pytest.mark.parametrize(
    "change,needle",
    [
        (
            {"passages": {"is_selected": ["x"], "passage_text": ["a"]}},
            "field 'passages.is_selected' must be a list of 0 and 1",
        ),
        (
            {"passages": {"is_selected": [1], "passage_text": [7]}},
            "field 'passages.passage_text' must be a list of strings",
        ),
        ({"query": ["what", "is"]}, "field 'query' must be a non-empty string"),
        ({"query_id": {"a": 1}}, "field 'query_id' must be a non-negative integer or a one-line string, not an object"),
        ({"query_type": 5}, "unknown query_type 5; expected one of description, numeric, entity, location, person"),
        ({"answers": [3]}, "field 'answers' must be a list of strings"),
    ],
)
def test_msmarco_wrong_types(tmp_path, change, needle):
    f = _jsonl(tmp_path / "ms.jsonl", GOOD_MSMARCO, {**GOOD_MSMARCO, "query_id": 2, **change})
    with pytest.raises(InputError) as e:
        get_dataset("msmarco").read(str(f))
    assert str(e.value) == f"{f}:2: {needle}"


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"index": {"a": 1}}, "field 'index' must be a non-negative integer or a one-line string, not an object"),
        ({"index": True}, "field 'index' must be a non-negative integer or a one-line string, not a boolean"),
        ({"answer": [5]}, "field 'answer' must be a list of strings"),
        ({"answer": []}, "field 'answer' has no non-empty string"),
        ({"answer": ["  "]}, "field 'answer' has no non-empty string"),
        ({"facts": "A is B."}, "field 'facts' must be a list of strings"),
        ({"question": 3}, "field 'question' must be a non-empty string"),
        ({"triple_element": 3}, "field 'triple_element' must be a string"),
    ],
)
def test_cotempqa_wrong_values(tmp_path, change, needle):
    f = _jsonl(tmp_path / "equal.json", GOOD_COTEMPQA, {**GOOD_COTEMPQA, "index": 1, **change})
    with pytest.raises(InputError) as e:
        get_dataset("cotempqa").read(str(f))
    assert str(e.value) == f"{f}:2: {needle}"


# -- bAbI ---------------------------------------------------------------------------------------------
STORY = "1 Mary went to the kitchen.\n2 John went home.\n3 Where is Mary?\t{answer}\t{ids}\n"


@pytest.mark.parametrize(
    "answer,ids,needle",
    [
        (",", "1", "bAbI answer ',' names no answer"),
        ("kitchen", "", "bAbI question has no supporting sentence ids"),
        ("kitchen", "7", "supporting id(s) 7 are not story sentences before the question"),
    ],
)
def test_babi_bad_questions(tmp_path, answer, ids, needle):
    f = tmp_path / "qa1_single-supporting-fact_train.txt"
    f.write_text(STORY.format(answer=answer, ids=ids))
    with pytest.raises(InputError) as e:
        get_dataset("babi", subsets=["qa1"]).read(str(f))
    assert str(e.value) == f"{f}:3: {needle}"


def test_two_copies_of_a_babi_file_are_refused(tmp_path):
    for name in ("qa1_single-supporting-fact_train.txt", "qa1_single-supporting-fact-copy_train.txt"):
        (tmp_path / name).write_text(STORY.format(answer="kitchen", ids="1"))
    with pytest.raises(
        InputError,
        match=re.escape(
            "two files for bAbI task 1 (train): qa1_single-supporting-fact-copy_train.txt "
            "and qa1_single-supporting-fact_train.txt"
        ),
    ):
        get_dataset("babi", subsets=["qa1"]).read(str(tmp_path))


# -- limits -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flag,value",
    [
        ("--limit-train", -3),
        ("--limit-train", 0),
        ("--limit-test", 0),
        ("--size", 0),
        ("--data-seed", -1),
        ("--seed", 2**40),
    ],
)
def test_limits_must_be_positive(tmp_path, flag, value):
    r = _cli(
        "prepare",
        "--dataset",
        "synthetic-babi",
        *(["--size", 30] if flag != "--size" else []),
        flag,
        value,
        "--out",
        tmp_path / "o",
    )
    _one_line_error(r, flag if flag != "--seed" else "seed must be from 0")
    assert not (tmp_path / "o").exists()


# -- reports, output paths, read-only folders, a full disk -------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        "[]",
        "{}",
        '{"name": "x", "conditions": [], "groups": [{"dataset": 1}]}',
        '{"name": "x", "conditions": ["c"], "groups": [{"examples": ["../../etc/passwd"]}]}',
    ],
)
def test_report_on_a_results_file_that_is_not_one(tmp_path, content):
    (tmp_path / "results.json").write_text(content)
    r = _cli("report", tmp_path)
    _one_line_error(r, f"{tmp_path / 'results.json'}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_evaluate_out_naming_a_folder(tmp_path, prepared):
    d, test = prepared
    p = _jsonl(tmp_path / "p.jsonl", *({"id": t["id"], "output": "x"} for t in test))
    (tmp_path / "scores.json").mkdir()
    r = _cli("evaluate", "--data", d, "--predictions", p, "--out", tmp_path / "scores.json")
    _one_line_error(r, f"{tmp_path / 'scores.json'}: is a folder; name a file")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.jsonl", "scores.json"]
    assert list((tmp_path / "scores.json").iterdir()) == []


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    )


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody may write: read-only tmpfs as root, else mode 0555."""
    path = tmp_path / "ro"
    mounted = _mount_tmpfs(path, "ro,size=64k")
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions and cannot mount a read-only tmpfs here")
        path.chmod(0o555)
    yield path
    if mounted:
        subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o755)


def test_read_only_output_folder(readonly_dir, prepared):
    d, _ = prepared
    r = _cli("prepare", "--dataset", "synthetic-babi", "--size", 30, "--out", readonly_dir / "data")
    _one_line_error(r, f"{readonly_dir / 'data'}: Read-only file system" if os.geteuid() == 0 else "Permission denied")
    r = _cli("report", d)  # no results.json: refused before writing
    assert r.returncode == 2


@pytest.fixture
def full_disk(tmp_path):
    path = tmp_path / "full"
    if not _mount_tmpfs(path, "size=64k"):
        pytest.skip("needs root to mount a small tmpfs")
    yield path
    subprocess.run(["umount", str(path)], check=True)


def test_full_disk_on_a_real_small_filesystem(full_disk):
    r = _cli("prepare", "--dataset", "synthetic-temporal", "--size", 400, "--out", full_disk / "data")
    _one_line_error(r, f"{full_disk / 'data' / 'train.jsonl'}: No space left on device")
    assert [p.name for p in (full_disk / "data").iterdir()] == [".tracekd.lock"]


def test_full_disk_message_and_nothing_half_written(tmp_path, monkeypatch, capsys):
    """ENOSPC where the kernel reports it (fsync of the temporary file): one line, exit 2."""
    from tracekd import cli, jsonio

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(jsonio.os, "fsync", no_space)
    monkeypatch.setattr(
        sys, "argv", ["tracekd", "prepare", "--dataset", "synthetic-babi", "--size", "30", "--out", str(tmp_path / "d")]
    )
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path / 'd' / 'train.jsonl'}: No space left on device"
    assert [p.name for p in (tmp_path / "d").iterdir()] == [".tracekd.lock"]

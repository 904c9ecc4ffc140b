"""Teacher traces without a server: reasoning extraction, the cache, options, acceptance, and the
local backend (tracekd's own generator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from tracekd.data import get_dataset
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.generate.cache import ResponseCache, request_key
from tracekd.generate.openai_server import Malformed, _reply
from tracekd.prepare import prepare
from tracekd.teach.options import TeacherOptions
from tracekd.teach.run import judge, teach, teacher_messages
from tracekd.traces.teacher import split_reasoning


@pytest.mark.parametrize(
    "content, reasoning, want",
    [
        ("Paris", "The capital is Paris.", ("The capital is Paris.", "Paris")),
        ("<think>\nstep 1\n</think>\n\nParis", None, ("step 1", "Paris")),
        ("step 1\n</think>\nParis", None, ("step 1", "Paris")),  # template opened the block in the prompt
        ("<think>cut off by the token lim", None, ("cut off by the token lim", "")),
        ("Paris", None, (None, "Paris")),
        ("<think>a</think>Paris", "  ", ("a", "Paris")),  # an empty reasoning field is no reasoning
    ],
)
def test_split_reasoning(content, reasoning, want):
    assert split_reasoning(content, reasoning) == want


def test_reply_reads_reasoning_fields_and_rejects_malformed():
    from openai.types.chat import ChatCompletion

    def completion(message):
        return ChatCompletion.model_validate(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            }
        )

    r = _reply(completion({"role": "assistant", "content": "kitchen", "reasoning_content": "Mary went there."}))
    assert (r.content, r.reasoning, r.finish_reason) == ("kitchen", "Mary went there.", "stop")
    assert (
        _reply(completion({"role": "assistant", "content": "k", "reasoning": "vLLM's newer field"})).reasoning
        == "vLLM's newer field"
    )
    for bad in (
        "<html>oops</html>",
        ChatCompletion.model_construct(choices=None),
        ChatCompletion.model_construct(choices=[]),
    ):
        with pytest.raises(Malformed):
            _reply(bad)
    with pytest.raises(Malformed):
        _reply(completion({"role": "assistant", "content": None}))


def test_request_key_covers_id_teacher_prompt_params_and_sample():
    base = ("ex/1", "trace", "openai:m", [{"role": "user", "content": "q"}], {"temperature": 1.0, "seed": 0}, 0)
    k = request_key(*base)
    assert k == request_key(*base)
    for i, other in enumerate(
        ["ex/2", "summary", "openai:n", [{"role": "user", "content": "q2"}], {"temperature": 0.5, "seed": 0}, 1]
    ):
        changed = list(base)
        changed[i] = other
        assert request_key(*changed) != k, i


def test_cache_resumes_after_a_torn_line_and_names_a_bad_line(tmp_path):
    path = tmp_path / "responses.jsonl"
    c = ResponseCache(path)
    c.put({"key": "a", "reply": {"content": "x"}})
    c.put({"key": "a", "reply": {"content": "ignored: already cached"}})
    with path.open("a") as f:
        f.write('{"key": "b", "rep')
    c2 = ResponseCache(path)
    assert list(c2.records) == ["a"] and c2.get("a")["reply"]["content"] == "x"
    assert path.read_text().count("\n") == 1 and path.read_text().endswith("\n")
    path.write_text('{"key": "a", "reply": {"content": "x"}}\n{"nope": 1}\n')
    with pytest.raises(InputError, match=r"responses.jsonl:2: not a tracekd response-cache line"):
        ResponseCache(path)


def test_options_validate():
    assert TeacherOptions(model="m").sampling(2) == {"seed": 2}
    assert TeacherOptions(model="m", temperature=0.6, max_tokens=10).sampling(0) == {
        "temperature": 0.6,
        "max_tokens": 10,
        "seed": 0,
    }
    with pytest.raises(ValidationError, match="decodes greedily"):
        TeacherOptions(model="tiny-random", backend="local", samples=3)
    with pytest.raises(ValidationError, match="must contain"):
        TeacherOptions(model="m", summary_prompt="Summarise:")
    two = TeacherOptions(model="teacher", base_url="http://a/v1", summary_model="small", summary_base_url="http://b/v1")
    assert (two.summary_endpoint().model, two.summary_endpoint().base_url) == ("small", "http://b/v1")
    assert two.summary_sampling() == {"temperature": 0.0, "max_tokens": 200}


@pytest.mark.parametrize(
    "args, needle",
    [
        # checks of several options together (no single option in the error) used to end in a traceback
        (
            ["--model", "tiny-random", "--backend", "local", "--samples", "2"],
            "error: the local backend decodes greedily",
        ),
        (
            ["--model", "nosuch", "--serve"],
            "error: serve needs a tracekd model (a preset or a folder): unknown model 'nosuch'",
        ),
        (
            ["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--samples", "0"],
            "error: --samples: Input should be greater than or equal to 1",
        ),
        (
            ["--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--accept", "upstream"],
            "error: accept: 'upstream' is not a score of dataset 'synthetic-babi'",
        ),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, needle):
    prepare(
        DatasetConfig(name="synthetic-babi", size=20, limit_train=2, limit_test=1),
        "correct",
        "paper",
        0,
        tmp_path / "data",
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekd",
            "teach",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "teach"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "teach").exists()  # nothing asked, nothing written


def test_teacher_messages_drop_the_system_turn_unless_asked():
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert teacher_messages(prompt, TeacherOptions(model="m")) == [{"role": "user", "content": "U"}]
    assert teacher_messages(prompt, TeacherOptions(model="m", system=True, instruction=" Think.")) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U Think."},
    ]
    assert prompt[1]["content"] == "U"  # not modified in place


def test_judge_uses_the_dataset_scorer_and_the_upstream_option():
    ds = get_dataset("synthetic-temporal", size=4)
    ex = ds.load(None)[0]
    right = ", ".join(ex.answers)
    lenient = f"I think it is {right}, clearly."
    strict = judge(ds, ex, {"content": f"<think>hm</think>{lenient}", "reasoning": None}, "correct")
    assert strict["correct"] is False and strict["trace"] == "hm"
    assert judge(ds, ex, {"content": lenient, "reasoning": "hm"}, "upstream")["correct"] is True
    listed = judge(ds, ex, {"content": repr(list(ex.answers)), "reasoning": None}, "correct")
    assert listed["correct"] is True and listed["trace"] == repr(list(ex.answers))  # no separate reasoning
    with pytest.raises(InputError, match="upstream"):
        judge(
            get_dataset("synthetic-babi", size=5),
            get_dataset("synthetic-babi", size=5).load(None)[0],
            {"content": "x", "reasoning": None},
            "upstream",
        )


def test_local_backend_teaches_and_resumes(tmp_path):
    prepare(
        DatasetConfig(name="synthetic-babi", size=20, limit_train=3, limit_test=1),
        "correct",
        "paper",
        0,
        tmp_path / "data",
    )
    opts = TeacherOptions(backend="local", model="tiny-random", max_tokens=8, summary=True)
    s = teach(tmp_path / "data", tmp_path / "t", opts)
    assert s["requests"]["sent"] == {"trace": 4} and s["acceptance"]["overall"]["examples"] == 4
    rows = [json.loads(x) for x in (tmp_path / "t" / "teacher.jsonl").read_text().splitlines()]
    assert all("<think>" not in r["first"]["output"] for r in rows)  # no reasoning block: the reply is all
    again = teach(tmp_path / "data", tmp_path / "t", opts)
    assert again["requests"] == {"sent": {}, "cached": {"trace": 4}}


def test_a_second_teach_on_the_same_folder_is_refused(tmp_path):
    """The output folder is locked while `tracekd teach` works in it: another process (here: this
    test holding the lock) makes a second teach stop with one line, touching nothing."""
    from tracekd.lock import folder_lock

    prepare(
        DatasetConfig(name="synthetic-babi", size=20, limit_train=2, limit_test=1),
        "correct",
        "paper",
        0,
        tmp_path / "data",
    )
    with folder_lock(tmp_path / "teach", "test"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracekd",
                "teach",
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "teach"),
                "--model",
                "m",
                "--base-url",
                "http://127.0.0.1:9/v1",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    assert r.returncode == 2 and f"another tracekd process (pid {os.getpid()}) is working in this folder" in r.stderr
    assert sorted(p.name for p in (tmp_path / "teach").iterdir()) == [".tracekd.lock"]

"""The refresher's periodic log line says in words what the pass did."""

from __future__ import annotations

from sightscan.refresher import describe_pass


def test_a_training_already_running_is_said_in_words() -> None:
    line = describe_pass({"train": [("BERLIN", None)]})
    assert line == (
        "training of BERLIN is already queued or running (enough labelled photos)"
    )
    assert "{" not in line and "None" not in line


def test_every_duty_of_a_pass_is_described() -> None:
    line = describe_pass({"refreshed_changes": 12, "requeued_jobs": [4, 7],
                          "label": ("KÖLN", 9), "train": [("ROME", 10)]})
    assert line.split("; ") == [
        "data marts refreshed with 12 new arrival(s)",
        "job(s) 4, 7 queued again (worker stopped or message lost)",
        "labelling of KÖLN queued as job 9",
        "training of ROME queued as job 10 (enough labelled photos)",
    ]


def test_an_idle_pass_says_so() -> None:
    assert describe_pass({"refreshed_changes": 0, "requeued_jobs": []}) == "nothing to do"

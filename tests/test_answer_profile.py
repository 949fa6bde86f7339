"""The answer profile: the seeds' advice as a default, files that replace it, bad files refused."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from redialer.answer_profile import DAYS, AnswerProfile, parse_profile
from redialer.loading import InvalidInput

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "answer-profile.yaml"
MONDAY = 23  # 2026-11-23 is a Monday; day MONDAY + n of November 2026 is DAYS[n]


def at(day: str, hour: int, minute: int = 0) -> datetime:
    """A local wall time in the week of 2026-11-23."""
    return datetime(2026, 11, MONDAY + DAYS.index(day), hour, minute)


def test_the_default_has_the_seeds_shape():
    """Weekdays peak at 10-11 and 16-18, lunch is the worst of the working day, nights are
    near zero, weekends are lower than weekdays at every daytime hour."""
    p = AnswerProfile.default().probability
    assert p(at("tuesday", 10)) > p(at("tuesday", 12, 30))
    assert p(at("tuesday", 10)) == max(p(at("tuesday", h)) for h in range(24))
    assert p(at("tuesday", 16)) >= 0.45 and p(at("tuesday", 17, 59)) >= 0.45
    working_day = [p(at("tuesday", h)) for h in range(9, 21)]
    assert p(at("tuesday", 12, 30)) == p(at("tuesday", 13, 30)) == min(working_day)
    assert 0.2 <= sum(working_day) / len(working_day) <= 0.4  # first attempts: 20-40 %
    for day in DAYS:
        assert p(at(day, 3)) <= 0.05 and p(at(day, 22)) <= 0.05
    for hour in range(8, 21):
        assert p(at("saturday", hour)) < p(at("tuesday", hour)), hour
        assert p(at("sunday", hour)) < p(at("tuesday", hour)), hour
    assert p(at("friday", 16)) < p(at("tuesday", 16))  # "Friday: lower afternoon rates"


def test_the_example_file_is_the_default_written_out():
    assert AnswerProfile.load(EXAMPLE) == AnswerProfile.default()


def test_a_file_replaces_the_default_most_specific_table_first(tmp_path: Path):
    """Its day, then `weekend`, then `hours`, then `default`; hours as numbers (YAML) or spans."""
    path = tmp_path / "profile.yaml"
    path.write_text(
        "default: 0.1\n"
        "hours: {10: 0.9, '16-18': 0.6}\n"
        "weekend: {'10': 0.5}\n"
        "days: {Tuesday: {'10-12': 0.7}, sunday: {'16': 0.05}}\n"
    )
    p = AnswerProfile.load(path).probability
    assert p(at("monday", 10, 59)) == 0.9
    assert (p(at("tuesday", 10)), p(at("tuesday", 11, 59))) == (0.7, 0.7)
    assert p(at("saturday", 10)) == 0.5
    assert p(at("sunday", 11)) == 0.1  # listed by no table: the file's default, not DEFAULT's
    assert (p(at("sunday", 16)), p(at("sunday", 17)), p(at("monday", 18))) == (0.05, 0.6, 0.1)
    assert p(at("monday", 3)) == 0.1
    as_json = tmp_path / "profile.json"
    as_json.write_text(json.dumps({"default": 0, "hours": {"0-24": 1}}))
    everywhere = AnswerProfile.load(as_json)
    assert {v for day in everywhere.table for v in day} == {1.0}


def test_a_bad_profile_lists_every_problem_with_its_field_value_and_rule(tmp_path: Path):
    path = tmp_path / "profile.yaml"
    path.write_text(
        "hour: {'10': 0.5}\n"
        "hours:\n"
        "  '25': 0.5\n"
        "  '10': 1.5\n"
        "  '9-8': 0.2\n"
        "  '12-14': 0.1\n"
        "  '13': 0.2\n"
        "  '8': high\n"
        "weekend: [0.2]\n"
        "days: {funday: {'10': 0.1}, monday: {'10': -0.1, '11': true}}\n"
    )
    with pytest.raises(InvalidInput) as info:
        AnswerProfile.load(path)
    found = [(p.path, p.value) for p in info.value.problems]
    assert found == [
        ("hour", "hour"),
        ("default", None),
        ("hours.25", "25"),
        ("hours.10", 1.5),
        ("hours.9-8", "9-8"),
        ("hours.13", "13"),
        ("hours.8", "high"),
        ("weekend", [0.2]),
        ("days.funday", "funday"),
        ("days.monday.10", -0.1),
        ("days.monday.11", True),
    ]
    rules = {p.path: p.rule for p in info.value.problems}
    assert "unknown field" in rules["hour"] and "hours" in rules["hour"]
    assert "required" in rules["default"]
    assert "0" in rules["hours.25"] and "23" in rules["hours.25"]
    assert rules["hours.10"] == "must be a probability from 0 to 1"
    assert "overlaps '12-14'" in rules["hours.13"]
    assert "monday" in rules["days.funday"]
    assert str(path) in str(info.value) and "11 problem(s)" in str(info.value)


@pytest.mark.parametrize("document", [[0.2], "0.2", None])
def test_a_profile_that_is_not_a_mapping_is_refused(document: object):
    with pytest.raises(InvalidInput) as info:
        parse_profile(document, source="p")
    assert [p.path for p in info.value.problems] == [""]
    assert "mapping" in info.value.problems[0].rule

"""Tests for the ``cidr_problems``, ``cidr_family``, ``cidr_contains`` and
``cidr_overlapping`` filters used by the runner_firewall role."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.gitlab_runner.plugins.filter.cidr import (
    FilterModule,
    cidr_contains,
    cidr_family,
    cidr_overlapping,
    cidr_problems,
)


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"cidr_problems", "cidr_family", "cidr_contains", "cidr_overlapping"}


@pytest.mark.parametrize("good", [
    [], None, ["10.0.0.0/8"], ["192.0.2.1"], ["2001:db8::/32"], ["fd00:ec2::254"], ["0.0.0.0/0", "::/0"],
    (" 198.51.100.0/24 ",),
])
def test_good_lists_have_no_problems(good):
    assert cidr_problems(good, "x") == []


@pytest.mark.parametrize("entry, words", [
    ("10.0.0.1/8", "has host bits set; the network is 10.0.0.0/8"),
    ("300.1.2.3", "is not an IP address or network"),
    ("10.0.0.0/33", "is not an IP address or network"),
    ("bogus", "is not an IP address or network"),
    ("", "is empty"),
    ("fe80::1%eth0", "zone id"),
    (8080, "is not a string"),
    (True, "is not a string"),
    (None, "is not a string"),
    ("10.0.0.0/8; flush ruleset", "is not an IP address or network"),
])
def test_bad_entries_are_named_with_label_and_index(entry, words):
    problems = cidr_problems(["192.0.2.0/24", entry], "runner_firewall_blocked_cidrs")
    assert len(problems) == 1
    assert problems[0].startswith("runner_firewall_blocked_cidrs[1] ")
    assert words in problems[0]


@pytest.mark.parametrize("value", ["10.0.0.0/8", {"a": 1}, 5])
def test_a_value_that_is_not_a_list_is_one_problem(value):
    problems = cidr_problems(value, "runner_firewall_ssh_allowed_cidrs")
    assert len(problems) == 1
    assert problems[0].startswith("runner_firewall_ssh_allowed_cidrs must be a list")


def test_family_splits_and_normalizes():
    values = ["10.0.0.0/8", "2001:DB8::/32", "192.0.2.1", "bogus", "10.0.0.0/8", "::ffff:198.51.100.7"]
    assert cidr_family(values, 4) == ["10.0.0.0/8", "192.0.2.1/32", "198.51.100.7/32"]
    assert cidr_family(values, 6) == ["2001:db8::/32"]
    assert cidr_family(None, "6") == []


def test_family_refuses_other_families_and_non_lists():
    with pytest.raises(AnsibleFilterError):
        cidr_family(["10.0.0.0/8"], 5)
    with pytest.raises(AnsibleFilterError):
        cidr_family("10.0.0.0/8", 4)


@pytest.mark.parametrize("cidrs, address, expected", [
    (["172.18.0.0/16"], "172.18.0.1", True),
    (["172.18.0.1/32"], "172.18.0.1", True),
    (["172.18.0.2/32"], "172.18.0.1", False),
    (["172.18.0.0/16"], "::ffff:172.18.0.1", True),
    (["::ffff:172.18.0.0/112"], "172.18.0.1", True),
    (["2001:db8::/32"], "2001:db8::1", True),
    (["0.0.0.0/0"], "2001:db8::1", False),
    ([], "192.0.2.1", False),
    (["bogus", "192.0.2.0/24"], "192.0.2.9", True),
    (["10.0.0.0/8"], "10.1.0.0/16", True),
    (["10.1.0.0/16"], "10.0.0.0/8", False),
])
def test_contains(cidrs, address, expected):
    assert cidr_contains(cidrs, address) is expected


def test_contains_refuses_a_malformed_address():
    with pytest.raises(AnsibleFilterError):
        cidr_contains(["10.0.0.0/8"], "10.0.0.300")


def test_overlapping():
    metadata = ["169.254.169.254", "fd00:ec2::254", "100.100.100.200"]
    assert cidr_overlapping(["169.254.0.0/16", "192.0.2.0/24", "fd00::/8", "bogus"], metadata) == ["169.254.0.0/16", "fd00::/8"]
    assert cidr_overlapping(["10.0.0.0/8"], metadata) == []
    assert cidr_overlapping([], metadata) == []

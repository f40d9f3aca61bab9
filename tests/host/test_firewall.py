"""The collection's nftables table and the unit that loads it (roles/runner_firewall), where expected (--expect-firewall)."""

from baseline import q, run


def test_firewall_table_loaded(root_host, expected, firewall_expected):
    rc, out, err = run(root_host, "nft list table inet %s" % q(expected.firewall_table))
    assert rc == 0, "the nftables table inet %s is not loaded (%s), though %s" % (expected.firewall_table, err or out, firewall_expected)
    assert "chain " in out, "the table inet %s has no chains" % expected.firewall_table


def test_firewall_unit_enabled_and_active(root_host, expected, firewall_expected):
    unit = expected.firewall_service + ".service"
    enabled = run(root_host, "systemctl is-enabled %s" % q(unit))[1] or "not found"
    active = run(root_host, "systemctl is-active %s" % q(unit))[1] or "not found"
    assert (enabled, active) == ("enabled", "active"), (
        "%s is %s and %s, not enabled and active, though %s" % (unit, enabled, active, firewall_expected))
    # It is the unit that brings the table back at boot: its rule file holds the table.
    exec_start = run(root_host, "systemctl show -p ExecStart --value %s" % q(unit))[1]
    argv = exec_start.partition("argv[]=")[2].partition(" ;")[0].split()
    rules = argv[argv.index("-f") + 1] if "-f" in argv[:-1] else None
    assert argv and argv[0].endswith("nft") and rules, "%s does not run nft -f <rule file>: %s" % (unit, exec_start)
    rc, out, _err = run(root_host, "grep -cE %s %s" % (q("^table inet %s( |\\{|$)" % expected.firewall_table), q(rules)))
    assert rc == 0 and int(out or 0) > 0, "%s loads %s, which does not define the table inet %s" % (unit, rules, expected.firewall_table)

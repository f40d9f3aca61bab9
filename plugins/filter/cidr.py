"""Controller-side filters for IP address and network (CIDR) lists.

Written for the firewall role, whose rules are only as good as the address
lists they are built from: a typo in an allow-list must stop the run before
anything is applied, with a message that names the variable, instead of
becoming an nftables syntax error half-way through, or worse, a rule that
matches something else than meant.

``cidr_problems``
    why entries of a list are not IP addresses or networks (``[]`` when all are);
``cidr_family``
    the entries of one address family (4 or 6), normalized (``10.0.0.0/8``,
    ``192.0.2.1/32``), for an nftables set of that family;
``cidr_contains``
    whether an address lies in any entry of a list;
``cidr_overlapping``
    the entries of a list that overlap any entry of another list.

Only Python's ``ipaddress`` module is used, nothing on the host.  A bare
address counts as a one-address network.  A network with host bits set
(``10.0.0.1/8``) is a problem, not silently widened: it usually means a
mistyped prefix.  Zone ids (``fe80::1%eth0``) are problems too: nftables
sets cannot hold them.  An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``)
is read as the IPv4 address it carries by ``cidr_contains`` (that is how
``SSH_CLIENT`` shows an IPv4 client of a dual-stack sshd).

Documentation for ``ansible-doc`` lives in the sidecar files
``cidr_problems.yml``, ``cidr_family.yml``, ``cidr_contains.yml`` and
``cidr_overlapping.yml`` next to this file.
"""

import ipaddress

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - used outside Ansible
    AnsibleFilterError = ValueError

_MAX_SHOWN = 80


def _shown(value):
    """Return a short printable form of an offending value."""
    text = repr(value) if not isinstance(value, str) else "'" + value + "'"
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...'"


def _parse(value):
    """Return ``(network, problem)`` for one entry; exactly one is None."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None, "is not a string"
    text = value.strip()
    if not text:
        return None, "is empty"
    if "%" in text:
        return None, "has a zone id, which firewall rules cannot hold"
    try:
        return ipaddress.ip_network(text, strict=True), None
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None, "is not an IP address or network in CIDR form"
    return None, "has host bits set; the network is %s" % loose


def _entries(values, name):
    """Return ``values`` as a list, or raise when it cannot be one."""
    if values is None:
        return []
    if isinstance(values, str) or isinstance(values, dict) or not hasattr(values, "__iter__"):
        raise AnsibleFilterError("%s expects a list of addresses or networks, got %s" % (name, type(values).__name__))
    return list(values)


def _networks(values, name):
    """Yield the parsable entries of ``values`` as networks (others are skipped)."""
    for value in _entries(values, name):
        network, _problem = _parse(value)
        if network is not None:
            yield network


def _unmapped(network):
    """Return an IPv4-mapped IPv6 network as the IPv4 network it carries."""
    if network.version == 6 and network.network_address.ipv4_mapped is not None and network.prefixlen >= 96:
        return ipaddress.ip_network("%s/%d" % (network.network_address.ipv4_mapped, network.prefixlen - 96))
    return network


def cidr_problems(values, label="value"):
    """Return why entries of ``values`` are not IP addresses or networks.

    Each message names ``label`` (the variable the list came from), the
    entry's position and the entry.  A value that is not a list at all is one
    problem.
    """
    if values is None:
        return []
    if isinstance(values, (str, dict)) or not hasattr(values, "__iter__"):
        return ["%s must be a list of IP addresses or networks (CIDR); got %s." % (label, _shown(values))]
    problems = []
    for index, value in enumerate(values):
        _network, problem = _parse(value)
        if problem:
            problems.append("%s[%d] %s %s." % (label, index, _shown(value), problem))
    return problems


def cidr_family(values, family):
    """Return the entries of one address family, normalized and deduplicated, in order."""
    if family not in (4, 6, "4", "6"):
        raise AnsibleFilterError("cidr_family: family must be 4 or 6, got %r" % (family,))
    family = int(family)
    result = []
    for network in _networks(values, "cidr_family"):
        network = _unmapped(network)
        text = str(network)
        if network.version == family and text not in result:
            result.append(text)
    return result


def cidr_contains(values, address):
    """Return whether ``address`` (an address or a network) lies inside an entry of ``values``."""
    inner, problem = _parse(address if not isinstance(address, str) else address.strip())
    if problem:
        raise AnsibleFilterError("cidr_contains: %s %s" % (_shown(address), problem))
    inner = _unmapped(inner)
    for network in _networks(values, "cidr_contains"):
        network = _unmapped(network)
        if network.version == inner.version and inner.subnet_of(network):
            return True
    return False


def cidr_overlapping(values, others):
    """Return the entries of ``values`` (as given) that overlap an entry of ``others``."""
    other_networks = [_unmapped(n) for n in _networks(others, "cidr_overlapping")]
    result = []
    for value in _entries(values, "cidr_overlapping"):
        network, _problem = _parse(value)
        if network is None:
            continue
        network = _unmapped(network)
        if any(o.version == network.version and o.overlaps(network) for o in other_networks):
            result.append(value)
    return result


class FilterModule(object):
    """Ansible filter plugin: IP address and network list checks."""

    def filters(self):
        """Return the filters this plugin provides."""
        return {
            "cidr_problems": cidr_problems,
            "cidr_family": cidr_family,
            "cidr_contains": cidr_contains,
            "cidr_overlapping": cidr_overlapping,
        }

"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test creates one virtualenv per sanity test and installs pip into it by
downloading https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py.
That host is not reachable from the machines this collection is tested on, while
PyPI is. ansible-test documents that the bootstrap script may be saved by hand to
~/.ansible/test/cache/get_pip_<version>.py; scripts/ansible-test.sh saves this file
there instead. It does what get-pip.py does with the arguments ansible-test passes
(pip options and pinned packages such as pip==24.2): put a pip into the running
interpreter with the standard library's ensurepip, then let that pip install the
pinned packages from the package index.
"""

import subprocess
import sys

# get-pip.py's own switches; pip itself does not know them.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    """Bootstrap pip, then install what ansible-test asked for."""
    # In a child process: ensurepip.bootstrap() would set PIP_CONFIG_FILE=/dev/null
    # in this one, and the pip run below would lose the machine's index and CA.
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.check_call(
        [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade"] + args
    )


if __name__ == "__main__":
    main()

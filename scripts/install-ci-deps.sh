#!/usr/bin/env bash
# Installs what the tests need beyond cargo, non-interactively, skipping what is present:
# - Chromium, for tests/report_browser.rs (headless screenshot of report.html);
# - chromium-driver (Debian) and Selenium (PyPI), for tests/explorer_browser.rs
#   (scripts/check_report_browser.py drives the report's explorer in headless Chromium);
# - ONNX Runtime and numpy (PyPI, versions pinned below), for tests/onnx_export.rs (scripts/check_onnx_export.py);
# - Slurm and munge (Debian: slurmctld slurmd slurm-client munge), for tests/sweep_slurm.rs, the
#   `bitsearch sweep --slurm` test, which runs its own one-node cluster (scripts/slurm-cluster.sh);
# - Fashion-MNIST (Debian: dataset-fashion-mnist, into /usr/share/datasets/fashion-mnist), the
#   data of experiments/*-fashion.toml and of tests/fashion.rs.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then $SUDO apt-get update; apt_updated=1; fi
    $SUDO apt-get install -y --no-install-recommends "$@"
}
# apt_tool BINARY PACKAGE: installs the Debian package unless BINARY is there.
apt_tool() {
    if [ -x "$1" ]; then
        echo "$(basename "$1"): present ($("$1" --version 2>/dev/null || echo unknown version))"
        return
    fi
    apt_install "$2"
    "$1" --version
}
apt_tool /usr/bin/chromium chromium
if [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    echo "fashion-mnist: present ($(dpkg-query -W -f='${Version}' dataset-fashion-mnist 2>/dev/null || echo 'not from the package'))"
else
    apt_install dataset-fashion-mnist
    ls /usr/share/datasets/fashion-mnist
fi
apt_tool /usr/bin/chromedriver chromium-driver
# pip_install MODULE PACKAGE...: installs the PyPI packages unless python3 imports MODULE.
pip_install() {
    local module=$1; shift
    if python3 -c "import $module" 2>/dev/null; then
        echo "$module: present ($(python3 -c "import $module; print($module.__version__)"))"
        return
    fi
    command -v python3 > /dev/null || apt_install python3
    python3 -m pip --version > /dev/null 2>&1 || apt_install python3-pip
    # Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
    python3 -m pip install --quiet "$@" \
        || python3 -m pip install --quiet --break-system-packages "$@"
    python3 -c "import $module; print('$module:', $module.__version__)"
}
# Pinned, so a new release cannot change what the tests run against (or what is installed).
# selenium 4.52 and 4.53 require a certifi (>= 2026.10.23) that the package index reachable here
# does not have, so pip cannot resolve them; 4.51 resolves.
pip_install selenium selenium==4.51.0
pip_install numpy numpy==2.4.6
pip_install onnxruntime onnxruntime==1.32.0
if [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/bin/sbatch ] \
    && [ -x /usr/sbin/munged ]; then
    echo "slurm: present ($(/usr/sbin/slurmctld -V), $(/usr/sbin/munged --version))"
else
    apt_install slurmctld slurmd slurm-client munge
    # Where an init system runs, the packages start their services on install (in a container
    # policy-rc.d forbids it and nothing starts). A system slurmctld/slurmd would hold ports
    # 6817/6818 and clash with the test's own cluster (scripts/slurm-cluster.sh), so stop them.
    for service in slurmd:slurmd slurmctld:slurmctld munge:munged; do
        if pgrep -x "${service#*:}" > /dev/null; then
            echo "stopping the system ${service%%:*} service that installation started"
            $SUDO service "${service%%:*}" stop || $SUDO systemctl stop "${service%%:*}" || true
        fi
    done
    echo "slurm: $(/usr/sbin/slurmctld -V), $(/usr/sbin/munged --version)"
fi

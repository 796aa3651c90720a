#!/bin/bash
# tests/bench/peers/install.sh: the peers and tools the benchmarks need, from Debian's archive
# (as root; idempotent): Postfix (its smtpd, smtp-sink and smtp-source), Dovecot's POP3 server,
# valgrind (callgrind figures), sqlite3, bc, aiosmtpd and uvloop (python_bench.py), dkimpy and
# dnsmasq (auth_bench.py: a C name server answering from its configuration). No daemon is started or configured system-wide:
# Postfix is preseeded to "No configuration" and service starts are refused while apt runs.
set -eu
packages=(postfix dovecot-core dovecot-pop3d valgrind sqlite3 bc iproute2 python3 python3-aiosmtpd python3-uvloop python3-dkim dnsmasq-base)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || { echo "all installed: ${packages[*]}"; exit 0; }
echo "installing: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1; fi
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
((made_policy)) && rm -f "$policy"
echo "installed"

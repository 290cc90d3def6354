#!/bin/bash
# Sourced after lib.sh by the scenarios with receiving peers: $PEERS, the
# DNSSEC bed (dns_peers.sh) and the receivers (delivery_peers.sh), all
# stopped on exit. The scratch directories are open to others because
# Postfix's virtual(8), smtp-sink and nginx's workers do not run as root.
chmod 755 "$E2E_DIR"
PEERS=$E2E_DIR/peers
mkdir -p "$PEERS"
chmod 755 "$PEERS"
source "$(dirname "${BASH_SOURCE[0]}")/dns_peers.sh"
source "$(dirname "${BASH_SOURCE[0]}")/delivery_peers.sh"
trap 'dp_stop; e2e_cleanup' EXIT

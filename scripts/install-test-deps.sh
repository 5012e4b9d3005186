#!/usr/bin/env bash
# Installs the reference tools the compatibility tests run against. Idempotent.
set -euo pipefail
echo "install-test-deps: nothing to install yet"

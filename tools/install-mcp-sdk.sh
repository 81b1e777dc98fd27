#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs the official MCP SDK (@modelcontextprotocol/sdk, npm) that tests/mcp drives
# `claudemeshctl mcp` with, into DIR (default: the cache directory the tests look in).
set -eu
DIR=${1:-${CLAUDEMESH_MCP_SDK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/claudemesh-tests/mcp-sdk}}
if ! command -v npm >/dev/null 2>&1; then
        echo "install-mcp-sdk: npm is not installed (Debian: apt-get install npm)" >&2
        exit 1
fi
mkdir -p "$DIR"
# major version 1: the Client/StdioClientTransport API the tests use
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error '@modelcontextprotocol/sdk@1' >&2
echo "$DIR"

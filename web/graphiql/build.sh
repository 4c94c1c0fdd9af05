#!/usr/bin/env bash
# Rebuilds banxway/static/graphiql/ (GraphiQL for the development server) from the pinned npm packages of
# package-lock.json. Needs Node.js 18+ and npm; commit what it writes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund
node build.mjs

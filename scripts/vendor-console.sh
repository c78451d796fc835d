#!/usr/bin/env bash
# Refresh the console's browser libraries from npm (versions pinned in console/package.json and
# its lock file) into the package, where `serve` finds them with no build step at run time.
set -euo pipefail
cd "$(dirname "$0")/../console"
npm ci --no-audit --no-fund --silent
target=../src/tajiri_live/console/static/vendor
mkdir -p "$target"
cp node_modules/chart.js/dist/chart.umd.min.js "$target/chart.umd.min.js"
cp node_modules/hls.js/dist/hls.min.js "$target/hls.min.js"
echo "vendored chart.js $(node -p "require('./node_modules/chart.js/package.json').version"), hls.js $(node -p "require('./node_modules/hls.js/package.json').version")"
